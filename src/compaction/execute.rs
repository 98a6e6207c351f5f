//! Compacting one table: inventory → plan → per group rewrite and commit.
//!
//! Rewrites run up to `max_concurrent_rewrites` at a time; commits of one table are serialized (each
//! starts from the table as the previous one left it, so groups do not conflict with each other) and
//! every commit attempt is revalidated against the table as it is then.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use futures::StreamExt;
use iceberg::spec::{FormatVersion, Operation, Struct};
use iceberg::table::Table;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::CompactionJob;
use super::invariants;
use super::plan::{self, Decision, FileInput, Group, PartitionInput, PlanOptions, SkipReason};
use super::rewrite::{self, GroupInput, Rewritten};
use super::schedule::Budget;
use crate::catalog::TableRef;
use crate::failpoint;
use crate::job::PickedFile;
use crate::job::{PartitionReport, PartitionStatus, PassRequest, TableReport, TableStatus};
use crate::table::commit::discard_uncommitted;
use crate::table::partition;
use crate::table::properties::TableProperties;
use crate::table::{
    Abandon, Change, CommitError, CommitTarget, Committed, Fence, Inventory, LiveFile, RetryPolicy,
    SnapshotChange, commit_with_retry,
};

#[derive(Debug, thiserror::Error)]
enum ExecError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("reading manifests: {0}")]
    Iceberg(#[from] iceberg::Error),
}

/// One partition of the current snapshot: its spec, value, label and live data files.
struct Partition<'a> {
    spec_id: i32,
    value: Struct,
    label: String,
    files: Vec<&'a LiveFile>,
}

