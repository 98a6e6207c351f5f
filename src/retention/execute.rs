//! Enforcing retention on one table: cutoff → drop expired partitions (one `delete` commit, chunked
//! when huge) → expire snapshots → delete what expiry made unreachable, through the deletion gate.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use iceberg::spec::{Datum, Operation, PrimitiveLiteral, PrimitiveType, Type};
use iceberg::table::Table;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::RetentionJob;
use super::plan::{self, DropPlan, FileFacts};
use crate::catalog::{Signal, TableRef};
use crate::config::Mode;
use crate::config::retention::PolicySource;
use crate::job::{PartitionReport, PartitionStatus, TableReport, TableStatus};
use crate::table::properties::{Excluded, TableProperties};
use crate::table::{
    Abandon, Change, CommitError, CommitTarget, Fence, Inventory, Leftover, SnapshotChange,
    commit_with_retry, guard, partition,
};

/// Files removed per `delete` commit; larger drops are split into several commits.
const MAX_REMOVALS_PER_COMMIT: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub(super) enum RetentionError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("reading table metadata: {0}")]
    Iceberg(#[from] iceberg::Error),
    #[error("commit: {0}")]
    Commit(#[from] CommitError),
    #[error("archive: {0}")]
    Archive(String),
}

/// Snapshot expiry (and its cleanup) alone, for orphan cleanup's cycle; drops nothing.
pub(super) async fn expire_table(
    job: &RetentionJob,
    t: &TableRef,
    mode: Mode,
    cancel: &CancellationToken,
    fence: &dyn Fence,
) -> TableReport {
    let commit_to = commit_target(job, t, cancel, fence);
    let run = async {
        let table = job.catalog.load(t).await?;
        let mut report = TableReport::new(t, TableStatus::Unchanged);
        report.retention_outcome();
        if let Some(reason) = guard::commit_blocker(&table).await? {
            report.status = TableStatus::Skipped { reason: reason.to_string() };
            return Ok::<_, RetentionError>(report);
        }
        if let Err(excluded) = TableProperties::admit(&table) {
            return Ok(excluded_report(job, t, "expiry", &excluded));
        }
        // A failure after the expiry landed keeps the report: its outcome counts what was done.
        if let Err(e) =
            super::expire::expire_snapshots(job, t, table, mode, job.clock.now(), &commit_to, &mut report)
                .await
        {
            report.status = TableStatus::Failed { error: crate::job::error_chain(&e) };
        }
        Ok(report)
    };
    match run.await {
        Ok(report) => report,
        // Logged with its table by `TablePass::record`.
        Err(e) => TableReport::new(t, TableStatus::Failed { error: crate::job::error_chain(&e) }),
    }
}

pub(super) async fn retain_table(
    job: &RetentionJob,
    t: &TableRef,
    mode: Mode,
    now: DateTime<Utc>,
    logged: &Mutex<HashSet<(String, String, String)>>,
    cancel: &CancellationToken,
    fence: &dyn Fence,
) -> TableReport {
    let started = Instant::now();
    let report = match run(job, t, mode, now, logged, &commit_target(job, t, cancel, fence)).await {
        Ok(report) => report,
        // Logged with its table by `TablePass::record`.
        Err(e) => TableReport::new(t, TableStatus::Failed { error: crate::job::error_chain(&e) }),
    };
    job.metrics
        .retention_enforcement_duration_seconds
        .with_label_values(&[&t.tenant, &t.dataset])
        .observe(started.elapsed().as_secs_f64());
    report
}

/// Where this table's drops and expiries commit.
fn commit_target<'a>(
    job: &'a RetentionJob,
    t: &'a TableRef,
    cancel: &'a CancellationToken,
    fence: &'a dyn Fence,
) -> CommitTarget<'a> {
    CommitTarget { catalog: &job.catalog, ident: &t.ident, policy: job.commit_retry, cancel, fence }
}

