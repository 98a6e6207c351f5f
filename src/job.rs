//! The contract every maintenance job implements, and the report a pass produces.
//!
//! A job is a small struct holding only what it needs; the loop runner, the CLI's `once`, the admin API
//! and tests all drive it through [`Job::run_once`] and read the same [`PassReport`].

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::catalog::TableRef;
use crate::config::Mode;

pub use crate::model::JobKind;

/// Restricts a pass to some tables (`--table TENANT.DATASET.TABLE`, repeatable) and/or to one tenant or
/// dataset (admin API). Empty: every table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableFilter {
    tables: Vec<String>,
    tenant: Option<String>,
    dataset: Option<String>,
}

impl TableFilter {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn only(tables: impl IntoIterator<Item = String>) -> Self {
        Self { tables: tables.into_iter().collect(), ..Self::default() }
    }

    /// Tables of one tenant, optionally one dataset of it.
    pub fn scoped(tenant: Option<String>, dataset: Option<String>) -> Self {
        Self { tenant, dataset, ..Self::default() }
    }

    /// This filter, also restricted to a tenant and/or dataset (every selector must hold).
    pub fn within(mut self, tenant: Option<String>, dataset: Option<String>) -> Self {
        self.tenant = tenant.or(self.tenant);
        self.dataset = dataset.or(self.dataset);
        self
    }

    pub fn matches(&self, table: &TableRef) -> bool {
        (self.tables.is_empty() || self.tables.iter().any(|t| *t == table.qualified()))
            && self.tenant.as_ref().is_none_or(|t| *t == table.tenant)
            && self.dataset.as_ref().is_none_or(|d| *d == table.dataset)
    }

    pub fn is_all(&self) -> bool {
        self.tables.is_empty() && self.tenant.is_none() && self.dataset.is_none()
    }

    pub fn tables(&self) -> &[String] {
        &self.tables
    }
}

impl FromStr for TableFilter {
    type Err = String;

    /// One `tenant.dataset.table`; tenant and dataset may not be empty.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("{s:?} is not TENANT.DATASET.TABLE"));
        }
        Ok(Self::only([s.to_string()]))
    }
}

/// What one pass is asked to do.
#[derive(Debug, Clone)]
pub struct PassRequest {
    pub mode: Mode,
    pub filter: TableFilter,
    /// Only these partitions (human labels such as `timestamp_hour=2026-11-21-10`); empty: all.
    pub partitions: Vec<String>,
    /// Compaction: rewrite every file of the selected partitions regardless of size.
    pub full: bool,
    /// A loop's own pass (not one an operator asked for): the job's pass budgets apply
    /// (`max_bytes_per_pass`, `max_pass_duration`).
    pub scheduled: bool,
}

impl PassRequest {
    /// A pass over everything in `mode`, as an operator asks for it (no pass budget).
    pub fn all(mode: Mode) -> Self {
        PassRequest {
            mode,
            filter: TableFilter::all(),
            partitions: Vec::new(),
            full: false,
            scheduled: false,
        }
    }

    /// A loop's pass over everything in `mode`, within the job's pass budgets.
    pub fn scheduled(mode: Mode) -> Self {
        PassRequest { scheduled: true, ..PassRequest::all(mode) }
    }
}

/// What happened to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PartitionStatus {
    /// Dry-run: this would be done.
    Planned,
    Succeeded,
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
    },
}

/// One partition's line in a table report.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    pub partition: String,
    #[serde(flatten)]
    pub status: PartitionStatus,
    pub files_before: u64,
    pub files_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Compaction: the files picked for rewriting and why (`small`, `oversized`, `old_spec`, `full`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub picked: Vec<PickedFile>,
}

impl PartitionReport {
    /// A partition's line with `status` and no figures yet.
    pub fn new(partition: impl Into<String>, status: PartitionStatus) -> PartitionReport {
        PartitionReport {
            partition: partition.into(),
            status,
            files_before: 0,
            files_after: 0,
            bytes_before: 0,
            bytes_after: 0,
            rows: 0,
            snapshot_id: None,
            attempts: None,
            picked: Vec::new(),
        }
    }
}

