//! The one commit path for snapshots this daemon produces: write the next metadata file, swap the
//! catalog pointer with a compare-and-swap in an explicit transaction whose commit result is checked,
//! confirm the swap by reloading, and on conflict rebase and retry with jittered backoff.
//!
//! Terms: a *conflict* is a CAS that matched no row (someone committed first): definitely not landed,
//! so this attempt's own manifests, manifest list and metadata file are deleted again. An *ambiguous*
//! outcome (the database failed while committing and the row does not show our file) deletes nothing:
//! if the commit did land, those files are live; the orphan cleaner decides later, with liveness.
//!
//! Hazard: iceberg-catalog-sql's own `execute` ignores its transaction's commit result; this module
//! never reports success without a checked commit and a reload that shows our snapshot.

use std::time::Duration;

use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{MetadataLocation, TableIdent};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::fence::Fence;
use super::inventory::Inventory;
use super::producer::{Change, ProduceError, Staged, stage};
use crate::catalog::{Catalog, CatalogError};

/// Why a change was not committed although nothing failed: the table moved on under it, the work
/// was told to stop, or another replica owns the table now. Nothing of the change landed; the files it
/// wrote are deleted again by the caller or left to the orphan cleaner. The messages are those the
/// reports have always shown (`abandoned: <message>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Abandon {
    /// A file the change removes is no longer live (a concurrent commit removed it).
    #[error("input {0} is no longer live (removed by a concurrent commit)")]
    InputGone(String),
    /// A delete file that may apply to the change's inputs was committed since the work started.
    #[error("delete file {0} was committed to the partition meanwhile")]
    DeleteFileAdded(String),
    /// The table's current schema is not the one the work started from.
    #[error("the table schema changed since the rewrite started")]
    SchemaChanged,
    /// The table's own properties exclude it now (`signaldb.compactor.enabled=false`, or a switch that
    /// does not parse).
    #[error("the table was excluded meanwhile ({0})")]
    Excluded(String),
    /// Re-planned on the table as it is now, the change is empty: someone else did the work.
    #[error("nothing left to {0}")]
    NothingLeft(Leftover),
    /// The table's metadata, as reloaded, cannot be read the way the change needs.
    #[error("{0}")]
    Unreadable(String),
    /// The table's lease was lost to another replica; that replica owns the table now.
    #[error("the table's lease was lost to another replica")]
    LeaseLost,
    /// The table, as reloaded, is one this daemon must not commit to (e.g. a format-v1 table that
    /// got a tag meanwhile: iceberg-rust would write its metadata without the tag).
    #[error("the table may not be committed to any more ({0})")]
    Blocked(&'static str),
    /// The process is shutting down.
    #[error("shutdown requested")]
    Shutdown,
}

/// What an [`Abandon::NothingLeft`] change would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    Drop,
    Expire,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Leftover::Drop => "drop",
            Leftover::Expire => "expire",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("abandoned: {0}")]
    Abandoned(Abandon),
    #[error("gave up after {0} conflicting commit attempts")]
    TooManyConflicts(u32),
    #[error("commit outcome unknown (database failed during commit): {0}")]
    Ambiguous(String),
    #[error("commit reported success but the table does not contain snapshot {0}")]
    Lost(i64),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("catalog database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Iceberg(#[from] iceberg::Error),
}

impl CommitError {
    /// Whether the next pass may simply try again (nothing is known to be wrong with the table).
    pub fn is_retryable(&self) -> bool {
        matches!(self, CommitError::TooManyConflicts(_) | CommitError::Sql(_) | CommitError::Ambiguous(_))
    }
}

/// Bounds of the retry loop.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_backoff: Duration,
}

impl RetryPolicy {
    /// The configured bounds (`[compactor] commit_max_attempts`, `commit_retry_backoff`), shared by
    /// every job that commits.
    pub fn configured(config: &crate::config::CommitConfig) -> Self {
        RetryPolicy { max_attempts: config.max_attempts, base_backoff: config.retry_backoff }
    }

    /// Exponential backoff with ±50 % jitter, capped at 30 s.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(Duration::from_secs(30));
        capped.mul_f64(rand::rng().random_range(0.5..1.5))
    }
}

/// A landed commit.
#[derive(Debug, Clone)]
pub struct Committed {
    pub snapshot_id: i64,
    /// The inventory of `table`'s current snapshot: the committed snapshot's, or, when another writer
    /// committed on top before the reload, that writer's (reloaded), so the pair is always consistent.
    pub inventory: Inventory,
    pub metadata_location: String,
    pub attempts: u32,
    pub conflicts: u32,
    pub table: Table,
    /// Metadata files that fell out of the metadata log and were deleted (`write.metadata.
    /// delete-after-commit.enabled`).
    pub metadata_reclaimed: super::backlog::Reclaimed,
}

/// Outcome of one swap attempt.
enum Swap {
    Landed(String),
    Conflict,
}