async fn run(
    job: &RetentionJob,
    t: &TableRef,
    mode: Mode,
    now: DateTime<Utc>,
    logged: &Mutex<HashSet<(String, String, String)>>,
    commit_to: &CommitTarget<'_>,
) -> Result<TableReport, RetentionError> {
    // The table first: its own properties may exclude it or set its retention.
    let table = job.catalog.load(t).await?;
    if let Some(reason) = guard::commit_blocker(&table).await? {
        warn!(table = %t, reason, "table skipped");
        job.metrics.tables_skipped_total.with_label_values(&["retention", reason]).inc();
        return Ok(TableReport::new(t, TableStatus::Skipped { reason: reason.to_string() }));
    }
    let props = match TableProperties::admit(&table) {
        Ok(props) => props,
        Err(excluded) => return Ok(excluded_report(job, t, "retention", &excluded)),
    };
    let resolved =
        job.config.policy.resolve_with_property(&t.tenant, &t.dataset, &t.table, t.signal, props.retention);
    let cutoff = plan::cutoff(now, resolved.value, job.config.grace_period);
    let key = (t.tenant.clone(), t.dataset.clone(), t.signal.to_string());
    if logged.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
        job.metrics.retention_cutoffs_computed_total.with_label_values(&labels(t)).inc();
        let shown = cutoff.map(|c| c.to_rfc3339()).unwrap_or_else(|| "none (kept forever)".into());
        let local = cutoff.map(|c| c.with_timezone(&job.config.timezone).to_rfc3339()).unwrap_or_default();
        info!(
            "computed retention cutoff tenant={} dataset={} signal={} cutoff={} local={} retention={} source={}",
            t.tenant, t.dataset, t.signal, shown, local, resolved.value, resolved.source
        );
    }
    if resolved.source == PolicySource::Default && t.signal == Signal::Other {
        // Unknown means keep: no drops, and no snapshot expiry either.
        let mut report = TableReport::new(t, TableStatus::Unchanged);
        report.details.push("no retention policy names this table; kept as is".into());
        return Ok(report);
    }
    let mut report = TableReport::new(t, TableStatus::Unchanged);
    report.retention_outcome();
    let stats = crate::stats::TableStats::of(&table);
    (report.files_before, report.bytes_before, report.rows) = (stats.data_files, stats.bytes, stats.rows);
    // A table nothing is dropped from keeps its figures (reported 5 -> 0 before).
    (report.files_after, report.bytes_after) = (stats.data_files, stats.bytes);
    // A failure after a commit landed keeps the report: its outcome counts what was done.
    let steps = async {
        let table = match cutoff {
            Some(cutoff) => drop_expired(job, t, table, cutoff, mode, commit_to, &mut report).await?,
            None => table,
        };
        super::expire::expire_snapshots(job, t, table, mode, now, commit_to, &mut report).await
    };
    if let Err(e) = steps.await {
        report.status = TableStatus::Failed { error: crate::job::error_chain(&e) };
    }
    Ok(report)
}

/// A table its own properties exclude (`signaldb.compactor.enabled=false`, or a switch that does not
/// parse): logged, counted, reported as skipped with the property named.
fn excluded_report(job: &RetentionJob, t: &TableRef, which: &str, excluded: &Excluded) -> TableReport {
    warn!(table = %t, reason = %excluded, "table skipped");
    job.metrics.tables_skipped_total.with_label_values(&[which, excluded.metric_reason()]).inc();
    TableReport::new(t, TableStatus::Skipped { reason: excluded.to_string() })
}

fn labels(t: &TableRef) -> [&str; 3] {
    [&t.tenant, &t.dataset, t.signal.as_str()]
}

/// Retention's view of every live file: data files first, then delete files.
fn facts(table: &Table, inventory: &Inventory) -> Vec<FileFacts> {
    let md = table.metadata();
    let schema = md.current_schema();
    let ts_field = schema.field_by_name("timestamp").and_then(|f| match f.field_type.as_ref() {
        Type::Primitive(p) => Some((f.id, p.clone(), f.required)),
        _ => None,
    });
    inventory
        .data
        .iter()
        .map(|f| (f, false))
        .chain(inventory.deletes.iter().map(|f| (f, true)))
        .map(|(f, is_delete_file)| {
            let value = f.entry.data_file().partition();
            let spec = md.partition_spec_by_id(f.spec_id);
            FileFacts {
                path: f.path().to_string(),
                size: f.size(),
                records: f.records(),
                is_delete_file,
                partition: spec
                    .map(|s| partition::label(s, schema, value))
                    .unwrap_or_else(|| "unknown".into()),
                range: spec.and_then(|s| partition::time_range(s, schema, value)),
                // The upper bound covers the non-null values only: a file that may hold rows without
                // a timestamp has no bound to be dropped by (an optional column needs a null count
                // of zero).
                max_timestamp: ts_field.as_ref().and_then(|(id, ty, required)| {
                    let file = f.entry.data_file();
                    let no_nulls = *required || file.null_value_counts().get(id) == Some(&0);
                    no_nulls.then(|| file.upper_bounds().get(id).and_then(|d| datum_time(d, ty))).flatten()
                }),
            }
        })
        .collect()
}