/// A file's partition value typed as the current schema types it (see [`partition::coerce`]).
fn typed_value(table: &Table, file: &LiveFile) -> Struct {
    let md = table.metadata();
    let value = file.entry.data_file().partition();
    match md.partition_spec_by_id(file.spec_id) {
        Some(spec) => partition::coerce(spec, md.current_schema(), value),
        None => value.clone(),
    }
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

/// The bit patterns of a partition value's floating-point fields (NaN canonical). `Struct` equality
/// goes through `OrderedFloat`, for which `-0.0 == 0.0`; identity partitions on a float column are two
/// partitions there (the reader fills the column from the partition value), as in Java's
/// `Double.compare`.
fn float_bits(value: &Struct) -> Vec<u64> {
    use iceberg::spec::{Literal, PrimitiveLiteral};
    let canonical = |bits: u64, nan: bool| if nan { u64::MAX } else { bits };
    value
        .iter()
        .filter_map(|field| match field {
            Some(Literal::Primitive(PrimitiveLiteral::Float(f))) => {
                Some(canonical(u64::from(f.0.to_bits()), f.0.is_nan()))
            }
            Some(Literal::Primitive(PrimitiveLiteral::Double(d))) => {
                Some(canonical(d.0.to_bits(), d.0.is_nan()))
            }
            _ => None,
        })
        .collect()
}

/// Whether a delete file may apply to rows of partition (`spec_id`, `value`). Fails closed: a delete
/// of an unpartitioned or all-void spec is global (as in Java), and so, here, is one of any other spec
/// than the partition's (it may name the partition's files; the partition is then not rewritten).
fn delete_applies(table: &Table, delete: &LiveFile, spec_id: i32, value: &Struct) -> bool {
    let delete_value = typed_value(table, delete);
    delete.entry.data_file().partition().fields().is_empty()
        || delete.spec_id != spec_id
        || (delete_value == *value && float_bits(&delete_value) == float_bits(value))
}

/// Whether `delete` can be applied while rewriting partition (`spec_id`, `value`): a delete of an
/// unpartitioned spec, or of the partition's own spec and value. Any other delete that may apply
/// ([`delete_applies`]) makes the partition unrewritable (`has_delete_files`): applying it could
/// delete rows it does not cover (an equality delete of another spec), not applying it could
/// resurrect rows.
fn delete_is_clean(table: &Table, delete: &LiveFile, spec_id: i32, value: &Struct) -> bool {
    let delete_value = typed_value(table, delete);
    delete.entry.data_file().partition().fields().is_empty()
        || (delete.spec_id == spec_id
            && delete_value == *value
            && float_bits(&delete_value) == float_bits(value))
}

/// A live file's data sequence number (0 for v1 entries, which have none).
fn data_seq(f: &LiveFile) -> i64 {
    f.entry.sequence_number().unwrap_or(0)
}

/// Whether delete `d` applies to data file `f` by sequence number (the spec's rule: position deletes
/// to data files of a sequence number at most theirs, equality deletes to strictly older ones).
fn applies_by_seq(d: &LiveFile, f: &LiveFile) -> bool {
    match d.entry.content_type() {
        iceberg::spec::DataContentType::EqualityDeletes => data_seq(f) < data_seq(d),
        _ => data_seq(f) <= data_seq(d),
    }
}

/// Whether iceberg's reader applies delete `d` to data file `f` exactly as the spec does. Position
/// deletes it does. An equality delete it applies as the row filter `NOT (c1 = v1 AND …)`, which keeps a
/// row only where that is true: where one of the row's delete columns is NULL the filter is NULL and
/// the row is dropped (NULL equals no value: the row is live), and for a column the file lacks (added
/// after it was written, so NULL throughout) the filter is `false` for every row. So an equality
/// delete is applied only to files whose statistics show no NULL in every one of its columns; a
/// partition with any other file it applies to is left alone (`has_delete_files`).
fn reader_applies_exactly(d: &LiveFile, f: &LiveFile) -> bool {
    if d.entry.content_type() != iceberg::spec::DataContentType::EqualityDeletes {
        return true;
    }
    let nulls = f.entry.data_file().null_value_counts();
    d.entry
        .data_file()
        .equality_ids()
        .is_some_and(|ids| !ids.is_empty() && ids.iter().all(|id| nulls.get(id) == Some(&0)))
}

/// Whether position delete `d` may name data file `f`, whatever their partitions: `d`'s `file_path`
/// bounds cover `f`'s path, or `d` has none. By the spec a position delete applies only to data files
/// of its own partition, but PyIceberg 0.12 and DuckDB 1.5 apply its entries to whichever file they
/// name: rewriting such a file (new path) or removing the delete would bring rows back for them. Java's
/// writers keep full `file_path` bounds, so a delete of one partition covers only that partition's paths.
fn may_name(d: &LiveFile, f: &LiveFile) -> bool {
    use iceberg::metadata_columns::RESERVED_FIELD_ID_DELETE_FILE_PATH as FILE_PATH;
    use iceberg::spec::PrimitiveLiteral;
    // A delete names only files that existed when it was written (paths are never reused).
    if d.entry.content_type() != iceberg::spec::DataContentType::PositionDeletes || data_seq(f) > data_seq(d)
    {
        return false;
    }
    let file = d.entry.data_file();
    let bound =
        |bounds: &HashMap<i32, iceberg::spec::Datum>| match bounds.get(&FILE_PATH).map(|b| b.literal()) {
            Some(PrimitiveLiteral::String(s)) => Some(s.clone()),
            _ => None,
        };
    match (bound(file.lower_bounds()), bound(file.upper_bounds())) {
        // A truncated lower bound is a prefix (not above any value), a truncated upper bound is
        // incremented (not below any): the range covers every path named.
        (Some(lower), Some(upper)) => lower.as_str() <= f.path() && f.path() <= upper.as_str(),
        _ => true,
    }
}

/// Whether data file `f` lies in the scope of delete `d` (its partition, or everywhere for a delete of
/// an unpartitioned spec).
fn in_scope(table: &Table, d: &LiveFile, f: &LiveFile) -> bool {
    delete_is_clean(table, d, f.spec_id, &typed_value(table, f))
}

/// The deletes a rewrite of these inputs applied that afterwards apply to no live data file: none of
/// `remaining` (the table's live data files other than the inputs; the outputs carry the starting
/// sequence number, so no equality delete present at the start applies to them, and no position
/// delete names their new paths) is in a delete's scope and old enough for it, nor (a position delete)
/// outside its scope but possibly named by it ([`may_name`]).
fn obsolete_deletes<'a>(
    table: &Table,
    deletes: impl Iterator<Item = &'a LiveFile>,
    remaining: &[&LiveFile],
) -> Vec<String> {
    deletes
        .filter(|d| {
            !remaining.iter().any(
                |f| {
                    if in_scope(table, d, f) { applies_by_seq(d, f) } else { may_name(d, f) }
                },
            )
        })
        .map(|d| d.path().to_string())
        .collect()
}

