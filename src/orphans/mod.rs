//! Orphan cleanup: delete files under a table's location that no metadata references, older than the
//! grace period, revalidated before every batch, in checkpointed batches.
//!
//! Plan → execute: what may be deleted is decided by the pure rules of [`crate::storage::deletable`]
//! (`Layout::scope` per table, `Scope::classify` per listed object) over this pass's
//! [`Census`] of the whole catalog (every table read once: its location and everything it
//! references); the execute half lists, classifies, and deletes in checkpointed batches through the
//! deletion gate, which applies the same rules again with fresh facts.
//!
//! Terms: the *live set* is [`crate::table::reachability`]'s reachable set (every snapshot, ref,
//! manifest, entry whatever its status, metadata-log entry and statistics file) plus any
//! `version-hint.text`. A *candidate* is a listed object the rules find deletable.
//!
//! Hazards this module exists to avoid (all seen in the wild): comparing `s3a://` with `s3://`,
//! `file:/x` with `file:///x` or `…/./f` with `…/f` (every location is normalized first); treating
//! `…/t2` as inside `…/t` (containment is per path segment); a table whose location is outside the
//! warehouse, is the warehouse root, or is shared with a backup entry (nothing deleted); a neighbour
//! whose location is unknown (nothing deleted anywhere); files another table references (kept);
//! symlinks (never followed to a deletion); deciding liveness by snapshot age (only reachability
//! counts); cleaning a table whose metadata could not be read completely (skipped); deleting a file a
//! concurrent commit just referenced (each batch is revalidated against the table's current metadata,
//! and the gate refuses anything young).

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
use crate::job::{Job, JobError, JobKind, PassReport, PassRequest, TableReport, TableStatus};
use crate::metrics::Metrics;
use crate::runtime::Context;
use crate::runtime::TablePass;
use crate::storage::deletable::{Keep, Object};
use crate::storage::gate::{DeletionGate, human_age};
use crate::storage::{LinkCache, Warehouse};
use crate::table::census::Census;
use crate::table::reachability::Reachable;

mod checkpoint;

/// Why orphan cleanup of one table stopped with an error. Every variant names the table; the message
/// is what the table's report shows.
#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    /// The table is not in this pass's census (it appeared after the catalog was read).
    #[error("the table appeared after this pass read the catalog; cleaned next pass")]
    NotInCensus { table: String },
    /// Listing the table's location failed.
    #[error("listing {location}: {source}")]
    Listing {
        table: String,
        location: String,
        #[source]
        source: crate::storage::StorageError,
    },
    /// The table's lease was lost to another replica before a deletion batch.
    #[error("the table's lease was lost to another replica")]
    LeaseLost { table: String },
    /// Revalidated over the refreshed live set, the table may not delete this pass.
    #[error("{skip}")]
    Refused { table: String, skip: crate::storage::deletable::TableSkip },
    /// Reading or writing the table's `cleanup_progress` row failed.
    #[error("{source}")]
    Checkpoint {
        table: String,
        #[source]
        source: sqlx::Error,
    },
}

impl OrphanError {
    /// The table (`tenant.dataset.table`) the error is about.
    pub fn table(&self) -> &str {
        match self {
            OrphanError::NotInCensus { table }
            | OrphanError::Listing { table, .. }
            | OrphanError::LeaseLost { table }
            | OrphanError::Refused { table, .. }
            | OrphanError::Checkpoint { table, .. } => table,
        }
    }

