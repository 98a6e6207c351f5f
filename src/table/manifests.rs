//! Reading manifests, and the one walk over them every reader shares (inventory, reachability and
//! through it the census, verify): [`Walk`] lists the manifests of one or more snapshots and reads each
//! unique one once, in the order the manifest lists name them.
//!
//! Hazard: a walk that decides what to delete or commit must not go on past a manifest list or manifest
//! it cannot read; [`OnUnreadable::Fail`] ends it there. Only a reporting walk (`verify`) goes on.
//!
//! Decoding a manifest is CPU work (most of it fixed per file: parsing the Avro schema in its header),
//! and a retention pass reads each manifest of a table up to three times (the inventory it plans from,
//! the reachable sets before and after snapshot expiry). So:
//! - a walk reads manifests in chunks of about [`DECODE_CHUNK_BYTES`], [`CHUNKS_IN_FLIGHT`] chunks at a
//!   time, and decodes each chunk on a runtime task of its own, so a big table's decoding uses every
//!   core; within a chunk, manifests with the same header metadata are parsed as one
//!   (`manifest_decode`), which pays the header once per chunk instead of once per file. Chunks are
//!   bounded by listed bytes first: SignalDB's one-entry manifests (~5 KB) fill a chunk by the
//!   hundreds, so the header is paid a few times per table, not once per 32 manifests (paired runs:
//!   retention 16 % and a 1,000-file compaction 3–5 % faster, docs/BENCHMARKS.md), and a writer's
//!   8 MiB manifests close a chunk each, where 32 of them were held before. The lengths are the
//!   manifest list's, which no read checks, so a chunk also ends at [`DECODE_CHUNK_MANIFESTS`]: a
//!   list that understates its manifests cannot make one chunk of a whole table. A decoding task on
//!   the blocking pool instead was measured: the same time, 60 % more peak RSS, its allocations
//!   spread over more threads;
//! - a decoded manifest is kept until the end of the table's work (`forget`, called by the table pass),
//!   keyed by everything its entries inherit from the manifest list entry (path, length, snapshot id,
//!   sequence numbers, first row id, key metadata). Iceberg never rewrites a manifest in place; the key's length also catches a
//!   file replaced under the same name by one of another size. At most [`MAX_CACHED_ENTRIES`] entries are
//!   kept; past that, manifests are decoded again when asked for.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{Manifest, ManifestFile, SnapshotRef};
use iceberg::table::Table;

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
    let mut loaded = load_all(io, vec![m.clone()], READ_CONCURRENCY).await;
    loaded.pop().expect("one result per manifest")
}

/// The manifests `files` name, each as [`load`] returns it, in order: kept ones from the cache, the
/// rest read `reads` at a time and decoded together on one runtime task
/// ([`super::manifest_decode`]: manifests with the same header are parsed as one).
async fn load_all(
    io: &FileIO,
    files: Vec<ManifestFile>,
    reads: usize,
) -> Vec<iceberg::Result<Arc<Manifest>>> {
    let mut loaded: Vec<Option<iceberg::Result<Arc<Manifest>>>> = {
        let cache = cache();
        files.iter().map(|m| cache.manifests.get(&Key::of(m)).map(|hit| Ok(Arc::clone(hit)))).collect()
    };
    let missing: Vec<usize> = (0..files.len()).filter(|&i| loaded[i].is_none()).collect();
    // Encrypted manifests are left to the library, which decrypts them as it reads.
    let read: Vec<(usize, iceberg::Result<Read>)> = futures::stream::iter(missing)
        .map(|i| {
            let m = &files[i];
            async move {
                let read = match &m.key_metadata {
                    Some(_) => decrypted(io, m).await.map(|manifest| Read::Decoded(keep(m, manifest))),
                    None => async { io.new_input(&m.manifest_path)?.read().await }.await.map(Read::Bytes),
                };
                (i, read)
            }
        })
        .buffered(reads.max(1))
        .collect()
        .await;
    let mut plain = Vec::new();
    for (i, read) in read {
        match read {
            Err(error) => loaded[i] = Some(Err(error)),
            Ok(Read::Decoded(manifest)) => loaded[i] = Some(Ok(manifest)),
            Ok(Read::Bytes(bytes)) => plain.push((i, files[i].clone(), bytes)),
        }
    }
    if !plain.is_empty() {
        let indexes: Vec<usize> = plain.iter().map(|(i, ..)| *i).collect();
        let paths: Vec<String> = plain.iter().map(|(_, m, _)| m.manifest_path.clone()).collect();
        let decoded = tokio::spawn(async move {
            let files: Vec<(ManifestFile, &[u8])> =
                plain.iter().map(|(_, m, b)| (m.clone(), &b[..])).collect();
            super::manifest_decode::decode(&files)
        })
        .await;
        match decoded {
            Ok(decoded) => {
                for (i, manifest) in indexes.into_iter().zip(decoded) {
                    loaded[i] = Some(manifest.map(|manifest| keep(&files[i], manifest)));
                }
            }
            Err(e) => {
                for (i, path) in indexes.into_iter().zip(paths) {
                    let error = iceberg::Error::new(
                        iceberg::ErrorKind::Unexpected,
                        format!("decoding manifest {path}: {e}"),
                    );
                    loaded[i] = Some(Err(error));
                }
            }
        }
    }
    loaded.into_iter().map(|l| l.expect("every manifest loaded or failed")).collect()
}