/// The live position deletes that may name a live data file outside their own scope ([`may_name`]).
/// PyIceberg and DuckDB apply such entries; PyIceberg only while the delete still attaches to a file
/// of its own partition. So no partition such a delete is clean for or may name is rewritten: the
/// delete keeps meaning to every reader what it meant before.
fn crossing_deletes<'a>(table: &Table, inventory: &'a Inventory) -> HashSet<&'a str> {
    inventory
        .deletes
        .iter()
        .filter(|d| inventory.data.iter().any(|f| may_name(d, f) && !in_scope(table, d, f)))
        .map(|d| d.path())
        .collect()
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
                        || p.files.iter().any(|f| applies_by_seq(d, f) && !reader_applies_exactly(d, f))
                } else {
                    delete_applies(table, d, p.spec_id, &p.value) || p.files.iter().any(|f| may_name(d, f))
                }
            })
            .count(),
        current_spec: p.spec_id == md.default_partition_spec_id(),
    }
}

/// The table's partitions, their planner inputs, the options and the planner's decisions.
struct TablePlan<'a> {
    parts: Vec<Partition<'a>>,
    inputs: Vec<PartitionInput>,
    opts: PlanOptions,
    decisions: Vec<(usize, Decision)>,
}

/// The one planning step, shared by the read-only [`look`] and the pass itself.
fn plan_table<'a>(
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

pub(super) async fn compact_table(
    job: &CompactionJob,
    t: &TableRef,
    request: &PassRequest,
    cancel: &CancellationToken,
    fence: &dyn Fence,
    budget: &Budget,
) -> TableReport {
    let started = Instant::now();
    let report = match run(job, t, request, cancel, fence, budget).await {
        Ok(mut report) => {
            let (files_before, files_after) = (report.files_before, report.files_after);
            let (bytes_before, bytes_after) = (report.bytes_before, report.bytes_after);
            let outcome = report.compaction_outcome();
            (outcome.files_before, outcome.files_after) = (files_before, files_after);
            (outcome.bytes_before, outcome.bytes_after) = (bytes_before, bytes_after);
            report
        }
        // Logged with its table by `TablePass::record`.
        Err(e) => TableReport::new(t, TableStatus::Failed { error: crate::job::error_chain(&e) }),
    };
    job.metrics
        .compaction_duration_seconds
        .with_label_values(&[&t.tenant, &t.dataset, t.signal.as_str()])
        .observe(started.elapsed().as_secs_f64());
    report
}

/// A group ready to run: which partition, which files, under which spec the output is written.
struct Work<'a> {
    partition: usize,
    files: Vec<&'a LiveFile>,
    group: Group,
    /// Write the output under the table's current spec (the inputs are of an older one).
    to_current_spec: bool,
}

impl Work<'_> {
    /// The picked files and why, for the report.
    fn picked(&self) -> Vec<PickedFile> {
        self.files
            .iter()
            .zip(&self.group.reasons)
            .map(|(f, r)| PickedFile { path: f.path().to_string(), bytes: f.size(), reason: r.as_str() })
            .collect()
    }

    /// `small 5, oversized 1`.
    fn reasons(&self) -> String {
        let mut counts: BTreeMap<plan::PickReason, usize> = BTreeMap::new();
        for r in &self.group.reasons {
            *counts.entry(*r).or_default() += 1;
        }
        counts.iter().map(|(r, n)| format!("{} {n}", r.as_str())).collect::<Vec<_>>().join(", ")
    }
}

