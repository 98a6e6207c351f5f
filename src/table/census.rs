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

use crate::catalog::{Catalog, CatalogError};
use crate::storage::deletable::{Layout, UnreadableNeighbours};
use crate::table::reachability::{Reachable, reachable};

/// Tables read at once.
const CONCURRENCY: usize = 8;

/// The key a table has in the census: `namespace.table` as the catalog row spells it.
pub fn key(ident: &TableIdent) -> String {
    format!("{}.{}", ident.namespace().join("."), ident.name())
}

/// One table as the census read it.
pub struct Entry {
    /// The table as loaded (absent when its metadata could not be read).
    pub table: Option<Table>,
    /// Its complete reachable set, or why it could not be read.
    pub live: Result<Reachable, String>,
}

/// Every table's location and references for one pass.
pub struct Census {
    pub layout: Layout,
    entries: HashMap<String, Entry>,
}

impl Census {
    /// Reads every table of `catalog`. Fails only when the catalog itself cannot be queried.
    pub async fn build(
        catalog: &Catalog,
        roots: Vec<String>,
        unreadable: UnreadableNeighbours,
    ) -> Result<Arc<Census>, CatalogError> {
        let rows = catalog.table_pointers().await?;
        let read: Vec<(String, Option<String>, Entry)> = futures::stream::iter(rows)
            .map(|(name, ident, pointer)| async move {
                let entry = read_one(catalog, &ident, pointer.as_deref()).await;
                (name, pointer, entry)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut layout = Layout::new(roots).with_unreadable(unreadable);
        let mut entries = HashMap::with_capacity(read.len());
        for (name, pointer, entry) in read {
            let location = match &entry.table {
                Some(t) => Some(t.metadata().location().to_string()),
                None => pointer.as_deref().and_then(crate::storage::path::table_location_of_metadata),
            };
            if location.is_none() {
                warn!(table = name, pointer, "the location of a catalog table cannot be established");
            }
            let index = layout.add_table(&name, location.as_deref());
            if let Ok(live) = &entry.live {
                layout.add_references(index, live);
            }
            entries.insert(name, entry);
        }
        Ok(Arc::new(Census { layout, entries }))
    }

    /// The census' reading of a table.
    pub fn entry(&self, ident: &TableIdent) -> Option<&Entry> {
        self.entries.get(&key(ident))
    }

    /// The layout index of a table.
    pub fn index(&self, ident: &TableIdent) -> Option<usize> {
        self.layout.index_of(&key(ident))
    }

    /// Tables whose references could not be read completely (name, cause).
    pub fn unreadable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter_map(|(n, e)| e.live.as_ref().err().map(|why| (n.as_str(), why.as_str())))
    }
}

async fn read_one(catalog: &Catalog, ident: &TableIdent, pointer: Option<&str>) -> Entry {
    let Some(pointer) = pointer else {
        return Entry { table: None, live: Err("the catalog row has no metadata location".into()) };
    };
    let table = match catalog.load_pointer(ident, pointer).await {
        Ok(t) => t,
        Err(e) => {
            warn!(table = %ident, error = %e, "cannot read table metadata; its location is implied by its pointer");
            return Entry { table: None, live: Err(e.to_string()) };
        }
    };
    let live = reachable(&table).await.map_err(|e| e.to_string());
    if let Err(e) = &live {
        warn!(table = %ident, error = e, "cannot read every file the table references");
    }
    Entry { table: Some(table), live }
}
