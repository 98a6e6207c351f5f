//! Orphan cleanup: delete files under a table's location that no metadata references, older than the
//! grace period, revalidated before every batch, in checkpointed batches.
//!
//! Terms: the *live set* is [`crate::table::reachability`]'s reachable set (every snapshot, ref,
//! manifest, entry whatever its status, metadata-log entry and statistics file) plus any
//! `version-hint.text`. A *candidate* is a listed object inside the table's location, not live, not
//! inside another catalog table's location, and older than the grace period.
//!
//! Hazards this module exists to avoid (all seen in the wild): comparing `s3a://` with `s3://` or
//! `file:/x` with `file:///x` (every location is normalized first); treating `…/t2` as inside `…/t`
//! (containment is per path segment); deciding liveness by snapshot age (only reachability counts);
//! forgetting statistics files or metadata-log entries (both are in the live set); cleaning a table
//! whose metadata could not be read completely (the table is skipped, nothing deleted); deleting a
//! file a concurrent commit just referenced (each batch is revalidated against the table's current
//! metadata, and the gate refuses anything young).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::audit::RunType;
use crate::catalog::{Catalog, TableRef};
use crate::clock::Clock;
use crate::config::{Mode, OrphanConfig};
use crate::job::TablePass;
use crate::job::{Job, JobError, JobKind, PassReport, PassRequest, TableReport, TableStatus};
use crate::metrics::Metrics;
use crate::service::Context;
use crate::storage::Warehouse;
use crate::storage::gate::{DeletionGate, human_age};
use crate::storage::path::{is_within, normalize};
use crate::table::reachability::{Reachable, reachable};

mod checkpoint;

pub struct OrphanJob {
    catalog: Catalog,
    warehouse: Warehouse,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    config: OrphanConfig,
    pass: TablePass,
    /// When retention is enabled, a cleanup cycle expires snapshots first, so the files expiry
    /// unreferences are collected in the same cycle.
    expiry: Option<crate::retention::RetentionJob>,
    before_batch: Option<crate::job::BeforeCommitHook>,
}

impl OrphanJob {
    pub fn new(ctx: &Context) -> Self {
        OrphanJob {
            catalog: ctx.catalog.clone(),
            warehouse: ctx.warehouse.clone(),
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            config: ctx.config.orphans.clone(),
            pass: TablePass::new(ctx),
            expiry: ctx.config.retention.enabled.then(|| crate::retention::RetentionJob::new(ctx)),
            before_batch: None,
        }
    }

    /// Runs `hook(table)` after listing, before each deletion batch (tests commit concurrently there).
    pub fn with_before_batch(mut self, hook: crate::job::BeforeCommitHook) -> Self {
        self.before_batch = Some(hook);
        self
    }
}

#[async_trait]
impl Job for OrphanJob {
    fn kind(&self) -> JobKind {
        JobKind::Orphans
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
        let started_at = self.clock.now();
        let (selected, mut tables) = self.pass.select(request).await?;
        // Every table's location, to keep a table's cleaner out of tables nested inside it.
        let mut locations = Vec::new();
        for t in self.catalog.discover().await? {
            match self.catalog.load(&t).await {
                Ok(table) => locations.push((t.qualified(), table.metadata().location().to_string())),
                Err(e) => {
                    warn!(table = %t, error = %e, "cannot read table metadata; its location is unknown")
                }
            }
        }
        for t in &selected {
            if cancel.is_cancelled() {
                break;
            }
            let work = async {
                if let Some(expiry) = &self.expiry {
                    let expired = expiry.expire_table(t, request.mode, cancel).await;
                    if let TableStatus::Failed { error } = &expired.status {
                        warn!(table = %t, error, "snapshot expiry before orphan cleanup failed; cleaning anyway");
                    }
                }
                let started = Instant::now();
                // A failure is logged with its table by `TablePass::record`.
                let report = self
                    .clean_table(t, &locations, request.mode, cancel)
                    .await
                    .unwrap_or_else(|e| TableReport::new(t, TableStatus::Failed { error: e }));
                self.metrics
                    .orphan_cleanup_duration_seconds
                    .with_label_values(&[&t.tenant, &t.dataset, &t.table])
                    .observe(started.elapsed().as_secs_f64());
                report
            };
            // The lock and lease are taken once for expiry and cleanup; expiry records its own audit row
            // inside them.
            tables.push(self.pass.run(RunType::Orphans, request.mode, t, work).await?);
        }
        Ok(PassReport {
            job: JobKind::Orphans,
            mode: request.mode,
            started_at,
            finished_at: self.clock.now(),
            tables,
        })
    }
}

