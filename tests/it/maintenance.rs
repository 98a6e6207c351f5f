//! Issue 15: maintenance completeness — size bounds both ways, per-table switches as table
//! properties, rewriting older-spec files into the current spec. Tables are written by PyIceberg (an
//! independent writer), compacted, and read back by PyIceberg and DuckDB with identical rows.

use std::path::Path;

use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{Config, Mode};
use signaldb_compactor::job::{Job, PartitionStatus, PassRequest, TableReport, TableStatus};
use tokio_util::sync::CancellationToken;

use crate::support::{context, duckdb, pyiceberg};

/// Live data files of `table` as PyIceberg plans them: (path, size, records, spec id, partition).
fn files(dir: &Path, table: &str) -> Vec<serde_json::Value> {
    pyiceberg(dir, &["files", "--table", table])["files"].as_array().unwrap().clone()
}

fn size(f: &serde_json::Value) -> u64 {
    f["size"].as_u64().unwrap()
}

fn path(f: &serde_json::Value) -> &str {
    f["path"].as_str().unwrap()
}

/// One compaction pass in `mode` over the directory's catalog; `tweak` adjusts the configuration.
async fn compact(dir: &Path, mode: Mode, tweak: impl FnOnce(&mut Config)) -> Vec<TableReport> {
    compact_with(dir, PassRequest::all(mode), tweak).await
}

async fn compact_with(dir: &Path, request: PassRequest, tweak: impl FnOnce(&mut Config)) -> Vec<TableReport> {
    let ctx = context(dir, chrono::Utc::now(), tweak).await;
    CompactionJob::new(&ctx).run_once(&request, &CancellationToken::new()).await.unwrap().tables
}

fn report<'a>(reports: &'a [TableReport], table: &str) -> &'a TableReport {
    reports.iter().find(|r| r.table == table).unwrap_or_else(|| panic!("{table} not in {reports:#?}"))
}

/// Both engines read exactly `before`'s rows.
fn assert_both_engines_read(dir: &Path, table: &str, before: &serde_json::Value) {
    let py = pyiceberg(dir, &["scan", "--table", table]);
    let duck = duckdb(dir, &["scan", "--table", table]);
    assert_eq!((&py["rows"], &py["checksum"]), (&before["rows"], &before["checksum"]), "{table}: PyIceberg");
    assert_eq!((&duck["rows"], &duck["checksum"]), (&before["rows"], &before["checksum"]), "{table}: DuckDB");
}

#[tokio::test]
async fn an_oversized_file_is_split_into_target_size_files_and_one_below_the_maximum_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = "maint.sizes.traces";
    // One file of 20,000 rows in one hour, one of 4,000 rows in another.
    pyiceberg(d, &["kind", "--kind", "sizes", "--table", t, "--sizes", "20000,4000"]);
    let start = files(d, t);
    assert_eq!(start.len(), 2);
    let big = start.iter().max_by_key(|f| size(f)).unwrap().clone();
    let medium = start.iter().min_by_key(|f| size(f)).unwrap().clone();
    // The medium file is 140 % of the target (between the target and the 180 % maximum); the big
    // one is far above the maximum.
    let target = size(&medium) * 100 / 140;
    let max = target / 100 * 180;
    assert!(size(&big) > 3 * target, "{big} vs target {target}");
    pyiceberg(d, &["props", "--table", t, "--set", &format!("write.target-file-size-bytes={target}")]);
    let before = pyiceberg(d, &["scan", "--table", t]);

    // The plan says which file is picked and why.
    let plan = compact(d, Mode::DryRun, |_| {}).await;
    let r = report(&plan, t);
    let planned: Vec<_> =
        r.partition_reports.iter().filter(|p| p.status == PartitionStatus::Planned).collect();
    assert_eq!(planned.len(), 1, "{r:#?}");
    assert_eq!(planned[0].picked.len(), 1);
    assert_eq!((planned[0].picked[0].path.as_str(), planned[0].picked[0].reason), (path(&big), "oversized"));
    let json = serde_json::to_value(r).unwrap();
    let picked = &json["partition_reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "planned")
        .unwrap()["picked"];
    assert_eq!(picked[0]["reason"], "oversized", "{json:#}");
    assert!(r.details.iter().any(|l| l.contains("oversized 1")), "{:?}", r.details);
    assert_eq!(files(d, t), start, "a dry run changes nothing");

    let reports = compact(d, Mode::Execute, |_| {}).await;
    assert_eq!(report(&reports, t).status, TableStatus::Succeeded, "{reports:#?}");
    let after = files(d, t);
    assert!(after.iter().any(|f| path(f) == path(&medium)), "the file below the maximum is left alone");
    assert!(!after.iter().any(|f| path(f) == path(&big)), "the oversized file is replaced");
    let pieces: Vec<_> = after.iter().filter(|f| f["partition"] == big["partition"]).collect();
    assert!(pieces.len() >= 3, "split into target-size files: {pieces:#?}");
    assert_eq!(pieces.iter().map(|f| f["records"].as_u64().unwrap()).sum::<u64>(), 20_000);
    eprintln!(
        "split {} bytes (target {target}, max {max}) into {:?}",
        size(&big),
        pieces.iter().map(|f| size(f)).collect::<Vec<_>>()
    );
    for f in &pieces {
        assert!(
            size(f) <= max,
            "a piece of {} bytes is oversized itself (target {target}): {pieces:#?}",
            size(f)
        );
    }
    assert_both_engines_read(d, t, &before);

    // Stable: the pieces are neither oversized nor enough small files to merge again.
    let again = compact(d, Mode::Execute, |_| {}).await;
    assert_eq!(report(&again, t).status, TableStatus::Unchanged, "{again:#?}");
    assert_eq!(files(d, t), after);
}