async fn run(
    job: &CompactionJob,
    t: &TableRef,
    request: &PassRequest,
    cancel: &CancellationToken,
    fence: &dyn Fence,
    budget: &Budget,
) -> Result<TableReport, ExecError> {
    let table = job.catalog.load(t).await?;
    if let Some(reason) = crate::table::guard::commit_blocker(&table).await? {
        warn!(table = %t, reason, "table skipped");
        job.metrics.tables_skipped_total.with_label_values(&["compaction", reason]).inc();
        return Ok(TableReport::new(t, TableStatus::Skipped { reason: reason.to_string() }));
    }
    let props = match TableProperties::admit(&table) {
        Ok(props) => props,
        Err(excluded) => {
            warn!(table = %t, reason = %excluded, "table skipped");
            job.metrics
                .tables_skipped_total
                .with_label_values(&["compaction", excluded.metric_reason()])
                .inc();
            return Ok(TableReport::new(t, TableStatus::Skipped { reason: excluded.to_string() }));
        }
    };
    let inventory = Inventory::load(&table).await?;
    let TablePlan { parts, inputs, opts, decisions } = plan_table(job, &table, &props, &inventory, request);
    let target = opts.target_file_size;

    let mut report = TableReport::new(t, TableStatus::Unchanged);
    // The pass's figure; the manifest step after the partitions sees the table as they left it.
    let manifests = super::manifests::data_manifests(&inventory);
    let outcome = report.compaction_outcome();
    (outcome.manifests_before, outcome.manifests_after) = (manifests, manifests);
    let waiting_since: HashMap<usize, chrono::DateTime<chrono::Utc>> = decisions
        .iter()
        .filter(|(_, d)| matches!(d, Decision::Compact { .. }))
        .map(|(i, _)| *i)
        .zip(plan::due_work(&inputs, &decisions, &opts, job.clock.now()))
        .map(|(i, due)| (i, due.waiting_since))
        .collect();
    let mut work = Vec::new();
    for (i, decision) in decisions {
        let input = &inputs[i];
        match decision {
            Decision::Skip { reason } => {
                job.metrics
                    .partitions_skipped_total
                    .with_label_values(&[&t.tenant, &t.dataset, t.signal.as_str(), reason.as_str()])
                    .inc();
                report.partition_reports.push(skipped(input, reason));
            }
            Decision::Compact { groups, to_current_spec } => {
                work.extend(groups.into_iter().map(|group| Work {
                    partition: i,
                    files: group.files.iter().map(|&f| parts[i].files[f]).collect(),
                    group,
                    to_current_spec,
                }))
            }
        }
    }
    report.files_before = inventory.data.len() as u64;
    report.bytes_before = inventory.data.iter().map(|f| f.size()).sum();
    // The partition waiting longest first: a pass budget that runs out leaves the newest debt.
    work.sort_by_key(|w| (waiting_since.get(&w.partition).copied(), w.partition));
    let commit_to = CommitTarget {
        catalog: &job.catalog,
        ident: &t.ident,
        policy: RetryPolicy::configured(&job.config),
        cancel,
        fence,
    };
    if request.mode.is_dry_run() {
        for w in &work {
            let p = &parts[w.partition];
            // The exact line SignalDB's operators grep for; the reasons follow on lines of their own.
            info!(
                "[DRY-RUN] Would compact partition: tenant={} dataset={} table={} partition={} files={} -> {} bytes={}",
                t.tenant,
                t.dataset,
                t.table,
                p.label,
                w.files.len(),
                w.group.estimated_output_files,
                w.group.bytes
            );
            info!(
                table = %t, partition = %p.label, picked = %w.reasons(), to_current_spec = w.to_current_spec,
                "[DRY-RUN] picked files"
            );
            for f in w.picked() {
                info!(table = %t, partition = %p.label, file = %f.path, bytes = f.bytes, reason = f.reason, "[DRY-RUN] picked file");
            }
            report.details.push(format!(
                "would rewrite {}: {} file(s) -> ~{} ({}){}",
                p.label,
                w.files.len(),
                w.group.estimated_output_files,
                w.reasons(),
                if w.to_current_spec { ", under the current partition spec" } else { "" },
            ));
            report.partition_reports.push(planned(&p.label, w));
        }
        report.files_after = report.files_before
            - work
                .iter()
                .map(|w| (w.files.len() as u64).saturating_sub(w.group.estimated_output_files))
                .sum::<u64>();
        report.bytes_after = report.bytes_before;
        report.partitions = work.iter().map(|w| w.partition).collect::<HashSet<_>>().len() as u64;
        if !work.is_empty() {
            report.status = TableStatus::Succeeded;
        }
        if request.partitions.is_empty() {
            let mode = request.mode;
            super::manifests::step(job, t, &table, &inventory, &props, mode, &mut report, &commit_to).await;
        }
        return Ok(report);
    }

    let latest = Mutex::new((table.clone(), inventory.clone()));
    let start = Start::new(&table, &inventory, target);
    let (latest_ref, start_ref, table_ref, parts_ref) = (&latest, &start, &table, &parts);
    let commit_ref = &commit_to;
    let work_ref = &work;
    // Indexes, not `work.iter()`: a closure over borrowed items trips the Send check of async_trait.
    let results: Vec<(usize, Result<GroupDone, GroupFailure>)> = futures::stream::iter(0..work.len())
        .map(|i| async move {
            let w = &work_ref[i];
            let p = &parts_ref[w.partition];
            // About to start a group: the pass's budget decides whether it may.
            if let Err(spent) = budget.admit(w.group.bytes) {
                return (w.partition, Err(GroupFailure::Skipped(spent.as_str())));
            }
            let result = run_group(job, t, table_ref, start_ref, p, w, latest_ref, commit_ref).await;
            (w.partition, result.map(|done| GroupDone { work: i, ..done }))
        })
        .buffer_unordered(job.config.max_concurrent_rewrites.max(1))
        .collect()
        .await;

    let (final_table, final_inventory) = latest.into_inner();
    merge_results(&mut report, &parts, &work, results);
    // After the partitions: the manifests as the pass left them (the step rebases if the table moved).
    if request.partitions.is_empty() && !cancel.is_cancelled() {
        let mode = request.mode;
        super::manifests::step(job, t, &final_table, &final_inventory, &props, mode, &mut report, commit_ref)
            .await;
    }
    let files_delta: i64 = report
        .partition_reports
        .iter()
        .filter(|p| p.status == PartitionStatus::Succeeded)
        .map(|p| p.files_before as i64 - p.files_after as i64)
        .sum();
    report.files_after = (report.files_before as i64 - files_delta).max(0) as u64;
    report.bytes_after = crate::stats::TableStats::of(&final_table).bytes;
    Ok(report)
}

