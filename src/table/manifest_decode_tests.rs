//! Differential and hostile property tests of `decode`: over random sets of manifests written by
//! iceberg's own `ManifestWriter` (format versions 1 and 2, data and delete manifests, three partition
//! specs, every optional field of an entry present or not, every inheritance case), each manifest
//! decodes to exactly what `ManifestFile::load_manifest` returns for it; and with one file of the set
//! truncated, flipped or extended anywhere, every file still fares exactly as under the library alone
//! (the same manifest, or an error where it errs).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use iceberg::io::{FileIO, FileIOBuilder, MemoryStorageFactory};
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, Manifest, ManifestFile,
    ManifestWriterBuilder, NestedField, PartitionSpec, PrimitiveType, Schema, SchemaRef, Struct, Transform,
    Type,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::{decode, decode_group, decode_one, frame};

fn schema() -> SchemaRef {
    let fields = [
        NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)),
        NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)),
        NestedField::optional(3, "ts", Type::Primitive(PrimitiveType::Timestamptz)),
        NestedField::optional(4, "x", Type::Primitive(PrimitiveType::Double)),
    ];
    Arc::new(Schema::builder().with_fields(fields.map(Arc::new)).build().unwrap())
}

/// Spec 0: unpartitioned; 1: identity(name); 2: hour(ts).
fn spec(schema: &SchemaRef, id: i32) -> PartitionSpec {
    let builder = PartitionSpec::builder(schema.clone()).with_spec_id(id);
    match id {
        0 => builder,
        1 => builder.add_partition_field("name", "name", Transform::Identity).unwrap(),
        _ => builder.add_partition_field("ts", "ts_hour", Transform::Hour).unwrap(),
    }
    .build()
    .unwrap()
}

/// One manifest's shape: format version 1 or 2, data or deletes, which spec.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Kind {
    v1: bool,
    deletes: bool,
    spec: i32,
}

/// An entry: how it is added, its sequence numbers, and its file's fields.
#[derive(Debug, Clone)]
struct EntrySpec {
    how: u8,
    sequence_number: i64,
    file_sequence_number: Option<i64>,
    snapshot_id: i64,
    path: String,
    records: u64,
    size: u64,
    counts: [HashMap<i32, u64>; 4],
    bounds: Vec<(i32, i64)>,
    key_metadata: Option<Vec<u8>>,
    split_offsets: Option<Vec<i64>>,
    sort_order_id: Option<i32>,
    partition: Option<i64>,
    equality: bool,
}

fn entry_spec() -> impl Strategy<Value = EntrySpec> {
    let counts = || proptest::collection::hash_map(1..=4i32, 0..10_000u64, 0..4);
    (
        (0..3u8, -2..6i64, proptest::option::of(0..6i64), 1..1_000i64, "[a-z0-9é/ _.-]{1,24}"),
        (0..100_000u64, 1..10_000_000u64, [counts(), counts(), counts(), counts()]),
        proptest::collection::vec((1..=4i32, any::<i64>()), 0..4),
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            proptest::option::of(proptest::collection::vec(0..1_000_000i64, 0..3)),
            proptest::option::of(0..3i32),
            proptest::option::of(0..500_000i64),
            any::<bool>(),
        ),
    )
        .prop_map(|((how, seq, fseq, snap, path), (records, size, counts), bounds, rest)| {
            let (key_metadata, split_offsets, sort_order_id, partition, equality) = rest;
            EntrySpec {
                how,
                sequence_number: seq,
                file_sequence_number: fseq,
                snapshot_id: snap,
                path: format!("file:///w/{path}.parquet"),
                records,
                size,
                counts,
                bounds,
                key_metadata,
                split_offsets,
                sort_order_id,
                partition,
                equality,
            }
        })
}

fn datum(field: i32, v: i64) -> Datum {
    match field {
        1 => Datum::long(v),
        2 => Datum::string(format!("s{v}")),
        3 => Datum::timestamptz_micros(v),
        _ => Datum::double((v % 1_000_000) as f64 / 7.0),
    }
}

