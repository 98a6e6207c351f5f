//! Compaction: rewrite a partition's small files into target-size files, committed as an Iceberg
//! `replace` snapshot that never loses, duplicates or resurrects a row.
//!
//! Parts: `plan` (pure: which files, in which groups, or why not), `rewrite` (read → optionally sort →
//! write new files), `execute` (per table: inventory → plan → per group rewrite + commit with
//! revalidation), and the [`CompactionJob`] that the loop, the CLI and the admin API drive.
//!
//! Safety argument: inputs are removed and outputs added in one snapshot through the one commit path
//! (compare-and-swap on the catalog row). Before every commit attempt the change is rebuilt against the
//! table as it is then; it is abandoned if any input is no longer live, a delete file appeared that may
//! apply to the partition, or the schema changed. Outputs keep the data sequence number of the snapshot
//! the rewrite started from. Delete files of the partition's own spec and value (or of an
//! unpartitioned spec) are applied while reading; the commit removes those no remaining data file
//! needs. A partition another delete may apply to is skipped (`has_delete_files`).

mod columns;
mod debt;
mod deletes;
mod execute;
mod file_runs;
mod group;
pub mod invariants;
mod look;
pub mod manifests;
mod merge;
pub mod plan;
mod read;
pub mod rewrite;
pub mod schedule;
pub mod sort;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use iceberg::TableIdent;
use tokio_util::sync::CancellationToken;

use crate::audit::RunType;
use crate::catalog::Catalog;
use crate::catalog::TableRef;
use crate::clock::Clock;
use crate::config::{CompactionConfig, Mode};
use crate::job::{BeforeCommitHook, Job, JobError, JobKind, PassReport, PassRequest};
use crate::job::{PartitionStatus, TableReport, TableStatus};
use crate::metrics::Metrics;
use crate::runtime::Context;
use crate::runtime::TablePass;
use schedule::Budget;

/// The compaction job: holds only what it needs.
pub struct CompactionJob {
    catalog: Catalog,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    config: CompactionConfig,
    /// How a commit that lost the catalog compare-and-swap is retried (`config.commit`).
    commit_retry: crate::table::RetryPolicy,
    pass: TablePass,
    before_commit: Option<BeforeCommitHook>,
    /// Tables the last look found nothing to do in: skipped without being
    /// read while their catalog pointer stays put and no open partition falls due.
    idle: std::sync::Mutex<HashMap<TableIdent, Idle>>,
    /// Debt and lag as the last passes left them (`/status`, the debt gauges).
    debt: debt::DebtBoard,
    /// When the idle cache was last emptied: every `interval`, every table is looked at again.
    refreshed: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// What each tenant was served in recent passes (the scheduler's fairness term).
    fairness: std::sync::Mutex<schedule::Fairness>,
}

/// A table with nothing to compact, as a pass found it.
#[derive(Debug, Clone)]
struct Idle {
    pointer: String,
    until: Option<DateTime<Utc>>,
    health: look::Health,
    /// When the look was taken (the clock's time).
    looked_at: DateTime<Utc>,
}

/// How a loop's real pass is divided between replicas: this replica's share of the tables, and the
/// tables whose due partitions all replicas divide.
struct Division {
    share: crate::runtime::share::Share,
    group: String,
    /// Qualified names of the tables marked divided.
    divided: std::collections::HashSet<String>,
}

/// What a pass's survey found in one table, before any lock, lease or audit row.
enum Survey {
    /// Nothing to do: its report.
    Idle(Box<TableReport>),
    /// Due partitions, and what they owe.
    Owes(Vec<plan::DueWork>),
    /// The pass proper decides (manifests to rewrite, a table to skip or fail, or the look could
    /// not tell).
    Unknown,
}

/// What a pass's survey of its tables found: reports of the idle ones (by position), the positions
/// the pass proper must judge, and the owing tables' debt.
struct Surveyed {
    reports: Vec<Option<TableReport>>,
    unknown: Vec<usize>,
    owing: Vec<schedule::TableDebt<usize>>,
}

