//! Hostile review of the manifest rewrite (issue 15 item 3): v1 tables, a concurrent writer removing
//! files between plan and commit, equality deletes whose reach depends on data sequence numbers,
//! refs, dry runs and the rewrite re-triggering. Independent readers: PyIceberg and DuckDB.

use signaldb_compactor::config::Mode;
use signaldb_compactor::job::TableStatus;

use crate::manifests::{
    T, assert_changes_no_file, data_manifests, entries, inspect, our_entries, pass,
    pass_with_writer_before_commit, pointer, scan,
};
use crate::support::{duckdb, pyiceberg, snapshot_bytes};

fn metadata_json(location: &str) -> serde_json::Value {
    let path = location.strip_prefix("file://").unwrap_or(location);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A v1 table (no sequence numbers; PyIceberg writes v1 entries whose snapshot id the manifest may
/// leave to inheritance): the rewrite keeps every entry, the format, the rows; a second pass is a no-op.
#[tokio::test]
async fn a_v1_table_is_rewritten_without_inventing_or_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pyiceberg(d, &["create", "--table", T, "--rows", "6", "--appends", "105", "--format-version", "1"]);
    let before = inspect(d, None);
    assert_eq!(data_manifests(&before), 105);
    let ours_before = our_entries(d).await;
    let (rows, duck) = scan(d, None);
    assert_eq!(rows, duck);
    assert_eq!(rows["rows"].as_u64(), Some(630));

    let r = pass(d, Mode::Execute).await;
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    let after = inspect(d, None);
    assert_eq!(data_manifests(&after), 1, "{after:#}");
    assert_eq!(entries(&after), entries(&before));
    assert_eq!(our_entries(d).await, ours_before);
    assert_changes_no_file(&before, &after);
    let meta = metadata_json(&pointer(d).await);
    assert_eq!(meta["format-version"], 1, "the format is not upgraded");
    let (now, now_duck) = scan(d, None);
    assert_eq!(now, rows);
    assert_eq!(now_duck, rows);
    // The parent still reads the same.
    let parent = after["parent_snapshot_id"].as_i64().unwrap();
    assert_eq!(scan(d, Some(parent)).0, rows);

    // Rewritten once: the next pass changes nothing.
    let settled = pointer(d).await;
    let again = pass(d, Mode::Execute).await;
    assert_eq!(again.status, TableStatus::Unchanged, "{again:#?}");
    assert_eq!(pointer(d).await, settled);
}

/// Another writer's copy-on-write delete (it removes files and adds their rewrites) lands between the
/// rewrite's plan and its commit: the rewrite, redone on the new head, must not bring back a removed
/// file, and must keep the rewritten ones.
#[tokio::test]
async fn files_removed_between_plan_and_commit_are_not_resurrected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    pyiceberg(&d, &["create", "--table", T, "--rows", "6", "--appends", "105"]);
    let (r, fired) =
        pass_with_writer_before_commit(&d, &["delete", "--table", T, "--filter", "service_name == 'api'"])
            .await;
    assert!(fired);
    let after = inspect(&d, None);
    let parent = after["parent_snapshot_id"].as_i64().unwrap();
    let deleted = inspect(&d, Some(parent));
    assert_ne!(deleted["operation"], "append", "the parent is the other writer's delete: {deleted:#}");
    if r.status == TableStatus::Succeeded {
        assert_eq!(after["operation"], "replace");
        assert_eq!(entries(&after), entries(&deleted), "exactly the live files of the delete's snapshot");
    } else {
        panic!("the rewrite is redone on the new head: {r:#?}");
    }
    let (now, now_duck) = scan(&d, None);
    assert_eq!(now, now_duck);
    assert_eq!(now, scan(&d, Some(parent)).0);
    let apis = pyiceberg(&d, &["scan", "--table", T, "--filter", "service_name == 'api'"]);
    assert_eq!(apis["rows"].as_u64(), Some(0), "no deleted row comes back: {apis}");
}

/// An equality delete whose rows are then appended again: the re-inserted rows are newer (a higher
/// data sequence number) and survive it. After the rewrite every file keeps its exact data sequence
/// number, so DuckDB reads the same rows (a reset number would delete the re-inserted rows; a raised
/// one would resurrect the deleted ones).
#[tokio::test]
async fn equality_deletes_reach_exactly_the_same_rows_after_the_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pyiceberg(d, &["create", "--table", T, "--rows", "6", "--appends", "104"]);
    pyiceberg(d, &["posdelete", "--table", T, "--count", "2"]);
    // PyIceberg cannot plan a table with an equality delete: one, last, its rows appended again.
    pyiceberg(d, &["eqdelete", "--table", T, "--count", "3", "--reinsert"]);
    let before = inspect(d, None);
    let ours_before = our_entries(d).await;
    let full = duckdb(d, &["scan", "--table", T]);
    let no_deletes = 624 + 3;
    let read = full["rows"].as_u64().unwrap();
    assert!(read < no_deletes && read >= no_deletes - 3 - 2 * 104, "{full}");

    let r = pass(d, Mode::Execute).await;
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    let after = inspect(d, None);
    assert!(data_manifests(&after) < data_manifests(&before), "{after:#}");
    assert_eq!(entries(&after), entries(&before));
    assert_eq!(our_entries(d).await, ours_before);
    assert_changes_no_file(&before, &after);
    let now = duckdb(d, &["scan", "--table", T]);
    assert_eq!((&now["rows"], &now["checksum"]), (&full["rows"], &full["checksum"]));
}

