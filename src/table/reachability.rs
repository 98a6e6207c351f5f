//! Every file a table's metadata references: the current metadata file and every metadata-log entry,
//! statistics and partition-statistics files, and for every snapshot (whatever ref reaches it) its
//! manifest list, every manifest (data and delete) and every entry's file whatever its status.
//!
//! Hazard: deleting on partial knowledge deletes live files. If any manifest list or manifest cannot be
//! read, the whole computation fails; callers then delete nothing for that table.

use iceberg::table::Table;

use super::manifests::{OnUnreadable, Visit, Walk};

pub use crate::storage::reachable::Reachable;

/// Computes the reachable set of `table` as loaded.
pub async fn reachable(table: &Table) -> iceberg::Result<Reachable> {
    reachable_since(table, |_| false).await
}

/// Every `statistics-path` of the metadata file as written. iceberg-rust keeps statistics (and
/// partition statistics) in a map by snapshot id, so of two files a writer lists for one snapshot
/// (Java keeps the whole list) the parsed metadata shows one; the other is referenced all the same.
/// Read only when the table has statistics at all (a list with entries parses to a map with some);
/// gzip metadata is decompressed.
async fn raw_statistics_paths(table: &Table) -> iceberg::Result<Vec<String>> {
    let unreadable = |why: String| iceberg::Error::new(iceberg::ErrorKind::DataInvalid, why);
    let Some(json) = super::metadata_as_written(table).await? else { return Ok(Vec::new()) };
    let location = table.metadata_location().unwrap_or_default();
    let mut paths = Vec::new();
    for key in ["statistics", "partition-statistics"] {
        for entry in json.get(key).and_then(|v| v.as_array()).into_iter().flatten() {
            match entry.get("statistics-path").and_then(|p| p.as_str()) {
                Some(path) => paths.push(path.to_string()),
                None => return Err(unreadable(format!("metadata {location}: a {key} entry without a path"))),
            }
        }
    }
    Ok(paths)
}

/// Like [`reachable`], but manifest lists and manifests for which `known` holds are not read again
/// (they are immutable: whoever knew them knows what they reference). Used to catch up on a table that
/// committed since it was last read.
pub async fn reachable_since(
    table: &Table,
    known: impl Fn(&str) -> bool + Send + Sync,
) -> iceberg::Result<Reachable> {
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
    if md.statistics_iter().next().is_some() || md.partition_statistics_iter().next().is_some() {
        for path in raw_statistics_paths(table).await? {
            out.insert(&path);
        }
    }
    Walk::all_snapshots(table, OnUnreadable::Fail)
        .skip_known(known)
        .run(|visit| match visit {
            Visit::List(path) => out.insert(path),
            Visit::Known(m) => out.insert(&m.manifest_path),
            Visit::Manifest(m, manifest) => {
                out.insert(&m.manifest_path);
                for entry in manifest.entries() {
                    out.insert(entry.file_path());
                }
            }
            // Never handed to a failing walk: it ends with the error instead.
            Visit::Unreadable { .. } => {}
        })
        .await?;
    Ok(out)
}