impl CompactionJob {
    pub fn new(ctx: &Context) -> Self {
        let config = ctx.config.compaction.clone();
        ctx.metrics
            .compaction_lag_target_seconds
            .set(config.lag_target.as_secs().try_into().unwrap_or(i64::MAX));
        CompactionJob {
            catalog: ctx.catalog.clone(),
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            config,
            commit_retry: crate::table::RetryPolicy::configured(&ctx.config.commit),
            pass: TablePass::new(ctx),
            before_commit: None,
            idle: Default::default(),
            debt: Default::default(),
            refreshed: Default::default(),
            fairness: Default::default(),
        }
    }

    /// Runs `hook(partition label)` between writing a group's files and committing them.
    pub fn with_before_commit(mut self, hook: BeforeCommitHook) -> Self {
        self.before_commit = Some(hook);
        self
    }
}

impl CompactionJob {
    /// How this replica divides a loop's real pass with the others ([`crate::runtime::share`]):
    /// its share of the tables, and the tables marked divided by partition. `None` (every table, whole)
    /// for an operator's or a dry-run pass, a filtered one, or when the replicas' rows cannot be read
    /// or do not include this one. Replicas whose pass has run longer than half the lag target count
    /// for none: their shares' due tables go to the replicas that are free.
    async fn division(&self, request: &PassRequest) -> Option<Division> {
        if !request.scheduled || request.mode.is_dry_run() || !request.filter.is_all() {
            return None;
        }
        let group = crate::runtime::share::survey_group(JobKind::Compaction.as_str(), self.catalog.name());
        let share = match self.pass.leases.share_within(&group, Some(self.config.lag_target / 2)).await {
            Ok(share) => {
                let members = share.as_ref().map_or(1, |s| s.members());
                self.metrics.survey_replicas.set(members.try_into().unwrap_or(i64::MAX));
                share.filter(|s| s.members() > 1)?
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the replicas' rows; surveying every table");
                return None;
            }
        };
        let divided = match self.pass.leases.divided(&group).await {
            Ok(divided) => divided.into_iter().collect(),
            Err(e) => {
                // Unsure: the divided tables' owners still compact them whole.
                tracing::warn!(error = %e, "could not read the tables divided by partition");
                Default::default()
            }
        };
        Some(Division { share, group, divided })
    }

    /// For a table with due work in a divided pass: the due partitions (labels) that fall to this
    /// replica, or `None` to compact the table whole. A table is divided by partition when its owner
    /// finds it owing more than a pass's byte budget (`max_bytes_per_pass`: what one replica does in
    /// a pass) in two or more partitions; the owner marks it for `lag_target` (renewed at each of its
    /// passes while that holds), and every replica then takes the due partitions rendezvous hashing
    /// gives it, each under its own partition lease.
    async fn partitions_of(
        &self,
        division: &Division,
        t: &TableRef,
        due: &[plan::DueWork],
    ) -> Option<Vec<String>> {
        let name = t.qualified();
        let owner = division.share.owns(&name);
        let due_bytes: u64 = due.iter().map(|d| d.bytes).sum();
        let exceeds = due.len() >= 2 && self.config.max_bytes_per_pass.is_some_and(|b| due_bytes > b);
        if owner && exceeds {
            match self.pass.leases.mark_divided(&division.group, t, self.config.lag_target).await {
                Ok(_) => tracing::info!(
                    table = %t, due_partitions = due.len(), due_bytes, replicas = division.share.members(),
                    "table owes more than a pass: its due partitions are divided between the replicas"
                ),
                // The others would not know: compacted whole here unless an earlier mark still holds.
                Err(e) if !division.divided.contains(&name) => {
                    tracing::warn!(table = %t, error = %e, "could not mark the table divided; compacting it whole");
                    return None;
                }
                Err(e) => tracing::warn!(table = %t, error = %e, "could not renew the table's divided mark"),
            }
        } else if !division.divided.contains(&name) {
            return None;
        }
        Some(
            due.iter()
                .filter(|d| division.share.owns(&format!("{name}/{}", d.label)))
                .map(|d| d.label.clone())
                .collect(),
        )
    }