// ---- item 6: per-table switches as table properties (set by PyIceberg) ----------------------------

async fn metadata_location(dir: &Path, table_name: &str) -> String {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.join("catalog.db").display())).await.unwrap();
    sqlx::query_scalar("SELECT metadata_location FROM iceberg_tables WHERE table_name = ?")
        .bind(table_name)
        .fetch_one(&pool)
        .await
        .unwrap()
}

fn set_props(dir: &Path, table: &str, pairs: &[&str]) {
    let mut args = vec!["props", "--table", table];
    for p in pairs {
        args.extend(["--set", p]);
    }
    pyiceberg(dir, &args);
}

/// Compaction (every partition closed, two files enough), retention (traces kept 7 days: the table's
/// January data is long expired) and orphan cleanup, each one pass in execute mode.
async fn every_job(dir: &Path) -> [Vec<TableReport>; 3] {
    let compaction = compact(dir, Mode::Execute, |c| c.compaction.min_input_files = 2).await;
    let ctx = context(dir, chrono::Utc::now(), |c| {
        c.retention.enabled = true;
        c.retention.mode = Mode::Execute;
        c.retention.policy.global.traces = Some(signaldb_compactor::config::retention::RetentionValue::For(
            std::time::Duration::from_secs(7 * 86400),
        ));
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
    })
    .await;
    let request = PassRequest::all(Mode::Execute);
    let cancel = CancellationToken::new();
    let retention =
        signaldb_compactor::retention::RetentionJob::new(&ctx).run_once(&request, &cancel).await.unwrap();
    let orphans =
        signaldb_compactor::orphans::OrphanJob::new(&ctx).run_once(&request, &cancel).await.unwrap();
    [compaction, retention.tables, orphans.tables]
}

/// A file nothing references, three days old, in the table's data directory.
fn plant_orphan(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("warehouse/acme.prod/traces/data/orphan-old.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not referenced by anything").unwrap();
    let touched = std::process::Command::new("touch").args(["-d", "3 days ago"]).arg(&path).status().unwrap();
    assert!(touched.success());
    path
}