fn data_file(kind: Kind, e: &EntrySpec) -> DataFile {
    let partition = match kind.spec {
        0 => Struct::empty(),
        1 => Struct::from_iter([e.partition.map(|p| Literal::string(format!("n{p}")))]),
        _ => Struct::from_iter([e.partition.map(|p| Literal::int((p % 400_000) as i32))]),
    };
    let content = match (kind.deletes, e.equality) {
        (false, _) => DataContentType::Data,
        (true, false) => DataContentType::PositionDeletes,
        (true, true) => DataContentType::EqualityDeletes,
    };
    let mut lower = HashMap::new();
    let mut upper = HashMap::new();
    for &(field, v) in &e.bounds {
        lower.insert(field, datum(field, v.min(v.wrapping_add(1))));
        upper.insert(field, datum(field, v.max(v.wrapping_add(1))));
    }
    let mut builder = DataFileBuilder::default();
    builder
        .content(content)
        .file_path(e.path.clone())
        .file_format(DataFileFormat::Parquet)
        .partition(partition)
        .partition_spec_id(kind.spec)
        .record_count(e.records)
        .file_size_in_bytes(e.size)
        .column_sizes(e.counts[0].clone())
        .value_counts(e.counts[1].clone())
        .null_value_counts(e.counts[2].clone())
        .nan_value_counts(e.counts[3].clone())
        .lower_bounds(lower)
        .upper_bounds(upper)
        .key_metadata(e.key_metadata.clone())
        .split_offsets(e.split_offsets.clone());
    if let Some(id) = e.sort_order_id {
        builder.sort_order_id(id);
    }
    if content == DataContentType::EqualityDeletes {
        builder.equality_ids(Some(vec![1]));
    }
    builder.build().unwrap()
}

/// Writes one manifest of `kind` with `entries` through iceberg's writer; returns its list entry with
/// `sequence_number` and `added_snapshot_id` set as a manifest list would (0 is the initial one).
async fn write(io: &FileIO, path: &str, kind: Kind, entries: &[EntrySpec], list: (i64, i64)) -> ManifestFile {
    let schema = schema();
    let builder = ManifestWriterBuilder::new(
        io.new_output(path).unwrap(),
        Some(list.1),
        schema.clone(),
        spec(&schema, kind.spec),
    );
    let mut writer = match (kind.v1, kind.deletes) {
        (true, _) => builder.build_v1(),
        (false, false) => builder.build_v2_data(),
        (false, true) => builder.build_v2_deletes(),
    };
    for e in entries {
        let file = data_file(kind, e);
        // The writer wants both sequence numbers of existing and deleted entries (nulls for them are
        // `null_sequences`' part).
        let seq = e.sequence_number.max(0);
        let fseq = Some(e.file_sequence_number.unwrap_or(seq));
        match e.how {
            0 => writer.add_file(file, e.sequence_number).unwrap(),
            1 => writer.add_existing_file(file, e.snapshot_id, seq, fseq).unwrap(),
            _ => writer.add_delete_file(file, seq, fseq).unwrap(),
        }
    }
    let mut file = writer.write_manifest_file().await.unwrap();
    file.sequence_number = list.0;
    file.added_snapshot_id = list.1;
    file
}

/// The manifest re-encoded (apache-avro, same schema and metadata) with the sequence numbers of every
/// existing or deleted entry set to null, as a writer that leaves them to inheritance does; iceberg's
/// own writer always writes them.
fn null_sequences(bytes: &[u8]) -> Vec<u8> {
    use apache_avro::types::Value;
    let reader = apache_avro::Reader::new(bytes).unwrap();
    let schema = reader.writer_schema().clone();
    let metadata = reader.user_metadata().clone();
    let mut writer = apache_avro::Writer::new(&schema, Vec::new());
    for (k, v) in metadata {
        writer.add_user_metadata(k, v).unwrap();
    }
    for value in reader {
        let Value::Record(mut fields) = value.unwrap() else { panic!("an entry is a record") };
        let added = fields.iter().any(|(name, v)| name == "status" && *v == Value::Int(1));
        for (name, v) in &mut fields {
            if !added && (name == "sequence_number" || name == "file_sequence_number") {
                *v = Value::Union(0, Box::new(Value::Null));
            }
        }
        writer.append(Value::Record(fields)).unwrap();
    }
    writer.into_inner().unwrap()
}

fn kind() -> impl Strategy<Value = Kind> {
    // Few kinds, so most sets hold several manifests of one kind: the groups decoded together.
    prop_oneof![
        4 => Just(Kind { v1: false, deletes: false, spec: 2 }),
        2 => Just(Kind { v1: false, deletes: false, spec: 1 }),
        1 => Just(Kind { v1: false, deletes: false, spec: 0 }),
        1 => Just(Kind { v1: false, deletes: true, spec: 2 }),
        1 => Just(Kind { v1: true, deletes: false, spec: 2 }),
    ]
}