    /// Empties the idle cache once per `interval`, so that every table is looked at again at least
    /// that often whatever the change detection concludes (the interval stays the upper bound).
    fn refresh_idle_if_due(&self) {
        let now = tokio::time::Instant::now();
        let mut refreshed = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        if refreshed.is_none_or(|at| now.duration_since(at) >= self.config.interval) {
            if refreshed.is_some() {
                self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
            *refreshed = Some(now);
        }
    }

    /// Whether a loop's pass keeps an idle table's last look although its pointer moved: for half the
    /// lag target after that look, as long as none of its open partitions has fallen due. A table the
    /// ingest writer commits to every few seconds moves at every poll, and reading each of thousands
    /// such tables at every poll would cost more than their compaction; what an append can make due
    /// without a partition closing is late data in a closed partition, which this finds within half
    /// the lag target (and an operator's pass, not deferred, at once).
    fn defers(&self, idle: &Idle, request: &PassRequest, now: DateTime<Utc>) -> bool {
        let half = chrono::Duration::from_std(self.config.lag_target / 2).unwrap_or_default();
        request.scheduled && now < idle.looked_at + half
    }

    /// A table's survey: from the last pass's look while the table's pointer has not moved (or a loop's
    /// pass [defers](Self::defers) it) and no open partition has fallen due (the table is not read at
    /// all), else from a fresh read-only look.
    async fn survey(&self, t: &TableRef, request: &PassRequest, pointer: Option<&String>) -> Survey {
        if request.full || !request.partitions.is_empty() {
            return Survey::Unknown;
        }
        let key = t.ident.clone();
        let now = self.clock.now();
        let remembered = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let idle = match remembered {
            Some(idle)
                if idle.until.is_none_or(|due| now < due)
                    && (Some(&idle.pointer) == pointer || self.defers(&idle, request, now)) =>
            {
                idle
            }
            _ => {
                // A panic here (a hostile table) must not end the pass: the pass proper runs the table
                // under its audit row, where a panic is recorded as the table's failure.
                let look = std::panic::AssertUnwindSafe(look::look(self, t, request)).catch_unwind().await;
                // The survey looks at every table before any pass runs: keeping each look's manifests
                // would hold every owing table's at once. A table with work reads them again in its
                // pass (a second read of its manifests, the price of bounded memory).
                crate::table::manifests::forget();
                let forget = || self.idle.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                match look {
                    Ok(look::Look::Idle { health, pointer, until }) => {
                        self.debt.publish_health(&self.metrics, self.config.table_metrics, t, &health);
                        Idle { pointer, until, health, looked_at: now }
                    }
                    Ok(look::Look::Work { health, debt }) => {
                        self.debt.publish_health(&self.metrics, self.config.table_metrics, t, &health);
                        forget();
                        return Survey::Owes(debt);
                    }
                    Ok(look::Look::Pass) | Err(_) => {
                        forget();
                        return Survey::Unknown;
                    }
                }
            }
        };
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).insert(key, idle.clone());
        tracing::debug!(table = %t, "nothing to compact; no lease taken, no audit row");
        let Idle { health, .. } = idle;
        let mut report = TableReport::new(t, TableStatus::Unchanged);
        (report.files_before, report.files_after) = (health.files, health.files);
        (report.bytes_before, report.bytes_after) = (health.bytes, health.bytes);
        let outcome = report.compaction_outcome();
        (outcome.files_before, outcome.files_after) = (health.files, health.files);
        (outcome.bytes_before, outcome.bytes_after) = (health.bytes, health.bytes);
        (outcome.manifests_before, outcome.manifests_after) = (health.manifests, health.manifests);
        Survey::Idle(Box::new(report))
    }