/// Refs the compactor does not own (a tag on an older snapshot) survive the rewrite and still read
/// the same; a dry run changes no byte.
#[tokio::test]
async fn a_tag_survives_and_a_dry_run_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pyiceberg(d, &["create", "--table", T, "--rows", "6", "--appends", "103"]);
    let tagged = pyiceberg(d, &["tag", "--table", T])["tagged"].as_i64().unwrap();
    let tagged_rows = scan(d, Some(tagged)).0;
    pyiceberg(d, &["append", "--table", T, "--rows", "5", "--seed", "7"]);
    pyiceberg(d, &["append", "--table", T, "--rows", "5", "--seed", "8"]);
    let before = inspect(d, None);

    let bytes = snapshot_bytes(&d.join("warehouse"));
    let location = pointer(d).await;
    let dry = pass(d, Mode::DryRun).await;
    assert_eq!(dry.status, TableStatus::Succeeded, "{dry:#?}");
    assert!(snapshot_bytes(&d.join("warehouse")) == bytes, "a dry run changes no byte of the warehouse");
    assert_eq!(pointer(d).await, location);

    let r = pass(d, Mode::Execute).await;
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    let meta = metadata_json(&pointer(d).await);
    assert_eq!(meta["refs"]["audit"]["snapshot-id"].as_i64(), Some(tagged), "{:#}", meta["refs"]);
    assert_eq!(meta["refs"]["audit"]["type"], "tag");
    assert_eq!(meta["refs"]["main"]["snapshot-id"], meta["current-snapshot-id"]);
    let after = inspect(d, None);
    assert_eq!(entries(&after), entries(&before));
    assert_changes_no_file(&before, &after);
    assert_eq!(scan(d, Some(tagged)).0, tagged_rows);
    let (now, duck) = scan(d, None);
    assert_eq!(now, duck);
    assert_eq!(now["rows"].as_u64(), Some(6 * 103 + 10));
}

/// A v1 table upgraded to v2 (its v1 manifests carry no sequence numbers: inherited as 0 from the
/// manifest list) with a position delete under an all-void spec: after the pass (manifest rewrite on,
/// `min-count-to-merge` 1) both engines read the same rows as before.
#[tokio::test]
async fn an_upgraded_v1_table_with_a_void_spec_position_delete_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pyiceberg(d, &["kind", "--kind", "void-spec-position-delete", "--table", T, "--type-name", "truncate"]);
    crate::manifests::set_props(d, &["commit.manifest.min-count-to-merge=1"]);
    let before = inspect(d, None);
    assert_eq!(data_manifests(&before), 3, "{before:#}");
    let duck = duckdb(d, &["scan", "--table", T]);
    assert_eq!(duck["rows"], 295, "DuckDB applies the delete: 300 rows - 5");
    let py = pyiceberg(d, &["scan", "--table", T]);
    let r = pass(d, Mode::Execute).await;
    assert!(!matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
    let after = inspect(d, None);
    let now = duckdb(d, &["scan", "--table", T]);
    assert_eq!((&now["rows"], &now["checksum"]), (&duck["rows"], &duck["checksum"]), "{r:#?} {after:#}");
    let now_py = pyiceberg(d, &["scan", "--table", T]);
    assert_eq!((&now_py["rows"], &now_py["checksum"]), (&py["rows"], &py["checksum"]));
    // The partitions are skipped (they have deletes): the manifest rewrite is the pass's one commit.
    assert_eq!(
        (&after["operation"], &after["parent_snapshot_id"]),
        (&"replace".into(), &before["current_snapshot_id"])
    );
    assert_eq!(data_manifests(&after), 1, "{after:#}");
    assert_eq!(entries(&after), entries(&before));
}

/// Another writer changes table metadata only (a property: no new snapshot) between the rewrite's plan
/// and its commit: the rewrite must not overwrite that change with the metadata it planned on.
#[tokio::test]
async fn a_metadata_change_between_plan_and_commit_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    pyiceberg(&d, &["create", "--table", T, "--rows", "6", "--appends", "102"]);
    let before = inspect(&d, None);
    let (r, fired) =
        pass_with_writer_before_commit(&d, &["props", "--table", T, "--set", "owner.note=kept"]).await;
    assert!(fired);
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    let meta = metadata_json(&pointer(&d).await);
    assert_eq!(meta["properties"]["owner.note"], "kept", "{:#}", meta["properties"]);
    let after = inspect(&d, None);
    assert_eq!(after["operation"], "replace");
    assert_eq!(entries(&after), entries(&before));
}