#[tokio::test]
async fn enabled_false_excludes_the_table_from_every_job_that_changes_it_and_bad_values_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = "acme.prod.traces";
    pyiceberg(d, &["create", "--table", t, "--rows", "50", "--appends", "4"]);
    let orphan = plant_orphan(d);
    let before = pyiceberg(d, &["scan", "--table", t]);
    let pointer = metadata_location(d, "traces").await;

    for (value, reason) in [
        ("false", "disabled_by_table_property: signaldb.compactor.enabled = false"),
        ("perhaps", "invalid_table_property: table property signaldb.compactor.enabled = \"perhaps\""),
    ] {
        set_props(d, t, &[&format!("signaldb.compactor.enabled={value}")]);
        let pointer = metadata_location(d, "traces").await;
        for (job, reports) in ["compaction", "retention", "orphans"].iter().zip(every_job(d).await) {
            let r = report(&reports, t);
            match &r.status {
                TableStatus::Skipped { reason: got } => assert!(got.starts_with(reason), "{job}: {got}"),
                other => panic!("{job} with enabled={value}: {other:?}"),
            }
        }
        assert_eq!(metadata_location(d, "traces").await, pointer, "enabled={value}: nothing committed");
        assert!(orphan.exists(), "enabled={value}: nothing deleted");
        assert_both_engines_read(d, t, &before);
    }
    // A typo in the namespace is no silent no-op either.
    set_props(d, t, &["signaldb.compactor.enabled=true", "signaldb.compactor.enable=false"]);
    let reports = compact(d, Mode::Execute, |c| c.compaction.min_input_files = 2).await;
    assert!(
        matches!(&report(&reports, t).status, TableStatus::Skipped { reason } if reason.contains("signaldb.compactor.enable ")),
        "{reports:#?}"
    );
    assert_ne!(metadata_location(d, "traces").await, pointer, "the property commits moved the pointer");

    // Enabled again (explicitly): compaction works on the same table.
    pyiceberg(d, &["props", "--table", t, "--unset", "signaldb.compactor.enable"]);
    let reports = compact(d, Mode::Execute, |c| c.compaction.min_input_files = 2).await;
    assert_eq!(report(&reports, t).status, TableStatus::Succeeded, "{reports:#?}");
    assert_both_engines_read(d, t, &before);
}

#[tokio::test]
async fn the_table_target_file_size_property_wins_over_write_target_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = "maint.sizes.traces";
    pyiceberg(d, &["kind", "--kind", "sizes", "--table", t, "--sizes", "20000,4000"]);
    let start = files(d, t);
    let big = start.iter().max_by_key(|f| size(f)).unwrap().clone();
    // Under Iceberg's own property (1 MiB) nothing is oversized or small enough in numbers.
    set_props(d, t, &["write.target-file-size-bytes=1048576"]);
    let reports = compact(d, Mode::Execute, |_| {}).await;
    assert_eq!(report(&reports, t).status, TableStatus::Unchanged, "{reports:#?}");
    // Ours (128 KiB) wins: the big file is now oversized and split under 180 % of 128 KiB.
    set_props(d, t, &["signaldb.compactor.target-file-size-bytes=131072"]);
    let before = pyiceberg(d, &["scan", "--table", t]);
    let reports = compact(d, Mode::Execute, |_| {}).await;
    assert_eq!(report(&reports, t).status, TableStatus::Succeeded, "{reports:#?}");
    let pieces: Vec<_> = files(d, t).into_iter().filter(|f| f["partition"] == big["partition"]).collect();
    assert!(pieces.len() >= 3, "{pieces:#?}");
    assert!(pieces.iter().all(|f| size(f) <= 131_072 / 100 * 180), "{pieces:#?}");
    assert_both_engines_read(d, t, &before);
    // Out of bounds: the table is skipped, naming the property and value.
    set_props(d, t, &["signaldb.compactor.target-file-size-bytes=100"]);
    let reports = compact(d, Mode::Execute, |_| {}).await;
    assert!(
        matches!(&report(&reports, t).status, TableStatus::Skipped { reason }
            if reason.contains("signaldb.compactor.target-file-size-bytes = \"100\"")),
        "{reports:#?}"
    );
}

#[tokio::test]
async fn the_table_retention_property_is_the_most_specific_level() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Both hold January data; the configuration keeps traces 7 days and names no policy for `audit`.
    pyiceberg(d, &["create", "--table", "acme.prod.traces", "--rows", "30", "--appends", "2"]);
    pyiceberg(d, &["create", "--table", "acme.prod.audit", "--rows", "30", "--appends", "2"]);
    set_props(d, "acme.prod.traces", &["signaldb.compactor.retention=forever"]);
    set_props(d, "acme.prod.audit", &["signaldb.compactor.retention=30d"]);
    let traces = pyiceberg(d, &["scan", "--table", "acme.prod.traces"]);
    let [_, retention, _] = every_job(d).await;
    let kept = report(&retention, "acme.prod.traces");
    assert_eq!(kept.status, TableStatus::Unchanged, "forever beats the global 7 days: {kept:#?}");
    assert_both_engines_read(d, "acme.prod.traces", &traces);
    let dropped = report(&retention, "acme.prod.audit");
    assert_eq!(
        dropped.status,
        TableStatus::Succeeded,
        "30d applies to a table no policy names: {dropped:#?}"
    );
    let empty = serde_json::json!({"rows": 0, "checksum": pyiceberg(d, &["scan", "--table", "acme.prod.audit"])["checksum"]});
    assert_eq!(empty["checksum"], "0000000000000000");
    assert_both_engines_read(d, "acme.prod.audit", &empty);
    // A retention that does not parse skips the table (nothing dropped), naming the property.
    set_props(d, "acme.prod.traces", &["signaldb.compactor.retention=a fortnight"]);
    let [_, retention, _] = every_job(d).await;
    assert!(
        matches!(&report(&retention, "acme.prod.traces").status, TableStatus::Skipped { reason }
            if reason.contains("signaldb.compactor.retention = \"a fortnight\"")),
        "{retention:#?}"
    );
    assert_both_engines_read(d, "acme.prod.traces", &traces);
}

