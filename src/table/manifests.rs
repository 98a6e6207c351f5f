//! Reading manifests, for every walker (inventory, reachability, census, verify).
//!
//! Decoding a manifest is CPU work (most of it parsing the Avro schema in its header), and a retention
//! pass reads each manifest of a table up to three times (the inventory it plans from, the reachable
//! sets before and after snapshot expiry). So:
//! - each manifest is read and decoded on its own runtime task, so a walker's concurrent reads use every
//!   core instead of the one its future runs on;
//! - a decoded manifest is kept until the end of the table's work (`forget`, called by the table pass),
//!   keyed by everything its entries inherit from the manifest list entry (path, length, snapshot id,
//!   sequence numbers, first row id, key metadata). Iceberg never rewrites a manifest in place; the key's length also catches a
//!   file replaced under the same name by one of another size. At most [`MAX_CACHED_ENTRIES`] entries are
//!   kept; past that, manifests are decoded again when asked for.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use iceberg::io::FileIO;
use iceberg::spec::{Manifest, ManifestFile};

/// Manifest entries kept at most (about 1 KiB each with their bounds): bounds the cache to ~100 MiB.
pub const MAX_CACHED_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: String,
    length: i64,
    added_snapshot_id: i64,
    sequence_number: i64,
    min_sequence_number: i64,
    first_row_id: Option<u64>,
    key_metadata: Option<Vec<u8>>,
}

impl Key {
    fn of(m: &ManifestFile) -> Key {
        Key {
            path: m.manifest_path.clone(),
            length: m.manifest_length,
            added_snapshot_id: m.added_snapshot_id,
            sequence_number: m.sequence_number,
            min_sequence_number: m.min_sequence_number,
            first_row_id: m.first_row_id,
            key_metadata: m.key_metadata.clone(),
        }
    }
}

#[derive(Default)]
struct Cache {
    manifests: HashMap<Key, Arc<Manifest>>,
    entries: usize,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Default::default);

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The manifest `m` names, with the values its entries inherit from `m` filled in (as
/// `ManifestFile::load_manifest` does), decoded on a task of its own.
pub async fn load(io: &FileIO, m: &ManifestFile) -> iceberg::Result<Arc<Manifest>> {
    let key = Key::of(m);
    if let Some(hit) = cache().manifests.get(&key) {
        return Ok(Arc::clone(hit));
    }

    let (io, file) = (io.clone(), m.clone());
    let manifest = tokio::spawn(async move { file.load_manifest(&io).await }).await.map_err(|e| {
        iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            format!("decoding manifest {}: {e}", m.manifest_path),
        )
    })??;
    let manifest = Arc::new(manifest);
    let mut cache = cache();
    let size = manifest.entries().len();
    if cache.entries + size <= MAX_CACHED_ENTRIES {
        cache.entries += size;
        cache.manifests.insert(key, Arc::clone(&manifest));
    }
    Ok(manifest)
}

/// Drops every kept manifest (the end of a table's work): memory returns, and the next table's reads
/// start fresh.
pub fn forget() {
    let mut cache = cache();
    cache.manifests = HashMap::new();
    cache.entries = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_covers_everything_entries_inherit_from_the_list() {
        let mut m = ManifestFile {
            manifest_path: "s3://b/t/metadata/m0.avro".into(),
            manifest_length: 100,
            partition_spec_id: 0,
            content: iceberg::spec::ManifestContentType::Data,
            sequence_number: 3,
            min_sequence_number: 2,
            added_snapshot_id: 9,
            added_files_count: None,
            existing_files_count: None,
            deleted_files_count: None,
            added_rows_count: None,
            existing_rows_count: None,
            deleted_rows_count: None,
            partitions: None,
            key_metadata: None,
            first_row_id: None,
        };
        let base = Key::of(&m);
        for change in [
            |m: &mut ManifestFile| m.manifest_length = 101,
            |m: &mut ManifestFile| m.sequence_number = 4,
            |m: &mut ManifestFile| m.min_sequence_number = 1,
            |m: &mut ManifestFile| m.added_snapshot_id = 10,
            |m: &mut ManifestFile| m.manifest_path.push('x'),
            |m: &mut ManifestFile| m.first_row_id = Some(7),
            |m: &mut ManifestFile| m.key_metadata = Some(vec![1]),
        ] {
            let mut other = m.clone();
            change(&mut other);
            assert_ne!(Key::of(&other), base);
        }
        m.added_files_count = Some(1);
        assert_eq!(Key::of(&m), base, "counts are not inherited by entries");
    }
}
