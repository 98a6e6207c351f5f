//! Compacting one table under its lease: inventory → plan (`look`'s planning step) → per group
//! rewrite, content invariants and commit; the dry run's account of the same plan.
//!
//! Rewrites run up to `max_concurrent_rewrites` at a time; commits of one table are serialized (each
//! starts from the table as the previous one left it, so groups do not conflict with each other) and
//! every commit attempt is revalidated against the table as it is then (`group`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use iceberg::table::Table;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::CompactionJob;
use super::group::{GroupDone, GroupFailure, Groups, Start, Work};
use super::look::{Partition, TablePlan, plan_table};
use super::plan::{self, Decision, PartitionInput, PlanOptions, SkipReason};
use super::schedule::Budget;
use crate::catalog::TableRef;
use crate::job::{PartitionReport, PartitionStatus, PassRequest, TableReport, TableStatus};
use crate::table::properties::TableProperties;
use crate::table::{CommitTarget, Fence, Inventory};

#[derive(Debug, thiserror::Error)]
enum ExecError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("reading manifests: {0}")]
    Iceberg(#[from] iceberg::Error),
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

async fn run(
    job: &CompactionJob,
    t: &TableRef,
    request: &PassRequest,
    cancel: &CancellationToken,
    fence: &dyn Fence,
    budget: &Budget,
) -> Result<TableReport, ExecError> {
    let table = job.catalog.load(t).await?;
    let props = match admit(job, t, &table).await? {
        Ok(props) => props,
        Err(skipped) => return Ok(skipped),
    };
    let inventory = Inventory::load(&table).await?;
    let TablePlan { parts, inputs, opts, decisions } = plan_table(job, &table, &props, &inventory, request);

    let mut report = TableReport::new(t, TableStatus::Unchanged);
    // The pass's figure; the manifest step after the partitions sees the table as they left it.
    let manifests = super::manifests::data_manifests(&inventory);
    let outcome = report.compaction_outcome();
    (outcome.manifests_before, outcome.manifests_after) = (manifests, manifests);
    let work = work_list(job, t, &parts, &inputs, &opts, decisions, &mut report);
    report.files_before = inventory.data.len() as u64;
    report.bytes_before = inventory.data.iter().map(|f| f.size()).sum();
    let commit_to =
        CommitTarget { catalog: &job.catalog, ident: &t.ident, policy: job.commit_retry, cancel, fence };
    if request.mode.is_dry_run() {
        report_dry_run(t, &parts, &work, &mut report);
        if request.partitions.is_empty() {
            let mode = request.mode;
            super::manifests::step(job, t, &table, &inventory, &props, mode, &mut report, &commit_to).await;
        }
        return Ok(report);
    }

    let groups = Groups {
        job,
        t,
        table: &table,
        start: Start::new(&table, &inventory, opts.target_file_size),
        latest: Mutex::new((table.clone(), inventory.clone())),
        commit_to: &commit_to,
    };
    let results = groups.run_all(&parts, &work, budget).await;
    let (final_table, final_inventory) = groups.latest.into_inner();
    merge_results(&mut report, &parts, &work, results);
    // After the partitions: the manifests as the pass left them (the step rebases if the table moved).
    if request.partitions.is_empty() && !cancel.is_cancelled() {
        let mode = request.mode;
        super::manifests::step(job, t, &final_table, &final_inventory, &props, mode, &mut report, &commit_to)
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

/// The table's properties if the compactor may commit to it; otherwise the report of a skipped
/// table (logged and counted).
async fn admit(
    job: &CompactionJob,
    t: &TableRef,
    table: &Table,
) -> Result<Result<TableProperties, TableReport>, ExecError> {
    if let Some(reason) = crate::table::guard::commit_blocker(table).await? {
        warn!(table = %t, reason, "table skipped");
        job.metrics.tables_skipped_total.with_label_values(&["compaction", reason]).inc();
        return Ok(Err(TableReport::new(t, TableStatus::Skipped { reason: reason.to_string() })));
    }
    match TableProperties::admit(table) {
        Ok(props) => Ok(Ok(props)),
        Err(excluded) => {
            warn!(table = %t, reason = %excluded, "table skipped");
            job.metrics
                .tables_skipped_total
                .with_label_values(&["compaction", excluded.metric_reason()])
                .inc();
            Ok(Err(TableReport::new(t, TableStatus::Skipped { reason: excluded.to_string() })))
        }
    }
}

/// The groups the plan decided, the partition waiting longest first (a pass budget that runs out
/// leaves the newest debt); skipped partitions are counted and reported.
fn work_list<'a>(
    job: &CompactionJob,
    t: &TableRef,
    parts: &[Partition<'a>],
    inputs: &[PartitionInput],
    opts: &PlanOptions,
    decisions: Vec<(usize, Decision)>,
    report: &mut TableReport,
) -> Vec<Work<'a>> {
    let waiting_since: HashMap<usize, chrono::DateTime<chrono::Utc>> = decisions
        .iter()
        .filter(|(_, d)| matches!(d, Decision::Compact { .. }))
        .map(|(i, _)| *i)
        .zip(plan::due_work(inputs, &decisions, opts, job.clock.now()))
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
    work.sort_by_key(|w| (waiting_since.get(&w.partition).copied(), w.partition));
    work
}

/// The dry run's account of the work: the lines operators grep for, a detail and a planned
/// partition report per group, and the figures the pass would leave.
fn report_dry_run(t: &TableRef, parts: &[Partition<'_>], work: &[Work<'_>], report: &mut TableReport) {
    for w in work {
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
        let entry = by_partition.entry(partition).or_insert_with(|| {
            PartitionReport::new(parts[partition].label.clone(), PartitionStatus::Succeeded)
        });
        match result {
            Ok(done) => add_done(report, entry, work, done),
            Err(failure) => {
                let group_files: usize =
                    work.iter().filter(|w| w.partition == partition).map(|w| w.files.len()).sum();
                add_failure(report, entry, group_files, failure);
            }
        }
    }
    finish_partitions(report, by_partition);
}

/// A committed group's figures, added to its partition's line and the table's.
fn add_done(report: &mut TableReport, entry: &mut PartitionReport, work: &[Work<'_>], done: GroupDone) {
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

/// A group that did not commit, on its partition's line (`group_files`: the partition's planned
/// files). A failure outranks an abandon or a skip.
fn add_failure(
    report: &mut TableReport,
    entry: &mut PartitionReport,
    group_files: usize,
    failure: GroupFailure,
) {
    entry.files_before = entry.files_before.max(group_files as u64);
    entry.files_after = entry.files_after.max(entry.files_before);
    match failure {
        GroupFailure::Failed(error) => entry.status = PartitionStatus::Failed { error },
        GroupFailure::Conflicts { error, conflicts } => {
            entry.status = PartitionStatus::Failed { error };
            report.compaction_outcome().commit_conflicts += u64::from(conflicts);
        }
        GroupFailure::Abandoned(why) if !matches!(entry.status, PartitionStatus::Failed { .. }) => {
            entry.status = PartitionStatus::Skipped { reason: format!("abandoned: {why}") }
        }
        GroupFailure::NotStarted if !matches!(entry.status, PartitionStatus::Failed { .. }) => {
            entry.status = PartitionStatus::Skipped {
                reason: "abandoned: shutdown requested before the rewrite started".into(),
            }
        }
        GroupFailure::Abandoned(_) | GroupFailure::NotStarted => {}
        GroupFailure::Skipped(reason) if !matches!(entry.status, PartitionStatus::Failed { .. }) => {
            entry.status = PartitionStatus::Skipped { reason: reason.to_string() }
        }
        GroupFailure::Skipped(_) => {}
    }
}

/// The partition lines into the report, and the table's status from them.
fn finish_partitions(report: &mut TableReport, by_partition: BTreeMap<usize, PartitionReport>) {
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