// ---- item 5: rewriting older-spec files under the current spec ----------------------------------

fn specs(dir: &Path, table: &str) -> std::collections::BTreeMap<i64, usize> {
    let mut out = std::collections::BTreeMap::new();
    for f in files(dir, table) {
        *out.entry(f["spec_id"].as_i64().unwrap()).or_insert(0) += 1;
    }
    out
}

fn assert_engines_agree_filtered(
    dir: &Path,
    table: &str,
    py_filter: &str,
    sql: &str,
    before: &serde_json::Value,
) {
    let py = pyiceberg(dir, &["scan", "--table", table, "--filter", py_filter]);
    let duck = duckdb(dir, &["scan", "--table", table, "--filter", sql]);
    assert_eq!(
        (&py["rows"], &py["checksum"]),
        (&before["rows"], &before["checksum"]),
        "{table} {sql}: PyIceberg"
    );
    assert_eq!(
        (&duck["rows"], &duck["checksum"]),
        (&before["rows"], &before["checksum"]),
        "{table} {sql}: DuckDB"
    );
}

#[tokio::test]
async fn files_of_an_older_spec_are_rewritten_under_the_current_spec_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = "maint.respec.traces";
    // day(timestamp) for three appends, then PyIceberg evolves the spec to hour(timestamp) +
    // identity(service_name) and appends three more.
    pyiceberg(d, &["kind", "--kind", "respec", "--table", t, "--rows", "60", "--appends", "3"]);
    let start = specs(d, t);
    assert_eq!(start.get(&0), Some(&3), "three files of the old spec: {start:?}");
    let before = pyiceberg(d, &["scan", "--table", t]);
    let api = pyiceberg(d, &["scan", "--table", t, "--filter", "service_name == 'api'"]);

    // Off by default: the old spec's partition is compacted within its own spec.
    let reports = compact(d, Mode::Execute, |c| c.compaction.min_input_files = 2).await;
    assert_eq!(report(&reports, t).status, TableStatus::Succeeded, "{reports:#?}");
    let after_default = specs(d, t);
    assert_eq!(after_default.get(&0), Some(&1), "compacted under the old spec: {after_default:?}");
    assert_both_engines_read(d, t, &before);

    // Opt in: the plan says old_spec, and every old-spec file moves into the current spec.
    let plan = compact(d, Mode::DryRun, |c| c.compaction.rewrite_to_current_spec = true).await;
    let r = report(&plan, t);
    let picked: Vec<_> = r.partition_reports.iter().flat_map(|p| &p.picked).collect();
    assert_eq!(picked.len(), 1, "{r:#?}");
    assert_eq!(picked[0].reason, "old_spec");
    assert!(r.details.iter().any(|l| l.contains("under the current partition spec")), "{:?}", r.details);
    let reports = compact(d, Mode::Execute, |c| c.compaction.rewrite_to_current_spec = true).await;
    assert_eq!(report(&reports, t).status, TableStatus::Succeeded, "{reports:#?}");
    let moved = specs(d, t);
    assert_eq!(moved.get(&0), None, "no file of the old spec is left: {moved:?}");
    // The old day's rows fan out into hour × service partitions of the current spec.
    let current: Vec<_> =
        files(d, t).into_iter().filter(|f| f["partition"].as_array().unwrap().len() == 2).collect();
    assert!(current.len() >= 9 + after_default.get(&1).copied().unwrap_or(0) / 2, "{current:#?}");
    assert_both_engines_read(d, t, &before);
    assert_engines_agree_filtered(d, t, "service_name == 'api'", "service_name = 'api'", &api);
    // Nothing is left to move: the next pass is a no-op.
    let again = compact(d, Mode::Execute, |c| c.compaction.rewrite_to_current_spec = true).await;
    assert_eq!(report(&again, t).status, TableStatus::Unchanged, "{again:#?}");
}

