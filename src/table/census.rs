//! The census: what one pass knows of every table of the catalog, built once per pass (orphan
//! cleanup) or once per pass that has something to delete (expiry cleanup) and given to the deletion
//! gate as a [`Layout`].
//!
//! For every catalog row (not only the tables this daemon maintains): its location, read from its
//! metadata, or, when the metadata cannot be read, implied by the row's metadata pointer
//! (`…/t/metadata/x.metadata.json` → `…/t`); and every file its metadata references. A table whose
//! location cannot be established even so leaves it unknown, and the layout then lets no table delete
//! (fail closed). A table whose references cannot be read completely still protects its location;
//! the files it references outside its own location are then not known (logged and counted).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use iceberg::TableIdent;
use iceberg::table::Table;
use tracing::warn;

use crate::catalog::{Catalog, CatalogError, CatalogRow};
use crate::storage::deletable::{Layout, UnreadableNeighbours};
use crate::storage::path::normalize;
use crate::table::reachability::{Reachable, reachable, reachable_since};

/// Tables read at once.
const CONCURRENCY: usize = 8;

/// The key a row has in the census: (catalog name, namespace, table).
type Key = (String, String, String);

fn key_of(catalog: &Catalog, ident: &TableIdent) -> Key {
    (catalog.name().to_string(), ident.namespace().join("."), ident.name().to_string())
}

/// One table as the census read it.
pub struct Entry {
    /// The table as loaded (absent when its metadata could not be read, and for views).
    pub table: Option<Table>,
    /// Its complete reachable set, or why it could not be read.
    pub live: Result<Reachable, String>,
    /// The row's metadata pointer when the census read it.
    pointer: Option<String>,
    /// The row's location as the layout has it (canonical).
    location: Option<String>,
    /// Its name in logs and skip reasons.
    name: String,
}

/// Every table's location and references for one pass.
pub struct Census {
    pub layout: Layout,
    entries: HashMap<Key, Entry>,
    indexes: HashMap<Key, usize>,
}

impl Census {
    /// Reads every row of the catalog database. Fails only when the database cannot be queried.
    pub async fn build(
        catalog: &Catalog,
        roots: Vec<String>,
        unreadable: UnreadableNeighbours,
    ) -> Result<Arc<Census>, CatalogError> {
        let rows = catalog.table_pointers().await?;
        let roots: Vec<String> = roots.iter().filter_map(|r| normalize(r)).collect();
        let roots = &roots;
        let read: Vec<(CatalogRow, Entry)> = futures::stream::iter(rows)
            .map(|row| async move {
                let entry = read_one(catalog, &row, roots).await;
                (row, entry)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut layout = Layout::new(roots.iter().cloned()).with_unreadable(unreadable);
        let (mut entries, mut indexes) = (HashMap::new(), HashMap::new());
        for (row, entry) in read {
            if entry.location.is_none() {
                warn!(
                    table = entry.name,
                    pointer = row.pointer,
                    "the location of a catalog row cannot be established"
                );
            }
            let index = layout.add_table(&entry.name, entry.location.as_deref());
            if let Ok(live) = &entry.live {
                layout.add_references(index, live);
            }
            indexes.insert(row.key(), index);
            entries.insert(row.key(), entry);
        }
        Ok(Arc::new(Census { layout, entries, indexes }))
    }

    /// The census' reading of one of this catalog's tables.
    pub fn entry(&self, catalog: &Catalog, ident: &TableIdent) -> Option<&Entry> {
        self.entries.get(&key_of(catalog, ident))
    }

    /// The layout index of one of this catalog's tables.
    pub fn index(&self, catalog: &Catalog, ident: &TableIdent) -> Option<usize> {
        self.indexes.get(&key_of(catalog, ident)).copied()
    }

    /// Tables whose references could not be read completely (name, cause).
    pub fn unreadable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.values().filter_map(|e| e.live.as_ref().err().map(|why| (e.name.as_str(), why.as_str())))
    }

    /// What the catalog gained since the census, for deletions to stay safe: every file the rows
    /// (but `skip`, a table whose own later references the caller already has) reference now but did not then (read incrementally: manifest lists and manifests are
    /// immutable, so only new ones are read). `Err` (delete nothing now) when a row appeared, a row's
    /// location moved, or a changed row cannot be read.
    pub async fn changes(
        &self,
        catalog: &Catalog,
        skip: Option<&TableIdent>,
    ) -> Result<Reachable, CatalogChanged> {
        let skip = skip.map(|t| key_of(catalog, t));
        let rows = catalog
            .table_pointers()
            .await
            .map_err(|e| CatalogChanged { table: None, what: format!("the catalog cannot be read: {e}") })?;
        let mut extra = Reachable::default();
        for row in rows {
            let key = row.key();
            if Some(&key) == skip.as_ref() {
                continue;
            }
            let Some(before) = self.entries.get(&key) else {
                return Err(CatalogChanged {
                    table: Some(row.display_name(catalog.name())),
                    what: "appeared in the catalog during the pass".into(),
                });
            };
            if before.pointer == row.pointer {
                continue;
            }
            let now = read_changed(catalog, &row, self.layout.roots(), |p| {
                self.layout.is_referenced(p) || extra.contains(p)
            })
            .await;
            let changed = |what: String| CatalogChanged { table: Some(before.name.clone()), what };
            let (location, live) = now.map_err(|e| changed(format!("changed and cannot be read: {e}")))?;
            if location != before.location {
                return Err(changed("moved during the pass".into()));
            }
            extra.extend(&live);
        }
        Ok(extra)
    }
}

/// Why deletions must wait: the catalog changed during the pass in a way [`Census::changes`] cannot
/// follow (a row appeared, moved, or cannot be read), or the catalog cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogChanged {
    /// The row concerned, as the census names it.
    pub table: Option<String>,
    pub what: String,
}

