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

/// With 3 appends on each side of the schema change (6 files), and with 6 (12 files: more than the
/// footers a rewrite reads at a time, eight, so each file's read schema must still line up with its
/// file; a new file read with an old file's pruned schema would lose its added values).
#[tokio::test]
async fn fields_added_inside_struct_list_and_map_values_are_kept() {
    for appends in [3, 6] {
        let dir = tempfile::tempdir().unwrap();
        let t = "kinds.nested.events";
        create(dir.path(), "nested", t, &["--appends", &appends.to_string()]);
        let before = scan(dir.path(), t, None);
        assert_eq!(before["files"], 2 * appends);
        let r = succeeded(&compact(dir.path()).await, t);
        assert_eq!(r.files_before, 2 * appends as u64, "{r:#?}");
        assert_eq!(scan(dir.path(), t, None)["files"], 1);
        assert_both_engines_read(dir.path(), t, &before, None);
    }
}

/// Under the smallest target a table may set (64 KiB) batches of a table with structs, lists and
/// maps are written in pieces, each copying its rows of the nested columns (`columns::rows`): both
/// engines read the same rows afterwards, and every file's manifest counts match the file.
#[tokio::test]
async fn nested_columns_written_in_pieces_for_a_small_target_keep_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let t = "kinds.nested.pieces";
    create(dir.path(), "nested", t, &["--rows", "1500"]);
    pyiceberg(
        dir.path(),
        &["props", "--table", t, "--set", "signaldb.compactor.target-file-size-bytes=65536"],
    );
    let before = scan(dir.path(), t, None);
    let r = succeeded(&compact(dir.path()).await, t);
    assert_eq!(r.files_before, 6, "{r:#?}");
    assert_both_engines_read(dir.path(), t, &before, None);
    assert_stats_match_files(dir.path(), t).await;
}

/// Every live data file's manifest statistics match the file itself: record count, and the null count
/// of every column the manifest has one for and the footer carries a statistic for (local warehouse).
async fn assert_stats_match_files(dir: &std::path::Path, table: &str) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let ctx = context(dir, chrono::Utc::now(), |_| {}).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == table).unwrap();
    let inventory =
        signaldb_compactor::table::Inventory::load(&ctx.catalog.load(&t).await.unwrap()).await.unwrap();
    for f in &inventory.data {
        let path = f.path().trim_start_matches("file://");
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let md = reader.metadata();
        assert_eq!(md.file_metadata().num_rows() as u64, f.records(), "{path}: record count");
        let mut nulls: std::collections::HashMap<i32, Option<u64>> = std::collections::HashMap::new();
        for rg in md.row_groups() {
            for c in rg.columns() {
                let info = c.column_descr().self_type().get_basic_info();
                if !info.has_id() || c.column_descr().max_rep_level() > 0 {
                    continue;
                }
                let n = c.statistics().and_then(|s| s.null_count_opt());
                let e = nulls.entry(info.id()).or_insert(Some(0));
                *e = e.zip(n).map(|(a, b)| a + b);
            }
        }
        for (id, want) in f.entry.data_file().null_value_counts() {
            if let Some(Some(have)) = nulls.get(id) {
                assert_eq!(have, want, "{path}: null count of field {id}");
            }
        }
    }
}

#[tokio::test]
async fn spec_coverage_every_type_evolution_and_spec_in_v1_and_v2() {
    // Every primitive type; add, rename, drop, promote; nested add, rename, drop; specs day(ts) →
    // hour(tstz) + bucket(4, id) → month(d) + truncate(2, s2) + year(created) (v1: the first two, see
    // the helper); every partition written by several appends.
    let filters = [
        ("s2 is null", "s2 IS NULL"),
        ("s2 == 'null'", "s2 = 'null'"),
        ("s2 == ''", "s2 = ''"),
        ("id < 25", "id < 25"),
        ("n == 7", "n = 7"),
        ("ts >= '2026-01-16T00:00:00'", "ts >= TIMESTAMP '2026-01-16 00:00:00'"),
        ("b == true", "b = true"),
        ("d is null", "d IS NULL"),
    ];
    for version in ["1", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let t = format!("kinds.evolved.v{version}");
        create(dir.path(), "evolved", &t, &["--format-version", version]);
        let before = scan(dir.path(), &t, None);
        let filtered: Vec<_> = filters.iter().map(|(py, _)| scan(dir.path(), &t, Some(py))).collect();
        let r = succeeded(&compact(dir.path()).await, &t);
        // A partition with a single file (some id buckets) is below the threshold; none may fail.
        let failed: Vec<_> = r
            .partition_reports
            .iter()
            .filter(|p| matches!(p.status, PartitionStatus::Failed { .. }))
            .collect();
        assert!(failed.is_empty(), "v{version}: {failed:#?}");
        let (_, ok, _, _) = r.partition_counts();
        assert!(ok >= 10, "v{version}: partitions of every spec compacted: {r:#?}");
        let after = scan(dir.path(), &t, None);
        assert!(after["files"].as_u64() < before["files"].as_u64(), "v{version}: {before} → {after}");
        assert_both_engines_read(dir.path(), &t, &before, None);
        for ((py, sql), expected) in filters.iter().zip(&filtered) {
            assert_both_engines_read(dir.path(), &t, expected, Some((py, sql)));
        }
        assert_stats_match_files(dir.path(), &t).await;
    }
}

#[tokio::test]
async fn retention_drops_partitions_of_a_promoted_source_without_panicking() {
    use signaldb_compactor::retention::RetentionJob;
    let dir = tempfile::tempdir().unwrap();
    // A traces table (7 days of retention once enabled): day(timestamp) + identity(n), n promoted from
    // int to long; half the rows are from 2026-01-15, half from half an hour ago.
    let t = "promoted.prod.traces";
    create(dir.path(), "promote-timed", t, &[]);
    let kept = scan(dir.path(), t, Some("timestamp >= '2026-02-01T00:00:00'"));
    assert_eq!(kept["rows"], 120, "{kept}");
    let ctx = context(dir.path(), chrono::Utc::now(), |c| {
        c.retention.enabled = true;
        c.retention.mode = Mode::Execute;
    })
    .await;
    let report = RetentionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    let r = report.tables.iter().find(|r| r.table == t).unwrap();
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    assert_eq!(scan(dir.path(), t, None)["operation"], "delete");
    assert_both_engines_read(dir.path(), t, &kept, None);
}