#[tokio::test]
async fn full_rewrites_the_named_old_spec_partition_under_the_current_spec() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = "maint.respec.logs";
    pyiceberg(d, &["kind", "--kind", "respec", "--table", t, "--rows", "40", "--appends", "2"]);
    let before = pyiceberg(d, &["scan", "--table", t]);
    let request = PassRequest {
        full: true,
        partitions: vec!["timestamp_day=2026-01-15".into()],
        ..PassRequest::all(Mode::Execute)
    };
    let reports = compact_with(d, request, |_| {}).await;
    let r = report(&reports, t);
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    assert_eq!(r.partition_reports.len(), 1, "only the named partition: {r:#?}");
    assert_eq!(specs(d, t).get(&0), None, "the old spec's files moved");
    assert_both_engines_read(d, t, &before);
}

#[tokio::test]
async fn every_type_and_evolved_specs_move_into_the_current_spec_with_identical_rows() {
    // v2: three specs (day; hour + bucket; month + truncate + year); v1: two (the removed field stays
    // as a void transform in the current spec).
    // In v1 every old-spec partition is one of the held ones below: nothing moves, nothing fails.
    for (version, current, status) in [("2", 2, TableStatus::Succeeded), ("1", 1, TableStatus::Unchanged)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = format!("maint.evolved.v{version}");
        let t = t.as_str();
        // Every primitive type, schema evolution, specs evolved by PyIceberg with files under each
        // (tests/helpers/pyiceberg_tool.py kind_evolved).
        pyiceberg(
            d,
            &[
                "kind",
                "--kind",
                "evolved",
                "--table",
                t,
                "--rows",
                "40",
                "--appends",
                "3",
                "--format-version",
                version,
            ],
        );
        assert_eq!(specs(d, t).len() as i64, current + 1, "{:?}", specs(d, t));
        let before = pyiceberg(d, &["scan", "--table", t]);
        let filters = [("s2 is null", "s2 IS NULL"), ("id < 25", "id < 25"), ("d is null", "d IS NULL")];
        let filtered: Vec<_> =
            filters.iter().map(|(py, _)| pyiceberg(d, &["scan", "--table", t, "--filter", py])).collect();
        let reports = compact(d, Mode::Execute, |c| c.compaction.rewrite_to_current_spec = true).await;
        let r = report(&reports, t);
        let failed: Vec<_> = r
            .partition_reports
            .iter()
            .filter(|p| matches!(p.status, PartitionStatus::Failed { .. }))
            .collect();
        assert!(failed.is_empty(), "v{version}: {failed:#?}");
        assert_eq!(r.status, status, "v{version}: {r:#?}");
        // Spec 1's files (v2) all move. Spec 0's were written before a nested field was renamed: those
        // partitions keep the documented `nested_layout_changed` skip (read by position, values could
        // move between the struct's fields), and so stay where they are.
        let after = specs(d, t);
        assert!(after.keys().all(|&s| s == 0 || s == current), "v{version}: {after:?}");
        let held: Vec<_> = r
            .partition_reports
            .iter()
            .filter(|p| p.partition.starts_with("ts_day=") && !p.partition.contains("tstz_hour"))
            .collect();
        assert!(
            held.iter()
                .all(|p| p.status == PartitionStatus::Skipped { reason: "nested_layout_changed".into() }),
            "v{version}: {held:#?}"
        );
        assert_eq!(
            after.get(&0).copied().unwrap_or(0) as u64,
            held.iter().map(|p| p.files_before).sum::<u64>()
        );
        assert_both_engines_read(d, t, &before);
        for ((py, sql), expected) in filters.iter().zip(&filtered) {
            assert_engines_agree_filtered(d, t, py, sql, expected);
        }
    }
}