/// A manifest: its kind, entries, (sequence number, added snapshot id) in the list, and whether its
/// existing and deleted entries leave their sequence numbers to inheritance.
type ManifestSpec = (Kind, Vec<EntrySpec>, (i64, i64), bool);

fn manifests() -> impl Strategy<Value = Vec<ManifestSpec>> {
    let one = (kind(), proptest::collection::vec(entry_spec(), 0..4), (0..4i64, 1..1_000i64), any::<bool>());
    proptest::collection::vec(one, 1..9).prop_map(|ms| {
        ms.into_iter()
            .map(|(kind, mut entries, list, nulls)| {
                if kind.v1 {
                    // iceberg's v1 writer stores neither sequence numbers nor deletes of this shape.
                    entries.iter_mut().for_each(|e| e.how = e.how.min(1));
                }
                (kind, entries, list, nulls && !kind.v1)
            })
            .collect()
    })
}

/// How one file of a set is damaged: cut short, a byte flipped, or bytes appended.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(f64),
    Flip(f64, u8),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Damage::Truncate),
        (0.0..1.0f64, 1..=255u8).prop_map(|(at, x)| Damage::Flip(at, x)),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Damage::Append),
    ]
}

fn apply(bytes: &[u8], damage: &Damage) -> Vec<u8> {
    let at = |f: f64| ((bytes.len() as f64) * f) as usize;
    match damage {
        Damage::Truncate(f) => bytes[..at(*f)].to_vec(),
        Damage::Flip(f, x) => {
            let mut b = bytes.to_vec();
            let i = at(*f).min(b.len() - 1);
            b[i] ^= x;
            b
        }
        Damage::Append(tail) => [bytes, tail].concat(),
    }
}

/// What the library alone answers for a manifest: the manifest, or its error's kind and message.
type Answer = Result<Manifest, (iceberg::ErrorKind, String)>;

fn answer(r: iceberg::Result<Manifest>) -> Answer {
    r.map_err(|e| (e.kind(), e.message().to_string()))
}

/// Writes the set, damages file `damaged` (if any), and returns each file's list entry and bytes.
async fn written(
    set: &[ManifestSpec],
    damaged: Option<(usize, &Damage)>,
) -> (FileIO, Vec<(ManifestFile, Vec<u8>)>) {
    let io = FileIOBuilder::new(Arc::new(MemoryStorageFactory)).build();
    let mut files = Vec::new();
    for (i, (kind, entries, list, nulls)) in set.iter().enumerate() {
        let path = format!("memory:///t/metadata/m{i}.avro");
        let file = write(&io, &path, *kind, entries, *list).await;
        let mut bytes = io.new_input(&path).unwrap().read().await.unwrap().to_vec();
        if *nulls {
            bytes = null_sequences(&bytes);
            io.new_output(&path).unwrap().write(bytes.clone().into()).await.unwrap();
        }
        if let Some((_, d)) = damaged.filter(|(at, _)| *at == i) {
            bytes = apply(&bytes, d);
            io.new_output(&path).unwrap().write(bytes.clone().into()).await.unwrap();
        }
        files.push((file, bytes));
    }
    (io, files)
}

