//! Kinds of Iceberg table that once broke compaction (issue 12). Each is written by PyIceberg in several
//! appends, compacted, and then read by PyIceberg and by DuckDB: both engines must return exactly the
//! rows PyIceberg returned before compaction (content checksum), and filtered scans must agree.

use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{Job, PartitionStatus, PassRequest, TableReport, TableStatus};
use tokio_util::sync::CancellationToken;

use crate::support::{context, duckdb, pyiceberg};

/// Creates a table of `kind` (see `pyiceberg_tool.py kind`) named `table`.
fn create(dir: &std::path::Path, kind: &str, table: &str, extra: &[&str]) {
    let files = dir.join("imports");
    let mut args = vec!["kind", "--kind", kind, "--table", table, "--rows", "40", "--appends", "3"];
    args.extend(["--files-dir", files.to_str().unwrap()]);
    args.extend(extra);
    pyiceberg(dir, &args);
}

/// One compaction pass over the directory's catalog (every partition closed; two files are enough).
async fn compact(dir: &std::path::Path) -> Vec<TableReport> {
    let ctx = context(dir, chrono::Utc::now(), |c| c.compaction.min_input_files = 2).await;
    let report = CompactionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    report.tables
}

/// Both engines read exactly `before`'s rows (optionally through a filter: PyIceberg's and SQL's).
fn assert_both_engines_read(
    dir: &std::path::Path,
    table: &str,
    before: &serde_json::Value,
    filter: Option<(&str, &str)>,
) {
    let (py, duck) = match filter {
        Some((py_filter, sql)) => (
            pyiceberg(dir, &["scan", "--table", table, "--filter", py_filter]),
            duckdb(dir, &["scan", "--table", table, "--filter", sql]),
        ),
        None => (pyiceberg(dir, &["scan", "--table", table]), duckdb(dir, &["scan", "--table", table])),
    };
    assert_eq!(py["rows"], before["rows"], "{table} {filter:?}: PyIceberg row count");
    assert_eq!(py["checksum"], before["checksum"], "{table} {filter:?}: PyIceberg rows");
    assert_eq!(duck["rows"], before["rows"], "{table} {filter:?}: DuckDB row count");
    assert_eq!(duck["checksum"], before["checksum"], "{table} {filter:?}: DuckDB rows");
}

fn scan(dir: &std::path::Path, table: &str, filter: Option<&str>) -> serde_json::Value {
    match filter {
        Some(f) => pyiceberg(dir, &["scan", "--table", table, "--filter", f]),
        None => pyiceberg(dir, &["scan", "--table", table]),
    }
}

async fn metadata_location(dir: &std::path::Path, table_name: &str) -> String {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.join("catalog.db").display())).await.unwrap();
    sqlx::query_scalar("SELECT metadata_location FROM iceberg_tables WHERE table_name = ?")
        .bind(table_name)
        .fetch_one(&pool)
        .await
        .unwrap()
}

fn succeeded(reports: &[TableReport], table: &str) -> TableReport {
    let r = reports.iter().find(|r| r.table == table).unwrap().clone();
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    r
}

#[tokio::test]
async fn files_without_field_ids_are_read_through_the_name_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let t = "kinds.mapped.logs";
    // Five plain Parquet files, columns in another order than the table's, one column dropped between.
    create(dir.path(), "add-files", t, &[]);
    let before = scan(dir.path(), t, None);
    assert_eq!(before["files"], 5);
    succeeded(&compact(dir.path()).await, t);
    let after = scan(dir.path(), t, None);
    assert_eq!((after["operation"].as_str(), after["files"].as_u64()), (Some("replace"), Some(1)));
    assert_both_engines_read(dir.path(), t, &before, None);
    let api = scan(dir.path(), t, Some("service_name == 'api'"));
    assert_both_engines_read(dir.path(), t, &api, Some(("service_name == 'api'", "service_name = 'api'")));
}

