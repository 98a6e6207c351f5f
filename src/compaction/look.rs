//! The read-only side of compacting a table: its partitions (by spec id and typed value), the
//! planner's input for each, the one planning step, and the survey's [`look`] with the table's
//! [`Health`]. Reads metadata and manifests; writes nothing, takes no lease, writes no audit row.

use std::collections::{HashMap, HashSet};

use iceberg::spec::Struct;
use iceberg::table::Table;

use super::CompactionJob;
use super::deletes::{
    applies_by_seq, crossing_deletes, delete_applies, delete_is_clean, float_bits, may_name,
    reader_applies_exactly, typed_value,
};
use super::plan::{self, Decision, FileInput, PartitionInput, PlanOptions};
use crate::catalog::TableRef;
use crate::job::PassRequest;
use crate::table::partition;
use crate::table::properties::TableProperties;
use crate::table::{Inventory, LiveFile};

/// One partition of the current snapshot: its spec, value, label and live data files.
pub(super) struct Partition<'a> {
    pub spec_id: i32,
    pub value: Struct,
    pub label: String,
    pub files: Vec<&'a LiveFile>,
}

/// Groups live data files by (spec id, typed partition value), in a stable order. Never by label:
/// `NULL` and the string `"null"` print alike, and so can multi-field labels.
fn partitions<'a>(table: &Table, inventory: &'a Inventory) -> Vec<Partition<'a>> {
    let md = table.metadata();
    let schema = md.current_schema();
    let mut index: HashMap<(i32, Struct, Vec<u64>), usize> = HashMap::new();
    let mut parts: Vec<Partition<'a>> = Vec::new();
    for file in &inventory.data {
        let value = typed_value(table, file);
        let i = *index.entry((file.spec_id, value.clone(), float_bits(&value))).or_insert_with(|| {
            let label = md
                .partition_spec_by_id(file.spec_id)
                .map(|spec| partition::label(spec, schema, &value))
                .unwrap_or_else(|| format!("spec{}:{value:?}", file.spec_id));
            parts.push(Partition { spec_id: file.spec_id, value, label, files: Vec::new() });
            parts.len() - 1
        });
        parts[i].files.push(file);
    }
    parts.sort_by(|a, b| (a.spec_id, &a.label).cmp(&(b.spec_id, &b.label)));
    parts
}

fn planner_input(
    table: &Table,
    inventory: &Inventory,
    crossing: &HashSet<&str>,
    p: &Partition<'_>,
) -> PartitionInput {
    let md = table.metadata();
    let end = md
        .partition_spec_by_id(p.spec_id)
        .and_then(|spec| partition::time_range(spec, md.current_schema(), &p.value))
        .map(|r| r.end);
    PartitionInput {
        label: p.label.clone(),
        end,
        files: p
            .files
            .iter()
            .map(|f| FileInput {
                path: f.path().to_string(),
                size: f.size(),
                records: f.records(),
                parquet: f.entry.file_format() == iceberg::spec::DataFileFormat::Parquet,
                added_at: f
                    .entry
                    .snapshot_id()
                    .and_then(|id| md.snapshot_by_id(id))
                    .and_then(|s| chrono::DateTime::from_timestamp_millis(s.timestamp_ms())),
                deletes: inventory
                    .deletes
                    .iter()
                    .filter(|d| delete_is_clean(table, d, p.spec_id, &p.value) && applies_by_seq(d, f))
                    .count(),
            })
            .collect(),
        delete_files: inventory
            .deletes
            .iter()
            .filter(|d| {
                if delete_is_clean(table, d, p.spec_id, &p.value) {
                    crossing.contains(d.path())
                        || p.files
                            .iter()
                            .any(|f| applies_by_seq(d, f) && !reader_applies_exactly(table, d, f))
                } else {
                    delete_applies(table, d, p.spec_id, &p.value) || p.files.iter().any(|f| may_name(d, f))
                }
            })
            .count(),
        current_spec: p.spec_id == md.default_partition_spec_id(),
    }
}

/// The table's partitions, their planner inputs, the options and the planner's decisions.
pub(super) struct TablePlan<'a> {
    pub parts: Vec<Partition<'a>>,
    pub inputs: Vec<PartitionInput>,
    pub opts: PlanOptions,
    pub decisions: Vec<(usize, Decision)>,
}

