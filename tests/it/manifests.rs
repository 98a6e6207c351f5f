//! Issue 15 item 3: rewriting a table's data manifests, clustered by partition, as a `replace` snapshot
//! that changes no data file. Tables are written by PyIceberg (one manifest per fast-append), read
//! back through PyIceberg's `inspect` tables and our own inventory (every entry compared exactly), and
//! scanned by PyIceberg and DuckDB, now and at older snapshots.
//!
//! The passes run on a clock before the tables' hours (2026-01-15) end, so every partition is open and
//! the manifest rewrite is the only thing a pass can do to them.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::TimeZone;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::compaction::manifests::HOOK_LABEL;
use signaldb_compactor::config::{Config, Mode};
use signaldb_compactor::job::TableStatus;
use signaldb_compactor::job::{BeforeCommitHook, CompactionOutcome, Job, Outcome, PassRequest, TableReport};
use tokio_util::sync::CancellationToken;

use crate::support::{context, duckdb, pyiceberg, snapshot_bytes};

pub(crate) const T: &str = "acme.prod.traces";

/// Before the PyIceberg tables' hours: every partition is open.
fn before_the_data() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

pub(crate) async fn pass_with(
    dir: &Path,
    mode: Mode,
    job: impl FnOnce(&signaldb_compactor::service::Context) -> CompactionJob,
    tweak: impl FnOnce(&mut Config),
) -> TableReport {
    let ctx = context(dir, before_the_data(), tweak).await;
    let report = job(&ctx).run_once(&PassRequest::all(mode), &CancellationToken::new()).await.unwrap();
    report.tables.into_iter().find(|r| r.table == T).expect("the table is in the report")
}

/// A compaction pass in which another writer runs `writer` (arguments of the PyIceberg helper) once,
/// after the manifest rewrite was planned and before its commit; commit retries back off 5 ms. Returns
/// the table's report and whether the writer ran.
pub(crate) async fn pass_with_writer_before_commit(dir: &Path, writer: &[&str]) -> (TableReport, bool) {
    let fired = Arc::new(AtomicBool::new(false));
    let writer: Vec<String> = writer.iter().map(|s| s.to_string()).collect();
    let (hook_dir, hook_fired) = (dir.to_path_buf(), fired.clone());
    let hook: BeforeCommitHook = Arc::new(move |label: String| {
        let (dir, fired, writer) = (hook_dir.clone(), hook_fired.clone(), writer.clone());
        Box::pin(async move {
            if label == HOOK_LABEL && !fired.swap(true, Ordering::SeqCst) {
                tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = writer.iter().map(String::as_str).collect();
                    pyiceberg(&dir, &args);
                })
                .await
                .unwrap();
            }
        }) as futures::future::BoxFuture<'static, ()>
    });
    let r = pass_with(
        dir,
        Mode::Execute,
        |ctx| CompactionJob::new(ctx).with_before_commit(hook),
        |c| c.commit.retry_backoff = std::time::Duration::from_millis(5),
    )
    .await;
    (r, fired.load(Ordering::SeqCst))
}

pub(crate) async fn pass(dir: &Path, mode: Mode) -> TableReport {
    pass_with(dir, mode, CompactionJob::new, |_| {}).await
}

pub(crate) fn outcome(r: &TableReport) -> CompactionOutcome {
    match &r.outcome {
        Some(Outcome::Compaction(c)) => c.clone(),
        other => panic!("no compaction outcome: {other:?} in {r:#?}"),
    }
}

/// PyIceberg's view of the current (or an older) snapshot's manifests and live entries.
pub(crate) fn inspect(dir: &Path, snapshot: Option<i64>) -> serde_json::Value {
    let id = snapshot.map(|s| s.to_string());
    let mut args = vec!["manifests", "--table", T];
    if let Some(id) = &id {
        args.extend(["--snapshot-id", id.as_str()]);
    }
    pyiceberg(dir, &args)
}

pub(crate) fn data_manifests(v: &serde_json::Value) -> usize {
    v["manifests"].as_array().unwrap().iter().filter(|m| m["content"] == 0).count()
}

