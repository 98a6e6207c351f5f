//! Snapshot expiry on one table, and deletion of what it made unreachable: plan (the table's
//! `history.expire.*` properties over the configuration) → commit the expiry → record what expired →
//! delete reachable-before minus reachable-after, through the deletion gate under this pass's census.
//!
//! Hazard: liveness is decided by reachability over every snapshot, ref, metadata-log entry and
//! statistics file of the table reloaded after the commit (plus every other table's references),
//! never by "the files of the expired snapshots".

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use iceberg::table::Table;
use tracing::{info, warn};

use super::RetentionJob;
use super::execute::RetentionError;
use super::plan::{self, ExpiryPlan, ExpiryPolicy};
use crate::catalog::TableRef;
use crate::config::Mode;
use crate::job::{TableReport, TableStatus};
use crate::storage::gate::{DeletionGate, human_age};
use crate::storage::reachable::Reachable;
use crate::table::properties::TableProperties;
use crate::table::{
    Abandon, Change, CommitError, CommitTarget, Inventory, Leftover, commit_with_retry, reachability,
};

/// Expires `table`'s snapshots as its policy says, then deletes the files that made unreachable. A
/// failure after the expiry landed leaves what was done counted in `report`.
pub(super) async fn expire_snapshots(
    job: &RetentionJob,
    t: &TableRef,
    table: Table,
    mode: Mode,
    now: DateTime<Utc>,
    commit_to: &CommitTarget<'_>,
    report: &mut TableReport,
) -> Result<(), RetentionError> {
    let policy = match expiry_policy_of(job, &table) {
        Ok(p) => p,
        Err(reason) => {
            report.details.push(format!("snapshot expiry skipped: {reason}"));
            job.metrics.tables_skipped_total.with_label_values(&["expiry", &reason]).inc();
            return Ok(());
        }
    };
    let expiry = plan::plan_expiry(table.metadata(), &crate::table::refs(table.metadata())?, policy, now);
    if expiry.expire.is_empty() && expiry.remove_refs.is_empty() {
        return Ok(());
    }
    if mode.is_dry_run() {
        report_would_expire(&table, &expiry, now, report);
        return Ok(());
    }
    // What is reachable now; if this cannot be read completely, expire nothing.
    let before = reachability::reachable(&table).await?;
    let ids_before: HashSet<i64> = table.metadata().snapshots().map(|s| s.snapshot_id()).collect();
    if let Some(hook) = &job.before_commit {
        hook(format!("{}#expiry", t.qualified())).await;
    }
    if !commit_expiry(job, t, table, now, commit_to, report).await? {
        return Ok(());
    }
    // Reload: files another writer committed meanwhile must count as reachable too.
    let after_table = job.catalog.iceberg_load(&t.ident).await?;
    record_expired(t, &ids_before, &after_table, &expiry, report);
    delete_unreachable(job, t, &before, &after_table, mode, report).await
}

/// The table's expiry policy under this job's configuration (`Err(reason)`: not to be expired).
fn expiry_policy_of(job: &RetentionJob, table: &Table) -> Result<ExpiryPolicy, String> {
    plan::expiry_policy(table.metadata(), job.config.snapshots_to_keep, job.config.max_snapshot_age)
}

/// The dry run's account: each snapshot that would expire, with its age.
fn report_would_expire(table: &Table, expiry: &ExpiryPlan, now: DateTime<Utc>, report: &mut TableReport) {
    for id in &expiry.expire {
        let age = table
            .metadata()
            .snapshot_by_id(*id)
            .and_then(|s| (now.timestamp_millis() - s.timestamp_ms()).try_into().ok())
            .map(|ms: u64| human_age(std::time::Duration::from_millis(ms)))
            .unwrap_or_default();
        info!("[DRY-RUN] Would expire snapshot: snapshot_id={id} age={age}");
        report.details.push(format!("would expire snapshot {id} (age {age})"));
    }
    report.retention_outcome().snapshots_expired += expiry.expire.len() as u64;
    report.status = TableStatus::Succeeded;
}