    /// The pass's tables with their catalog pointers (one query: a moved table is told by its
    /// pointer), narrowed to this replica's share for a loop's real pass, and a failed report for
    /// each named table that does not exist.
    async fn select(
        &self,
        request: &PassRequest,
    ) -> Result<(Vec<TableRef>, Vec<Option<String>>, Vec<TableReport>, Option<Division>), JobError> {
        let (selected, missing, pointers) = self.pass.select_with_pointers(request).await?;
        // A pass that must look at every partition anyway (`--full`, `--partition`) skips nothing.
        let skips_unchanged = !request.full && request.partitions.is_empty();
        let mut selected: Vec<(TableRef, Option<String>)> =
            selected.into_iter().zip(pointers.into_iter().map(|p| p.filter(|_| skips_unchanged))).collect();
        let division = self.division(request).await;
        if let Some(d) = &division {
            let all = selected.len();
            selected.retain(|(t, _)| d.share.owns(&t.qualified()) || d.divided.contains(&t.qualified()));
            tracing::debug!(
                surveyed = selected.len(),
                tables = all,
                divided = d.divided.len(),
                replicas = d.share.members(),
                "surveying this replica's share of the tables and the tables divided by partition"
            );
        }
        if request.scheduled && !request.mode.is_dry_run() && request.filter.is_all() {
            self.metrics.survey_share_tables.set(selected.len().try_into().unwrap_or(i64::MAX));
        }
        let (selected, pointers) = selected.into_iter().unzip();
        Ok((selected, pointers, missing, division))
    }

    /// Surveys each table (in order, until cancelled): idle tables get their report now, owing ones
    /// their debt, the rest are left for the pass proper to judge.
    async fn survey_all(
        &self,
        selected: &[TableRef],
        pointers: &[Option<String>],
        request: &PassRequest,
        cancel: &CancellationToken,
    ) -> Surveyed {
        let mut surveyed =
            Surveyed { reports: vec![None; selected.len()], unknown: Vec::new(), owing: Vec::new() };
        for (i, (table, pointer)) in selected.iter().zip(pointers).enumerate() {
            if cancel.is_cancelled() {
                break;
            }
            match self.survey(table, request, pointer.as_ref()).await {
                Survey::Idle(report) => surveyed.reports[i] = Some(*report),
                Survey::Owes(work) => {
                    surveyed.owing.push(schedule::TableDebt { key: i, tenant: table.tenant.clone(), work })
                }
                Survey::Unknown => surveyed.unknown.push(i),
            }
        }
        surveyed
    }

    /// After the work: what each tenant was served (the fairness term), and for a full pass the debt
    /// gauges (every surveyed table's tenant and signal gets a series, at 0 when it owes nothing).
    fn account(
        &self,
        request: &PassRequest,
        cancel: &CancellationToken,
        selected: &[TableRef],
        foreign: &[bool],
        owing: &[schedule::TableDebt<usize>],
        reports: &[Option<TableReport>],
    ) {
        let served = owing.iter().filter(|d| {
            reports[d.key]
                .as_ref()
                .is_some_and(|r| r.partition_reports.iter().any(|p| p.status == PartitionStatus::Succeeded))
        });
        self.fairness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_pass(served.map(|d| d.tenant.as_str()));
        if request.filter.is_all() && request.partitions.is_empty() && !request.full && !cancel.is_cancelled()
        {
            let mut undone: Vec<Vec<plan::DueWork>> = vec![Vec::new(); selected.len()];
            for d in owing {
                undone[d.key] = debt::left_undone(&d.work, reports[d.key].as_ref());
            }
            let own = selected.iter().zip(undone).zip(foreign).filter(|(_, f)| !**f).map(|(pair, _)| pair);
            self.debt.publish(&self.metrics, own, self.clock.now());
        }
    }