#[tokio::test]
async fn a_table_disabled_between_rewrite_and_commit_gets_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let t = "acme.prod.traces";
    pyiceberg(&d, &["create", "--table", t, "--rows", "50", "--appends", "4"]);
    let before = pyiceberg(&d, &["scan", "--table", t]);
    let ctx = context(&d, chrono::Utc::now(), |c| c.compaction.min_input_files = 2).await;
    // The operator sets enabled=false (through PyIceberg) after the group's files are written.
    let hook_dir = d.clone();
    let hook: signaldb_compactor::job::BeforeCommitHook = std::sync::Arc::new(move |_label| {
        let dir = hook_dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                set_props(&dir, "acme.prod.traces", &["signaldb.compactor.enabled=false"]);
            })
            .await
            .unwrap();
        }) as futures::future::BoxFuture<'static, ()>
    });
    let job = CompactionJob::new(&ctx).with_before_commit(hook);
    let report = job.run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new()).await.unwrap();
    let r = report.tables.iter().find(|r| r.table == t).unwrap();
    assert!(!r.partition_reports.is_empty());
    for p in &r.partition_reports {
        assert!(
            matches!(&p.status, PartitionStatus::Skipped { reason } if reason.starts_with("abandoned")
                && reason.contains("signaldb.compactor.enabled = false")),
            "{p:#?}"
        );
    }
    let after = pyiceberg(&d, &["scan", "--table", t]);
    assert_eq!(after["operation"], before["operation"], "no replace snapshot landed");
    assert_eq!(after["files"], before["files"]);
    assert_both_engines_read(&d, t, &before);
    // The abandoned outputs were deleted again: only the inputs are in the data directory.
    let written: Vec<_> = walk(&d.join("warehouse/acme.prod/traces/data"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("compact-"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// ---- item 1: deletes applied while rewriting ----------------------------------------------------

/// Live data files with a delete applying to them (as PyIceberg plans the table).
fn files_with_deletes(dir: &Path, table: &str) -> usize {
    files(dir, table).iter().filter(|f| f["deletes"].as_u64().unwrap() > 0).count()
}

#[tokio::test]
async fn position_deletes_are_applied_by_the_rewrite_and_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = "acme.prod.traces";
    pyiceberg(d, &["create", "--table", t, "--rows", "60", "--appends", "3"]);
    let full = pyiceberg(d, &["scan", "--table", t]);
    // One delete file (written the way merge-on-read writers do; PyIceberg 0.12 itself falls back to
    // copy-on-write) deleting the first five rows of two files of the first hour.
    let deleted = pyiceberg(d, &["posdelete", "--table", t, "--count", "5"]);
    assert_eq!(deleted["deleted"], 10);
    let before = pyiceberg(d, &["scan", "--table", t]);
    assert_eq!(before["rows"].as_u64().unwrap(), full["rows"].as_u64().unwrap() - 10);
    assert_both_engines_read(d, t, &before);
    // PyIceberg attaches the delete to every file of the hour its sequence number covers.
    assert!(files_with_deletes(d, t) >= 2);
    let hour: Vec<_> = files(d, t).into_iter().filter(|f| f["deletes"].as_u64().unwrap() > 0).collect();
    let partition = hour[0]["partition"].clone();

    let plan = compact(d, Mode::DryRun, |c| c.compaction.min_input_files = 2).await;
    let reasons: Vec<&str> =
        report(&plan, t).partition_reports.iter().flat_map(|p| &p.picked).map(|f| f.reason).collect();
    assert!(reasons.contains(&"deletes"), "{reasons:?}");

    let reports = compact(d, Mode::Execute, |c| c.compaction.min_input_files = 2).await;
    let r = report(&reports, t);
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    assert!(r.partition_reports.iter().all(|p| p.status == PartitionStatus::Succeeded), "{r:#?}");
    // The rows the delete removed stay removed, in both engines; no delete file is live any more.
    assert_both_engines_read(d, t, &before);
    assert_eq!(files_with_deletes(d, t), 0, "the applied delete file left with its targets");
    let after: Vec<_> = files(d, t).into_iter().filter(|f| f["partition"] == partition).collect();
    assert_eq!(after.len(), 1, "{after:#?}");
    let hour_rows: u64 = pyiceberg(d, &["files", "--table", t])["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["partition"] == partition)
        .map(|f| f["records"].as_u64().unwrap())
        .sum();
    assert_eq!(after[0]["records"].as_u64().unwrap(), hour_rows);
    let again = compact(d, Mode::Execute, |c| c.compaction.min_input_files = 2).await;
    assert_eq!(report(&again, t).status, TableStatus::Unchanged, "{again:#?}");
    assert_both_engines_read(d, t, &before);
}

#[tokio::test]
async fn a_position_delete_committed_between_rewrite_and_commit_is_never_resurrected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let t = "acme.prod.traces";
    pyiceberg(&d, &["create", "--table", t, "--rows", "60", "--appends", "3"]);
    // Deletes already there when the pass starts are applied; one more arrives mid-pass.
    pyiceberg(&d, &["posdelete", "--table", t, "--count", "3"]);
    let start = files(&d, t);
    let before = pyiceberg(&d, &["scan", "--table", t]);
    let ctx = context(&d, chrono::Utc::now(), |c| c.compaction.min_input_files = 2).await;
    let hook_dir = d.clone();
    let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook_fired = fired.clone();
    let victim = start.iter().find(|f| f["deletes"] == 0).unwrap()["path"].as_str().unwrap().to_string();
    let victim_partition = start.iter().find(|f| path(f) == victim).unwrap()["partition"].clone();
    let hook: signaldb_compactor::job::BeforeCommitHook = std::sync::Arc::new(move |_label| {
        let (dir, fired, victim) = (hook_dir.clone(), hook_fired.clone(), victim.clone());
        Box::pin(async move {
            if !fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
                tokio::task::spawn_blocking(move || {
                    pyiceberg(
                        &dir,
                        &["posdelete", "--table", "acme.prod.traces", "--targets", &victim, "--count", "7"],
                    );
                })
                .await
                .unwrap();
            }
        }) as futures::future::BoxFuture<'static, ()>
    });
    let job = CompactionJob::new(&ctx).with_before_commit(hook);
    let report_ = job.run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new()).await.unwrap();
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
    let r = report_.tables.iter().find(|r| r.table == t).unwrap();
    // The seven rows deleted mid-pass stay deleted (the victim had no delete before), in both engines.
    let after = pyiceberg(&d, &["scan", "--table", t]);
    assert_eq!(after["rows"].as_u64().unwrap(), before["rows"].as_u64().unwrap() - 7, "{r:#?}");
    assert_both_engines_read(&d, t, &after);
    let now = files(&d, t);
    let victim_now: Vec<_> = now.iter().filter(|f| f["partition"] == victim_partition).collect();
    assert!(
        victim_now.iter().any(|f| f["deletes"].as_u64().unwrap() > 0),
        "the mid-pass delete still applies in its partition: {victim_now:#?} {r:#?}"
    );
    assert!(
        r.partition_reports.iter().any(|p| matches!(&p.status, PartitionStatus::Skipped { reason }
            if reason.starts_with("abandoned") && reason.contains("committed to the partition meanwhile"))),
        "{r:#?}"
    );
}