/// One file compaction picked, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PickedFile {
    pub path: String,
    pub bytes: u64,
    pub reason: &'static str,
}

/// The outcome of one table within a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TableStatus {
    /// Work was done (or, in dry-run, planned).
    Succeeded,
    /// Nothing to do.
    Unchanged,
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
    },
}

/// One table's line in a pass report. Counters are job-specific in meaning and documented per job.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    #[serde(flatten)]
    pub status: TableStatus,
    pub partitions: u64,
    pub files_before: u64,
    pub files_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    /// Files this pass rewrote, dropped or deleted (for the audit trail).
    pub files_processed: u64,
    /// Bytes this pass removed from storage or from the table (for the audit trail).
    pub bytes_reclaimed: u64,
    /// Per-partition outcomes (planned, succeeded, skipped with a reason, failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_reports: Vec<PartitionReport>,
    /// Human-readable details (one line per action).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// What the job did to the table, in the job's own terms: drives the text report, the JSON and
    /// the audit row's figures. `None` for a table the job never got to (not found, skipped early).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// One table's outcome, typed per job so that no figure is read in another job's meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Outcome {
    Compaction(CompactionOutcome),
    Retention(RetentionOutcome),
    Orphans(OrphanOutcome),
}

/// Compaction of one table (in dry-run: what would be done).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionOutcome {
    /// Live data files and bytes of the table before and after the pass.
    pub files_before: u64,
    pub files_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Groups committed (one `replace` snapshot each), and the input files and bytes they rewrote.
    pub groups_committed: u64,
    pub files_rewritten: u64,
    pub bytes_rewritten: u64,
    /// Commit attempts that lost a race with another writer (committed groups and given-up ones).
    pub commit_conflicts: u64,
    /// Data manifests of the table's current snapshot before and after the pass (in dry-run: after
    /// the planned manifest rewrite).
    pub manifests_before: u64,
    pub manifests_after: u64,
    /// Data manifests replaced by a committed manifest rewrite (`replace` snapshot changing no file).
    pub manifests_rewritten: u64,
}

/// Retention on one table (in dry-run: what would be done).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionOutcome {
    /// Partitions whose expiry was evaluated against the cutoff.
    pub partitions_evaluated: u64,
    pub partitions_dropped: u64,
    /// Data and delete files the drops removed from the table.
    pub files_removed: u64,
    pub bytes_removed: u64,
    pub snapshots_expired: u64,
    /// Files expiry made unreachable that were deleted from storage, and their bytes.
    pub files_deleted: u64,
    pub bytes_deleted: u64,
    /// Commit attempts that lost a race with another writer.
    pub commit_conflicts: u64,
}

/// Orphan cleanup of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrphanOutcome {
    /// Objects listed under the table's location.
    pub scanned: u64,
    /// Unreferenced objects older than the grace period.
    pub identified: u64,
    pub deleted: u64,
    pub bytes_freed: u64,
    /// Bytes of the identified orphans (what a real pass would free).
    pub bytes_identified: u64,
    /// Deletions the store refused or failed (retried next pass).
    pub deletion_failures: u64,
}

impl Outcome {
    /// One line for the text report.
    pub fn render(&self, dry_run: bool) -> String {
        use crate::stats::human_bytes as b;
        let would = if dry_run { "would " } else { "" };
        match self {
            Outcome::Compaction(c) => {
                let mut line = format!(
                    "files {} -> {}, bytes {} -> {}",
                    c.files_before,
                    c.files_after,
                    b(c.bytes_before),
                    b(c.bytes_after)
                );
                if c.manifests_before != c.manifests_after {
                    line.push_str(&format!(
                        ", data manifests {} -> {}",
                        c.manifests_before, c.manifests_after
                    ));
                }
                line
            }
            Outcome::Retention(r) => format!(
                "{would}drop {} partition(s) ({} file(s), {}), {would}expire {} snapshot(s), {would}delete {} unreachable file(s) ({})",
                r.partitions_dropped,
                r.files_removed,
                b(r.bytes_removed),
                r.snapshots_expired,
                r.files_deleted,
                b(r.bytes_deleted)
            ),
            Outcome::Orphans(o) if dry_run => format!(
                "scanned {}, orphans identified {} ({}), would delete {}",
                o.scanned,
                o.identified,
                b(o.bytes_identified),
                o.identified
            ),
            Outcome::Orphans(o) => format!(
                "scanned {}, orphans identified {}, deleted {} ({} freed)",
                o.scanned,
                o.identified,
                o.deleted,
                b(o.bytes_freed)
            ),
        }
    }
}