    /// The order the pass works in: the tables the survey could not judge first, then the owing ones
    /// in debt order (tenant-fair): (position in the selection, position in `owing`).
    fn queue(
        &self,
        unknown: Vec<usize>,
        owing: &[schedule::TableDebt<usize>],
    ) -> Vec<(usize, Option<usize>)> {
        let fairness = self.fairness.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let order = schedule::order(owing, self.clock.now(), &fairness);
        // Collected, not a borrowing iterator: a stream over closures that borrow trips the Send check
        // of async_trait.
        unknown.into_iter().map(|i| (i, None)).chain(order.iter().map(|&o| (owing[o].key, Some(o)))).collect()
    }

    /// One table's work under its lock, lease and audit row, and the lag of what it compacted. A panic
    /// outside the table's contained work (its lease, audit row, metrics) fails the pass as before,
    /// but only after the other running tables have finished: unwinding through the pass's shared
    /// stream would drop them mid-work, their leases held until they expire.
    async fn run_table(
        &self,
        table: &TableRef,
        due: &[plan::DueWork],
        partitions: Option<Vec<String>>,
        request: &PassRequest,
        cancel: &CancellationToken,
        budget: &Budget,
    ) -> Result<TableReport, JobError> {
        let mode = request.mode;
        let run = match &partitions {
            None => {
                let work = |claim: crate::runtime::Claim| async move {
                    execute::compact_table(self, table, request, cancel, claim.fence(), budget).await
                };
                self.pass.run(RunType::Compaction, mode, table, work).boxed()
            }
            Some(labels) if labels.is_empty() => return Ok(self.elsewhere(table, due)),
            Some(labels) => {
                let work = |claim: crate::runtime::Claim, held: Vec<String>| async move {
                    // Only the partitions leased here: the plan's `only`, and no table-wide step
                    // (the manifest rewrite waits for a pass that has the whole table).
                    let request = PassRequest { partitions: held, ..request.clone() };
                    execute::compact_table(self, table, &request, cancel, claim.fence(), budget).await
                };
                self.pass.run_partitions(RunType::Compaction, mode, table, labels, work).boxed()
            }
        };
        let report = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(result) => result?,
            Err(payload) => {
                let why = crate::job::panic_message(payload.as_ref());
                return Err(JobError::Other(format!("{table}: panicked: {why}")));
            }
        };
        if !request.mode.is_dry_run() {
            self.debt.observe_lag(&self.metrics, table, due, &report, self.clock.now());
        }
        Ok(report)
    }

    /// The budget of a pass: the configured one for a loop's pass, none for an operator's.
    fn budget(&self, request: &PassRequest) -> Budget {
        if request.scheduled {
            Budget::new(self.config.max_bytes_per_pass, self.config.max_pass_duration)
        } else {
            Budget::unlimited()
        }
    }

    /// The report of a divided table none of whose due partitions falls to this replica.
    fn elsewhere(&self, t: &TableRef, due: &[plan::DueWork]) -> TableReport {
        self.metrics.tables_skipped_total.with_label_values(&["compaction", "partitions_elsewhere"]).inc();
        tracing::debug!(table = %t, due_partitions = due.len(), "divided table: its due partitions fall to other replicas");
        TableReport::new(t, TableStatus::Skipped { reason: "partitions_elsewhere".into() })
    }

    /// The report of a table the pass's budget left for the next pass.
    fn over_budget(&self, t: &TableRef, spent: schedule::Exhausted, debt: &[plan::DueWork]) -> TableReport {
        self.metrics.tables_skipped_total.with_label_values(&["compaction", spent.as_str()]).inc();
        let files: u64 = debt.iter().map(|d| d.files).sum();
        tracing::info!(table = %t, budget = spent.as_str(), due_files = files, "pass budget spent; table left for the next pass");
        let mut report = TableReport::new(t, TableStatus::Skipped { reason: spent.as_str().to_string() });
        report.details.push(format!(
            "{} partition(s), {files} file(s) due: left for the next pass ({})",
            debt.len(),
            spent.as_str()
        ));
        report
    }
}