    /// Whether the next pass may simply try again: everything but a table the deletion rules refuse,
    /// which needs the catalog or the configuration to change first.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, OrphanError::Refused { .. })
    }
}

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
        // Every catalog table read once: its location and everything it references.
        let census =
            Census::build(&self.catalog, self.warehouse.roots(), self.config.unreadable_neighbours).await?;
        for (neighbour, error) in census.unreadable() {
            warn!(
                neighbour,
                error,
                "the references of a catalog table are unknown this pass; its location stays protected"
            );
        }
        if let Some(expiry) = &self.expiry {
            expiry.use_census(census.clone()).await;
        }
        let census = &census;
        for t in &selected {
            if cancel.is_cancelled() {
                break;
            }
            let work = |claim: crate::runtime::Claim| async move {
                if let Some(expiry) = &self.expiry {
                    let expired = expiry.expire_table(t, request.mode, cancel, &claim).await;
                    if let TableStatus::Failed { error } = &expired.status {
                        warn!(table = %t, error, "snapshot expiry before orphan cleanup failed; cleaning anyway");
                    }
                }
                let started = Instant::now();
                // A failure is logged with its table by `TablePass::record`.
                let report = self
                    .clean_table(t, census, request.mode, cancel, claim.fence())
                    .await
                    .unwrap_or_else(|e| TableReport::new(t, TableStatus::Failed { error: e.to_string() }));
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

/// What the batch loop needs of the table: the census, the table's index in it, and its live set
/// (grown with the table's own later commits).
struct Batches<'a> {
    census: &'a Census,
    index: usize,
    live: Reachable,
    /// The table's lease: another replica may own the table by the next batch.
    fence: &'a dyn crate::table::Fence,
}

/// A listed object that is an orphan candidate.
struct Candidate {
    location: String,
    size: u64,
    age: Duration,
}

/// The dry run's account: the lines operators grep for and a detail per file that would go.
fn report_would_delete(t: &TableRef, candidates: &[Candidate], report: &mut TableReport) {
    info!(
        "[DRY-RUN] Identified {} orphan files for tenant={} dataset={} table={}",
        candidates.len(),
        t.tenant,
        t.dataset,
        t.table
    );
    for c in candidates {
        info!("[DRY-RUN] Would delete orphan file: {} (age={})", c.location, human_age(c.age));
        report.details.push(format!(
            "would delete {} ({} bytes, age {})",
            c.location,
            c.size,
            human_age(c.age)
        ));
    }
    report.bytes_before = candidates.iter().map(|c| c.size).sum();
    report.status = if candidates.is_empty() { TableStatus::Unchanged } else { TableStatus::Succeeded };
}

impl OrphanJob {
    fn labels<'a>(&self, t: &'a TableRef) -> [&'a str; 3] {
        [&t.tenant, &t.dataset, &t.table]
    }

    async fn clean_table(
        &self,
        t: &TableRef,
        census: &Census,
        mode: Mode,
        cancel: &CancellationToken,
        fence: &dyn crate::table::Fence,
    ) -> Result<TableReport, OrphanError> {
        let labels = self.labels(t);
        self.metrics.orphan_cleanup_runs_total.with_label_values(&labels).inc();
        let (Some(index), Some(entry)) =
            (census.index(&self.catalog, &t.ident), census.entry(&self.catalog, &t.ident))
        else {
            return Err(OrphanError::NotInCensus { table: t.qualified() });
        };
        // The census' reading (its record of this table counts as live throughout); commits since then
        // (e.g. the expiry that just ran) are caught up with before every batch.
        let live = match &entry.live {
            Ok(live) => live.clone(),
            Err(e) => return Ok(self.skip(t, "unreadable_metadata", e)),
        };
        // The table's own switches (as the census read them): `signaldb.compactor.enabled=false`, or
        // one that does not parse, means nothing is deleted in its location.
        if let Some(Err(excluded)) =
            entry.table.as_ref().map(crate::table::properties::TableProperties::admit)
        {
            return Ok(self.skip(t, excluded.metric_reason(), &excluded.to_string()));
        }
        // Iceberg's own switch: `gc.enabled=false` says the table may not own the files under its
        // location (an imported or snapshot table); Java's orphan action refuses such tables too.
        let gc_disabled = entry.table.as_ref().is_some_and(|table| {
            !crate::table::properties::IcebergProperties::of(table.metadata()).gc_enabled()
        });
        if gc_disabled {
            return Ok(self.skip(
                t,
                "gc_disabled",
                "gc.enabled is not true: nothing under its location is deleted",
            ));
        }
        let scope = match census.layout.scope(index, &live) {
            Ok(scope) => scope,
            Err(skip) => {
                warn!(table = %t, reason = %skip, "orphan cleanup: the table may not delete this pass");
                return Ok(self.skip(t, skip.reason(), &skip.for_report(&t.tenant)));
            }
        };
        let now = self.clock.now();
        let (scanned, kept, mut candidates) = self.list_candidates(t, &scope, now).await?;
        candidates.sort_by(|a, b| a.location.cmp(&b.location));
        let mut report = TableReport::new(t, TableStatus::Unchanged);
        report.files_before = scanned;
        let typed = report.orphan_outcome();
        typed.scanned = scanned;
        typed.identified = candidates.len() as u64;
        typed.bytes_identified = candidates.iter().map(|c| c.size).sum();
        for (keep, n) in &kept {
            if matches!(
                keep,
                Keep::Symlink | Keep::InsideOtherTable | Keep::ReferencedByOtherTable | Keep::NotCanonical
            ) {
                report
                    .details
                    .push(format!("kept {n} file(s): {}", serde_json::to_value(keep).unwrap_or_default()));
            }
        }
        if mode.is_dry_run() {
            report_would_delete(t, &candidates, &mut report);
            return Ok(report);
        }
        info!(table = %t, orphans = candidates.len(), scanned, "identified orphan files");
        let batches = Batches { census, index, live, fence };
        // A failure after some batches were deleted keeps the report: its outcome counts them.
        if let Err(e) = self.delete_in_batches(t, batches, candidates, now, cancel, &mut report).await {
            let error = match &e {
                OrphanError::Refused { skip, .. } => {
                    warn!(table = %t, reason = %skip, "orphan cleanup: the table may not delete any more this pass");
                    skip.for_report(&t.tenant)
                }
                other => other.to_string(),
            };
            report.status = TableStatus::Failed { error };
        }
        Ok(report)
    }

    /// A table this pass deletes nothing in: logged with the reason, counted, reported as skipped.
    fn skip(&self, t: &TableRef, reason: &str, detail: &str) -> TableReport {
        warn!(table = %t, reason, detail, "orphan cleanup skipped the table: nothing deleted");
        self.metrics.tables_skipped_total.with_label_values(&["orphans", reason]).inc();
        let reason =
            if detail.starts_with(reason) { detail.to_string() } else { format!("{reason}: {detail}") };
        TableReport::new(t, TableStatus::Skipped { reason })
    }

    /// Streams the table location's listing and classifies every object: (objects scanned, how many
    /// each rule kept, candidates).
    async fn list_candidates(
        &self,
        t: &TableRef,
        scope: &crate::storage::deletable::Scope<'_>,
        now: DateTime<Utc>,
    ) -> Result<(u64, Vec<(Keep, u64)>, Vec<Candidate>), OrphanError> {
        let location = scope.location();
        let mut listing = self.warehouse.list(location);
        let (mut scanned, mut out) = (0u64, Vec::new());
        let mut kept: std::collections::BTreeMap<String, (Keep, u64)> = Default::default();
        let mut links = LinkCache::default();
        let listing_failed =
            |source| OrphanError::Listing { table: t.qualified(), location: location.to_string(), source };
        while let Some(meta) = listing.try_next().await.map_err(listing_failed)? {
            scanned += 1;
            let object = meta.location;
            if object.ends_with("/version-hint.text") {
                continue;
            }
            let through_link = match self.warehouse.through_link(&object, &mut links) {
                Ok(linked) => linked || meta.link,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    warn!(table = %t, path = object, error = %e, "cannot tell whether a listed object is reached through a symlink; kept");
                    true
                }
            };
            let age = (now - meta.last_modified).to_std().unwrap_or_default();
            let verdict =
                scope.classify(&Object { location: &object, age, through_link }, self.config.grace_period);
            match verdict {
                Ok(canonical) => out.push(Candidate { location: canonical, size: meta.size, age }),
                Err(keep) => {
                    if matches!(keep, Keep::Symlink) {
                        info!(table = %t, path = object, "a symlink (or a path through one) inside the table is never deleted");
                    }
                    let entry = kept.entry(format!("{keep:?}")).or_insert((keep, 0));
                    entry.1 += 1;
                }
            }
        }
        Ok((scanned, kept.into_values().collect(), out))
    }

    async fn delete_in_batches(
        &self,
        t: &TableRef,
        batches: Batches<'_>,
        candidates: Vec<Candidate>,
        now: DateTime<Utc>,
        cancel: &CancellationToken,
        report: &mut TableReport,
    ) -> Result<(), OrphanError> {
        let Batches { census, index, mut live, fence } = batches;
        let checkpoint_failed = |source| OrphanError::Checkpoint { table: t.qualified(), source };
        let mut checkpoint =
            checkpoint::Checkpoint::resume(&self.catalog, t, now).await.map_err(checkpoint_failed)?;
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
            if fence.is_lost() {
                return Err(OrphanError::LeaseLost { table: t.qualified() });
            }
            // The census brought up to date: this table's own commits since it was read (unless
            // `revalidate_before_delete = false`), and every other row registered, moved or committing
            // a reference into this table. Only new manifest lists and manifests are read.
            let skip = (!self.config.revalidate_before_delete).then_some(&t.ident);
            match census.changes(&self.catalog, skip).await {
                Ok(extra) => live.extend(&extra),
                Err(why) => {
                    warn!(table = %t, reason = %why, "the catalog changed under this cleanup; the rest waits for the next pass");
                    report.details.push(format!("stopped: {}", why.for_report(&t.tenant)));
                    return Ok(()); // the checkpoint stays `running`: the next pass resumes
                }
            }
            let paths: Vec<String> = batch.iter().map(|c| c.location.clone()).collect();
            // The same rules, established again over the (possibly refreshed) live set.
            let scope = census
                .layout
                .scope(index, &live)
                .map_err(|skip| OrphanError::Refused { table: t.qualified(), skip })?;
            let gate = DeletionGate {
                warehouse: &self.warehouse,
                scope: &scope,
                grace: self.config.grace_period,
                now: self.clock.now(),
                mode: Mode::Execute,
            };
            let outcome = gate.delete(&paths).await;
            record_batch(t, &outcome, report);
            let last = paths.last().expect("non-empty batch");
            checkpoint
                .advance(
                    &self.catalog,
                    last,
                    outcome.deleted.len() as u64,
                    outcome.bytes_deleted(),
                    self.clock.now(),
                )
                .await
                .map_err(checkpoint_failed)?;
            crate::failpoint::hit(crate::failpoint::ORPHANS_AFTER_BATCH);
        }
        checkpoint.complete(&self.catalog, self.clock.now()).await.map_err(checkpoint_failed)?;
        report
            .details
            .push(format!("deleted {} orphan file(s), {} bytes", report.files_after, report.bytes_after));
        Ok(())
    }
}

/// One deletion batch's outcome, logged and added to the table's report.
fn record_batch(t: &TableRef, outcome: &crate::storage::gate::GateOutcome, report: &mut TableReport) {
    let freed = outcome.bytes_deleted();
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
    typed.deletion_failures += outcome.failed.len() as u64;
    if !outcome.deleted.is_empty() {
        report.status = TableStatus::Succeeded;
    }
}
