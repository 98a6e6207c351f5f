//! `generate` writes a SignalDB-shaped warehouse that an independent Iceberg implementation reads with
//! exactly the reported row count, reproducibly from its seed.

use iceberg::spec::Transform;

use crate::support::{connect, generate_small, pyiceberg, run_bin, small_options};

#[tokio::test]
async fn generated_tables_are_signaldb_shaped_and_readable_by_pyiceberg() {
    let dir = tempfile::tempdir().unwrap();
    let report = generate_small(dir.path()).await;
    let opts = small_options(dir.path());
    let tables = opts.tenants * opts.datasets * 3;
    let files_per_table = opts.hours as usize * opts.files_per_hour;
    assert_eq!(report.tables, tables);
    assert_eq!(report.files, tables * files_per_table);
    assert_eq!(report.rows, (report.files * opts.rows_per_file) as u64);

    let catalog = connect(dir.path()).await;
    let mut total = 0;
    for t in catalog.discover().await.unwrap() {
        let table = catalog.load(&t).await.unwrap();
        let md = table.metadata();
        let spec = md.default_partition_spec();
        assert_eq!(spec.fields().len(), 1);
        assert_eq!(spec.fields()[0].name, "timestamp_hour");
        assert_eq!(spec.fields()[0].transform, Transform::Hour);
        assert_eq!(md.snapshots().count(), files_per_table, "one fast-append per file");
        assert_eq!(md.properties().get("write.parquet.compression-codec").map(String::as_str), Some("zstd"));
        let sort_columns: Vec<String> = md
            .default_sort_order()
            .fields
            .iter()
            .map(|f| md.current_schema().name_by_field_id(f.source_id).unwrap().to_string())
            .collect();
        let want: &[&str] = match t.table.as_str() {
            "traces" => &["timestamp", "trace_id"],
            "logs" => &["timestamp", "service_name", "severity_text"],
            _ => &["timestamp", "metric_name", "service_name"],
        };
        assert_eq!(sort_columns, want, "sort order of {t}");

        let scan = pyiceberg(dir.path(), &["scan", "--table", &t.qualified()]);
        assert_eq!(scan["rows"], (files_per_table * opts.rows_per_file) as u64, "rows of {t}");
        assert_eq!(scan["operation"], "append");
        total += scan["rows"].as_u64().unwrap();
    }
    assert_eq!(total, report.rows);
}

#[tokio::test]
async fn same_seed_same_rows() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate_small(a.path()).await;
    generate_small(b.path()).await;
    let scan_a = pyiceberg(a.path(), &["scan", "--table", "acme.production.traces"]);
    let scan_b = pyiceberg(b.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!(scan_a["checksum"], scan_b["checksum"]);
    assert_eq!(scan_a["rows"], scan_b["rows"]);
}

#[test]
fn cli_generate_reports_json_and_refuses_an_existing_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("wh");
    let target_s = target.to_str().unwrap();
    let args = [
        "generate",
        "--dir",
        target_s,
        "--tenants",
        "1",
        "--datasets",
        "1",
        "--hours",
        "2",
        "--files-per-hour",
        "2",
        "--rows-per-file",
        "10",
        "--json",
    ];
    let out = run_bin(dir.path(), &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tables"], 3);
    assert_eq!(report["files"], 12);
    assert_eq!(report["rows"], 120);
    let again = run_bin(dir.path(), &args, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a catalog.db"));
}