/// A listed object that is an orphan candidate.
struct Candidate {
    location: String,
    size: u64,
    age: Duration,
}

impl OrphanJob {
    fn labels<'a>(&self, t: &'a TableRef) -> [&'a str; 3] {
        [&t.tenant, &t.dataset, &t.table]
    }

    async fn clean_table(
        &self,
        t: &TableRef,
        locations: &[(String, String)],
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<TableReport, String> {
        let labels = self.labels(t);
        self.metrics.orphan_cleanup_runs_total.with_label_values(&labels).inc();
        let table = self.catalog.load(t).await.map_err(|e| e.to_string())?;
        let location = table.metadata().location().to_string();
        let live = match reachable(&table).await {
            Ok(live) => live,
            Err(e) => {
                warn!(table = %t, error = %e, "metadata not fully readable: table skipped, nothing deleted");
                self.metrics
                    .tables_skipped_total
                    .with_label_values(&["orphans", "unreadable_metadata"])
                    .inc();
                return Ok(TableReport::new(
                    t,
                    TableStatus::Skipped { reason: format!("unreadable_metadata: {e}") },
                ));
            }
        };
        let nested: Vec<&str> = locations
            .iter()
            .filter(|(name, loc)| *name != t.qualified() && is_within(&location, loc))
            .map(|(_, loc)| loc.as_str())
            .collect();
        let now = self.clock.now();
        let (scanned, mut candidates) = self.list_candidates(&location, &live, &nested, now).await?;
        self.metrics.files_scanned_total.with_label_values(&labels).inc_by(scanned);
        self.metrics.orphans_identified_total.with_label_values(&labels).inc_by(candidates.len() as u64);
        candidates.sort_by(|a, b| a.location.cmp(&b.location));
        let mut report = TableReport::new(t, TableStatus::Unchanged);
        report.files_before = scanned;
        let typed = report.orphan_outcome();
        typed.scanned = scanned;
        typed.identified = candidates.len() as u64;
        typed.bytes_identified = candidates.iter().map(|c| c.size).sum();
        if mode.is_dry_run() {
            info!(
                "[DRY-RUN] Identified {} orphan files for tenant={} dataset={} table={}",
                candidates.len(),
                t.tenant,
                t.dataset,
                t.table
            );
            for c in &candidates {
                info!("[DRY-RUN] Would delete orphan file: {} (age={})", c.location, human_age(c.age));
                report.details.push(format!(
                    "would delete {} ({} bytes, age {})",
                    c.location,
                    c.size,
                    human_age(c.age)
                ));
            }
            report.bytes_before = candidates.iter().map(|c| c.size).sum();
            report.status =
                if candidates.is_empty() { TableStatus::Unchanged } else { TableStatus::Succeeded };
            return Ok(report);
        }
        info!(table = %t, orphans = candidates.len(), scanned, "identified orphan files");
        self.delete_in_batches(t, &table, live, candidates, now, cancel, &mut report).await?;
        Ok(report)
    }

    /// Streams the table location's listing; returns (objects scanned, candidates).
    async fn list_candidates(
        &self,
        location: &str,
        live: &Reachable,
        nested: &[&str],
        now: DateTime<Utc>,
    ) -> Result<(u64, Vec<Candidate>), String> {
        let prefix = self.warehouse.object_path(location).map_err(|e| e.to_string())?;
        let mut listing = self.warehouse.store().list(Some(&prefix));
        let (mut scanned, mut out) = (0u64, Vec::new());
        while let Some(meta) = listing.try_next().await.map_err(|e| format!("listing {location}: {e}"))? {
            scanned += 1;
            let object = self.warehouse.location(&meta.location);
            if normalize(&object).is_none() || !is_within(location, &object) {
                continue; // never a candidate: not provably inside this table
            }
            if live.contains(&object) || object.ends_with("/version-hint.text") {
                continue;
            }
            if nested.iter().any(|n| is_within(n, &object)) {
                continue; // another table's file
            }
            let age = (now - meta.last_modified).to_std().unwrap_or_default();
            if age < self.config.grace_period {
                continue;
            }
            out.push(Candidate { location: object, size: meta.size, age });
        }
        Ok((scanned, out))
    }

    #[allow(clippy::too_many_arguments)]
    async fn delete_in_batches(
        &self,
        t: &TableRef,
        table: &iceberg::table::Table,
        mut live: Reachable,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
        cancel: &CancellationToken,
        report: &mut TableReport,
    ) -> Result<(), String> {
        let labels = self.labels(t);
        let mut checkpoint =
            checkpoint::Checkpoint::resume(&self.catalog, t, now).await.map_err(|e| e.to_string())?;
        let mut metadata_location = table.metadata_location().map(str::to_string);
        let pending: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| checkpoint.last_path().is_none_or(|last| c.location.as_str() > last))
            .collect();
        if checkpoint.resumed() {
            info!(table = %t, run_id = checkpoint.run_id(), after = ?checkpoint.last_path(), "resuming an interrupted cleanup");
        }
        for batch in pending.chunks(self.config.batch_size.max(1)) {
            if cancel.is_cancelled() {
                return Ok(()); // the checkpoint stays `running`: the next pass resumes
            }
            if let Some(hook) = &self.before_batch {
                hook(t.qualified()).await;
            }
            // Another replica may own the table now: stop (its checkpoint lets that replica resume).
            crate::service::leases::check()?;
            if self.config.revalidate_before_delete {
                let current = self.catalog.metadata_location(&t.ident).await.map_err(|e| e.to_string())?;
                if current != metadata_location {
                    // Someone committed since the live set was computed: recompute it.
                    let fresh = self.catalog.load(t).await.map_err(|e| e.to_string())?;
                    live = reachable(&fresh).await.map_err(|e| format!("revalidation: {e}"))?;
                    metadata_location = fresh.metadata_location().map(str::to_string);
                }
            }
            let paths: Vec<String> = batch.iter().map(|c| c.location.clone()).collect();
            let gate = DeletionGate {
                warehouse: &self.warehouse,
                table_location: table.metadata().location(),
                live: &live,
                grace: self.config.grace_period,
                now: self.clock.now(),
                mode: Mode::Execute,
            };
            let outcome = gate.delete(&paths).await;
            let freed = outcome.bytes_deleted();
            self.metrics.files_deleted_total.with_label_values(&labels).inc_by(outcome.deleted.len() as u64);
            self.metrics.bytes_freed_total.with_label_values(&labels).inc_by(freed);
            self.metrics
                .deletion_failures_total
                .with_label_values(&labels)
                .inc_by(outcome.failed.len() as u64);
            for (path, reason) in &outcome.refused {
                info!(table = %t, path, ?reason, "orphan candidate kept at revalidation");
            }
            for (path, error) in &outcome.failed {
                warn!(table = %t, path, error, "orphan deletion failed; retried next pass");
            }
            report.files_after += outcome.deleted.len() as u64;
            report.bytes_after += freed;
            report.files_processed += outcome.deleted.len() as u64;
            report.bytes_reclaimed += freed;
            let typed = report.orphan_outcome();
            typed.deleted += outcome.deleted.len() as u64;
            typed.bytes_freed += freed;
            if !outcome.deleted.is_empty() {
                report.status = TableStatus::Succeeded;
            }
            let last = paths.last().expect("non-empty batch");
            checkpoint
                .advance(&self.catalog, last, outcome.deleted.len() as u64, freed)
                .await
                .map_err(|e| e.to_string())?;
            crate::failpoint::hit(crate::failpoint::ORPHANS_AFTER_BATCH);
        }
        checkpoint.complete(&self.catalog).await.map_err(|e| e.to_string())?;
        report
            .details
            .push(format!("deleted {} orphan file(s), {} bytes", report.files_after, report.bytes_after));
        Ok(())
    }
}