impl Outcome {
    /// Adds the outcome's figures to the job's Prometheus counters: the one place a table's figures
    /// become metrics, so the text report, the JSON, the audit row and the metrics cannot disagree.
    /// Observations (objects scanned, orphans identified, partitions evaluated) count in dry-run too;
    /// actions (groups committed, partitions dropped, snapshots expired, files deleted) count only when
    /// done, so a dry run moves no action counter.
    pub fn count(&self, metrics: &crate::metrics::Metrics, t: &TableRef, mode: Mode) {
        let signal = [t.tenant.as_str(), t.dataset.as_str(), t.signal.as_str()];
        let table = [t.tenant.as_str(), t.dataset.as_str(), t.table.as_str()];
        let done = !mode.is_dry_run();
        match self {
            Outcome::Compaction(c) => {
                if done {
                    metrics.compaction_runs_total.with_label_values(&signal).inc_by(c.groups_committed);
                    metrics.files_compacted_total.with_label_values(&signal).inc_by(c.files_rewritten);
                    metrics.bytes_compacted_total.with_label_values(&signal).inc_by(c.bytes_rewritten);
                    metrics.commit_conflicts_total.with_label_values(&signal).inc_by(c.commit_conflicts);
                    metrics
                        .manifests_rewritten_total
                        .with_label_values(&signal)
                        .inc_by(c.manifests_rewritten);
                }
            }
            Outcome::Retention(r) => {
                metrics.partitions_evaluated_total.with_label_values(&signal).inc_by(r.partitions_evaluated);
                if done {
                    metrics.partitions_dropped_total.with_label_values(&signal).inc_by(r.partitions_dropped);
                    metrics.snapshots_expired_total.with_label_values(&table).inc_by(r.snapshots_expired);
                    metrics.bytes_reclaimed_total.with_label_values(&signal).inc_by(r.bytes_deleted);
                    metrics.commit_conflicts_total.with_label_values(&signal).inc_by(r.commit_conflicts);
                }
            }
            Outcome::Orphans(o) => {
                metrics.files_scanned_total.with_label_values(&table).inc_by(o.scanned);
                metrics.orphans_identified_total.with_label_values(&table).inc_by(o.identified);
                if done {
                    metrics.files_deleted_total.with_label_values(&table).inc_by(o.deleted);
                    metrics.bytes_freed_total.with_label_values(&table).inc_by(o.bytes_freed);
                    metrics.deletion_failures_total.with_label_values(&table).inc_by(o.deletion_failures);
                }
            }
        }
    }
}

impl TableReport {
    pub fn new(table: &TableRef, status: TableStatus) -> Self {
        Self::new_named(&table.qualified(), status)
    }

    /// A report for a table known only by name (e.g. a `--table` that does not exist).
    pub fn new_named(table: &str, status: TableStatus) -> Self {
        TableReport {
            table: table.to_string(),
            status,
            partitions: 0,
            files_before: 0,
            files_after: 0,
            bytes_before: 0,
            bytes_after: 0,
            rows: 0,
            snapshot_id: None,
            files_processed: 0,
            bytes_reclaimed: 0,
            partition_reports: Vec::new(),
            details: Vec::new(),
            outcome: None,
        }
    }

    /// The compaction outcome, created empty on first use.
    pub fn compaction_outcome(&mut self) -> &mut CompactionOutcome {
        if !matches!(self.outcome, Some(Outcome::Compaction(_))) {
            self.outcome = Some(Outcome::Compaction(CompactionOutcome::default()));
        }
        match &mut self.outcome {
            Some(Outcome::Compaction(c)) => c,
            _ => unreachable!("set above"),
        }
    }

