//! Decoding several manifests of a table at once, with iceberg's own decoder.
//!
//! Most of the cost of `Manifest::parse_avro` is fixed per file, not per entry: it parses the Avro
//! writer schema in the file's header twice, the table schema and partition spec in the header's
//! metadata, and builds the manifest's Avro schema (62 % of a retention pass over 11,000 one-entry
//! manifests, docs/BENCHMARKS.md). Manifests a writer wrote for one table under one schema and spec
//! have the same header metadata (iceberg-rust writes its entries in a random order, so compared as a
//! set); only their sync markers and data blocks differ. An Avro object container is a header
//! followed by self-contained blocks (object count, byte size, data compressed on its own, sync
//! marker), so such manifests' blocks, re-marked with one sync marker behind one of their headers,
//! form a single container whose entries are theirs, in order. [`decode`] parses that once
//! with `Manifest::parse_avro` and splits the entries back by each file's block counts; every field
//! of every entry is still decoded by iceberg, from the same bytes under the same header.
//!
//! Hazard: this module only cuts files at the container's framing. Anything it does not recognise (a
//! header or block it cannot frame, an empty block, which ends a reader's iteration, bytes after the
//! last block, a combined parse that fails, panics or yields another number of entries than the
//! blocks declare) makes that file, or that group, decode alone exactly as
//! `ManifestFile::load_manifest` does, so a broken manifest fails with the library's own error (or,
//! where the library panics, an error saying so) and its neighbours still decode.

use std::collections::HashMap;

use iceberg::spec::{Manifest, ManifestEntry, ManifestFile, ManifestStatus};

/// The Avro object container magic.
const MAGIC: &[u8; 4] = b"Obj\x01";
const SYNC_LEN: usize = 16;

/// A metadata entry: key and value.
type Item<'a> = (&'a [u8], &'a [u8]);

/// One manifest file cut at its framing.
struct Framed<'a> {
    /// Magic and file metadata (writer schema, codec, and iceberg's schema, spec and format version).
    header: &'a [u8],
    /// The metadata's entries, sorted by key (no key twice): what the header means, whatever order
    /// its writer put them in (iceberg-rust writes them from a hash map, so each file has its own).
    metadata: Vec<Item<'a>>,
    sync: &'a [u8],
    /// Each block from its object count to the end of its data (without its sync marker).
    blocks: Vec<&'a [u8]>,
    /// The objects (manifest entries) all blocks declare.
    entries: usize,
}

/// A zigzag varint `long` at `*pos`, as Avro encodes it; `None` past the end or over 64 bits.
fn read_long(bytes: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

/// A non-negative length at `*pos`, and that many bytes after it fit in `bytes`.
fn read_len(bytes: &[u8], pos: &mut usize) -> Option<usize> {
    let len = usize::try_from(read_long(bytes, pos)?).ok()?;
    (bytes.len() - *pos >= len).then_some(len)
}

/// Cuts an Avro object container at its framing; `None` for anything but a plain, complete one.
fn frame(bytes: &[u8]) -> Option<Framed<'_>> {
    if !bytes.starts_with(MAGIC) {
        return None;
    }
    let mut pos = MAGIC.len();
    // The metadata: a map of bytes, in blocks of entries ending with an empty block.
    let mut metadata = Vec::new();
    loop {
        let count = read_long(bytes, &mut pos)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            read_len(bytes, &mut pos)?; // the block's byte size, before its negated count
        }
        for _ in 0..count.unsigned_abs() {
            let mut item = || {
                let len = read_len(bytes, &mut pos)?;
                pos += len;
                Some(&bytes[pos - len..pos])
            };
            let key = item()?;
            metadata.push((key, item()?));
        }
    }
    metadata.sort_unstable();
    // A key written twice means whatever the reader's map keeps last: order matters, so decode alone.
    if metadata.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let header = &bytes[..pos];
    let sync = bytes.get(pos..pos + SYNC_LEN)?;
    pos += SYNC_LEN;
    let (mut blocks, mut entries) = (Vec::new(), 0usize);
    while pos < bytes.len() {
        let start = pos;
        let count = usize::try_from(read_long(bytes, &mut pos)?).ok().filter(|&c| c > 0)?;
        let size = read_len(bytes, &mut pos)?;
        pos += size;
        blocks.push(&bytes[start..pos]);
        entries = entries.checked_add(count)?;
        (bytes.get(pos..pos + SYNC_LEN)? == sync).then_some(())?;
        pos += SYNC_LEN;
    }
    Some(Framed { header, metadata, sync, blocks, entries })
}

