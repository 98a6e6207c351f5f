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
mod execute;
pub mod invariants;
pub mod manifests;
pub mod plan;
pub mod rewrite;
pub mod sort;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use iceberg::TableIdent;
use tokio_util::sync::CancellationToken;

use crate::audit::RunType;
use crate::catalog::Catalog;
use crate::catalog::TableRef;
use crate::clock::Clock;
use crate::config::{CompactionConfig, Mode};
use crate::job::{BeforeCommitHook, Job, JobError, JobKind, PassReport, PassRequest};
use crate::job::{TableReport, TableStatus};
use crate::metrics::Metrics;
use crate::runtime::Context;
use crate::runtime::TablePass;

/// The compaction job: holds only what it needs.
pub struct CompactionJob {
    catalog: Catalog,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    config: CompactionConfig,
    pass: TablePass,
    before_commit: Option<BeforeCommitHook>,
    /// Tables the last look found nothing to do in: skipped without being
    /// read while their catalog pointer stays put and no open partition falls due.
    idle: std::sync::Mutex<HashMap<TableIdent, Idle>>,
}

/// A table with nothing to compact, as a pass found it.
#[derive(Debug, Clone)]
struct Idle {
    pointer: String,
    until: Option<DateTime<Utc>>,
    files: u64,
    bytes: u64,
    /// Data manifests of the current snapshot.
    manifests: u64,
}

impl CompactionJob {
    pub fn new(ctx: &Context) -> Self {
        CompactionJob {
            catalog: ctx.catalog.clone(),
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            config: ctx.config.compaction.clone(),
            pass: TablePass::new(ctx),
            before_commit: None,
            idle: Default::default(),
        }
    }

    /// Runs `hook(partition label)` between writing a group's files and committing them.
    pub fn with_before_commit(mut self, hook: BeforeCommitHook) -> Self {
        self.before_commit = Some(hook);
        self
    }
}

impl CompactionJob {
    /// Every table's catalog pointer (one query), for a pass that may skip unchanged tables; empty
    /// when the pass must look at every partition anyway (`--full`, `--partition`) or the query fails.
    async fn pointers(&self, request: &PassRequest) -> HashMap<TableIdent, String> {
        if request.full || !request.partitions.is_empty() {
            return HashMap::new();
        }
        let Ok(rows) = self.catalog.table_pointers().await else { return HashMap::new() };
        rows.into_iter()
            .filter(|r| r.catalog == self.catalog.name() && !r.view)
            .filter_map(|r| Some((r.ident, r.pointer?)))
            .collect()
    }

    /// The report of a table with nothing to do, decided without lock, lease or audit row: from the
    /// last pass's look while the table's pointer has not moved and no open partition has fallen due,
    /// else from a fresh read-only look. `None`: the table has work (or the look could not tell), and
    /// the pass proper runs it.
    async fn idle_report(
        &self,
        t: &TableRef,
        request: &PassRequest,
        pointer: Option<&String>,
    ) -> Option<TableReport> {
        if request.full || !request.partitions.is_empty() {
            return None;
        }
        let key = t.ident.clone();
        let now = self.clock.now();
        let remembered = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let idle = match remembered {
            Some(idle) if Some(&idle.pointer) == pointer && idle.until.is_none_or(|due| now < due) => idle,
            _ => {
                // A panic here (a hostile table) must not end the pass: the pass proper runs the table
                // under its audit row, where a panic is recorded as the table's failure.
                let look = std::panic::AssertUnwindSafe(execute::look(self, t, request)).catch_unwind().await;
                match look {
                    Ok(execute::Look::Idle { files, bytes, manifests, pointer, until }) => {
                        // Its manifests are not needed again; a table with work rereads them from the
                        // cache inside its pass, which forgets them when the table is done.
                        crate::table::manifests::forget();
                        Idle { pointer, until, files, bytes, manifests }
                    }
                    Ok(execute::Look::Pass) | Err(_) => {
                        self.idle.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        return None;
                    }
                }
            }
        };
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).insert(key, idle.clone());
        tracing::debug!(table = %t, "nothing to compact; no lease taken, no audit row");
        let mut report = TableReport::new(t, TableStatus::Unchanged);
        (report.files_before, report.files_after) = (idle.files, idle.files);
        (report.bytes_before, report.bytes_after) = (idle.bytes, idle.bytes);
        let outcome = report.compaction_outcome();
        (outcome.files_before, outcome.files_after) = (idle.files, idle.files);
        (outcome.bytes_before, outcome.bytes_after) = (idle.bytes, idle.bytes);
        (outcome.manifests_before, outcome.manifests_after) = (idle.manifests, idle.manifests);
        Some(report)
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

    async fn run_once(
        &self,
        request: &PassRequest,
        cancel: &CancellationToken,
    ) -> Result<PassReport, JobError> {
        let started_at = self.pass.clock.now();
        let (selected, mut tables) = self.pass.select(request).await?;
        let pointers = self.pointers(request).await;
        for table in &selected {
            if cancel.is_cancelled() {
                break;
            }
            if let Some(report) = self.idle_report(table, request, pointers.get(&table.ident)).await {
                tables.push(report);
                continue;
            }
            let work = |claim: crate::runtime::Claim| async move {
                execute::compact_table(self, table, request, cancel, claim.fence()).await
            };
            tables.push(self.pass.run(RunType::Compaction, request.mode, table, work).await?);
        }
        Ok(PassReport {
            job: JobKind::Compaction,
            mode: request.mode,
            started_at,
            finished_at: self.pass.clock.now(),
            tables,
        })
    }
}