fn datum_time(d: &Datum, ty: &PrimitiveType) -> Option<DateTime<Utc>> {
    let PrimitiveLiteral::Long(v) = d.literal() else {
        return match (d.literal(), ty) {
            (PrimitiveLiteral::Int(days), PrimitiveType::Date) => {
                DateTime::from_timestamp(i64::from(*days) * 86_400 + 86_399, 0)
            }
            _ => None,
        };
    };
    match ty {
        PrimitiveType::Timestamp | PrimitiveType::Timestamptz => DateTime::from_timestamp_micros(*v),
        PrimitiveType::TimestampNs | PrimitiveType::TimestamptzNs => Some(DateTime::from_timestamp_nanos(*v)),
        _ => None,
    }
}

/// `timestamp_hour=2026-01-15-10` → `hour=2026-01-15-10` (the seed's dry-run form).
fn short_label(label: &str) -> String {
    label
        .split('/')
        .map(|part| match part.split_once('=') {
            Some((name, value)) => {
                let transform = ["hour", "day", "month", "year"].into_iter().find(|t| name.ends_with(t));
                format!("{}={value}", transform.unwrap_or(name))
            }
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Drops the partitions (and files) that expired before `cutoff`: one `delete` commit per chunk of
/// at most [`MAX_REMOVALS_PER_COMMIT`] files, archived first when an archive is configured. Returns
/// the table as the last confirmed commit left it (or as planned when nothing was dropped).
async fn drop_expired(
    job: &RetentionJob,
    t: &TableRef,
    table: Table,
    cutoff: DateTime<Utc>,
    mode: Mode,
    commit_to: &CommitTarget<'_>,
    report: &mut TableReport,
) -> Result<Table, RetentionError> {
    let inventory = Inventory::load(&table).await?;
    let files = facts(&table, &inventory);
    let dplan = plan::plan_drops(&files, cutoff);
    report.retention_outcome().partitions_evaluated += dplan.evaluated as u64;
    if dplan.unclassifiable > 0 {
        report.details.push(format!(
            "{} file(s) without a time range or bound kept (unclassifiable)",
            dplan.unclassifiable
        ));
    }
    if dplan.remove.is_empty() {
        return Ok(table);
    }
    if mode.is_dry_run() {
        log_would_drop(t, &dplan, &files);
        record_drops(report, &dplan, &files, None, None);
        return Ok(table);
    }
    let allowed: Option<HashSet<String>> = match &job.archive {
        Some(archive) => Some(archive_files(job, archive, &dplan, &files).await?),
        None => None,
    };
    if let Some(hook) = &job.before_commit {
        hook(t.qualified()).await;
    }
    let chunks = dplan.remove.len().div_ceil(MAX_REMOVALS_PER_COMMIT) + 2;
    let (landed, result) =
        commit_drops(table, inventory, cutoff, allowed.as_ref(), chunks, commit_to, report).await;
    record_drops(report, &dplan, &files, Some(&landed.removed), landed.last_snapshot);
    result?;
    for p in report.partition_reports.iter().filter(|p| p.status == PartitionStatus::Succeeded) {
        info!(
            tenant = %t.tenant, dataset = %t.dataset, table = %t.table, partition = %short_label(&p.partition),
            files = p.files_before, bytes = p.bytes_before, rows = p.rows, "dropped partition"
        );
    }
    report.snapshot_id = landed.last_snapshot;
    let stats = crate::stats::TableStats::of(&landed.latest);
    (report.files_after, report.bytes_after) = (stats.data_files, stats.bytes);
    Ok(landed.latest)
}

/// The dry run's account of a drop, one line per partition and per file dropped on its own bound.
fn log_would_drop(t: &TableRef, dplan: &DropPlan, files: &[FileFacts]) {
    for p in &dplan.partitions {
        info!(
            "[DRY-RUN] Would drop partition: tenant={} dataset={} table={} {}",
            t.tenant,
            t.dataset,
            t.table,
            short_label(&p.partition)
        );
    }
    for &i in &dplan.file_level {
        info!(
            "[DRY-RUN] Would drop file: tenant={} dataset={} table={} path={}",
            t.tenant, t.dataset, t.table, files[i].path
        );
    }
}

/// What the drop commits landed.
struct Landed {
    /// Path → size of every file a confirmed commit removed, chunk by chunk: the report and the
    /// metrics count only these, also when a later chunk fails.
    removed: HashMap<String, u64>,
    last_snapshot: Option<i64>,
    /// The last confirmed commit's table (or the planned one when nothing was left to drop).
    latest: Table,
}

/// Commits the drop in chunks, each re-planned on the table as it is at every attempt (appends
/// committed meanwhile are removed only if they too landed in an expired partition), until nothing is
/// left or `chunks` commits were made. Returns what landed, and the error that stopped it if any.
async fn commit_drops(
    table: Table,
    inventory: Inventory,
    cutoff: DateTime<Utc>,
    allowed: Option<&HashSet<String>>,
    chunks: usize,
    commit_to: &CommitTarget<'_>,
    report: &mut TableReport,
) -> (Landed, Result<(), CommitError>) {
    let mut landed = Landed { removed: HashMap::new(), last_snapshot: None, latest: table.clone() };
    // The table's own retention as the cutoff was computed from it.
    let planned_retention = TableProperties::admit(&table).ok().and_then(|p| p.retention);
    let mut current = (table, inventory);
    for _ in 0..chunks {
        let mut proposed: HashMap<String, u64> = HashMap::new();
        let rebase = |tbl: &Table, inv: &Inventory| -> Result<Change, Abandon> {
            // An operator who disables the table, puts it on hold (`signaldb.compactor.retention=
            // forever`) or changes its retention meanwhile is obeyed: the next pass plans anew.
            let props =
                TableProperties::admit(tbl).map_err(|excluded| Abandon::Excluded(excluded.to_string()))?;
            if props.retention != planned_retention {
                return Err(Abandon::Excluded("signaldb.compactor.retention changed meanwhile".into()));
            }
            let all = facts(tbl, inv);
            let replanned = plan::plan_drops(&all, cutoff);
            proposed = replanned
                .remove
                .iter()
                .map(|&i| (all[i].path.clone(), all[i].size))
                .filter(|(p, _)| allowed.is_none_or(|a| a.contains(p)))
                .take(MAX_REMOVALS_PER_COMMIT)
                .collect();
            let remove: HashSet<String> = proposed.keys().cloned().collect();
            if remove.is_empty() {
                return Err(Abandon::NothingLeft(Leftover::Drop));
            }
            Ok(Change::Snapshot(SnapshotChange {
                operation: Operation::Delete,
                remove,
                add: Vec::new(),
                added_data_sequence_number: None,
                summary: [("signaldb.compactor.retention-cutoff".to_string(), cutoff.to_rfc3339())].into(),
            }))
        };
        let (tbl, inv) = current;
        match commit_with_retry(commit_to, tbl.clone(), inv, rebase).await {
            Ok(committed) => {
                report.retention_outcome().commit_conflicts += u64::from(committed.conflicts);
                landed.removed.extend(proposed);
                landed.last_snapshot = Some(committed.snapshot_id);
                landed.latest = committed.table.clone();
                current = (committed.table, committed.inventory);
            }
            // Another writer dropped (or rewrote) the rest meanwhile: the drop is complete.
            Err(CommitError::Abandoned(Abandon::NothingLeft(_))) => break,
            // The operator switched the table off or changed its retention meanwhile (or it may
            // not be committed to any more): what landed stays, the next pass plans anew.
            Err(CommitError::Abandoned(why @ (Abandon::Excluded(_) | Abandon::Blocked(_)))) => {
                warn!(table = %commit_to.ident, reason = %why, "drop abandoned");
                report.details.push(format!("drop abandoned: {why}"));
                break;
            }
            Err(e) => {
                if let CommitError::TooManyConflicts(n) = &e {
                    report.retention_outcome().commit_conflicts += u64::from(*n);
                }
                return (landed, Err(e));
            }
        }
    }
    (landed, Ok(()))
}

/// Records the drops in the report: in dry-run (`removed` is `None`) what the plan would drop; else
/// what confirmed commits removed (`removed`: path → size). A planned partition counts as dropped once
/// every file the plan named in it is gone; one a failure left partly dropped is reported failed.
fn record_drops(
    report: &mut TableReport,
    dplan: &DropPlan,
    files: &[FileFacts],
    removed: Option<&HashMap<String, u64>>,
    snapshot_id: Option<i64>,
) {
    let mut dropped = 0u64;
    for p in &dplan.partitions {
        let named: Vec<&str> = dplan
            .remove
            .iter()
            .filter(|&&i| files[i].partition == p.partition)
            .map(|&i| files[i].path.as_str())
            .collect();
        let status = match removed {
            None => PartitionStatus::Planned,
            Some(removed) if named.iter().all(|f| removed.contains_key(*f)) => PartitionStatus::Succeeded,
            Some(removed) if named.iter().any(|f| removed.contains_key(*f)) => {
                PartitionStatus::Failed { error: "partly dropped: the table's drop did not finish".into() }
            }
            Some(_) => continue,
        };
        if !matches!(status, PartitionStatus::Failed { .. }) {
            dropped += 1;
        }
        report.partition_reports.push(PartitionReport {
            partition: p.partition.clone(),
            status,
            files_before: (p.data_files + p.delete_files) as u64,
            files_after: 0,
            bytes_before: p.bytes,
            bytes_after: 0,
            rows: p.records,
            snapshot_id,
            attempts: None,
            picked: Vec::new(),
        });
    }
    for &i in &dplan.file_level {
        if removed.is_none_or(|r| r.contains_key(&files[i].path)) {
            report.details.push(format!("file expired by its timestamp bound: {}", files[i].path));
        }
    }
    let (files_removed, bytes_removed) = match removed {
        None => (dplan.remove.len() as u64, dplan.remove.iter().map(|&i| files[i].size).sum::<u64>()),
        Some(removed) => (removed.len() as u64, removed.values().sum()),
    };
    report.partitions += dropped;
    report.files_processed += files_removed;
    let outcome = report.retention_outcome();
    outcome.partitions_dropped += dropped;
    outcome.files_removed += files_removed;
    outcome.bytes_removed += bytes_removed;
    if files_removed > 0 {
        report.status = TableStatus::Succeeded;
    }
}

/// Copies the expired data files to the archive (same path relative to the warehouse root) and checks
/// each copy's size. Returns the archived locations; any failure aborts this table's drop.
async fn archive_files(
    job: &RetentionJob,
    archive: &crate::storage::Warehouse,
    dplan: &DropPlan,
    files: &[FileFacts],
) -> Result<HashSet<String>, RetentionError> {
    use object_store::{ObjectStoreExt, PutPayload};
    let root = crate::storage::path::normalize(job.warehouse.root()).unwrap_or_default();
    let mut done = HashSet::new();
    for &i in &dplan.remove {
        let f = &files[i];
        let fail = |why: String| RetentionError::Archive(format!("{}: {why}", f.path));
        let normalized =
            crate::storage::path::normalize(&f.path).ok_or_else(|| fail("unparseable location".into()))?;
        let relative = normalized
            .strip_prefix(&root)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| fail("outside the warehouse root".into()))?;
        let target = format!("{}/{relative}", archive.root().trim_end_matches('/'));
        let src = job.warehouse.object_path(&f.path).map_err(|e| fail(e.to_string()))?;
        let dst = archive.object_path(&target).map_err(|e| fail(e.to_string()))?;
        let bytes = job
            .warehouse
            .store()
            .get(&src)
            .await
            .map_err(|e| fail(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let size = bytes.len() as u64;
        archive.store().put(&dst, PutPayload::from_bytes(bytes)).await.map_err(|e| fail(e.to_string()))?;
        let copied = archive.store().head(&dst).await.map_err(|e| fail(e.to_string()))?;
        if copied.size != size || size != f.size {
            return Err(fail(format!(
                "archived size {} differs from {} (manifest {})",
                copied.size, size, f.size
            )));
        }
        done.insert(f.path.clone());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_labels_use_the_transform_name() {
        assert_eq!(super::short_label("timestamp_hour=2026-01-15-10"), "hour=2026-01-15-10");
        assert_eq!(super::short_label("ts_day=2026-01-15/region=eu"), "day=2026-01-15/region=eu");
    }
}
