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

use crate::storage::path::{normalize, percent_decoded};

/// Manifests read concurrently.
const CONCURRENCY: usize = 16;

/// Normalized locations of every file the table's metadata references.
///
/// A reference with percent-escapes also makes its decoded reading live (engines disagree on which
/// object such a location names), and a reference that does not normalize at all is kept verbatim and
/// listed in [`Reachable::uncanonical`]: a cleaner must then delete nothing for the table.
#[derive(Debug, Clone, Default)]
pub struct Reachable {
    paths: HashSet<String>,
    /// Second readings of percent-escaped references: live, but not the table's own spelling.
    alternates: HashSet<String>,
    uncanonical: Vec<String>,
}

impl Reachable {
    /// A set from known locations (tests, and callers that add files they know are live).
    pub fn from_locations<'a>(locations: impl IntoIterator<Item = &'a str>) -> Reachable {
        let mut out = Reachable::default();
        for l in locations {
            out.insert(l);
        }
        out
    }

    pub fn contains(&self, location: &str) -> bool {
        normalize(location).is_some_and(|n| self.paths.contains(&n) || self.alternates.contains(&n))
    }

    /// References that could not be put in canonical form (kept verbatim).
    pub fn uncanonical(&self) -> &[String] {
        &self.uncanonical
    }

    /// Every canonical reference (not the alternate readings).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    /// Adds every reference of `other` (a later reading of the same table).
    pub fn extend(&mut self, other: &Reachable) {
        self.paths.extend(other.paths.iter().cloned());
        self.alternates.extend(other.alternates.iter().cloned());
        self.uncanonical.extend(other.uncanonical.iter().cloned());
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Locations in `self` but not in `other` (sorted).
    pub fn minus(&self, other: &Reachable) -> Vec<String> {
        let mut out: Vec<String> = self.paths.difference(&other.paths).cloned().collect();
        out.sort();
        out
    }

    fn insert(&mut self, location: &str) {
        match normalize(location) {
            Some(n) => {
                if let Some(decoded) = percent_decoded(&n) {
                    self.alternates.insert(decoded);
                }
                self.paths.insert(n);
            }
            None => {
                // Cannot be compared; keep it verbatim so it is never mistaken for unreferenced.
                self.uncanonical.push(location.to_string());
                self.paths.insert(location.to_string());
            }
        }
    }
}

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
