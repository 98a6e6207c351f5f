//! The metadata backlog: after each commit of ours, the `metadata.json` files that fell out of the
//! table's metadata log are deleted when the table asks for it (`write.metadata.delete-after-commit.
//! enabled = true`; the log keeps `write.metadata.previous-versions-max` entries), as Iceberg Java does.
//!
//! Through the deletion gate, under a layout built from the catalog's pointers alone (one query): a
//! `metadata.json` can only be referenced by a catalog row's pointer or by a metadata log, and a row
//! whose log can hold this table's files was registered from one of them, so it shares the table's
//! location (`shared_location`: nothing deleted). A row whose location its pointer does not tell makes
//! the table delete nothing (`unknown_neighbour`), and the scope lets only `*.metadata.json` files pass.
//! No grace period: a superseded version was current `previous-versions-max` commits ago, and a writer
//! still holding it fails its compare-and-swap anyway. Failures are logged, never fail the commit: the
//! orphan cleaner collects what is left.

use std::collections::HashSet;
use std::time::Duration;

use iceberg::table::Table;
use tracing::{info, warn};

use crate::catalog::Catalog;
use crate::config::Mode;
use crate::storage::deletable::Layout;
use crate::storage::gate::DeletionGate;
use crate::storage::path::{normalize, table_location_of_metadata};
use crate::table::reachability::Reachable;

/// The metadata files a table lists: its metadata log and its current file.
fn listed(t: &Table) -> impl Iterator<Item = &str> {
    t.metadata().metadata_log().iter().map(|e| e.metadata_file.as_str()).chain(t.metadata_location())
}

/// Metadata files in `before`'s log (or current) that `after` no longer lists.
pub fn superseded(before: &Table, after: &Table) -> Vec<String> {
    let canonical = |t: &Table| -> HashSet<String> { listed(t).filter_map(normalize).collect() };
    let (then, now) = (canonical(before), canonical(after));
    let mut out: Vec<String> = then.difference(&now).cloned().collect();
    out.sort();
    out
}

/// What [`reclaim`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    pub files: u64,
    pub bytes: u64,
}

/// Deletes `candidates` (from [`superseded`]) of the committed table `after` when its properties ask
/// for it.
pub async fn reclaim(catalog: &Catalog, after: &Table, candidates: &[String]) -> Reclaimed {
    let enabled = super::properties::IcebergProperties::of(after.metadata()).delete_metadata_after_commit();
    if !enabled || candidates.is_empty() {
        return Reclaimed::default();
    }
    let ident = after.identifier();
    let rows = match catalog.table_pointers().await {
        Ok(rows) => rows,
        Err(e) => {
            warn!(table = %ident, error = %e, "superseded metadata kept: the catalog could not be read");
            return Reclaimed::default();
        }
    };
    let warehouse = catalog.warehouse();
    let mut layout = Layout::new(warehouse.roots());
    let mut own_index = None;
    for row in &rows {
        let ours = row.catalog == catalog.name() && &row.ident == ident;
        let location = if ours {
            Some(after.metadata().location().to_string())
        } else {
            row.pointer.as_deref().and_then(table_location_of_metadata)
        };
        let index = layout.add_table(&row.display_name(catalog.name()), location.as_deref());
        let pointer = if ours { after.metadata_location() } else { row.pointer.as_deref() };
        layout.add_references(index, &Reachable::from_locations(pointer));
        if ours {
            own_index = Some(index);
        }
    }
    let Some(index) = own_index else {
        return Reclaimed::default();
    };
    let own = Reachable::from_locations(listed(after));
    let scope = match layout.scope(index, &own) {
        Ok(scope) => scope.after_change().metadata_files_only(),
        Err(skip) => {
            warn!(table = %ident, reason = %skip, "superseded metadata kept: the table may not delete");
            return Reclaimed::default();
        }
    };
    let gate = DeletionGate {
        warehouse,
        scope: &scope,
        grace: Duration::ZERO,
        // Wall-clock time on purpose: the grace is zero and the files were just superseded by this
        // process, so only the store's own timestamps (real time) can be compared with it.
        now: chrono::Utc::now(),
        mode: Mode::Execute,
    };
    let outcome = gate.delete(candidates).await;
    for (path, error) in &outcome.failed {
        warn!(table = %ident, path, error, "could not delete a superseded metadata file; the orphan cleaner will");
    }
    let done = Reclaimed { files: outcome.deleted.len() as u64, bytes: outcome.bytes_deleted() };
    if done.files > 0 {
        info!(table = %ident, files = done.files, bytes = done.bytes, "deleted metadata files that fell out of the metadata log");
    }
    done
}
