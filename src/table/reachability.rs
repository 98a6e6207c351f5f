//! Every file a table's metadata references: the current metadata file and every metadata-log entry,
//! statistics and partition-statistics files, and for every snapshot (whatever ref reaches it) its
//! manifest list, every manifest (data and delete) and every entry's file whatever its status.
//!
//! Hazard: deleting on partial knowledge deletes live files. If any manifest list or manifest cannot be
//! read, the whole computation fails; callers then delete nothing for that table.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::ManifestFile;
use iceberg::table::Table;

/// Manifests read concurrently.
const CONCURRENCY: usize = 16;

pub use crate::storage::reachable::Reachable;

/// Computes the reachable set of `table` as loaded.
pub async fn reachable(table: &Table) -> iceberg::Result<Reachable> {
    reachable_since(table, |_| false).await
}

/// Like [`reachable`], but manifest lists and manifests for which `known` holds are not read again
/// (they are immutable: whoever knew them knows what they reference). Used to catch up on a table that
/// committed since it was last read.
pub async fn reachable_since(table: &Table, known: impl Fn(&str) -> bool) -> iceberg::Result<Reachable> {
    let md = table.metadata();
    let mut out = Reachable::default();
    if let Some(location) = table.metadata_location() {
        out.insert(location);
    }
    for entry in md.metadata_log() {
        out.insert(&entry.metadata_file);
    }
    for stats in md.statistics_iter() {
        out.insert(&stats.statistics_path);
    }
    for stats in md.partition_statistics_iter() {
        out.insert(&stats.statistics_path);
    }
    let mut manifests: Vec<ManifestFile> = Vec::new();
    let mut seen_manifests = HashSet::new();
    for snapshot in md.snapshots() {
        out.insert(snapshot.manifest_list());
        if known(snapshot.manifest_list()) {
            continue;
        }
        let list = table.manifest_list_reader(snapshot).load().await?;
        for m in list.entries() {
            if known(&m.manifest_path) {
                out.insert(&m.manifest_path);
                continue;
            }
            if seen_manifests.insert(m.manifest_path.clone()) {
                out.insert(&m.manifest_path);
                manifests.push(m.clone());
            }
        }
    }
    let io = table.file_io().clone();
    let files: Vec<Vec<String>> = futures::stream::iter(manifests)
        .map(|m| {
            let io = io.clone();
            async move {
                let manifest = super::manifests::load(&io, &m).await?;
                Ok::<_, iceberg::Error>(
                    manifest.entries().iter().map(|e| e.file_path().to_string()).collect(),
                )
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    for path in files.iter().flatten() {
        out.insert(path);
    }
    Ok(out)
}