#[tokio::test]
async fn equality_deletes_are_applied_only_to_older_rows_and_then_removed() {
    // Without and with the deleted rows appended again after the delete (newer: they must survive).
    for reinsert in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = "acme.prod.traces";
        pyiceberg(d, &["create", "--table", t, "--rows", "60", "--appends", "3"]);
        let full = duckdb(d, &["scan", "--table", t]);
        let mut args = vec!["eqdelete", "--table", t, "--count", "4"];
        if reinsert {
            args.push("--reinsert");
        }
        pyiceberg(d, &args);
        // PyIceberg 0.12 cannot read equality deletes; DuckDB is the reader before.
        let before = duckdb(d, &["scan", "--table", t]);
        let expected_rows = full["rows"].as_u64().unwrap() - if reinsert { 0 } else { 4 };
        assert_eq!(before["rows"].as_u64().unwrap(), expected_rows);
        if reinsert {
            assert_eq!(before["checksum"], full["checksum"], "the reinserted rows are back");
        }
        let reports = compact(d, Mode::Execute, |c| c.compaction.min_input_files = 2).await;
        let r = report(&reports, t);
        assert_eq!(r.status, TableStatus::Succeeded, "reinsert={reinsert}: {r:#?}");
        // The delete no longer applies to any live file and is gone: PyIceberg can read the table again,
        // and both engines read exactly the rows DuckDB read before.
        assert_eq!(files_with_deletes(d, t), 0, "reinsert={reinsert}");
        assert_both_engines_read(d, t, &before);
    }
}