impl std::fmt::Display for CatalogChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.table {
            Some(table) => write!(f, "{table} {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl CatalogChanged {
    /// As a report about a table of `tenant` shows it: another tenant's table is not named (nor what
    /// happened to it, which may quote its paths).
    pub fn for_report(&self, tenant: &str) -> String {
        match &self.table {
            Some(table) if !crate::storage::deletable::may_name_in_report(table, tenant) => {
                "a table of another tenant or catalog changed during the pass (the log names it)".to_string()
            }
            _ => self.to_string(),
        }
    }
}

/// A row read now: its location and the references it gained (those `known` rejects are skipped).
async fn read_changed(
    catalog: &Catalog,
    row: &CatalogRow,
    roots: &[String],
    known: impl Fn(&str) -> bool + Send + Sync,
) -> Result<(Option<String>, Reachable), String> {
    let pointer = row.pointer.as_deref().ok_or("the row has no metadata location")?;
    if row.view {
        let location = crate::storage::path::table_location_of_metadata(pointer);
        return Ok((location, Reachable::from_locations([pointer])));
    }
    let table = catalog.load_pointer(&row.ident, pointer).await.map_err(|e| e.to_string())?;
    let live = reachable_since(&table, known).await.map_err(|e| e.to_string())?;
    let live = crate::storage::reachable::with_link_targets(live, roots).await?;
    Ok((normalize(table.metadata().location()), live))
}

async fn read_one(catalog: &Catalog, row: &CatalogRow, roots: &[String]) -> Entry {
    let name = row.display_name(catalog.name());
    let implied = row.pointer.as_deref().and_then(crate::storage::path::table_location_of_metadata);
    let entry = |table, live, location| Entry {
        table,
        live,
        pointer: row.pointer.clone(),
        location,
        name: name.clone(),
    };
    let Some(pointer) = row.pointer.as_deref() else {
        return entry(None, Err("the catalog row has no metadata location".into()), None);
    };
    if row.view {
        // A view references its metadata files only; its directory is protected by its location.
        return entry(None, Ok(Reachable::from_locations([pointer])), implied);
    }
    let table = match catalog.load_pointer(&row.ident, pointer).await {
        Ok(t) => t,
        Err(e) => {
            warn!(table = name, error = %e, "cannot read table metadata; its location is implied by its pointer");
            return entry(None, Err(e.to_string()), implied);
        }
    };
    let location = normalize(table.metadata().location());
    let live = match reachable(&table).await {
        Ok(live) => crate::storage::reachable::with_link_targets(live, roots).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &live {
        warn!(table = name, error = e, "cannot read every file the table references");
    }
    entry(Some(table), live, location)
}
