//! The live files of one snapshot, read from its manifests (not from a scan plan), so each file keeps
//! what a commit needs: its manifest, spec id, status, snapshot id and both sequence numbers.
//!
//! Hazard: `DataFile` has no public spec-id getter; the spec of a file is the spec of the manifest it
//! was read from, recorded here as [`LiveFile::spec_id`].

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::spec::{
    DataContentType, Manifest, ManifestContentType, ManifestEntryRef, ManifestFile, SnapshotRef,
};
use iceberg::table::Table;

use super::manifests::{OnUnreadable, Visit, Walk};

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

impl Inventory {
    /// Reads the current snapshot's manifest list and every manifest. An empty table has none.
    pub async fn load(table: &Table) -> iceberg::Result<Inventory> {
        let Some(snapshot) = table.metadata().current_snapshot().cloned() else {
            return Ok(Inventory::default());
        };
        Self::load_snapshot(table, snapshot).await
    }

    /// Reads `snapshot`'s manifest list and every manifest; fails if any of them cannot be read.
    pub async fn load_snapshot(table: &Table, snapshot: SnapshotRef) -> iceberg::Result<Inventory> {
        let mut inventory = Inventory { snapshot: Some(snapshot.clone()), ..Default::default() };
        Walk::snapshot(table, snapshot, OnUnreadable::Fail)
            .run(|visit| {
                if let Visit::Manifest(manifest, read) = visit {
                    inventory.add(manifest, read);
                }
            })
            .await?;
        Ok(inventory)
    }

    /// Adds `manifest` (read as `read`) and its live entries.
    fn add(&mut self, manifest: &ManifestFile, read: &Manifest) {
        let index = self.manifests.len();
        let live: Vec<ManifestEntryRef> = read.entries().iter().filter(|e| e.is_alive()).cloned().collect();
        for entry in &live {
            let file =
                LiveFile { entry: Arc::clone(entry), spec_id: manifest.partition_spec_id, manifest: index };
            match manifest.content {
                ManifestContentType::Data => self.data.push(file),
                ManifestContentType::Deletes => self.deletes.push(file),
            }
        }
        self.entries.push(live);
        self.manifests.push(manifest.clone());
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