/// Where a change is committed, and under what: the table, the retry bounds, the shutdown signal and
/// the fence of the lease the work holds on the table.
#[derive(Clone, Copy)]
pub struct CommitTarget<'a> {
    pub catalog: &'a Catalog,
    pub ident: &'a TableIdent,
    pub policy: RetryPolicy,
    pub cancel: &'a CancellationToken,
    pub fence: &'a dyn Fence,
}

/// Commits the change that `rebase` builds, retrying on conflicts. `rebase` sees the table and its
/// inventory as they are now (the first call: as planned) and either returns the change to commit or
/// refuses with an [`Abandon`] (the change no longer applies): then nothing is committed and `Abandoned`
/// is returned.
pub async fn commit_with_retry<F>(
    target: &CommitTarget<'_>,
    mut table: Table,
    mut inventory: Inventory,
    mut rebase: F,
) -> Result<Committed, CommitError>
where
    F: FnMut(&Table, &Inventory) -> Result<Change, Abandon>,
{
    let CommitTarget { catalog, ident, policy, cancel, fence } = *target;
    let mut conflicts = 0;
    for attempt in 1..=policy.max_attempts.max(1) {
        // The change is staged on the inventory as the parent of what it commits: it must be the
        // table's current snapshot, or what was committed since would be dropped from main.
        if inventory.snapshot_id() != table.metadata().current_snapshot_id() {
            inventory = Inventory::load(&table).await?;
        }
        // Checked before the pass began, but the table may have changed since: the one handed in
        // may be the reload of an earlier commit's confirmation, and a reload after a conflict is
        // newer still (a v1 table tagged meanwhile would lose its tag: iceberg-rust reads and writes
        // v1 metadata without refs). Free for v2 tables; one read of the metadata file for v1.
        match super::guard::commit_blocker(&table).await {
            Ok(None) => {}
            Ok(Some(reason)) => return Err(CommitError::Abandoned(Abandon::Blocked(reason))),
            // Nothing is staged yet: abandoned, so the caller discards what it wrote.
            Err(e) => {
                return Err(CommitError::Abandoned(Abandon::Unreadable(format!(
                    "checking the table before committing: {e}"
                ))));
            }
        }
        // An operator who disables the table (or breaks one of its switches) meanwhile is obeyed by
        // every job: `signaldb.compactor.enabled=false` excludes it from everything that commits.
        if let Err(excluded) = super::properties::TableProperties::admit(&table) {
            return Err(CommitError::Abandoned(Abandon::Excluded(excluded.to_string())));
        }
        let change = rebase(&table, &inventory).map_err(CommitError::Abandoned)?;
        let staged = stage(&table, &inventory, &change).await?;
        match swap(catalog, ident, fence, &table, &staged).await? {
            Swap::Landed(location) => {
                let committed = confirm(catalog, ident, &staged).await?;
                let superseded = super::backlog::superseded(&table, &committed);
                let metadata_reclaimed = super::backlog::reclaim(catalog, &committed, &superseded).await;
                let table = committed;
                // Another writer may have committed on top before the reload: the inventory returned
                // goes with the table returned (the next commit on them would otherwise drop that
                // writer's snapshot). If it cannot be read now, the next `commit_with_retry` reloads it.
                let inventory = if staged.inventory.snapshot_id() == table.metadata().current_snapshot_id() {
                    staged.inventory
                } else {
                    match Inventory::load(&table).await {
                        Ok(inventory) => inventory,
                        Err(e) => {
                            warn!(table = %ident, error = %e, "could not read the snapshot committed on top of ours");
                            staged.inventory
                        }
                    }
                };
                return Ok(Committed {
                    metadata_reclaimed,
                    snapshot_id: staged.snapshot_id,
                    inventory,
                    metadata_location: location,
                    attempts: attempt,
                    conflicts,
                    table,
                });
            }
            Swap::Conflict => {
                conflicts += 1;
                if attempt == policy.max_attempts || cancel.is_cancelled() {
                    break;
                }
                let wait = policy.backoff(attempt);
                debug!(table = %ident, attempt, wait_ms = wait.as_millis() as u64, "commit conflict; rebasing");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(CommitError::Abandoned(Abandon::Shutdown)),
                    _ = tokio::time::sleep(wait) => {}
                }
                table = catalog.iceberg_load(ident).await?;
                inventory = Inventory::load(&table).await?;
            }
        }
    }
    if cancel.is_cancelled() {
        return Err(CommitError::Abandoned(Abandon::Shutdown));
    }
    Err(CommitError::TooManyConflicts(conflicts))
}

/// The next metadata file name: `NNNNN-uuid.metadata.json` after the current one. Tables whose current
/// file does not follow that naming (e.g. `v3.metadata.json`) continue at the metadata-log length.
fn next_metadata_location(current: &str, table: &Table, next: &TableMetadata) -> MetadataLocation {
    match current.parse::<MetadataLocation>() {
        Ok(loc) => loc.with_next_version().with_new_metadata(next),
        Err(_) => {
            let fresh = MetadataLocation::new_with_metadata(table.metadata().location(), next);
            // new_with_metadata starts at version 0; the uuid keeps it unique either way.
            let mut loc = fresh;
            for _ in 0..=table.metadata().metadata_log().len() {
                loc = loc.with_next_version();
            }
            loc
        }
    }
}