/// Small non-default targets: manifests of a few entries are mostly header, so the estimate
/// (bytes / target) shrinks after each rewrite: the table is rewritten again on later passes (measured:
/// 105 -> 32 -> 13 -> 9 data manifests, three replace snapshots, at a 16 KiB target and a count of 10,
/// as the planner's doc allows for a table left above the count). Every entry and row is kept, and the
/// rewrite settles within a few passes, never loops.
#[tokio::test]
async fn a_small_target_does_not_rewrite_manifests_pass_after_pass() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pyiceberg(d, &["create", "--table", T, "--rows", "6", "--appends", "105"]);
    crate::manifests::set_props(
        d,
        &["commit.manifest.min-count-to-merge=10", "commit.manifest.target-size-bytes=16384"],
    );
    let before = inspect(d, None);
    let rows = scan(d, None).0;
    let mut rewrites = Vec::new();
    for _ in 0..5 {
        let location = pointer(d).await;
        let r = pass(d, Mode::Execute).await;
        assert!(!matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
        if pointer(d).await == location {
            break;
        }
        rewrites.push(data_manifests(&inspect(d, None)));
    }
    let after = inspect(d, None);
    assert_eq!(entries(&after), entries(&before));
    assert_eq!(scan(d, None).0, rows);
    assert!(rewrites.len() < 5, "manifest rewrites pass after pass, data manifests after each: {rewrites:?}");
    // Settled: at or below the count (the measured run: [32, 13, 9]).
    assert!(!rewrites.is_empty() && *rewrites.last().unwrap() <= 10, "{rewrites:?}");
}

/// Entries typed by an older schema (identity(n), n promoted int -> long between appends) beside
/// entries of the current schema, with `min-count-to-merge` 0 so the pass rewrites the manifests: the
/// rows and a partition-pruned read of each partition are the same in both engines before and after.
#[tokio::test]
async fn entries_of_a_promoted_partition_source_keep_their_rows_and_pruning() {
    for kind in ["promote", "promote-timed"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        pyiceberg(d, &["kind", "--kind", kind, "--table", T, "--rows", "10", "--appends", "3"]);
        crate::manifests::set_props(d, &["commit.manifest.min-count-to-merge=0"]);
        let before = inspect(d, None);
        let (rows, duck) = scan(d, None);
        assert_eq!(rows, duck, "{kind}");
        let filtered = |d: &std::path::Path, f: &str| pyiceberg(d, &["scan", "--table", T, "--filter", f]);
        let per_n: Vec<_> = ["n == 0", "n == 1"].iter().map(|f| filtered(d, f)).collect();
        let r = pass(d, Mode::Execute).await;
        assert!(!matches!(r.status, TableStatus::Failed { .. }), "{kind}: {r:#?}");
        let after = inspect(d, None);
        assert!(data_manifests(&after) < data_manifests(&before), "{kind}: {r:#?} {after:#}");
        let (now, now_duck) = scan(d, None);
        assert_eq!(now, rows, "{kind}");
        assert_eq!(now_duck, rows, "{kind}");
        let now_per_n: Vec<_> = ["n == 0", "n == 1"].iter().map(|f| filtered(d, f)).collect();
        for (a, b) in per_n.iter().zip(&now_per_n) {
            assert_eq!((&a["rows"], &a["checksum"]), (&b["rows"], &b["checksum"]), "{kind}");
        }
    }
}

/// Another writer commits a position delete between the rewrite's plan and its commit: the rewrite,
/// redone on the new head, keeps the new delete manifest, and both engines read the deleted rows gone.
#[tokio::test]
async fn a_position_delete_committed_between_plan_and_commit_keeps_applying() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    pyiceberg(&d, &["create", "--table", T, "--rows", "6", "--appends", "104"]);
    let (r, fired) = pass_with_writer_before_commit(&d, &["posdelete", "--table", T, "--count", "2"]).await;
    assert!(fired);
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    let after = inspect(&d, None);
    assert_eq!(after["operation"], "replace");
    let parent = after["parent_snapshot_id"].as_i64().unwrap();
    let deleted = inspect(&d, Some(parent));
    assert_eq!(entries(&after), entries(&deleted), "the delete's snapshot, every entry kept");
    assert!(after["manifests"].as_array().unwrap().iter().any(|m| m["content"] == 1), "{after:#}");
    let (now, now_duck) = scan(&d, None);
    assert_eq!(now, now_duck);
    assert_eq!(now, scan(&d, Some(parent)).0);
    assert!(now["rows"].as_u64().unwrap() < 624, "the delete applies: {now}");
}