/// An encrypted manifest, read, decrypted and decoded by the library on a task of its own (a panic
/// of the decoder is this manifest's error).
async fn decrypted(io: &FileIO, m: &ManifestFile) -> iceberg::Result<Manifest> {
    let (io, file) = (io.clone(), m.clone());
    tokio::spawn(async move { file.load_manifest(&io).await }).await.map_err(|e| {
        iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            format!("decoding manifest {}: {e}", m.manifest_path),
        )
    })?
}

/// A manifest read: its bytes, or (encrypted) already decoded by the library.
enum Read {
    Bytes(bytes::Bytes),
    Decoded(Arc<Manifest>),
}

/// Keeps `manifest` (if the cache has room) and returns it.
fn keep(m: &ManifestFile, manifest: Manifest) -> Arc<Manifest> {
    let manifest = Arc::new(manifest);
    let mut cache = cache();
    let size = manifest.entries().len();
    if cache.entries + size <= MAX_CACHED_ENTRIES {
        cache.entries += size;
        cache.manifests.insert(Key::of(m), Arc::clone(&manifest));
    }
    manifest
}

/// Manifests read at once by a walk; a table has tens to thousands of them.
pub const READ_CONCURRENCY: usize = 16;

/// Manifest bytes (as the manifest list gives their lengths) a walk reads and decodes together, on one
/// runtime task: the unit of its parallelism. A chunk holds at least one manifest, however big.
pub const DECODE_CHUNK_BYTES: u64 = 4 << 20;

/// Manifests to read a chunk holds at most, whatever their listed lengths say (4 KiB each on
/// average at [`DECODE_CHUNK_BYTES`]): the bound that holds when the lengths do not.
pub const DECODE_CHUNK_MANIFESTS: usize = 1024;

/// Chunks of a walk in flight at once (read, decoded or waiting to be visited), so that one chunk's
/// decoding overlaps the next one's reads and every core decodes.
const CHUNKS_IN_FLIGHT: usize = 3;

/// What a walk does with a manifest list or manifest it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnreadable {
    /// The walk fails with that error: what it would answer is partial, and callers that delete or
    /// commit from it must not act on it (inventory, reachability).
    Fail,
    /// The walk goes on and hands the error to the visitor as [`Visit::Unreadable`] (verify).
    Report,
}