fn check(set: &[ManifestSpec], damaged: Option<(usize, &Damage)>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (io, files) = written(set, damaged).await;
        let refs: Vec<(ManifestFile, &[u8])> = files.iter().map(|(f, b)| (f.clone(), &b[..])).collect();
        let ours = decode(&refs);
        prop_assert_eq!(ours.len(), files.len());
        for (i, (ours, (file, _))) in ours.into_iter().zip(&files).enumerate() {
            // The library itself panics on some damage (apache-avro 0.21 unwraps a schema name it
            // finds invalid): ours must then be an error saying so, not a panic.
            let library = match AssertUnwindSafe(file.load_manifest(&io)).catch_unwind().await {
                Ok(result) => answer(result),
                Err(_) => {
                    let error = ours.expect_err("an error where the library panics");
                    prop_assert!(error.message().ends_with(" panicked"), "{}", error);
                    continue;
                }
            };
            let ours = answer(ours);
            prop_assert_eq!(
                &ours,
                &library,
                "manifest {} of {:?}",
                i,
                set.iter().map(|s| s.0).collect::<Vec<_>>()
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_manifest_decodes_as_the_library_decodes_it_alone(set in manifests()) {
        check(&set, None)?;
    }

    #[test]
    fn a_damaged_manifest_fares_as_alone_and_its_neighbours_still_decode(
        set in manifests(),
        at in any::<prop::sample::Index>(),
        d in damage(),
    ) {
        let at = at.index(set.len());
        check(&set, Some((at, &d)))?;
    }
}

/// The sets above hold groups: several manifests of one kind, with different metadata orders.
#[test]
fn manifests_of_one_kind_group_although_iceberg_rust_orders_their_metadata_at_random() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kind = Kind { v1: false, deletes: false, spec: 2 };
    let entry =
        entry_spec().new_tree(&mut proptest::test_runner::TestRunner::deterministic()).unwrap().current();
    let set: Vec<_> = (0..12).map(|i| (kind, vec![entry.clone()], (1, i + 1), false)).collect();
    let (_, files) = rt.block_on(written(&set, None));
    let framed: Vec<_> =
        files.iter().map(|(_, b)| frame(b).expect("iceberg's writer output frames")).collect();
    assert!(framed.windows(2).all(|w| w[0].metadata == w[1].metadata), "one group");
    assert!(
        framed.windows(2).any(|w| w[0].header != w[1].header),
        "headers differ in order (else the test shows nothing)"
    );
    assert!(framed.iter().all(|f| f.entries == 1));
    // And they are decoded as one: the group's parse, not each alone, gives every one of them.
    let refs: Vec<(ManifestFile, &[u8])> = files.iter().map(|(f, b)| (f.clone(), &b[..])).collect();
    let framed: Vec<_> = framed.into_iter().map(Some).collect();
    let members: Vec<usize> = (0..refs.len()).collect();
    let together = decode_group(&refs, &framed, &members).expect("the group decodes as one");
    for (manifest, (file, bytes)) in together.iter().zip(&refs) {
        assert_eq!(manifest, &decode_one(file, bytes).unwrap());
    }
}

/// Avro bytes: a zigzag varint long.
fn long(v: i64) -> Vec<u8> {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn container(
    metadata_blocks: &[Vec<(&str, &str)>],
    negative: bool,
    blocks: &[(i64, &[u8])],
    tail: &[u8],
) -> Vec<u8> {
    let sync = [7u8; 16];
    let mut out = b"Obj\x01".to_vec();
    for block in metadata_blocks {
        let mut items = Vec::new();
        for (k, v) in block {
            items.extend(long(k.len() as i64));
            items.extend(k.as_bytes());
            items.extend(long(v.len() as i64));
            items.extend(v.as_bytes());
        }
        if negative {
            out.extend(long(-(block.len() as i64)));
            out.extend(long(items.len() as i64));
        } else {
            out.extend(long(block.len() as i64));
        }
        out.extend(items);
    }
    out.extend(long(0));
    out.extend(sync);
    for (count, data) in blocks {
        out.extend(long(*count));
        out.extend(long(data.len() as i64));
        out.extend(*data);
        out.extend(sync);
    }
    out.extend(tail);
    out
}

#[test]
fn framing_accepts_only_plain_complete_containers() {
    let meta = vec![vec![("b", "2"), ("a", "1")]];
    let ok = container(&meta, false, &[(2, b"xy"), (1, b"z")], b"");
    let f = frame(&ok).unwrap();
    assert_eq!(f.entries, 3);
    assert_eq!(f.blocks.len(), 2);
    assert_eq!(f.metadata, vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]);
    // Metadata in blocks with negative counts (and their byte sizes), over several blocks.
    let split = container(&[vec![("a", "1")], vec![("b", "2")]], true, &[(2, b"xy")], b"");
    assert_eq!(frame(&split).unwrap().metadata, f.metadata);
    // No blocks at all: a manifest without entries.
    assert_eq!(frame(&container(&meta, false, &[], b"")).unwrap().entries, 0);

    let refused = [
        ("a key twice", container(&[vec![("a", "1"), ("a", "2")]], false, &[(1, b"x")], b"")),
        ("an empty block (ends a reader)", container(&meta, false, &[(1, b"x"), (0, b""), (1, b"y")], b"")),
        ("a negative count", container(&meta, false, &[(-1, b"x")], b"")),
        ("bytes after the last block", container(&meta, false, &[(1, b"x")], b"\x02")),
        ("another magic", [b"Obj\x02", &ok[4..]].concat()),
        ("cut in the header", ok[..10].to_vec()),
        ("cut in a block", ok[..ok.len() - 20].to_vec()),
        ("cut in a sync marker", ok[..ok.len() - 3].to_vec()),
    ];
    for (what, bytes) in refused {
        assert!(frame(&bytes).is_none(), "{what}");
    }
    let mut other_sync = ok.clone();
    let last = other_sync.len() - 1;
    other_sync[last] ^= 1;
    assert!(frame(&other_sync).is_none(), "a block ending in another sync marker");
    // A varint over 64 bits.
    assert!(frame(&[&b"Obj\x01"[..], &[0xff; 10], &[0x7f]].concat()).is_none());
}

/// The manifest re-encoded with apache-avro's snappy codec (same schema, same user metadata).
fn snappy(bytes: &[u8]) -> Vec<u8> {
    let reader = apache_avro::Reader::new(bytes).unwrap();
    let schema = reader.writer_schema().clone();
    let metadata = reader.user_metadata().clone();
    let mut writer = apache_avro::Writer::with_codec(&schema, Vec::new(), apache_avro::Codec::Snappy);
    for (k, v) in metadata {
        writer.add_user_metadata(k, v).unwrap();
    }
    for value in reader {
        writer.append(value.unwrap()).unwrap();
    }
    writer.into_inner().unwrap()
}

/// `snappy`'s header and sync marker with one block of one object whose compressed data is shorter
/// than snappy's 4-byte checksum: apache-avro 0.21.0 computes `stream.len() - 4` and panics, so
/// `ManifestFile::load_manifest` panics on it (the walk used to turn that into this one manifest's
/// error, its task's `JoinError`).
fn panicking(snappy: &[u8]) -> Vec<u8> {
    let f = frame(snappy).expect("apache-avro's output frames");
    [f.header, f.sync, &long(1), &long(2), b"\0\0", f.sync].concat()
}

/// Writes `n` one-entry v2 manifests, re-encoded with snappy when `snappy_codec`, and then a copy of
/// the last one's list entry naming a manifest the library panics on (same header metadata as the
/// snappy ones). Returns the io and each file's list entry and bytes.
async fn with_a_panicking_one(n: i64, snappy_codec: bool) -> (FileIO, Vec<(ManifestFile, Vec<u8>)>) {
    let kind = Kind { v1: false, deletes: false, spec: 2 };
    let entry =
        entry_spec().new_tree(&mut proptest::test_runner::TestRunner::deterministic()).unwrap().current();
    let set: Vec<_> = (0..n).map(|i| (kind, vec![entry.clone()], (1, i + 1), false)).collect();
    let (io, mut files) = written(&set, None).await;
    let mut snappy_bytes = None;
    for (file, bytes) in &mut files {
        let s = snappy(bytes);
        if snappy_codec {
            *bytes = s.clone();
            io.new_output(&file.manifest_path).unwrap().write(bytes.clone().into()).await.unwrap();
        }
        snappy_bytes = Some(s);
    }
    let bad = panicking(&snappy_bytes.unwrap());
    let mut file = files.last().unwrap().0.clone();
    file.manifest_path = "memory:///t/metadata/bad.avro".into();
    file.manifest_length = bad.len() as i64;
    io.new_output(&file.manifest_path).unwrap().write(bad.clone().into()).await.unwrap();
    files.push((file, bad));
    (io, files)
}

/// Every file but the last (the panicking one) decodes as the library decodes it alone, and `decode`
/// itself returns (a panic inside it fails every manifest of the walk's chunk, not just that one).
fn neighbours_survive(n: i64, snappy_codec: bool) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (io, files) = with_a_panicking_one(n, snappy_codec).await;
        let (bad_file, bad) = files.last().unwrap();
        // The premise: the library panics on the last file alone.
        assert!(
            std::panic::catch_unwind(|| Manifest::parse_avro(bad)).is_err(),
            "the library panics on {}",
            bad_file.manifest_path
        );
        let refs: Vec<(ManifestFile, &[u8])> = files.iter().map(|(f, b)| (f.clone(), &b[..])).collect();
        let ours = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&refs)))
            .expect("decode must return although the library panics on one manifest of the set");
        let mut ours = ours;
        let bad_answer = ours.pop().unwrap().expect_err("the panicking manifest is an error");
        assert!(bad_answer.message().contains("bad.avro panicked"), "{bad_answer}");
        for (i, (ours, (file, _))) in ours.into_iter().zip(&files).enumerate() {
            assert_eq!(answer(ours), answer(file.load_manifest(&io).await), "manifest {i}");
        }
    });
}

/// The panicking manifest decodes alone (no other file has its header metadata).
#[test]
fn a_manifest_the_library_panics_on_alone_leaves_its_neighbours_decoded() {
    neighbours_survive(2, false);
}

/// The panicking manifest shares its header metadata with healthy ones: the group's parse panics.
#[test]
fn a_manifest_the_library_panics_on_in_a_group_leaves_its_group_decoded() {
    neighbours_survive(2, true);
}