/// What the rewrite started from: fixed for every group of this table pass.
struct Start {
    schema_id: i32,
    /// The table's target file size when the pass started.
    target_file_size: u64,
    sequence_number: Option<i64>,
    deletes: HashSet<String>,
    /// The live delete files at the start (a rewrite applies those that are clean for its partition).
    delete_files: Vec<LiveFile>,
}

impl Start {
    fn new(table: &Table, inventory: &Inventory, target_file_size: u64) -> Start {
        let v2 = table.metadata().format_version() == FormatVersion::V2;
        Start {
            schema_id: table.metadata().current_schema_id(),
            target_file_size,
            sequence_number: v2.then(|| inventory.sequence_number()),
            deletes: inventory.deletes.iter().map(|d| d.path().to_string()).collect(),
            delete_files: inventory.deletes.clone(),
        }
    }
}

struct GroupDone {
    /// Index into the table's work list.
    work: usize,
    committed: Committed,
    rewritten: Rewritten,
    inputs: usize,
    input_bytes: u64,
}

/// A group that did not commit: abandoned cleanly (the table moved on) or failed.
enum GroupFailure {
    /// Shutdown was requested before the group's rewrite started; nothing was written.
    NotStarted,
    Abandoned(Abandon),
    /// Deliberately not rewritten (e.g. `no_field_ids`); nothing was written.
    Skipped(&'static str),
    Failed(String),
    /// Gave up after losing the commit race this many times in a row.
    Conflicts {
        error: String,
        conflicts: u32,
    },
}

#[allow(clippy::too_many_arguments)]
async fn run_group(
    job: &CompactionJob,
    t: &TableRef,
    table: &Table,
    start: &Start,
    p: &Partition<'_>,
    w: &Work<'_>,
    latest: &Mutex<(Table, Inventory)>,
    commit_to: &CommitTarget<'_>,
) -> Result<GroupDone, GroupFailure> {
    if commit_to.cancel.is_cancelled() {
        return Err(GroupFailure::NotStarted);
    }
    let rewritten = rewrite::rewrite(GroupInput {
        table,
        spec_id: p.spec_id,
        partition: p.value.clone(),
        files: w.files.clone(),
        target_file_size: start.target_file_size,
        // `memory_limit_mb` bounds the process's rewrites together: concurrent rewrites share it.
        memory_limit: job.config.memory_limit_bytes / job.config.max_concurrent_rewrites.max(1) as u64,
        output_spec_id: if w.to_current_spec {
            table.metadata().default_partition_spec_id()
        } else {
            p.spec_id
        },
        deletes: w
            .files
            .iter()
            .map(|f| {
                start
                    .delete_files
                    .iter()
                    .filter(|d| delete_is_clean(table, d, p.spec_id, &p.value) && applies_by_seq(d, f))
                    .cloned()
                    .collect()
            })
            .collect(),
    })
    .await
    .map_err(|e| match e.skip_reason() {
        Some(reason) => {
            warn!(table = %t, partition = %p.label, reason, error = %e, "partition skipped");
            job.metrics
                .partitions_skipped_total
                .with_label_values(&[&t.tenant, &t.dataset, t.signal.as_str(), reason])
                .inc();
            GroupFailure::Skipped(reason)
        }
        None => GroupFailure::Failed(format!("rewrite failed: {}", crate::job::error_chain(&e))),
    })?;
    let outputs: Vec<String> = rewritten.files.iter().map(|f| f.file.file_path().to_string()).collect();
    let inputs_stats: Vec<&iceberg::spec::DataFile> = w.files.iter().map(|f| f.entry.data_file()).collect();
    let outputs_stats: Vec<&iceberg::spec::DataFile> = rewritten.files.iter().map(|f| &f.file).collect();
    let schema = table.metadata().current_schema();
    let checked = if w.to_current_spec {
        match table.metadata().partition_spec_by_id(table.metadata().default_partition_spec_id()) {
            Some(spec) => invariants::check_respec(
                schema,
                spec,
                &inputs_stats,
                &outputs_stats,
                rewritten.deletes_applied,
            ),
            None => Err(invariants::Violation {
                check: "partition",
                column: "(partition spec)".into(),
                input: "the current spec".into(),
                output: "not found".into(),
            }),
        }
    } else {
        invariants::check(schema, &p.value, &inputs_stats, &outputs_stats, rewritten.deletes_applied)
    };
    if let Err(v) = checked {
        error!(
            table = %t, partition = %p.label, check = v.check, column = %v.column, input = %v.input,
            output = %v.output, "content invariant violated: group abandoned, nothing committed"
        );
        job.metrics.invariant_violations_total.with_label_values(&["compaction", &t.qualified()]).inc();
        discard_uncommitted(table, &outputs).await;
        return Err(GroupFailure::Failed(format!("content invariant violated: {v}")));
    }
    failpoint::hit(failpoint::COMPACTION_BEFORE_SWAP);
    if let Some(hook) = &job.before_commit {
        hook(p.label.clone()).await;
    }
    failpoint::panic_point(failpoint::COMPACTION_PANIC, &t.qualified());

    let inputs: HashSet<String> = w.files.iter().map(|f| f.path().to_string()).collect();
    let rebase = |current: &Table, inv: &Inventory| -> Result<Change, Abandon> {
        if current.metadata().current_schema_id() != start.schema_id {
            return Err(Abandon::SchemaChanged);
        }
        // An operator who disables the table (or breaks a switch) meanwhile is obeyed.
        if let Err(excluded) = TableProperties::admit(current) {
            return Err(Abandon::Excluded(excluded.to_string()));
        }
        let live: HashSet<&str> = inv.data.iter().map(|f| f.path()).collect();
        if let Some(gone) = inputs.iter().find(|i| !live.contains(i.as_str())) {
            return Err(Abandon::InputGone(gone.clone()));
        }
        if let Some(d) = inv.deletes.iter().find(|d| {
            (delete_applies(current, d, p.spec_id, &p.value) || w.files.iter().any(|f| may_name(d, f)))
                && !start.deletes.contains(d.path())
        }) {
            return Err(Abandon::DeleteFileAdded(d.path().to_string()));
        }
        // Deletes applied by this rewrite that no live data file needs any more leave with the
        // inputs (decided on the table as it is now; only deletes present at the start were
        // applied, and any other delete for the partition abandoned the group above).
        let remaining: Vec<&LiveFile> = inv.data.iter().filter(|f| !inputs.contains(f.path())).collect();
        let applied = inv
            .deletes
            .iter()
            .filter(|d| start.deletes.contains(d.path()) && delete_is_clean(current, d, p.spec_id, &p.value));
        let mut remove = inputs.clone();
        remove.extend(obsolete_deletes(current, applied, &remaining));
        Ok(Change::Snapshot(SnapshotChange {
            operation: Operation::Replace,
            remove,
            add: rewritten.files.clone(),
            added_data_sequence_number: start.sequence_number,
            summary: [("signaldb.compactor.version".to_string(), env!("CARGO_PKG_VERSION").to_string())]
                .into(),
        }))
    };
    let mut guard = latest.lock().await;
    let (base_table, base_inventory) = guard.clone();
    let outcome = commit_with_retry(commit_to, base_table, base_inventory, rebase).await;
    match outcome {
        Ok(committed) => {
            *guard = (committed.table.clone(), committed.inventory.clone());
            drop(guard);
            let input_bytes = w.files.iter().map(|f| f.size()).sum();
            info!(
                table = %t, partition = %p.label, files_in = w.files.len(), files_out = rewritten.files.len(),
                bytes_in = input_bytes, bytes_out = rewritten.bytes_written, rows = rewritten.rows,
                snapshot_id = committed.snapshot_id, attempts = committed.attempts, "compacted partition"
            );
            Ok(GroupDone { work: 0, committed, rewritten, inputs: w.files.len(), input_bytes })
        }
        Err(e) => {
            drop(guard);
            // Outputs were never referenced by a landed commit unless the outcome is unknown.
            if definitely_not_committed(&e) {
                discard_uncommitted(table, &outputs).await;
            }
            warn!(table = %t, partition = %p.label, error = %e, "compaction group not committed");
            match e {
                CommitError::Abandoned(reason) => {
                    job.metrics
                        .partitions_skipped_total
                        .with_label_values(&[&t.tenant, &t.dataset, t.signal.as_str(), "abandoned"])
                        .inc();
                    Err(GroupFailure::Abandoned(reason))
                }
                CommitError::TooManyConflicts(conflicts) => {
                    Err(GroupFailure::Conflicts { error: crate::job::error_chain(&e), conflicts })
                }
                other => Err(GroupFailure::Failed(crate::job::error_chain(&other))),
            }
        }
    }
}

fn definitely_not_committed(e: &CommitError) -> bool {
    matches!(e, CommitError::Abandoned(_) | CommitError::TooManyConflicts(_) | CommitError::Produce(_))
}

fn skipped(input: &PartitionInput, reason: SkipReason) -> PartitionReport {
    let files = input.files.len() as u64;
    let bytes = input.files.iter().map(|f| f.size).sum();
    PartitionReport {
        partition: input.label.clone(),
        status: PartitionStatus::Skipped { reason: reason.as_str().to_string() },
        files_before: files,
        files_after: files,
        bytes_before: bytes,
        bytes_after: bytes,
        rows: input.files.iter().map(|f| f.records).sum(),
        snapshot_id: None,
        attempts: None,
        picked: Vec::new(),
    }
}

fn planned(label: &str, w: &Work<'_>) -> PartitionReport {
    let group = &w.group;
    PartitionReport {
        partition: label.to_string(),
        status: PartitionStatus::Planned,
        files_before: group.files.len() as u64,
        files_after: group.estimated_output_files,
        bytes_before: group.bytes,
        bytes_after: group.bytes,
        rows: group.records,
        snapshot_id: None,
        attempts: None,
        picked: w.picked(),
    }
}

/// Folds group outcomes into one report line per partition (failed if any of its groups failed).
fn merge_results(
    report: &mut TableReport,
    parts: &[Partition<'_>],
    work: &[Work<'_>],
    results: Vec<(usize, Result<GroupDone, GroupFailure>)>,
) {
    let mut by_partition: BTreeMap<usize, PartitionReport> = BTreeMap::new();
    for (partition, result) in results {
        let entry = by_partition.entry(partition).or_insert_with(|| PartitionReport {
            partition: parts[partition].label.clone(),
            status: PartitionStatus::Succeeded,
            files_before: 0,
            files_after: 0,
            bytes_before: 0,
            bytes_after: 0,
            rows: 0,
            snapshot_id: None,
            attempts: None,
            picked: Vec::new(),
        });
        match result {
            Ok(done) => {
                entry.picked.extend(work[done.work].picked());
                entry.files_before += done.inputs as u64;
                entry.files_after += done.rewritten.files.len() as u64;
                entry.bytes_before += done.input_bytes;
                entry.bytes_after += done.rewritten.bytes_written;
                entry.rows += done.rewritten.rows;
                entry.snapshot_id = Some(done.committed.snapshot_id);
                entry.attempts = Some(entry.attempts.unwrap_or(0).max(done.committed.attempts));
                report.snapshot_id = Some(done.committed.snapshot_id);
                report.files_processed += done.inputs as u64;
                report.bytes_reclaimed += done.input_bytes.saturating_sub(done.rewritten.bytes_written);
                let outcome = report.compaction_outcome();
                outcome.groups_committed += 1;
                outcome.files_rewritten += done.inputs as u64;
                outcome.bytes_rewritten += done.input_bytes;
                outcome.commit_conflicts += u64::from(done.committed.conflicts);
            }
            Err(failure) => {
                let group_files: usize =
                    work.iter().filter(|w| w.partition == partition).map(|w| w.files.len()).sum();
                entry.files_before = entry.files_before.max(group_files as u64);
                entry.files_after = entry.files_after.max(entry.files_before);
                match failure {
                    GroupFailure::Failed(error) => entry.status = PartitionStatus::Failed { error },
                    GroupFailure::Conflicts { error, conflicts } => {
                        entry.status = PartitionStatus::Failed { error };
                        report.compaction_outcome().commit_conflicts += u64::from(conflicts);
                    }
                    GroupFailure::Abandoned(why)
                        if !matches!(entry.status, PartitionStatus::Failed { .. }) =>
                    {
                        entry.status = PartitionStatus::Skipped { reason: format!("abandoned: {why}") }
                    }
                    GroupFailure::NotStarted if !matches!(entry.status, PartitionStatus::Failed { .. }) => {
                        entry.status = PartitionStatus::Skipped {
                            reason: "abandoned: shutdown requested before the rewrite started".into(),
                        }
                    }
                    GroupFailure::Abandoned(_) | GroupFailure::NotStarted => {}
                    GroupFailure::Skipped(reason)
                        if !matches!(entry.status, PartitionStatus::Failed { .. }) =>
                    {
                        entry.status = PartitionStatus::Skipped { reason: reason.to_string() }
                    }
                    GroupFailure::Skipped(_) => {}
                }
            }
        }
    }
    let (mut ok, mut failed) = (0, 0);
    let mut first_failure = None;
    for (_, p) in by_partition {
        match &p.status {
            PartitionStatus::Succeeded => ok += 1,
            PartitionStatus::Failed { error } => {
                failed += 1;
                first_failure.get_or_insert_with(|| format!("{}: {error}", p.partition));
            }
            _ => {}
        }
        report.rows += p.rows;
        report.partition_reports.push(p);
    }
    report.partitions = ok + failed;
    report.status = match (ok, failed) {
        // The audit row's error carries the first reason, not only a count.
        (_, f) if f > 0 => TableStatus::Failed {
            error: format!("{f} partition(s) failed; first: {}", first_failure.unwrap_or_default()),
        },
        (0, 0) => TableStatus::Unchanged,
        _ => TableStatus::Succeeded,
    };
}