/// What a walk hands its visitor, in the order the snapshots and their manifest lists name them.
pub enum Visit<'a> {
    /// A snapshot's manifest list (also one skipped as known).
    List(&'a str),
    /// A manifest the walk's `known` test skipped: listed, not read.
    Known(&'a ManifestFile),
    /// A unique manifest, read.
    Manifest(&'a ManifestFile, &'a Manifest),
    /// A manifest list or manifest that could not be read ([`OnUnreadable::Report`] only).
    Unreadable { path: &'a str, error: iceberg::Error },
}

/// A walk over the manifests of some snapshots of one table: each unique manifest read once.
pub struct Walk<'a> {
    table: &'a Table,
    snapshots: Vec<SnapshotRef>,
    on_unreadable: OnUnreadable,
    known: Box<dyn Fn(&str) -> bool + Send + Sync + 'a>,
    chunk_bytes: u64,
}

/// One step of a walk once the manifest lists are read, in listing order.
enum Step {
    /// A unique manifest, to read.
    Read(ManifestFile),
    Known(ManifestFile),
    Unreadable {
        path: String,
        error: iceberg::Error,
    },
}

/// A step done: what the visitor is handed.
enum Done {
    Read(ManifestFile, Arc<Manifest>),
    Known(ManifestFile),
    Unreadable { path: String, error: iceberg::Error },
}

impl<'a> Walk<'a> {
    /// Every snapshot of `table` (whatever ref reaches it).
    pub fn all_snapshots(table: &'a Table, on_unreadable: OnUnreadable) -> Walk<'a> {
        Walk::new(table, table.metadata().snapshots().cloned().collect(), on_unreadable)
    }

    fn new(table: &'a Table, snapshots: Vec<SnapshotRef>, on_unreadable: OnUnreadable) -> Walk<'a> {
        Walk { table, snapshots, on_unreadable, known: Box::new(|_| false), chunk_bytes: DECODE_CHUNK_BYTES }
    }

    /// One snapshot of `table`.
    pub fn snapshot(table: &'a Table, snapshot: SnapshotRef, on_unreadable: OnUnreadable) -> Walk<'a> {
        Walk::new(table, vec![snapshot], on_unreadable)
    }

    /// Manifest lists and manifests whose path `known` holds for are not read (they are immutable:
    /// whoever knew them knows what they reference); they are visited as [`Visit::List`] and
    /// [`Visit::Known`].
    pub fn skip_known(mut self, known: impl Fn(&str) -> bool + Send + Sync + 'a) -> Walk<'a> {
        self.known = Box::new(known);
        self
    }

    /// Decodes manifests in chunks of about `bytes` instead of [`DECODE_CHUNK_BYTES`] (at least one
    /// manifest each): what a walk visits is the same, only how much it holds at once and how often
    /// it parses a header change.
    pub fn chunk_bytes(mut self, bytes: u64) -> Walk<'a> {
        self.chunk_bytes = bytes;
        self
    }

    /// Reads every manifest list, then every unique manifest (in chunks of about
    /// [`DECODE_CHUNK_BYTES`] or [`Walk::chunk_bytes`], about [`READ_CONCURRENCY`] reads at a time
    /// over the chunks in flight, at most [`CHUNKS_IN_FLIGHT`]) and hands each to
    /// `visit` in listing order. With [`OnUnreadable::Fail`], the first unreadable manifest list or
    /// manifest ends the walk with its error.
    pub async fn run(self, mut visit: impl FnMut(Visit<'_>)) -> iceberg::Result<()> {
        let mut steps = Vec::new();
        let mut seen = HashSet::new();
        for snapshot in &self.snapshots {
            let list_path = snapshot.manifest_list();
            visit(Visit::List(list_path));
            if (self.known)(list_path) {
                continue;
            }
            let list = match self.table.manifest_list_reader(snapshot).load().await {
                Ok(list) => list,
                Err(error) if self.on_unreadable == OnUnreadable::Report => {
                    steps.push(Step::Unreadable { path: list_path.to_string(), error });
                    continue;
                }
                Err(error) => return Err(error),
            };
            for m in list.entries() {
                if (self.known)(&m.manifest_path) {
                    steps.push(Step::Known(m.clone()));
                } else if seen.insert(m.manifest_path.clone()) {
                    steps.push(Step::Read(m.clone()));
                }
            }
        }
        let io = self.table.file_io();
        let on_unreadable = self.on_unreadable;
        let chunks = chunks(steps, self.chunk_bytes);
        let reads = READ_CONCURRENCY.div_ceil(chunks.len().clamp(1, CHUNKS_IN_FLIGHT));
        futures::stream::iter(chunks)
            .map(|chunk| async move {
                let to_read =
                    chunk.iter().filter_map(|s| if let Step::Read(m) = s { Some(m.clone()) } else { None });
                let mut loaded = load_all(io, to_read.collect(), reads).await.into_iter();
                let done: Vec<iceberg::Result<Done>> = chunk
                    .into_iter()
                    .map(|step| match step {
                        Step::Known(m) => Ok(Done::Known(m)),
                        Step::Unreadable { path, error } => Ok(Done::Unreadable { path, error }),
                        Step::Read(m) => match loaded.next().expect("one result per manifest read") {
                            Ok(manifest) => Ok(Done::Read(m, manifest)),
                            Err(error) if on_unreadable == OnUnreadable::Report => {
                                Ok(Done::Unreadable { path: m.manifest_path, error })
                            }
                            Err(error) => Err(error),
                        },
                    })
                    .collect();
                futures::stream::iter(done)
            })
            .buffered(CHUNKS_IN_FLIGHT)
            .flatten()
            .try_for_each(|done| {
                match done {
                    Done::Read(m, manifest) => visit(Visit::Manifest(&m, &manifest)),
                    Done::Known(m) => visit(Visit::Known(&m)),
                    Done::Unreadable { path, error } => visit(Visit::Unreadable { path: &path, error }),
                }
                futures::future::ready(Ok(()))
            })
            .await
    }
}

/// `steps` cut, in order, into chunks whose manifests to read add up to about `bytes` of listed
/// length: a chunk ends with the manifest that reaches `bytes` (so it holds at least one), or with its
/// [`DECODE_CHUNK_MANIFESTS`]th manifest to read. Steps without a read (known, unreadable) weigh
/// nothing. Listed lengths are not checked against the files (a read fetches the whole object); a
/// negative one weighs nothing.
fn chunks(steps: Vec<Step>, bytes: u64) -> Vec<Vec<Step>> {
    let mut chunks = Vec::new();
    let (mut chunk, mut weight, mut reads) = (Vec::new(), 0u64, 0usize);
    for step in steps {
        if let Step::Read(m) = &step {
            weight = weight.saturating_add(u64::try_from(m.manifest_length).unwrap_or(0));
            reads += 1;
        }
        chunk.push(step);
        if weight >= bytes || reads >= DECODE_CHUNK_MANIFESTS {
            chunks.push(std::mem::take(&mut chunk));
            (weight, reads) = (0, 0);
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
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

    fn manifest(path: &str, length: i64) -> ManifestFile {
        ManifestFile {
            manifest_path: path.into(),
            manifest_length: length,
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
        }
    }

    /// Each chunk as (path, read or not) of its steps.
    fn shape(chunks: &[Vec<Step>]) -> Vec<Vec<(String, bool)>> {
        chunks
            .iter()
            .map(|c| {
                c.iter()
                    .map(|s| match s {
                        Step::Read(m) => (m.manifest_path.clone(), true),
                        Step::Known(m) => (m.manifest_path.clone(), false),
                        Step::Unreadable { path, .. } => (path.clone(), false),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn chunks_fill_up_to_their_bytes_and_a_big_manifest_goes_alone() {
        let read = |p: &str, len| Step::Read(manifest(p, len));
        let steps = vec![
            read("a", 3),
            read("b", 3),
            Step::Known(manifest("k", 1_000)),
            read("c", 4),
            read("big", 50),
            read("e", 4),
            Step::Unreadable {
                path: "u".into(),
                error: iceberg::Error::new(iceberg::ErrorKind::Unexpected, "x"),
            },
        ];
        let got = shape(&chunks(steps, 10));
        let want = |v: &[(&str, bool)]| v.iter().map(|(p, r)| (p.to_string(), *r)).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                // 3 + 3 + 4 reaches the bound of 10 exactly: the chunk ends there.
                want(&[("a", true), ("b", true), ("k", false), ("c", true)]),
                want(&[("big", true)]),
                want(&[("e", true), ("u", false)]),
            ]
        );
        assert!(chunks(Vec::new(), 10).is_empty());
        // Lengths that understate the files (all 0 here) still end a chunk at its count.
        let understated: Vec<Step> = (0..2_500).map(|i| read(&format!("z{i}"), 0)).collect();
        let sizes: Vec<usize> = chunks(understated, 10).iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [DECODE_CHUNK_MANIFESTS, DECODE_CHUNK_MANIFESTS, 2_500 - 2 * DECODE_CHUNK_MANIFESTS]
        );
        // A negative length (a broken list) weighs nothing; the manifest is still read, in order.
        assert_eq!(shape(&chunks(vec![read("neg", -5), read("f", 1)], 10)).concat().len(), 2);
    }

    proptest::proptest! {
        /// Every step lands in exactly one chunk, in order; a chunk is cut exactly when its reads
        /// reach the bound, so only the last chunk may weigh less and none goes on past it.
        #[test]
        fn chunks_keep_every_step_in_order_and_cut_at_the_bound(
            lengths in proptest::collection::vec((0i64..5_000, proptest::bool::ANY), 0..2_500),
            bound in 1u64..2_000_000,
        ) {
            let steps: Vec<Step> = lengths
                .iter()
                .enumerate()
                .map(|(i, &(len, read))| {
                    let m = manifest(&format!("m{i}"), len);
                    if read { Step::Read(m) } else { Step::Known(m) }
                })
                .collect();
            let cut = chunks(steps, bound);
            let flat: Vec<String> = shape(&cut).concat().into_iter().map(|(p, _)| p).collect();
            let expected: Vec<String> = (0..lengths.len()).map(|i| format!("m{i}")).collect();
            proptest::prop_assert_eq!(flat, expected);
            let weight = |c: &[Step]| -> u64 {
                c.iter().map(|s| match s { Step::Read(m) => m.manifest_length as u64, _ => 0 }).sum()
            };
            for (i, c) in cut.iter().enumerate() {
                proptest::prop_assert!(!c.is_empty());
                let last = i + 1 == cut.len();
                let reads = |c: &[Step]| c.iter().filter(|s| matches!(s, Step::Read(_))).count();
                proptest::prop_assert!(
                    last || weight(c) >= bound || reads(c) == DECODE_CHUNK_MANIFESTS,
                    "chunk {} ends before the bound", i
                );
                proptest::prop_assert!(reads(c) <= DECODE_CHUNK_MANIFESTS, "chunk {} reads too many", i);
                // Without its last step the chunk had reached neither bound yet.
                let before = &c[..c.len() - 1];
                proptest::prop_assert!(
                    weight(before) < bound && reads(before) < DECODE_CHUNK_MANIFESTS,
                    "chunk {} goes on past a bound", i
                );
            }
        }
    }

    #[test]
    fn the_key_covers_everything_entries_inherit_from_the_list() {
        let mut m = manifest("s3://b/t/metadata/m0.avro", 100);
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