/// Writes the staged metadata and swaps the catalog pointer from the table's current location to it.
async fn swap(
    catalog: &Catalog,
    ident: &TableIdent,
    fence: &dyn Fence,
    table: &Table,
    staged: &Staged,
) -> Result<Swap, CommitError> {
    let current = table.metadata_location_result()?.to_string();
    let next = next_metadata_location(&current, table, &staged.metadata);
    let next_str = next.to_string();
    if let Err(e) = staged.metadata.write_to(table.file_io(), &next).await {
        discard_uncommitted(table, &staged.written).await;
        return Err(e.into());
    }
    let mut own_files = staged.written.clone();
    own_files.push(next_str.clone());

    let mut tx = match catalog.pool().begin().await {
        Ok(tx) => tx,
        Err(e) => {
            discard_uncommitted(table, &own_files).await;
            return Err(e.into());
        }
    };
    // A replica that lost the table's lease must not commit; holding the lease row until the
    // transaction ends keeps another replica from taking it meanwhile.
    match fence.fence(&mut tx).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = tx.rollback().await;
            discard_uncommitted(table, &own_files).await;
            return Err(CommitError::Abandoned(Abandon::LeaseLost));
        }
        Err(e) => {
            drop(tx);
            discard_uncommitted(table, &own_files).await;
            return Err(e.into());
        }
    }
    let statement = format!(
        "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 \
         WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 AND metadata_location = $6{}",
        catalog.table_type_filter()
    );
    let updated = sqlx::query(&statement)
        .bind(&next_str)
        .bind(&current)
        .bind(catalog.name())
        .bind(ident.namespace().join("."))
        .bind(ident.name())
        .bind(&current)
        .execute(&mut *tx)
        .await;
    match updated {
        Err(e) => {
            // The statement failed inside an open transaction: nothing was committed.
            drop(tx);
            discard_uncommitted(table, &own_files).await;
            Err(e.into())
        }
        Ok(r) if r.rows_affected() == 0 => {
            let _ = tx.rollback().await;
            discard_uncommitted(table, &own_files).await;
            Ok(Swap::Conflict)
        }
        Ok(_) => match tx.commit().await {
            Ok(()) => Ok(Swap::Landed(next_str)),
            Err(e) => {
                // Did it land? Ask the row; never delete anything on an ambiguous outcome.
                match catalog.metadata_location(ident).await {
                    Ok(Some(loc)) if loc == next_str => Ok(Swap::Landed(next_str)),
                    _ => Err(CommitError::Ambiguous(e.to_string())),
                }
            }
        },
    }
}

/// Reloads the table and checks the commit shows: a new snapshot is main's head or one of its
/// ancestors (another writer may have committed on top already); expired snapshots are gone. A swap
/// that does not show up is a loud error.
async fn confirm(catalog: &Catalog, ident: &TableIdent, staged: &Staged) -> Result<Table, CommitError> {
    let table = catalog.iceberg_load(ident).await?;
    let metadata = table.metadata();
    if !staged.expired.is_empty() {
        if let Some(id) = staged.expired.iter().find(|id| metadata.snapshot_by_id(**id).is_some()) {
            warn!(table = %ident, snapshot_id = id, "expired snapshot still present after the swap");
            return Err(CommitError::Lost(*id));
        }
        return Ok(table);
    }
    let snapshot_id = staged.snapshot_id;
    let mut cursor = metadata.current_snapshot().cloned();
    while let Some(s) = cursor {
        if s.snapshot_id() == snapshot_id {
            return Ok(table);
        }
        cursor = s.parent_snapshot_id().and_then(|p| metadata.snapshot_by_id(p).cloned());
    }
    warn!(table = %ident, snapshot_id, "committed snapshot not found in main's history after reload");
    Err(CommitError::Lost(snapshot_id))
}

/// Deletes files this attempt wrote after its CAS definitely failed. This is the commit path's only
/// deletion, narrower than the orphan gate: files no committed metadata can reference.
pub(crate) async fn discard_uncommitted(table: &Table, paths: &[String]) {
    for path in paths {
        if let Err(e) = table.file_io().delete(path).await {
            warn!(path, error = %e, "could not delete an uncommitted file; the orphan cleaner will");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy { max_attempts: 5, base_backoff: Duration::from_millis(100) };
        for attempt in 1..=4u32 {
            let nominal = 100.0 * f64::from(1u32 << (attempt - 1));
            let b = p.backoff(attempt).as_secs_f64() * 1000.0;
            assert!(b >= nominal * 0.5 && b <= nominal * 1.5, "attempt {attempt}: {b} ms");
        }
        assert!(p.backoff(40) <= Duration::from_secs(45));
    }
}