/// Every live entry without its status: path, content, snapshot id, both sequence numbers, partition.
pub(crate) fn entries(v: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("status");
            e
        })
        .collect();
    out.sort_by_key(|e| e["path"].as_str().unwrap().to_string());
    out
}

/// Our own reading of the current snapshot: (path, snapshot id, data sequence number, file sequence
/// number, spec id) of every live data and delete entry.
pub(crate) async fn our_entries(
    dir: &Path,
) -> BTreeSet<(String, Option<i64>, Option<i64>, Option<i64>, i32)> {
    let ctx = context(dir, before_the_data(), |_| {}).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == T).unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    let inventory = signaldb_compactor::table::Inventory::load(&table).await.unwrap();
    inventory
        .data
        .iter()
        .chain(&inventory.deletes)
        .map(|f| {
            let e = &f.entry;
            (f.path().to_string(), e.snapshot_id(), e.sequence_number(), e.file_sequence_number, f.spec_id)
        })
        .collect()
}

pub(crate) fn scan(dir: &Path, snapshot: Option<i64>) -> (serde_json::Value, serde_json::Value) {
    let id = snapshot.map(|s| s.to_string());
    let mut args = vec!["scan", "--table", T];
    if let Some(id) = &id {
        args.extend(["--snapshot-id", id.as_str()]);
    }
    let py = pyiceberg(dir, &args);
    let duck = duckdb(dir, &args);
    (
        serde_json::json!({"rows": py["rows"], "checksum": py["checksum"]}),
        serde_json::json!({"rows": duck["rows"], "checksum": duck["checksum"]}),
    )
}

pub(crate) async fn pointer(dir: &Path) -> String {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.join("catalog.db").display())).await.unwrap();
    sqlx::query_scalar("SELECT metadata_location FROM iceberg_tables WHERE table_name = 'traces'")
        .fetch_one(&pool)
        .await
        .unwrap()
}

pub(crate) fn set_props(dir: &Path, pairs: &[&str]) {
    let mut args = vec!["props", "--table", T];
    for p in pairs {
        args.extend(["--set", p]);
    }
    pyiceberg(dir, &args);
}

const TOTALS: [&str; 6] = [
    "total-data-files",
    "total-delete-files",
    "total-records",
    "total-files-size",
    "total-position-deletes",
    "total-equality-deletes",
];

/// The current snapshot is a manifest rewrite: `replace`, nothing added or deleted, totals unchanged.
pub(crate) fn assert_changes_no_file(before: &serde_json::Value, after: &serde_json::Value) {
    assert_eq!(after["operation"], "replace", "{after:#}");
    let summary = after["summary"].as_object().unwrap();
    for key in summary.keys() {
        assert!(
            !(key.starts_with("added-") || key.starts_with("deleted-") || key.starts_with("removed-")),
            "a manifest rewrite adds and deletes nothing: {key} in {summary:?}"
        );
    }
    for total in TOTALS {
        assert_eq!(after["summary"][total], before["summary"][total], "{total}");
    }
}

