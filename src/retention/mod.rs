//! Retention: per-signal policy, expired partitions dropped with an Iceberg `delete` snapshot, then
//! snapshot expiry and deletion of the files expiry made unreachable.
//!
//! Parts: `plan` (pure: cutoffs, drop plan, expiry selection), `execute` (per table: resolve policy →
//! drop → expire → clean up), and the [`RetentionJob`] the loop, the CLI and the admin API drive.
//!
//! Safety argument: drops go through the one commit path; on a conflict the drop is re-planned on the
//! table as it is then, so appends committed meanwhile are never removed unless they too landed in an
//! expired partition. Expiry never removes the current snapshot, a tag head or a branch's newest
//! snapshots. Files are deleted only when they were reachable before the expiry and are not reachable
//! from the table reloaded after it (over all snapshots, refs, metadata and statistics files), and
//! only through the deletion gate.

mod execute;
mod expire;
pub mod plan;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::audit::RunType;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::{Mode, RetentionConfig};
use crate::job::{
    BeforeCommitHook, Job, JobError, JobKind, PassReport, PassRequest, TableReport, TableStatus,
};
use crate::metrics::Metrics;
use crate::runtime::Context;
use crate::runtime::{Claim, TablePass};
use crate::storage::Warehouse;
use crate::table::census::Census;

/// Tables enforced concurrently within a pass.
const TABLE_CONCURRENCY: usize = 4;

/// The retention job.
pub struct RetentionJob {
    catalog: Catalog,
    warehouse: Warehouse,
    archive: Option<Warehouse>,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    config: RetentionConfig,
    commit_retry: crate::table::RetryPolicy,
    pass: TablePass,
    before_commit: Option<BeforeCommitHook>,
    /// This pass's census of the catalog, built the first time expiry has files to delete.
    census: Arc<tokio::sync::Mutex<Option<Arc<Census>>>>,
    unreadable_neighbours: crate::storage::deletable::UnreadableNeighbours,
}

impl RetentionJob {
    pub fn new(ctx: &Context) -> Self {
        RetentionJob {
            catalog: ctx.catalog.clone(),
            warehouse: ctx.warehouse.clone(),
            archive: ctx.archive.clone(),
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            config: ctx.config.retention.clone(),
            commit_retry: crate::table::RetryPolicy::configured(&ctx.config.commit),
            pass: TablePass::new(ctx),
            before_commit: None,
            census: Arc::default(),
            unreadable_neighbours: ctx.config.orphans.unreadable_neighbours,
        }
    }

    /// Makes expiry cleanup use `census` (orphan cleanup's, built at the start of its pass).
    pub async fn use_census(&self, census: Arc<Census>) {
        *self.census.lock().await = Some(census);
    }

    /// This pass's census, built on first use.
    async fn census(&self) -> Result<Arc<Census>, crate::catalog::CatalogError> {
        let mut slot = self.census.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let built = Census::build(&self.catalog, self.warehouse.roots(), self.unreadable_neighbours).await?;
        *slot = Some(built.clone());
        Ok(built)
    }

    /// Expires `t`'s snapshots (and deletes what that made unreachable) without dropping partitions,
    /// under the caller's `claim` on the table (its lock, and its lease for a real pass), in an audit
    /// row of its own. Tables no policy names are left alone, as in a full pass.
    pub async fn expire_table(
        &self,
        t: &crate::catalog::TableRef,
        mode: Mode,
        cancel: &CancellationToken,
        claim: &Claim,
    ) -> TableReport {
        if self.named_by_no_policy(t).await {
            return TableReport::new(t, TableStatus::Unchanged);
        }
        let mode = mode.and(self.config.mode);
        let work = execute::expire_table(self, t, mode, cancel, claim.fence());
        self.pass.record(RunType::Expiry, mode, t, work).await
    }

    /// [`expire_table`](Self::expire_table) on its own: takes the table's claim (lock, and lease for a
    /// real pass) first. `Err`: the catalog database cannot be reached.
    pub async fn claim_and_expire_table(
        &self,
        t: &crate::catalog::TableRef,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<TableReport, JobError> {
        if self.named_by_no_policy(t).await {
            return Ok(TableReport::new(t, TableStatus::Unchanged));
        }
        let mode = mode.and(self.config.mode);
        let work =
            |claim: Claim| async move { execute::expire_table(self, t, mode, cancel, claim.fence()).await };
        self.pass.run(RunType::Expiry, mode, t, work).await
    }

    /// Whether no policy names `t` and it is not a known signal nor sets a retention property: then
    /// nothing of it expires.
    async fn named_by_no_policy(&self, t: &crate::catalog::TableRef) -> bool {
        let resolved = self.config.policy.resolve(&t.tenant, &t.dataset, &t.table, t.signal);
        resolved.source == crate::config::retention::PolicySource::Default
            && t.signal == crate::catalog::Signal::Other
            && !self.has_retention_property(t).await
    }

    /// Whether the table sets `signaldb.compactor.retention` (or a switch that does not parse, which
    /// `expire_table` then reports). A table that cannot be loaded is left to the expiry, which fails
    /// visibly.
    async fn has_retention_property(&self, t: &crate::catalog::TableRef) -> bool {
        match self.catalog.load(t).await {
            // Only the retention property names a retention; another switch of ours (`enabled`, a
            // target size) does not, unless one of them does not parse.
            Ok(table) => {
                table.metadata().properties().contains_key(crate::table::properties::RETENTION)
                    || crate::table::properties::TableProperties::admit(&table).is_err()
            }
            Err(_) => true,
        }
    }

    /// Runs `hook(table)` right before each partition-drop commit, and `hook("table#expiry")` right
    /// before a snapshot expiry's commit (tests only: another writer acting in between).
    pub fn with_before_commit(mut self, hook: BeforeCommitHook) -> Self {
        self.before_commit = Some(hook);
        self
    }
}

#[async_trait]
impl Job for RetentionJob {
    fn kind(&self) -> JobKind {
        JobKind::Retention
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
        // The catalog as it is during this pass, read again when there is something to delete.
        *self.census.lock().await = None;
        let (selected, mut tables) = self.pass.select(request).await?;
        // One cutoff log line and metric per (tenant, dataset, signal) per pass.
        let logged = Mutex::new(HashSet::new());
        let (logged_ref, selected_ref) = (&logged, &selected);
        // Tables are independent; a few at a time overlap their manifest reads and commits.
        let mut done = futures::stream::iter(0..selected.len())
            .map(|i| async move {
                let table = &selected_ref[i];
                if cancel.is_cancelled() {
                    return None;
                }
                let work = |claim: Claim| async move {
                    execute::retain_table(
                        self,
                        table,
                        request.mode,
                        started_at,
                        logged_ref,
                        cancel,
                        claim.fence(),
                    )
                    .await
                };
                Some(self.pass.run(RunType::Retention, request.mode, table, work).await)
            })
            .buffered(TABLE_CONCURRENCY);
        // An unreachable catalog ends the pass; the tables still in flight stop where they are.
        while let Some(report) = done.next().await {
            if let Some(report) = report {
                tables.push(report?);
            }
        }
        Ok(PassReport {
            job: JobKind::Retention,
            mode: request.mode,
            started_at,
            finished_at: self.pass.clock.now(),
            tables,
        })
    }
}