    /// The retention outcome, created empty on first use.
    pub fn retention_outcome(&mut self) -> &mut RetentionOutcome {
        if !matches!(self.outcome, Some(Outcome::Retention(_))) {
            self.outcome = Some(Outcome::Retention(RetentionOutcome::default()));
        }
        match &mut self.outcome {
            Some(Outcome::Retention(r)) => r,
            _ => unreachable!("set above"),
        }
    }

    /// The orphan-cleanup outcome, created empty on first use.
    pub fn orphan_outcome(&mut self) -> &mut OrphanOutcome {
        if !matches!(self.outcome, Some(Outcome::Orphans(_))) {
            self.outcome = Some(Outcome::Orphans(OrphanOutcome::default()));
        }
        match &mut self.outcome {
            Some(Outcome::Orphans(o)) => o,
            _ => unreachable!("set above"),
        }
    }

    /// The audit row's figures (partitions affected, files processed, bytes reclaimed), from the
    /// typed outcome where there is one.
    pub fn audit_figures(&self) -> (u64, u64, u64) {
        match &self.outcome {
            Some(Outcome::Retention(r)) => (r.partitions_dropped, r.files_removed, r.bytes_deleted),
            Some(Outcome::Orphans(o)) => (0, o.deleted, o.bytes_freed),
            Some(Outcome::Compaction(_)) | None => {
                (self.partitions, self.files_processed, self.bytes_reclaimed)
            }
        }
    }

    /// Counts of partitions by status: (planned, succeeded, skipped, failed).
    pub fn partition_counts(&self) -> (usize, usize, usize, usize) {
        let count =
            |f: fn(&PartitionStatus) -> bool| self.partition_reports.iter().filter(|p| f(&p.status)).count();
        (
            count(|s| matches!(s, PartitionStatus::Planned)),
            count(|s| matches!(s, PartitionStatus::Succeeded)),
            count(|s| matches!(s, PartitionStatus::Skipped { .. })),
            count(|s| matches!(s, PartitionStatus::Failed { .. })),
        )
    }
}

/// Everything a pass did, for logs, metrics, audit rows, the CLI and tests.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub job: JobKind,
    pub mode: Mode,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub tables: Vec<TableReport>,
}

impl PassReport {
    pub fn failed_tables(&self) -> usize {
        self.tables.iter().filter(|t| matches!(t.status, TableStatus::Failed { .. })).count()
    }

    pub fn duration(&self) -> Duration {
        (self.finished_at - self.started_at).to_std().unwrap_or_default()
    }
}

/// An error with its whole cause chain (`outer: cause: root cause`), each link once: logs and reports
/// must show why, not only the outermost "rewrite failed".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        // `#[error(transparent)]` and "{0}" messages already contain their source.
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

/// A pass that could not run at all (a failing table is reported in the [`PassReport`] instead).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("{0}")]
    Other(String),
}

impl JobError {
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Catalog(e) => e.is_retryable(),
            JobError::Other(_) => false,
        }
    }
}

/// Called by a job between preparing a commit and committing it, with a description of what is about to
/// be committed (tests inject concurrent commits at exactly that point).
pub type BeforeCommitHook =
    std::sync::Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A maintenance job. `run_once` must stop at a safe point soon after `cancel` fires.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    fn kind(&self) -> JobKind;
    /// Time between the start of one pass and the next.
    fn interval(&self) -> Duration;
    /// The mode the job's configuration asks for (dry-run wins over execute).
    fn mode(&self) -> Mode;
    /// The maintenance window the loop waits for, if configured.
    fn window(&self) -> Option<crate::window::Window> {
        None
    }
    /// Between passes, poll this often (a pass that finds nothing changed costs one catalog query):
    /// work is picked up within a poll of appearing instead of at the next interval.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }
    /// Job-specific figures for `/status` (compaction: debt and lag), read after each pass.
    fn status_detail(&self) -> Option<serde_json::Value> {
        None
    }
    async fn run_once(
        &self,
        request: &PassRequest,
        cancel: &CancellationToken,
    ) -> Result<PassReport, JobError>;
}

/// The message of a caught panic (`panic!` with a literal or a formatted string), else a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