#[tokio::test]
async fn fast_append_manifests_are_clustered_by_partition_with_every_entry_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 110 fast-appends of 6 rows over three hours: 110 manifests of up to three entries each.
    pyiceberg(d, &["create", "--table", T, "--rows", "6", "--appends", "110"]);
    let before = inspect(d, None);
    assert_eq!(data_manifests(&before), 110);
    let ours_before = our_entries(d).await;
    let (rows, duck_rows) = scan(d, None);
    assert_eq!(rows, duck_rows);
    assert_eq!(rows["rows"], 660);
    // Older snapshots to travel back to afterwards: the first append, one in the middle, the last.
    let snapshots: Vec<i64> =
        before["snapshots"].as_array().unwrap().iter().map(|s| s.as_i64().unwrap()).collect();
    let old: Vec<(i64, serde_json::Value)> =
        [0, 54, 109].iter().map(|&i| (snapshots[i], scan(d, Some(snapshots[i])).0)).collect();

    // A dry run plans the rewrite and changes no byte.
    let warehouse = snapshot_bytes(&d.join("warehouse"));
    let location = pointer(d).await;
    let dry = pass(d, Mode::DryRun).await;
    assert_eq!(dry.status, TableStatus::Succeeded, "{dry:#?}");
    assert_eq!((outcome(&dry).manifests_before, outcome(&dry).manifests_after), (110, 1), "{dry:#?}");
    assert!(
        dry.details.iter().any(|l| l.starts_with("would rewrite 110 data manifest(s) into ~1")),
        "{dry:#?}"
    );
    assert!(snapshot_bytes(&d.join("warehouse")) == warehouse, "a dry run wrote to the warehouse");
    assert_eq!(pointer(d).await, location);

    let r = pass(d, Mode::Execute).await;
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    let o = outcome(&r);
    assert_eq!((o.manifests_before, o.manifests_after, o.manifests_rewritten), (110, 1, 110), "{r:#?}");
    assert_eq!((o.groups_committed, o.files_rewritten), (0, 0), "no data file rewritten");
    assert_eq!((o.files_before, o.files_after), (ours_before.len() as u64, ours_before.len() as u64));
    let after = inspect(d, None);
    assert_eq!(data_manifests(&after), 1, "{after:#}");
    assert_changes_no_file(&before, &after);
    assert_eq!(after["summary"]["manifests-replaced"], "110");
    assert_eq!(after["summary"]["manifests-created"], "1");
    // Every entry exactly as before, now EXISTING (status 0), in PyIceberg's reading and ours.
    assert_eq!(entries(&after), entries(&before));
    assert!(after["entries"].as_array().unwrap().iter().all(|e| e["status"] == 0), "{after:#}");
    assert_eq!(our_entries(d).await, ours_before);
    // Both engines read the same rows, now and at every older snapshot.
    assert_eq!(scan(d, None), (rows.clone(), rows.clone()));
    for (id, expected) in &old {
        assert_eq!(&scan(d, Some(*id)), &(expected.clone(), expected.clone()), "time travel to {id}");
    }
    // Nothing is due any more: the next pass commits nothing.
    let settled = pointer(d).await;
    let again = pass(d, Mode::Execute).await;
    assert_eq!(again.status, TableStatus::Unchanged, "{again:#?}");
    assert_eq!(pointer(d).await, settled);
}

#[tokio::test]
async fn the_table_thresholds_and_switches_decide_when_and_how_manifests_are_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pyiceberg(d, &["create", "--table", T, "--rows", "6", "--appends", "24"]);
    let before = inspect(d, None);
    let (rows, _) = scan(d, None);
    // 24 manifests: not more than Iceberg's default of 100, and too few to be worth it.
    let location = pointer(d).await;
    assert_eq!(pass(d, Mode::Execute).await.status, TableStatus::Unchanged);
    assert_eq!(pointer(d).await, location);

    // The table's own thresholds: more than 10 manifests is too many; 16 KiB manifests.
    set_props(d, &["commit.manifest.min-count-to-merge=10", "commit.manifest.target-size-bytes=16384"]);
    // Excluded by its property, or with the step switched off, the table is left alone.
    set_props(d, &["signaldb.compactor.enabled=false"]);
    let location = pointer(d).await;
    let skipped = pass(d, Mode::Execute).await;
    assert!(
        matches!(&skipped.status, TableStatus::Skipped { reason } if reason.starts_with("disabled_by_table_property")),
        "{skipped:#?}"
    );
    set_props(d, &["signaldb.compactor.enabled=true"]);
    let location_enabled = pointer(d).await;
    assert_ne!(location_enabled, location);
    let off =
        pass_with(d, Mode::Execute, CompactionJob::new, |c| c.compaction.rewrite_manifests = false).await;
    assert_eq!(off.status, TableStatus::Unchanged, "{off:#?}");
    assert_eq!(pointer(d).await, location_enabled);

    let r = pass(d, Mode::Execute).await;
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    let after = inspect(d, None);
    let manifests = data_manifests(&after);
    let total: u64 =
        before["manifests"].as_array().unwrap().iter().map(|m| m["files"].as_u64().unwrap()).sum();
    assert!(manifests > 1 && manifests < 24, "about 16 KiB each: {after:#}");
    assert_eq!(outcome(&r).manifests_after, manifests as u64);
    // Clustered: a manifest holds consecutive entries of the hour order, so at most the two manifests
    // at each of the two hour boundaries span two hours; every other holds one hour.
    let spanning = after["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["bounds"][0][0] != m["bounds"][0][1])
        .count();
    assert!(spanning <= 2, "{after:#}");
    assert_eq!(
        after["manifests"].as_array().unwrap().iter().map(|m| m["files"].as_u64().unwrap()).sum::<u64>(),
        total
    );
    assert_eq!(entries(&after), entries(&before));
    assert_changes_no_file(&before, &after);
    assert_eq!(scan(d, None), (rows.clone(), rows));
    let settled = pointer(d).await;
    assert_eq!(pass(d, Mode::Execute).await.status, TableStatus::Unchanged);
    assert_eq!(pointer(d).await, settled);
}

