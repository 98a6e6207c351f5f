//! The manifest-rewrite step of a compaction pass: after a table's partitions, its data manifests are
//! rewritten clustered by partition spec and partition when `table::manifest_plan` finds it due under
//! the table's Iceberg thresholds (`commit.manifest.min-count-to-merge`,
//! `commit.manifest.target-size-bytes`). Switched by `[compactor] rewrite_manifests` (default on).
//!
//! The rewrite is a `replace` snapshot that adds and removes no file: every live data entry moves,
//! EXISTING with its snapshot id and both sequence numbers, into a new manifest; delete manifests are
//! kept as they are. It goes through the one commit path; on a conflict it is planned again on the new
//! head (a manifest rewrite is cheap to redo), so files appended meanwhile are in the result. The only
//! reason to abandon it is the table being excluded meanwhile (`signaldb.compactor.enabled`).
//!
//! Not run for a pass restricted to named partitions (`--partition`): that pass is about those
//! partitions, and a manifest rewrite is table-wide.

use iceberg::spec::ManifestContentType;
use iceberg::table::Table;
use tracing::{info, warn};

use super::CompactionJob;
use crate::catalog::TableRef;
use crate::config::Mode;
use crate::failpoint;
use crate::job::{TableReport, TableStatus};
use crate::table::manifest_plan::{self, ManifestPlan, Trigger};
use crate::table::producer::manifest_inputs;
use crate::table::properties::TableProperties;
use crate::table::{
    Abandon, Change, CommitError, CommitTarget, Committed, Inventory, ManifestRewrite, ProduceError,
    commit_with_retry,
};

/// The label the `before_commit` hook is called with before a manifest rewrite's commit.
pub const HOOK_LABEL: &str = "(manifests)";

/// Data manifests in the snapshot's manifest list.
pub fn data_manifests(inventory: &Inventory) -> u64 {
    inventory.manifests.iter().filter(|m| m.content == ManifestContentType::Data).count() as u64
}

/// The manifest planner's view of the table as it is: `None` when the step is switched off.
pub(super) async fn assess(
    job: &CompactionJob,
    table: &Table,
    props: &TableProperties,
    inventory: &Inventory,
) -> Result<Option<ManifestPlan>, ProduceError> {
    if !job.config.rewrite_manifests {
        return Ok(None);
    }
    let (_, inputs) = manifest_inputs(table, inventory).await?;
    Ok(Some(manifest_plan::plan(&inputs, props.manifests)))
}

/// Runs the step on the table as the pass left it (`table`, `inventory`), in `mode`, and records it in
/// `report` (outcome figures, a detail line, the status when nothing else happened or it failed).
#[allow(clippy::too_many_arguments)]
pub(super) async fn step(
    job: &CompactionJob,
    t: &TableRef,
    table: &Table,
    inventory: &Inventory,
    props: &TableProperties,
    mode: Mode,
    report: &mut TableReport,
    commit_to: &CommitTarget<'_>,
) {
    // `manifests_before` is the pass's (set before the partitions); this is the table as they left it.
    let before = data_manifests(inventory);
    report.compaction_outcome().manifests_after = before;
    let plan = match assess(job, table, props, inventory).await {
        Ok(Some(plan)) => plan,
        Ok(None) => return,
        Err(e) => {
            return fail(report, format!("planning the manifest rewrite: {}", crate::job::error_chain(&e)));
        }
    };
    let Some(trigger) = plan.trigger else { return };
    if mode.is_dry_run() {
        return report_would_rewrite(t, &plan, trigger, before, report);
    }
    if commit_to.cancel.is_cancelled() {
        return;
    }
    failpoint::hit(failpoint::MANIFESTS_BEFORE_SWAP);
    if let Some(hook) = &job.before_commit {
        hook(HOOK_LABEL.to_string()).await;
    }
    let rebase = |current: &Table, _: &Inventory| -> Result<Change, Abandon> {
        // An operator who disables the table (or breaks a switch) meanwhile is obeyed.
        let props =
            TableProperties::admit(current).map_err(|excluded| Abandon::Excluded(excluded.to_string()))?;
        Ok(Change::RewriteManifests(ManifestRewrite {
            thresholds: props.manifests,
            summary: [("signaldb.compactor.version".to_string(), env!("CARGO_PKG_VERSION").to_string())]
                .into(),
        }))
    };
    let committed = commit_with_retry(commit_to, table.clone(), inventory.clone(), rebase).await;
    match committed {
        Ok(c) => record_rewrite(t, trigger, before, &c, report),
        Err(CommitError::Abandoned(why)) => {
            warn!(table = %t, reason = %why, "manifest rewrite abandoned");
            report.details.push(format!("manifest rewrite abandoned: {why}"));
        }
        Err(e) => {
            if let CommitError::TooManyConflicts(n) = e {
                report.compaction_outcome().commit_conflicts += u64::from(n);
            }
            fail(report, format!("manifest rewrite: {}", crate::job::error_chain(&e)));
        }
    }
}

/// The dry run's account: the manifests that would be rewritten, and into how many.
fn report_would_rewrite(
    t: &TableRef,
    plan: &ManifestPlan,
    trigger: Trigger,
    before: u64,
    report: &mut TableReport,
) {
    let planned = plan.planned.len() as u64;
    info!(
        table = %t, trigger = trigger.as_str(), manifests_before = before, manifests_after = planned,
        scatter_before = plan.scatter_before, scatter_after = plan.scatter_after,
        "[DRY-RUN] would rewrite data manifests"
    );
    report.compaction_outcome().manifests_after = planned;
    report.details.push(format!(
        "would rewrite {before} data manifest(s) into ~{planned}, clustered by partition ({})",
        trigger.as_str()
    ));
    succeeded(report);
}

/// A landed manifest rewrite: logged and recorded in the report.
fn record_rewrite(t: &TableRef, trigger: Trigger, before: u64, c: &Committed, report: &mut TableReport) {
    let after = data_manifests(&c.inventory);
    let replaced = c
        .table
        .metadata()
        .snapshot_by_id(c.snapshot_id)
        .and_then(|s| s.summary().additional_properties.get("manifests-replaced")?.parse().ok())
        .unwrap_or(before);
    info!(
        table = %t, trigger = trigger.as_str(), manifests_before = replaced, manifests_after = after,
        snapshot_id = c.snapshot_id, attempts = c.attempts, "rewrote data manifests"
    );
    let outcome = report.compaction_outcome();
    outcome.manifests_after = after;
    outcome.manifests_rewritten = replaced;
    outcome.commit_conflicts += u64::from(c.conflicts);
    report.snapshot_id = Some(c.snapshot_id);
    report.details.push(format!(
        "rewrote {replaced} data manifest(s) into {after}, clustered by partition ({})",
        trigger.as_str()
    ));
    succeeded(report);
}

fn succeeded(report: &mut TableReport) {
    if report.status == TableStatus::Unchanged {
        report.status = TableStatus::Succeeded;
    }
}

fn fail(report: &mut TableReport, error: String) {
    report.details.push(error.clone());
    if !matches!(report.status, TableStatus::Failed { .. }) {
        report.status = TableStatus::Failed { error };
    }
}
