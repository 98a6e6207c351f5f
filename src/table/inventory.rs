//! The live files of one snapshot, read from its manifests (not from a scan plan), so each file keeps
//! what a commit needs: its manifest, spec id, status, snapshot id and both sequence numbers.
//!
//! Hazard: `DataFile` has no public spec-id getter; the spec of a file is the spec of the manifest it
//! was read from, recorded here as [`LiveFile::spec_id`].

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{DataContentType, ManifestContentType, ManifestEntryRef, ManifestFile, SnapshotRef};
use iceberg::table::Table;

/// A live (ADDED or EXISTING) entry of the snapshot.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub entry: ManifestEntryRef,
    pub spec_id: i32,
    /// Index into [`Inventory::manifests`].
    pub manifest: usize,
}

impl LiveFile {
    pub fn path(&self) -> &str {
        self.entry.file_path()
    }

    pub fn size(&self) -> u64 {
        self.entry.file_size_in_bytes()
    }

    pub fn records(&self) -> u64 {
        self.entry.record_count()
    }

    pub fn is_data(&self) -> bool {
        self.entry.content_type() == DataContentType::Data
    }
}

/// Every manifest of a snapshot and every live file in them.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub snapshot: Option<SnapshotRef>,
    pub manifests: Vec<ManifestFile>,
    /// Live entries per manifest (same order as `manifests`).
    pub entries: Vec<Vec<ManifestEntryRef>>,
    pub data: Vec<LiveFile>,
    pub deletes: Vec<LiveFile>,
}

/// Manifests read concurrently; a table has tens to thousands of them.
const MANIFEST_READ_CONCURRENCY: usize = 16;

impl Inventory {
    /// Reads the current snapshot's manifest list and every manifest. An empty table has none.
    pub async fn load(table: &Table) -> iceberg::Result<Inventory> {
        let Some(snapshot) = table.metadata().current_snapshot().cloned() else {
            return Ok(Inventory::default());
        };
        Self::load_snapshot(table, snapshot).await
    }

    pub async fn load_snapshot(table: &Table, snapshot: SnapshotRef) -> iceberg::Result<Inventory> {
        let list = table.manifest_list_reader(&snapshot).load().await?;
        let manifests: Vec<ManifestFile> = list.entries().to_vec();
        let io = table.file_io().clone();
        let loaded: Vec<Vec<ManifestEntryRef>> = futures::stream::iter(manifests.iter().cloned())
            .map(|m| {
                let io = io.clone();
                async move {
                    let manifest = super::manifests::load(&io, &m).await?;
                    Ok::<_, iceberg::Error>(manifest.entries().to_vec())
                }
            })
            .buffered(MANIFEST_READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut inventory = Inventory { snapshot: Some(snapshot), ..Default::default() };
        for (index, (manifest, entries)) in manifests.iter().zip(loaded).enumerate() {
            let live: Vec<ManifestEntryRef> = entries.into_iter().filter(|e| e.is_alive()).collect();
            for entry in &live {
                let file = LiveFile {
                    entry: Arc::clone(entry),
                    spec_id: manifest.partition_spec_id,
                    manifest: index,
                };
                match manifest.content {
                    ManifestContentType::Data => inventory.data.push(file),
                    ManifestContentType::Deletes => inventory.deletes.push(file),
                }
            }
            inventory.entries.push(live);
        }
        inventory.manifests = manifests;
        Ok(inventory)
    }

    /// Live data files by path.
    pub fn data_by_path(&self) -> HashMap<&str, &LiveFile> {
        self.data.iter().map(|f| (f.path(), f)).collect()
    }

    pub fn snapshot_id(&self) -> Option<i64> {
        self.snapshot.as_ref().map(|s| s.snapshot_id())
    }

    pub fn sequence_number(&self) -> i64 {
        self.snapshot.as_ref().map(|s| s.sequence_number()).unwrap_or(0)
    }
}