#[tokio::test]
async fn an_append_committed_between_plan_and_commit_is_in_the_rewritten_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    pyiceberg(&d, &["create", "--table", T, "--rows", "6", "--appends", "105"]);
    let before = inspect(&d, None);
    let (rows, _) = scan(&d, None);
    // PyIceberg appends 9 rows after the rewrite was planned, before its commit.
    let (r, fired) =
        pass_with_writer_before_commit(&d, &["append", "--table", T, "--rows", "9", "--seed", "500"]).await;
    assert!(fired);
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    assert!(outcome(&r).commit_conflicts >= 1, "the stale attempt lost the swap: {r:#?}");
    let after = inspect(&d, None);
    assert_eq!(data_manifests(&after), 1, "{after:#}");
    assert_eq!(after["operation"], "replace");
    // Every entry of before, unchanged, plus the append's, with the append's snapshot id.
    let old = entries(&before);
    let now = entries(&after);
    let appended: Vec<_> = now.iter().filter(|e| !old.contains(e)).collect();
    assert!(old.iter().all(|e| now.contains(e)));
    assert!(!appended.is_empty());
    // The rewrite's parent is the append.
    let append_snapshot = after["parent_snapshot_id"].as_i64().unwrap();
    assert!(appended.iter().all(|e| e["snapshot_id"] == append_snapshot), "{appended:#?} {after:#}");
    let (now_rows, duck) = scan(&d, None);
    assert_eq!(now_rows["rows"].as_u64().unwrap(), rows["rows"].as_u64().unwrap() + 9);
    assert_eq!(duck, now_rows);
    // Reading the append's snapshot gives the same rows.
    assert_eq!(scan(&d, Some(append_snapshot)).0, now_rows);
}

#[tokio::test]
async fn delete_files_keep_applying_after_the_rewrite() {
    for kind in ["posdelete", "eqdelete"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        pyiceberg(d, &["create", "--table", T, "--rows", "6", "--appends", "104"]);
        // PyIceberg plans no table with an equality delete: the position delete goes first.
        if kind == "posdelete" {
            pyiceberg(d, &["posdelete", "--table", T, "--count", "2"]);
        }
        pyiceberg(d, &["eqdelete", "--table", T, "--count", "2"]);
        let before = inspect(d, None);
        let deletes: Vec<_> =
            before["manifests"].as_array().unwrap().iter().filter(|m| m["content"] == 1).cloned().collect();
        assert!(!deletes.is_empty());
        // PyIceberg 0.12 cannot read equality deletes: DuckDB reads both kinds.
        let full = duckdb(d, &["scan", "--table", T]);
        assert!(full["rows"].as_u64().unwrap() < 624, "{kind}: the deletes apply: {full}");
        let r = pass(d, Mode::Execute).await;
        assert_eq!(r.status, TableStatus::Succeeded, "{kind}: {r:#?}");
        let after = inspect(d, None);
        assert_eq!(data_manifests(&after), 1, "{kind}: {after:#}");
        // The delete manifests are kept as they are, and every entry (data and delete) unchanged.
        let kept: Vec<_> =
            after["manifests"].as_array().unwrap().iter().filter(|m| m["content"] == 1).cloned().collect();
        assert_eq!(kept, deletes, "{kind}");
        assert_eq!(entries(&after), entries(&before), "{kind}");
        assert_changes_no_file(&before, &after);
        let now = duckdb(d, &["scan", "--table", T]);
        assert_eq!((&now["rows"], &now["checksum"]), (&full["rows"], &full["checksum"]), "{kind}");
    }
}