/// Sets what an entry inherits from the manifest list entry that names its manifest, as
/// `ManifestFile::load_manifest` does (iceberg 0.10.1 `ManifestEntry::inherit_data`, which is
/// crate-private).
fn inherit(entry: &mut ManifestEntry, file: &ManifestFile) {
    /// iceberg's `INITIAL_SEQUENCE_NUMBER` (crate-private): the sequence number of v1 tables.
    const INITIAL_SEQUENCE_NUMBER: i64 = 0;
    if entry.snapshot_id.is_none() {
        entry.snapshot_id = Some(file.added_snapshot_id);
    }
    let inherits = entry.status == ManifestStatus::Added || file.sequence_number == INITIAL_SEQUENCE_NUMBER;
    if entry.sequence_number.is_none() && inherits {
        entry.sequence_number = Some(file.sequence_number);
    }
    if entry.file_sequence_number.is_none() && inherits {
        entry.file_sequence_number = Some(file.sequence_number);
    }
}

/// The manifest `file` names, from its (unencrypted) bytes: `ManifestFile::load_manifest` without
/// the read. A panic of the decoder (apache-avro 0.21 panics on some malformed blocks) is this
/// manifest's error.
fn decode_one(file: &ManifestFile, bytes: &[u8]) -> iceberg::Result<Manifest> {
    let parsed = std::panic::catch_unwind(|| Manifest::parse_avro(bytes)).unwrap_or_else(|_| {
        let message = format!("decoding manifest {} panicked", file.manifest_path);
        Err(iceberg::Error::new(iceberg::ErrorKind::DataInvalid, message))
    });
    let (entries, metadata) = parsed?.into_parts();
    Ok(with_inherited(file, metadata, entries))
}

fn with_inherited(
    file: &ManifestFile,
    metadata: iceberg::spec::ManifestMetadata,
    entries: Vec<iceberg::spec::ManifestEntryRef>,
) -> Manifest {
    let entries = entries
        .into_iter()
        .map(|entry| {
            let mut entry = std::sync::Arc::unwrap_or_clone(entry);
            inherit(&mut entry, file);
            entry
        })
        .collect();
    Manifest::new(metadata, entries)
}

/// Decodes the framed manifests `members` (indexes into `files`, at least two, one metadata) as one
/// container; `None` when that parse fails or its entries do not add up, and they must decode alone.
fn decode_group(
    files: &[(ManifestFile, &[u8])],
    framed: &[Option<Framed<'_>>],
    members: &[usize],
) -> Option<Vec<Manifest>> {
    let first = framed[members[0]].as_ref()?;
    let mut joined = Vec::with_capacity(members.iter().map(|&i| files[i].1.len()).sum());
    joined.extend_from_slice(first.header);
    joined.extend_from_slice(first.sync);
    for &i in members {
        for block in &framed[i].as_ref()?.blocks {
            joined.extend_from_slice(block);
            joined.extend_from_slice(first.sync);
        }
    }
    // A panic of the decoder on one member's block is handled as a failed parse: each decodes alone.
    let parsed = std::panic::catch_unwind(|| Manifest::parse_avro(&joined)).ok()?;
    let (entries, metadata) = parsed.ok()?.into_parts();
    let expected: usize = members.iter().map(|&i| framed[i].as_ref().map_or(0, |f| f.entries)).sum();
    if entries.len() != expected {
        return None;
    }
    let mut entries = entries.into_iter();
    let manifests = members
        .iter()
        .map(|&i| {
            let own = entries.by_ref().take(framed[i].as_ref().map_or(0, |f| f.entries)).collect();
            with_inherited(&files[i].0, metadata.clone(), own)
        })
        .collect();
    Some(manifests)
}

/// Decodes each of `files` (a manifest list entry and the manifest's unencrypted bytes) to what
/// `ManifestFile::load_manifest` returns for it; manifests with the same header metadata are parsed
/// together.
pub fn decode(files: &[(ManifestFile, &[u8])]) -> Vec<iceberg::Result<Manifest>> {
    let framed: Vec<Option<Framed<'_>>> = files.iter().map(|(_, bytes)| frame(bytes)).collect();
    let mut groups: HashMap<&[Item<'_>], Vec<usize>> = HashMap::new();
    for (i, f) in framed.iter().enumerate() {
        if let Some(f) = f {
            groups.entry(&f.metadata).or_default().push(i);
        }
    }
    let mut decoded: Vec<Option<iceberg::Result<Manifest>>> = files.iter().map(|_| None).collect();
    for members in groups.values().filter(|m| m.len() > 1) {
        if let Some(manifests) = decode_group(files, &framed, members) {
            for (&i, manifest) in members.iter().zip(manifests) {
                decoded[i] = Some(Ok(manifest));
            }
        }
    }
    decoded
        .into_iter()
        .zip(files)
        .map(|(done, (file, bytes))| done.unwrap_or_else(|| decode_one(file, bytes)))
        .collect()
}

#[cfg(test)]
#[path = "manifest_decode_tests.rs"]
mod tests;