#[tokio::test]
async fn files_without_field_ids_or_name_mapping_are_skipped_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let t = "kinds.unmapped.logs";
    create(dir.path(), "add-files", t, &["--drop-mapping"]);
    let before = metadata_location(dir.path(), "logs").await;
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    assert_eq!(r.partition_reports.len(), 1, "{r:#?}");
    assert_eq!(r.partition_reports[0].status, PartitionStatus::Skipped { reason: "no_field_ids".into() });
    assert_eq!(r.status, TableStatus::Unchanged, "a skip is not a failure");
    assert_eq!(metadata_location(dir.path(), "logs").await, before, "nothing committed");
    let data = crate::support::snapshot_bytes(&dir.path().join("warehouse/kinds.unmapped/logs"));
    assert!(data.iter().all(|(p, _)| !p.to_string_lossy().contains("/data/")), "nothing written: {data:?}");
}

#[tokio::test]
async fn partitions_are_grouped_by_typed_value_not_by_label() {
    let dir = tempfile::tempdir().unwrap();
    let t = "kinds.truncated.events";
    // truncate(4, s): "null"/"nullable" → partition "null"; NULL → partition NULL; "other" → "othe".
    create(dir.path(), "truncate-null", t, &[]);
    let before = scan(dir.path(), t, None);
    let nulls = scan(dir.path(), t, Some("s is null"));
    let strings = scan(dir.path(), t, Some("s == 'null'"));
    assert!(nulls["rows"].as_u64().unwrap() > 0 && strings["rows"].as_u64().unwrap() > 0);
    let r = succeeded(&compact(dir.path()).await, t);
    assert_eq!(r.partitions, 3, "{r:#?}");
    assert_eq!(scan(dir.path(), t, None)["files"], 3, "one file per partition");
    assert_both_engines_read(dir.path(), t, &before, None);
    assert_both_engines_read(dir.path(), t, &nulls, Some(("s is null", "s IS NULL")));
    assert_both_engines_read(dir.path(), t, &strings, Some(("s == 'null'", "s = 'null'")));
}

#[tokio::test]
async fn identity_partitions_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let t = "kinds.identity.events";
    // identity(region) with NULL, '', 'null', '/', unicode and a plain value: six partitions.
    create(dir.path(), "identity", t, &[]);
    let before = scan(dir.path(), t, None);
    let r = succeeded(&compact(dir.path()).await, t);
    assert_eq!(r.partitions, 6, "{r:#?}");
    assert_eq!(scan(dir.path(), t, None)["files"], 6);
    assert_both_engines_read(dir.path(), t, &before, None);
    for (py, sql) in [
        ("region is null", "region IS NULL"),
        ("region == 'null'", "region = 'null'"),
        ("region == ''", "region = ''"),
        ("region == '/'", "region = '/'"),
    ] {
        let expected = {
            let all = crate::support::pyiceberg(dir.path(), &["scan", "--table", t, "--filter", py]);
            assert!(all["rows"].as_u64().unwrap() > 0, "{py}");
            all
        };
        assert_both_engines_read(dir.path(), t, &expected, Some((py, sql)));
    }
}

#[tokio::test]
async fn a_partition_source_promoted_from_int_to_long_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let t = "kinds.promoted.events";
    // identity(n), n: int → long between appends: old partition tuples hold ints, new ones longs.
    create(dir.path(), "promote", t, &[]);
    let before = scan(dir.path(), t, None);
    let r = succeeded(&compact(dir.path()).await, t);
    assert_eq!(r.partitions, 2, "int 0 and long 0 are one partition: {r:#?}");
    assert_eq!(scan(dir.path(), t, None)["files"], 2);
    assert_both_engines_read(dir.path(), t, &before, None);
    let ones = scan(dir.path(), t, Some("n == 1"));
    assert_both_engines_read(dir.path(), t, &ones, Some(("n == 1", "n = 1")));
}

#[tokio::test]
async fn fields_added_inside_struct_list_and_map_values_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let t = "kinds.nested.events";
    create(dir.path(), "nested", t, &[]);
    let before = scan(dir.path(), t, None);
    succeeded(&compact(dir.path()).await, t);
    assert_eq!(scan(dir.path(), t, None)["files"], 1);
    assert_both_engines_read(dir.path(), t, &before, None);
}