/// The one planning step, shared by the read-only [`look`] and the pass itself.
pub(super) fn plan_table<'a>(
    job: &CompactionJob,
    table: &Table,
    props: &TableProperties,
    inventory: &'a Inventory,
    request: &PassRequest,
) -> TablePlan<'a> {
    let parts = partitions(table, inventory);
    let crossing = crossing_deletes(table, inventory);
    let inputs: Vec<PartitionInput> =
        parts.iter().map(|p| planner_input(table, inventory, &crossing, p)).collect();
    let target = props.target_file_size_or(job.config.target_file_size_bytes);
    let opts = PlanOptions {
        target_file_size: target,
        small_file_threshold: target / 100 * job.config.small_file_threshold_percent,
        max_file_size: (target / 100).saturating_mul(job.config.max_file_size_percent),
        rewrite_to_current_spec: job.config.rewrite_to_current_spec,
        min_input_files: job.config.min_input_files,
        partition_lateness: job.config.partition_lateness,
        compact_open_partitions: job.config.compact_open_partitions,
        full: request.full,
        only: request.partitions.clone(),
    };
    let decisions = plan::plan(&inputs, &opts, job.clock.now());
    TablePlan { parts, inputs, opts, decisions }
}

/// What a read-only look at a table found, before any lock, lease or audit row.
pub(super) enum Look {
    /// Nothing to compact now: the table's figures, the metadata location they were read from, and
    /// when a partition that is still open falls due (`None`: not before the table changes).
    Idle { health: Health, pointer: String, until: Option<chrono::DateTime<chrono::Utc>> },
    /// Partitions to compact, and what they owe (the pass orders tables by it).
    Work { health: Health, debt: Vec<plan::DueWork> },
    /// Manifests to rewrite, a table to skip or fail, or the look could not tell: the pass proper
    /// decides, under the table's lease and audit row.
    Pass,
}

/// Reads the table's metadata and manifests and plans, changing nothing: most tables of a pass have
/// nothing to do, and for them no lease is taken and no audit row written.
pub(super) async fn look(job: &CompactionJob, t: &TableRef, request: &PassRequest) -> Look {
    let Ok(table) = job.catalog.load(t).await else { return Look::Pass };
    if !matches!(crate::table::guard::commit_blocker(&table).await, Ok(None)) {
        return Look::Pass;
    }
    // A table its properties exclude is skipped visibly by the pass proper.
    let Ok(props) = TableProperties::admit(&table) else { return Look::Pass };
    let Ok(inventory) = Inventory::load(&table).await else { return Look::Pass };
    let TablePlan { inputs, opts, decisions, .. } = plan_table(job, &table, &props, &inventory, request);
    let health = Health::of(job, &table, &inventory, opts.small_file_threshold).await;
    if decisions.iter().any(|(_, d)| matches!(d, Decision::Compact { .. })) {
        return Look::Work { health, debt: plan::due_work(&inputs, &decisions, &opts, job.clock.now()) };
    }
    // Manifests due for a rewrite (or a plan that could not tell) are work too.
    if request.partitions.is_empty() {
        match super::manifests::assess(job, &table, &props, &inventory).await {
            Ok(None) => {}
            Ok(Some(plan)) if plan.trigger.is_none() => {}
            Ok(Some(_)) | Err(_) => return Look::Pass,
        }
    }
    let Some(pointer) = table.metadata_location() else { return Look::Pass };
    Look::Idle { health, pointer: pointer.to_string(), until: plan::next_due(&inputs, &decisions, &opts) }
}

/// A table's health figures as a look found them (`/v1/tables`, `compactor_table_health`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Health {
    pub files: u64,
    pub bytes: u64,
    pub small_files: u64,
    /// Data manifests of the current snapshot.
    pub manifests: u64,
    pub snapshots: u64,
    /// Size of the current metadata file (read only when per-table metrics are on: one HEAD).
    pub metadata_bytes: Option<u64>,
}

impl Health {
    async fn of(
        job: &CompactionJob,
        table: &Table,
        inventory: &Inventory,
        small_file_threshold: u64,
    ) -> Health {
        let metadata_bytes = match (job.config.table_metrics, table.metadata_location()) {
            (true, Some(location)) => match table.file_io().new_input(location) {
                Ok(input) => input.metadata().await.ok().map(|m| m.size),
                Err(_) => None,
            },
            _ => None,
        };
        Health {
            files: inventory.data.len() as u64,
            bytes: inventory.data.iter().map(|f| f.size()).sum(),
            small_files: inventory.data.iter().filter(|f| f.size() < small_file_threshold).count() as u64,
            manifests: super::manifests::data_manifests(inventory),
            snapshots: table.metadata().snapshots().count() as u64,
            metadata_bytes,
        }
    }
}
