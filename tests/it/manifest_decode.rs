//! Manifests written by another engine (PyIceberg, with every table kind that once broke compaction,
//! position and equality deletes, format version 1, a partition column whose name is not an Avro
//! name) read through a manifest walk, which decodes a table's manifests together
//! (`table/manifest_decode.rs`): each must be exactly what the library's own
//! `ManifestFile::load_manifest` returns for it alone.

use std::path::Path;
use std::sync::Arc;

use iceberg::spec::{Manifest, ManifestFile};
use signaldb_compactor::table::manifests::{OnUnreadable, Visit, Walk};

use crate::support::{connect, pyiceberg};

/// Every table kind of `pyiceberg_tool.py kind`.
const KINDS: [&str; 24] = [
    "evolved",
    "add-files",
    "truncate-null",
    "identity",
    "promote",
    "promote-timed",
    "nested",
    "identity-zero",
    "identity-types",
    "promote-more",
    "nested-promote",
    "add-files-nested",
    "add-files-nostats",
    "float-edges",
    "nested-identity",
    "void-spec-position-delete",
    "short-strings",
    "reshape",
    "reshape-list",
    "dropped-partition-source",
    "struct-move-rename",
    "sizes",
    "respec",
    "avro-names",
];

fn write_tables(dir: &Path) {
    let files = dir.join("imports");
    for (i, kind) in KINDS.iter().enumerate() {
        let table = format!("k{i}.ds.logs");
        let mut args = vec!["kind", "--kind", kind, "--table", &table, "--rows", "30", "--appends", "3"];
        args.extend(["--files-dir", files.to_str().unwrap()]);
        if *kind == "avro-names" {
            args.extend(["--column", "http-status"]);
        }
        pyiceberg(dir, &args);
    }
    pyiceberg(dir, &["create", "--table", "pos.ds.traces", "--rows", "60", "--appends", "4"]);
    pyiceberg(dir, &["posdelete", "--table", "pos.ds.traces", "--count", "5"]);
    pyiceberg(dir, &["create", "--table", "eq.ds.traces", "--rows", "60", "--appends", "4"]);
    pyiceberg(dir, &["eqdelete", "--table", "eq.ds.traces", "--count", "4"]);
    let v1 = ["create", "--table", "v1.ds.traces", "--rows", "60", "--appends", "4", "--format-version", "1"];
    pyiceberg(dir, &v1);
}

#[tokio::test]
async fn foreign_manifests_decode_together_exactly_as_the_library_decodes_each_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(dir.path());
    let catalog = connect(dir.path()).await;
    let tables = catalog.discover().await.unwrap();
    assert_eq!(tables.len(), KINDS.len() + 3, "every table written");
    let mut compared = 0;
    for t in &tables {
        let table = catalog.load(t).await.unwrap();
        let walked = walk_manifests(&table, None).await;
        assert!(!walked.is_empty(), "{}: no manifest", t.qualified());
        // The same walk with every manifest in a chunk of its own (many chunks in flight, each
        // decoded on its own task) visits the same manifests in the same order.
        signaldb_compactor::table::manifests::forget();
        let alone = walk_manifests(&table, Some(1)).await;
        assert_eq!(alone, walked, "{}: one manifest per chunk", t.qualified());
        assert_in_listing_order(&table, t.qualified()).await;
        for (m, ours) in walked {
            let library = m.load_manifest(table.file_io()).await.unwrap();
            assert_eq!(*ours, library, "{}: {}", t.qualified(), m.manifest_path);
            compared += 1;
        }
    }
    eprintln!("{compared} manifests of {} tables compared", tables.len());
    // Most tables have several manifests under one schema and spec: those decode together.
    assert!(compared > 2 * tables.len(), "{compared} manifests");
}

/// A walk with one manifest per chunk and the last unique manifest skipped as known visits exactly
/// what the snapshots' manifest lists name, in their order (each unique manifest read once, the known
/// one every time it is listed), compared with a listing made by the library alone. The known
/// manifest's chunk is done as soon as it is polled while the chunks before it wait for their reads
/// and decoding tasks, so visiting chunks as they finish instead of in order fails here every time.
async fn assert_in_listing_order(table: &iceberg::table::Table, name: String) {
    let mut listed = Vec::new();
    for snapshot in table.metadata().snapshots() {
        let list = table.manifest_list_reader(snapshot).load().await.unwrap();
        listed.extend(list.entries().iter().map(|m| m.manifest_path.clone()));
    }
    let mut unique = std::collections::HashSet::new();
    let last = listed.iter().filter(|p| unique.insert(p.as_str())).last().cloned().unwrap();
    let mut seen = std::collections::HashSet::new();
    let expected: Vec<(bool, String)> = listed
        .iter()
        .filter_map(|p| {
            if *p == last {
                Some((false, p.clone()))
            } else {
                seen.insert(p.clone()).then(|| (true, p.clone()))
            }
        })
        .collect();
    signaldb_compactor::table::manifests::forget();
    let mut visited = Vec::new();
    Walk::all_snapshots(table, OnUnreadable::Fail)
        .skip_known(|p| p == last)
        .chunk_bytes(1)
        .run(|visit| match visit {
            Visit::Manifest(m, _) => visited.push((true, m.manifest_path.clone())),
            Visit::Known(m) => visited.push((false, m.manifest_path.clone())),
            Visit::List(_) | Visit::Unreadable { .. } => {}
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(visited, expected, "{name}: visits against the library's listing");
}

/// Every manifest a walk over all of `table`'s snapshots reads, in visiting order, decoded in chunks
/// of `chunk_bytes` (the walk's default when `None`).
async fn walk_manifests(
    table: &iceberg::table::Table,
    chunk_bytes: Option<u64>,
) -> Vec<(ManifestFile, Arc<Manifest>)> {
    let mut walk = Walk::all_snapshots(table, OnUnreadable::Fail);
    if let Some(bytes) = chunk_bytes {
        walk = walk.chunk_bytes(bytes);
    }
    let mut walked = Vec::new();
    walk.run(|visit| {
        if let Visit::Manifest(m, manifest) = visit {
            walked.push((m.clone(), Arc::new(manifest.clone())));
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", table.identifier()));
    walked
}