/// Commits the expiry, re-planned on the table as it is at every attempt. `Ok(false)`: abandoned,
/// nothing expired.
///
/// What each abandon means for the report:
/// - nothing left: another writer expired those snapshots meanwhile; nothing to report.
/// - lease lost or shutdown: not the table's fault and retried next pass, so not a failure; but
///   visible (a log line and a detail), never silently fine. Drops committed before it stay
///   committed; another replica owns the table now, or the process is stopping.
/// - excluded or blocked: the operator switched the table off (`gc.enabled=false`, the compactor's
///   switch) or it may not be committed to any more: obeyed, visible, not a failure.
/// - anything else (the reloaded metadata's refs cannot be read): the table failed, as when the
///   first reading of them fails.
async fn commit_expiry(
    job: &RetentionJob,
    t: &TableRef,
    table: Table,
    now: DateTime<Utc>,
    commit_to: &CommitTarget<'_>,
    report: &mut TableReport,
) -> Result<bool, RetentionError> {
    let inventory = Inventory::load(&table).await?;
    let rebase = |tbl: &Table, _: &Inventory| -> Result<Change, Abandon> {
        // `history.expire.*` and `gc.enabled` as they are now (the commit path refuses a table
        // disabled meanwhile): an operator who sets `gc.enabled=false` meanwhile is obeyed.
        let policy = expiry_policy_of(job, tbl).map_err(Abandon::Excluded)?;
        let refs = crate::table::refs(tbl.metadata()).map_err(|e| Abandon::Unreadable(e.to_string()))?;
        let p = plan::plan_expiry(tbl.metadata(), &refs, policy, now);
        if p.expire.is_empty() && p.remove_refs.is_empty() {
            return Err(Abandon::NothingLeft(Leftover::Expire));
        }
        Ok(Change::ExpireSnapshots { snapshot_ids: p.expire, refs: p.remove_refs })
    };
    match commit_with_retry(commit_to, table, inventory, rebase).await {
        Ok(committed) => {
            report.retention_outcome().commit_conflicts += u64::from(committed.conflicts);
            Ok(true)
        }
        Err(CommitError::Abandoned(Abandon::NothingLeft(_))) => Ok(false),
        Err(CommitError::Abandoned(
            why @ (Abandon::LeaseLost | Abandon::Shutdown | Abandon::Excluded(_) | Abandon::Blocked(_)),
        )) => {
            warn!(table = %t, reason = %why, "snapshot expiry abandoned; retried next pass");
            report.details.push(format!("snapshot expiry abandoned: {why}"));
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Records the snapshots the table reloaded after the commit no longer has.
fn record_expired(
    t: &TableRef,
    ids_before: &HashSet<i64>,
    after_table: &Table,
    expiry: &ExpiryPlan,
    report: &mut TableReport,
) {
    let ids_after: HashSet<i64> = after_table.metadata().snapshots().map(|s| s.snapshot_id()).collect();
    let mut expired: Vec<i64> = ids_before.difference(&ids_after).copied().collect();
    expired.sort_unstable();
    for id in &expired {
        info!(tenant = %t.tenant, dataset = %t.dataset, table = %t.table, snapshot_id = id, "expired snapshot");
    }
    report.retention_outcome().snapshots_expired += expired.len() as u64;
    report.details.push(format!(
        "expired {} snapshot(s), removed ref(s) {:?}",
        expired.len(),
        expiry.remove_refs
    ));
    report.status = TableStatus::Succeeded;
}

/// Deletes what was reachable `before` the expiry and is not from `after_table` nor from any other
/// table of the catalog, through the deletion gate. Anything unknown keeps every file.
async fn delete_unreachable(
    job: &RetentionJob,
    t: &TableRef,
    before: &Reachable,
    after_table: &Table,
    mode: Mode,
    report: &mut TableReport,
) -> Result<(), RetentionError> {
    let mut after = match reachability::reachable(after_table).await {
        Ok(r) => r,
        Err(e) => {
            warn!(table = %t, error = %e, "cannot compute the reachable set after expiry; deleting nothing");
            return Ok(());
        }
    };
    // Switched off meanwhile (`gc.enabled=false`, the compactor disabled): nothing is deleted.
    let switched_off = TableProperties::admit(after_table).err().map(|e| e.to_string());
    if let Some(why) = switched_off.or_else(|| expiry_policy_of(job, after_table).err()) {
        warn!(table = %t, reason = %why, "files unreachable after expiry kept: the table is switched off");
        report.details.push(format!("unreachable after expiry: files kept ({why})"));
        return Ok(());
    }
    let keep_metadata = !crate::table::properties::IcebergProperties::of(after_table.metadata())
        .delete_metadata_after_commit();
    let candidates: Vec<String> = before
        .minus(&after)
        .into_iter()
        .filter(|p| !(keep_metadata && p.ends_with(".metadata.json")))
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let kept = |why: &dyn std::fmt::Display| {
        format!("unreachable after expiry: {} file(s) kept ({why})", candidates.len())
    };
    // Every other table's location and references: a file another catalog entry (a backup registered
    // from older metadata, a table that imported it) still references is not deleted.
    let census = job.census().await?;
    match census.changes(&job.catalog, Some(&t.ident)).await {
        Ok(extra) => after.extend(&extra),
        Err(why) => {
            warn!(table = %t, reason = %why, "files unreachable after expiry kept: the catalog changed during the pass");
            report.details.push(kept(&why.for_report(&t.tenant)));
            return Ok(());
        }
    }
    let scope = match census.index(&job.catalog, &t.ident).map(|i| census.layout.scope(i, &after)) {
        Some(Ok(scope)) => scope.after_change(),
        Some(Err(skip)) => {
            warn!(table = %t, reason = %skip, "files unreachable after expiry kept: the table may not delete this pass");
            job.metrics.tables_skipped_total.with_label_values(&["expiry_cleanup", skip.reason()]).inc();
            report.details.push(kept(&skip.for_report(&t.tenant)));
            return Ok(());
        }
        None => {
            warn!(table = %t, "the table is not in this pass's census; files unreachable after expiry kept");
            return Ok(());
        }
    };
    let gate = DeletionGate {
        warehouse: &job.warehouse,
        scope: &scope,
        grace: job.config.grace_period,
        now: job.clock.now(),
        mode,
    };
    let outcome = gate.delete(&candidates).await;
    report.bytes_reclaimed += outcome.bytes_deleted();
    let typed = report.retention_outcome();
    typed.files_deleted += outcome.deleted.len() as u64;
    typed.bytes_deleted += outcome.bytes_deleted();
    report.details.push(format!(
        "unreachable after expiry: {} file(s), deleted {} ({} bytes), kept {}, failed {}",
        candidates.len(),
        outcome.deleted.len(),
        outcome.bytes_deleted(),
        outcome.refused.len(),
        outcome.failed.len()
    ));
    for (path, error) in &outcome.failed {
        warn!(table = %t, path, error, "could not delete an unreachable file; retried next pass");
    }
    Ok(())
}