/// The binary end to end on a `generate`d table (120 one-file fast-appends by iceberg-rust, hours
/// still open): killed at the failpoint right before the rewrite's swap, the table is as it was; the
/// next `once compaction` rewrites and reports it.
#[tokio::test]
async fn killed_before_the_swap_the_table_is_as_it_was_and_the_next_pass_rewrites() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let opts = signaldb_compactor::generate::GenerateOptions {
        tenants: 1,
        hours: 2,
        files_per_hour: 60,
        rows_per_file: 5,
        tables: vec!["traces".into()],
        // Still being written: the pass has no partition to compact.
        end: chrono::Utc::now() + chrono::TimeDelta::days(2),
        ..crate::support::small_options(d)
    };
    signaldb_compactor::generate::generate(&opts).await.unwrap();
    crate::support::write_config(d, "");
    let t = "acme.production.traces";
    let catalog = crate::support::connect(d).await;
    let traces = catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let location = catalog.metadata_location(&traces.ident).await.unwrap();
    let before = pyiceberg(d, &["manifests", "--table", t]);
    assert_eq!(data_manifests(&before), 120);
    let rows = pyiceberg(d, &["scan", "--table", t]);

    let killed = crate::support::run_bin(
        d,
        &["once", "compaction"],
        &[("SIGNALDB_FAILPOINT", signaldb_compactor::failpoint::MANIFESTS_BEFORE_SWAP)],
    );
    assert_eq!(killed.status.signal(), Some(9), "SIGKILLed at the failpoint: {killed:?}");
    assert_eq!(catalog.metadata_location(&traces.ident).await.unwrap(), location, "no swap happened");
    assert_eq!(pyiceberg(d, &["manifests", "--table", t])["manifests"], before["manifests"]);

    let out = crate::support::run_bin(d, &["once", "compaction", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &reports[0]["tables"][0];
    assert_eq!(table["status"], "succeeded", "{reports:#}");
    let outcome = &table["outcome"];
    assert_eq!(
        (outcome["manifests_before"].as_u64(), outcome["manifests_after"].as_u64()),
        (Some(120), Some(1))
    );
    let after = pyiceberg(d, &["manifests", "--table", t]);
    assert_eq!(data_manifests(&after), 1);
    assert_eq!(entries(&after), entries(&before));
    assert_changes_no_file(&before, &after);
    let now = pyiceberg(d, &["scan", "--table", t]);
    assert_eq!((&now["rows"], &now["checksum"]), (&rows["rows"], &rows["checksum"]));
}

mod hostile {
    //! Random layouts: two partition specs (PyIceberg evolves day → hour + identity), random appends
    //! under the current spec, random thresholds; the rewrite must keep the live file set and every
    //! file's sequence numbers and snapshot id, and both engines' rows. (Delete files: see
    //! `delete_files_keep_applying_after_the_rewrite`; the helper cannot write them into this table.)

    use proptest::prelude::*;

    use super::*;

    fn case(old_spec_appends: u32, appends: Vec<(u32, u64)>, target: u64, min_count: u32) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let n = old_spec_appends.to_string();
        pyiceberg(d, &["kind", "--kind", "respec", "--table", T, "--rows", "7", "--appends", &n]);
        for (rows, seed) in &appends {
            pyiceberg(d, &["append", "--table", T, "--rows", &rows.to_string(), "--seed", &seed.to_string()]);
        }
        set_props(
            d,
            &[
                &format!("commit.manifest.min-count-to-merge={min_count}"),
                &format!("commit.manifest.target-size-bytes={target}"),
            ],
        );
        let before = inspect(d, None);
        let ours = tokio_block(our_entries(d));
        let (rows, duck) = scan(d, None);
        assert_eq!(rows, duck);
        let r = tokio_block(pass(d, Mode::Execute));
        assert!(!matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
        let after = inspect(d, None);
        assert_eq!(entries(&after), entries(&before), "{r:#?}");
        assert_eq!(tokio_block(our_entries(d)), ours);
        if r.status == TableStatus::Succeeded {
            assert_changes_no_file(&before, &after);
        }
        // Every data manifest holds the entries of one spec.
        for m in after["manifests"].as_array().unwrap() {
            assert!(m["spec_id"] == 0 || m["spec_id"] == 1, "{m:#}");
        }
        assert_eq!(scan(d, None), (rows.clone(), rows));
    }

    fn tokio_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(f)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5, ..ProptestConfig::default() })]
        #[test]
        fn random_layouts_keep_every_live_file_and_its_sequence_numbers(
            old_spec_appends in 1..4u32,
            appends in proptest::collection::vec((1..20u32, 0..1000u64), 0..6),
            target in 1024..65_536u64,
            min_count in 0..4u32,
        ) {
            case(old_spec_appends, appends, target, min_count);
        }
    }
}