#[async_trait]
impl Job for CompactionJob {
    fn kind(&self) -> JobKind {
        JobKind::Compaction
    }

    fn interval(&self) -> Duration {
        self.config.interval
    }

    fn mode(&self) -> Mode {
        self.config.mode
    }

    fn window(&self) -> Option<crate::window::Window> {
        self.config.window
    }

    fn poll_interval(&self) -> Option<Duration> {
        self.config.poll_interval
    }

    fn status_detail(&self) -> Option<serde_json::Value> {
        Some(self.debt.status(self.clock.now(), self.config.lag_target))
    }

    /// A survey of every selected table (cheap: unchanged tables are not read), then the tables with
    /// due work in debt order (tenant-fair), within the pass's budget; tables the survey could not
    /// judge run first. Reports come back in catalog order whatever order the work ran in.
    async fn run_once(
        &self,
        request: &PassRequest,
        cancel: &CancellationToken,
    ) -> Result<PassReport, JobError> {
        let started_at = self.pass.clock.now();
        let (selected, pointers, mut tables, division) = self.select(request).await?;
        self.refresh_idle_if_due();
        let Surveyed { mut reports, mut unknown, owing } =
            self.survey_all(&selected, &pointers, request, cancel).await;
        // Tables of other replicas' shares surveyed only because they are divided by partition: their
        // owner reports them and counts their debt; here only their owing partitions matter.
        let foreign: Vec<bool> = selected
            .iter()
            .map(|t| division.as_ref().is_some_and(|d| !d.share.owns(&t.qualified())))
            .collect();
        unknown.retain(|&i| !foreign[i]);
        for (report, _) in reports.iter_mut().zip(&foreign).filter(|(_, f)| **f) {
            *report = None;
        }
        let queue = self.queue(unknown, &owing);
        let budget = self.budget(request);
        // Tables run `max_concurrent_tables` at a time (one: in queue order, one after the other), as
        // futures of this one task: what overlaps is their waiting (commits, fsync, reads) and their
        // blocking-pool work (decode, sort, spill), not their async CPU work (measured 1.34× at two).
        // A table whose work cannot reach the catalog database ends the pass: no further table starts,
        // the running ones finish, and the pass fails (retried at the next tick) without its reports,
        // as with one table at a time.
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (budget, stop, selected_ref, owing_ref, division) =
            (&budget, &stop, &selected, &owing, &division);
        let ran: Vec<(usize, Result<TableReport, JobError>)> = futures::stream::iter(queue)
            .map(|(i, debt)| async move {
                if cancel.is_cancelled() || stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                let table = &selected_ref[i];
                let due = debt.map(|o| owing_ref[o].work.as_slice()).unwrap_or_default();
                if let Some(spent) = budget.exhausted() {
                    return Some((i, Ok(self.over_budget(table, spent, due))));
                }
                let partitions = match (division, debt) {
                    (Some(d), Some(_)) => self.partitions_of(d, table, due).await,
                    _ => None,
                };
                let result = self.run_table(table, due, partitions, request, cancel, budget).await;
                if result.is_err() {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Some((i, result))
            })
            .buffer_unordered(self.config.max_concurrent_tables.max(1))
            .filter_map(std::future::ready)
            .collect()
            .await;
        let mut failed = None;
        for (i, result) in ran {
            match result {
                Ok(report) => reports[i] = Some(report),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        self.account(request, cancel, &selected, &foreign, &owing, &reports);
        tables.extend(reports.into_iter().flatten());
        Ok(PassReport {
            job: JobKind::Compaction,
            mode: request.mode,
            started_at,
            finished_at: self.pass.clock.now(),
            tables,
        })
    }
}