mod backends {
    //! The rewrite on every backend pair of the matrix (SQLite or PostgreSQL × local files or S3).

    use signaldb_compactor::catalog::Access;

    use super::*;
    use crate::matrix::Backend;

    async fn rewrite_on(backend: &Backend) {
        let name = backend.name();
        backend.pyiceberg(&["create", "--table", T, "--rows", "6", "--appends", "12"]);
        backend.pyiceberg(&["props", "--table", T, "--set", "commit.manifest.min-count-to-merge=10"]);
        let before = backend.pyiceberg(&["manifests", "--table", T]);
        let rows = backend.pyiceberg(&["scan", "--table", T]);
        assert_eq!(data_manifests(&before), 12, "{name}");
        let ctx = backend.context(Access::ReadWrite, before_the_data(), |_| {}).await;
        let report = CompactionJob::new(&ctx)
            .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
            .await;
        let r = report.unwrap().tables.into_iter().find(|r| r.table == T).unwrap();
        assert_eq!(r.status, TableStatus::Succeeded, "{name}: {r:#?}");
        assert_eq!((outcome(&r).manifests_before, outcome(&r).manifests_after), (12, 1), "{name}: {r:#?}");
        let after = backend.pyiceberg(&["manifests", "--table", T]);
        assert_eq!(data_manifests(&after), 1, "{name}");
        assert_eq!(entries(&after), entries(&before), "{name}");
        assert_changes_no_file(&before, &after);
        let now = backend.pyiceberg(&["scan", "--table", T]);
        assert_eq!((&now["rows"], &now["checksum"]), (&rows["rows"], &rows["checksum"]), "{name}");
        backend.readers_agree(&ctx, "a manifest rewrite").await;
    }

    #[tokio::test]
    async fn manifest_rewrite_on_sqlite_and_local_files() {
        rewrite_on(&Backend::new(false, false).await).await;
    }

    #[tokio::test]
    async fn manifest_rewrite_on_sqlite_and_s3() {
        rewrite_on(&Backend::new(false, true).await).await;
    }

    #[tokio::test]
    async fn manifest_rewrite_on_postgresql_and_local_files() {
        rewrite_on(&Backend::new(true, false).await).await;
    }

    #[tokio::test]
    async fn manifest_rewrite_on_postgresql_and_s3() {
        rewrite_on(&Backend::new(true, true).await).await;
    }
}
