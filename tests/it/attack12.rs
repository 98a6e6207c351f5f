//! Hostile review of issue 12: tables on which compaction still changes rows or fails.

use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{Job, PartitionStatus, PassRequest, TableReport, TableStatus};
use tokio_util::sync::CancellationToken;

use crate::support::{context, duckdb, pyiceberg};

fn create(dir: &std::path::Path, kind: &str, table: &str, extra: &[&str]) {
    let files = dir.join("imports");
    let mut args = vec!["kind", "--kind", kind, "--table", table, "--rows", "20", "--appends", "3"];
    args.extend(["--files-dir", files.to_str().unwrap()]);
    args.extend(extra);
    pyiceberg(dir, &args);
}

async fn compact(dir: &std::path::Path) -> Vec<TableReport> {
    let ctx = context(dir, chrono::Utc::now(), |c| c.compaction.min_input_files = 2).await;
    CompactionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap()
        .tables
}

fn scan(dir: &std::path::Path, table: &str, filter: Option<&str>) -> serde_json::Value {
    match filter {
        Some(f) => pyiceberg(dir, &["scan", "--table", table, "--filter", f]),
        None => pyiceberg(dir, &["scan", "--table", table]),
    }
}

/// Problems (empty: none) after compaction: the table report, and both engines' rows vs `before`.
fn problems(
    dir: &std::path::Path,
    reports: &[TableReport],
    table: &str,
    before: &serde_json::Value,
) -> Vec<String> {
    let mut out = Vec::new();
    let r = reports.iter().find(|r| r.table == table).unwrap();
    for p in &r.partition_reports {
        if let PartitionStatus::Failed { error } = &p.status {
            out.push(format!("{table} partition {} failed: {error}", p.partition));
        }
    }
    if !matches!(r.status, TableStatus::Succeeded) {
        out.push(format!("{table}: status {:?}", r.status));
    }
    let py = scan(dir, table, None);
    if (&py["rows"], &py["checksum"]) != (&before["rows"], &before["checksum"]) {
        out.push(format!("{table}: PyIceberg reads other rows after compaction: {before} -> {py}"));
    }
    let duck = duckdb(dir, &["scan", "--table", table]);
    if (&duck["rows"], &duck["checksum"]) != (&before["rows"], &before["checksum"]) {
        out.push(format!("{table}: DuckDB reads other rows after compaction: {before} -> {duck}"));
    }
    out
}

/// identity(f: double) with partitions -0.0 and +0.0 (Java and PyIceberg keep them apart). Typed
/// `Literal` equality (OrderedFloat) says -0.0 == +0.0, so both land in one group and the reader fills
/// `f` from the group's one partition constant: half the rows change sign.
#[tokio::test]
async fn attack_identity_double_minus_zero_and_zero_partitions_keep_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.zero.events";
    create(dir.path(), "identity-zero", t, &[]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}\n{:#?}", reports);
}

/// identity partitions on every primitive type PyIceberg can partition by.
#[tokio::test]
#[ignore = "open: time/timestamp/timestamptz/fixed identity partitions and huge double values fail every pass (nothing committed)"]
async fn attack_identity_partitions_of_every_primitive_type() {
    let types = [
        "bool", "int", "long", "float", "double", "dec", "bigdec", "date", "time", "ts", "tstz", "string",
        "fixed", "binary",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut befores = Vec::new();
    for ty in types {
        let t = format!("attack.ident.{ty}");
        create(dir.path(), "identity-types", &t, &["--type-name", ty]);
        befores.push((t.clone(), scan(dir.path(), &t, None)));
    }
    let reports = compact(dir.path()).await;
    let mut all = Vec::new();
    for (t, before) in &befores {
        all.extend(problems(dir.path(), &reports, t, before));
    }
    assert!(all.is_empty(), "{all:#?}");
}

/// float -> double and decimal(9,2) -> decimal(20,2) (both legal v2 promotions).
#[tokio::test]
async fn attack_promoted_float_and_decimal_columns() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.promote.more";
    create(dir.path(), "promote-more", t, &[]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}");
}

/// int -> long inside a struct, a list element and a map value.
#[tokio::test]
async fn attack_nested_int_to_long_promotions() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.promote.nested";
    create(dir.path(), "nested-promote", t, &[]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}");
}

/// Plain Parquet with struct/list<struct>/map columns, nested fields in another order, name mapping.
#[tokio::test]
#[ignore = "open: add_files Parquet with list<struct>/map columns fails every pass through the name mapping (nothing committed)"]
async fn attack_nested_files_without_field_ids_through_the_name_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.mapped.nested";
    create(dir.path(), "add-files-nested", t, &[]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}");
}

/// Both engines, full and filtered, read the same rows after compaction as PyIceberg did before.
fn filtered_problems(
    dir: &std::path::Path,
    table: &str,
    filters: &[(&str, &str)],
    befores: &[(serde_json::Value, serde_json::Value)],
) -> Vec<String> {
    let mut out = Vec::new();
    for ((py, sql), (before, duck_before)) in filters.iter().zip(befores) {
        let p = scan(dir, table, Some(py));
        if (&p["rows"], &p["checksum"]) != (&before["rows"], &before["checksum"]) {
            out.push(format!("PyIceberg `{py}`: {} rows before, {} after", before["rows"], p["rows"]));
        }
        let d = duckdb(dir, &["scan", "--table", table, "--filter", sql]);
        if (&d["rows"], &d["checksum"]) != (&duck_before["rows"], &duck_before["checksum"]) {
            out.push(format!("DuckDB `{sql}`: {} rows before, {} after", duck_before["rows"], d["rows"]));
        }
    }
    out
}

/// NaN-only, NULL-only, +-inf, -0.0/+0.0 and long/unicode strings: after compaction the statistics
/// the compactor wrote decide which files filtered scans read; they must not prune matching rows.
#[tokio::test]
async fn attack_float_edge_statistics_keep_filtered_scans_right() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.floats.edges";
    create(dir.path(), "float-edges", t, &[]);
    let filters = [
        ("f > 0", "f > 0"),
        ("f < 0", "f < 0"),
        ("f == 0", "f = 0"),
        ("d > 0", "d > 0"),
        ("d < 0", "d < 0"),
        ("d >= 1", "d >= 1"),
        ("f is null", "f IS NULL"),
        ("f is not null", "f IS NOT NULL"),
        ("d is nan", "isnan(d)"),
        ("f is nan", "isnan(f)"),
        ("s > 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'", "s > 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"),
        ("s >= 'x'", "s >= 'x'"),
    ];
    let before = scan(dir.path(), t, None);
    let befores: Vec<_> = filters
        .iter()
        .map(|(py, sql)| {
            (scan(dir.path(), t, Some(py)), duckdb(dir.path(), &["scan", "--table", t, "--filter", sql]))
        })
        .collect();
    let reports = compact(dir.path()).await;
    let mut p = problems(dir.path(), &reports, t, &before);
    p.extend(filtered_problems(dir.path(), t, &filters, &befores));
    assert!(p.is_empty(), "{p:#?}");
}

/// identity partition on a field inside a struct.
#[tokio::test]
async fn attack_identity_partition_on_a_struct_field() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.nested.identity";
    create(dir.path(), "nested-identity", t, &[]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}");
}

/// A name mapping that gives one field id two names, on files without field ids or statistics:
/// PyIceberg resolves `a`/`b` one way; the compactor must read them the same way (or skip), since
/// no statistic can catch the difference.
#[tokio::test]
async fn attack_name_mapping_with_two_names_for_one_id_reads_as_pyiceberg_does() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.mapped.dup";
    let mapping =
        r#"[{"field-id":1,"names":["id"]},{"field-id":2,"names":["a","b"]},{"field-id":3,"names":["c"]}]"#;
    create(dir.path(), "add-files-nostats", t, &["--mapping-json", mapping]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    let after = scan(dir.path(), t, None);
    assert_eq!(
        (&after["rows"], &after["checksum"]),
        (&before["rows"], &before["checksum"]),
        "PyIceberg reads other rows after compaction: {r:#?}"
    );
}

/// An identity partition value with path separators and `..` must not place compacted files outside
/// the table's data directory (where another table's orphan cleanup would own them).
#[tokio::test]
#[ignore = "open: an identity value with `..` is not escaped in the output path; the object store refuses it and the partition fails every pass (nothing escapes, nothing committed)"]
async fn attack_identity_values_with_dot_dot_keep_outputs_inside_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.traversal.events";
    create(dir.path(), "identity-types", t, &["--type-name", "traversal"]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}");
    let ctx = context(dir.path(), chrono::Utc::now(), |_| {}).await;
    let tr = ctx.catalog.discover().await.unwrap().into_iter().find(|x| x.qualified() == t).unwrap();
    let table = ctx.catalog.load(&tr).await.unwrap();
    let location = table.metadata().location().to_string();
    let inventory = signaldb_compactor::table::Inventory::load(&table).await.unwrap();
    let mut outside = Vec::new();
    for f in &inventory.data {
        let local = std::path::Path::new(f.path().trim_start_matches("file://"));
        let mut norm = std::path::PathBuf::new();
        for c in local.components() {
            match c {
                std::path::Component::ParentDir => {
                    norm.pop();
                }
                other => norm.push(other),
            }
        }
        let loc = std::path::Path::new(location.trim_start_matches("file://")).join("data");
        if !norm.starts_with(&loc) {
            outside.push(format!("{} -> {}", f.path(), norm.display()));
        }
    }
    assert!(outside.is_empty(), "live files outside {location}/data: {outside:#?}");
}

/// A position delete file written under an all-void spec (a v1 table whose identity field was removed,
/// then upgraded to v2) is global in Java's DeleteFileIndex (`spec.isUnpartitioned()` ignores void
/// fields), and DuckDB applies it too. The compactor only treats a delete as global when its partition
/// tuple has no fields, so it compacts the k=1 partition of the old spec: the deleted rows come back.
#[tokio::test]
async fn attack_position_deletes_of_an_all_void_spec_are_not_resurrected() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.voiddel.events";
    create(dir.path(), "void-spec-position-delete", t, &["--type-name", "truncate"]);
    let duck_before = duckdb(dir.path(), &["scan", "--table", t]);
    assert_eq!(duck_before["rows"], 55, "DuckDB applies the delete: 60 rows - 5");
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    let duck_after = duckdb(dir.path(), &["scan", "--table", t]);
    eprintln!("report: {r:#?}\nafter: {}", scan(dir.path(), t, None));
    assert_eq!(
        (&duck_after["rows"], &duck_after["checksum"]),
        (&duck_before["rows"], &duck_before["checksum"]),
        "deleted rows resurrected by compaction: {r:#?}"
    );
}

/// The content-invariant safety net misses a real column swap: the inputs' upper bounds of two
/// one-character string columns differ ("m" vs "z", untruncated: shorter than 16), but upper bounds
/// are compared on all but their last character, i.e. not at all. The swapped rows are committed.
#[tokio::test]
async fn attack_invariant_check_catches_a_swap_of_short_string_columns() {
    use signaldb_compactor::failpoint;
    let dir = tempfile::tempdir().unwrap();
    let t = "attackswap.short.codes";
    create(dir.path(), "short-strings", t, &[]);
    let before = scan(dir.path(), t, None);
    failpoint::arm(failpoint::COMPACTION_SWAP_COLUMNS, t);
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    let after = scan(dir.path(), t, None);
    assert_eq!(
        (&after["checksum"], &after["operation"]),
        (&before["checksum"], &before["operation"]),
        "swapped columns were committed: {r:#?}"
    );
}

/// A v1 table whose identity partition field was removed (PyIceberg keeps it as `void`, named like the
/// column) cannot be compacted at all: iceberg-rust refuses to bind the spec, every pass fails.
#[tokio::test]
#[ignore = "open: iceberg-rust refuses the v1 void field PyIceberg names like its column; fails every pass instead of a counted skip"]
async fn attack_v1_table_with_a_removed_identity_partition_field_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.voidident.events";
    create(dir.path(), "void-spec-position-delete", t, &["--type-name", "identity"]);
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    assert!(!matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
}

/// Reorder (top level and in a struct), rename then re-add under the old name (top level and in a
/// struct), required -> optional, with a sort order on the renamed column: rows kept, filters agree,
/// and a file claiming the sort order is sorted by it.
#[tokio::test]
#[ignore = "open: such partitions are skipped (`nested_layout_changed`, see nested_layout_changes_are_skipped_not_swapped) rather than compacted"]
async fn attack_reorder_rename_readd_and_sort_claim() {
    use arrow_array::Array;
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.reshape.events";
    create(dir.path(), "reshape", t, &[]);
    let filters = [
        ("code is null", "code IS NULL"),
        ("old_code < 0", "old_code < 0"),
        ("code == 85", "code = 85"),
        ("st.x is null", "st.x IS NULL"),
        ("st.x_old < 0", "st.x_old < 0"),
    ];
    let before = scan(dir.path(), t, None);
    let befores: Vec<_> = filters
        .iter()
        .map(|(py, sql)| {
            (scan(dir.path(), t, Some(py)), duckdb(dir.path(), &["scan", "--table", t, "--filter", sql]))
        })
        .collect();
    let reports = compact(dir.path()).await;
    let mut p = problems(dir.path(), &reports, t, &before);
    p.extend(filtered_problems(dir.path(), t, &filters, &befores));
    let ctx = context(dir.path(), chrono::Utc::now(), |_| {}).await;
    let tr = ctx.catalog.discover().await.unwrap().into_iter().find(|x| x.qualified() == t).unwrap();
    let table = ctx.catalog.load(&tr).await.unwrap();
    let inventory = signaldb_compactor::table::Inventory::load(&table).await.unwrap();
    for f in &inventory.data {
        if f.entry.data_file().sort_order_id().is_none() {
            continue;
        }
        let file = std::fs::File::open(f.path().trim_start_matches("file://")).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut values: Vec<Option<i64>> = Vec::new();
        for b in reader {
            let b = b.unwrap();
            let c = b.column_by_name("old_code").unwrap();
            let c = c.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            values.extend((0..c.len()).map(|i| (!c.is_null(i)).then(|| c.value(i))));
        }
        let mut sorted = values.clone();
        sorted.sort();
        if values != sorted {
            p.push(format!(
                "{} claims sort order {:?} but old_code is not sorted",
                f.path(),
                f.entry.data_file().sort_order_id()
            ));
        }
    }
    assert!(p.is_empty(), "{p:#?}");
}

/// The same table written with `write.metadata.metrics.default=none` (a supported Iceberg setting; no
/// column statistics in the manifests): the content invariants have nothing to compare, and the
/// nested rename + re-add + reorder is committed with the values moved from `st.x_old` to `st.x`.
#[tokio::test]
async fn attack_nested_rename_readd_without_column_metrics_is_not_committed_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.reshape.nometrics";
    create(dir.path(), "reshape", t, &["--type-name", "nometrics"]);
    let before = scan(dir.path(), t, None);
    let x_old = scan(dir.path(), t, Some("st.x_old is null"));
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap().clone();
    let after = scan(dir.path(), t, None);
    let x_old_after = scan(dir.path(), t, Some("st.x_old is null"));
    assert_eq!(
        (&after["checksum"], &x_old_after["rows"]),
        (&before["checksum"], &x_old["rows"]),
        "rows changed by compaction ({} -> {}): {r:#?}",
        before["operation"],
        after["operation"]
    );
}

/// The same reshaping inside a list<struct> element and a map value struct, with default metrics: the
/// content invariants skip columns inside lists and maps, so nothing stops a wrong commit.
#[tokio::test]
#[ignore = "open: such partitions are skipped (`nested_layout_changed`, see nested_layout_changes_are_skipped_not_swapped) rather than compacted"]
async fn attack_list_and_map_struct_rename_reorder_readd_keep_values() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.reshape.lists";
    create(dir.path(), "reshape-list", t, &[]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}");
}

/// A compacted file with several row groups: its manifest's split offsets must be the row groups'
/// start offsets (Java and Spark plan splits by them), column sizes and value counts the footer's.
#[tokio::test]
async fn attack_split_offsets_and_column_stats_of_multi_row_group_outputs() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.big.traces";
    let files = dir.path().join("imports");
    pyiceberg(
        dir.path(),
        &[
            "kind",
            "--kind",
            "promote-more",
            "--table",
            t,
            "--rows",
            "80000",
            "--appends",
            "2",
            "--files-dir",
            files.to_str().unwrap(),
        ],
    );
    let before = scan(dir.path(), t, None);
    let ctx = context(dir.path(), chrono::Utc::now(), |c| c.compaction.min_input_files = 2).await;
    let report = CompactionJob::new(&ctx)
        .run_once(&PassRequest { full: true, ..PassRequest::all(Mode::Execute) }, &CancellationToken::new())
        .await
        .unwrap();
    let mut p = problems(dir.path(), &report.tables, t, &before);
    let tr = ctx.catalog.discover().await.unwrap().into_iter().find(|x| x.qualified() == t).unwrap();
    let table = ctx.catalog.load(&tr).await.unwrap();
    let inventory = signaldb_compactor::table::Inventory::load(&table).await.unwrap();
    let mut multi = 0;
    for f in &inventory.data {
        let reader =
            SerializedFileReader::new(std::fs::File::open(f.path().trim_start_matches("file://")).unwrap())
                .unwrap();
        let md = reader.metadata();
        let starts: Vec<i64> = md
            .row_groups()
            .iter()
            .map(|rg| {
                let c = rg.column(0);
                c.dictionary_page_offset().unwrap_or(c.data_page_offset())
            })
            .collect();
        if starts.len() > 1 {
            multi += 1;
        }
        let df = f.entry.data_file();
        if df.split_offsets().map(<[i64]>::to_vec) != Some(starts.clone()) {
            p.push(format!(
                "{}: split offsets {:?}, row groups start at {:?}",
                f.path(),
                df.split_offsets(),
                starts
            ));
        }
        let mut sizes: std::collections::HashMap<i32, u64> = Default::default();
        let mut values: std::collections::HashMap<i32, u64> = Default::default();
        for rg in md.row_groups() {
            for c in rg.columns() {
                let id = c.column_descr().self_type().get_basic_info().id();
                *sizes.entry(id).or_default() += c.compressed_size() as u64;
                *values.entry(id).or_default() += rg.num_rows() as u64;
            }
        }
        for (id, v) in df.value_counts() {
            if values.get(id) != Some(v) {
                p.push(format!(
                    "{}: value count of {id}: manifest {v}, footer {:?}",
                    f.path(),
                    values.get(id)
                ));
            }
        }
        for (id, v) in df.column_sizes() {
            if sizes.get(id) != Some(v) {
                p.push(format!(
                    "{}: column size of {id}: manifest {v}, footer {:?}",
                    f.path(),
                    sizes.get(id)
                ));
            }
        }
    }
    assert!(multi > 0, "no multi-row-group output: {report:#?}");
    assert!(p.is_empty(), "{p:#?}");
}

/// A group whose rewrite fails part-way (here: the writer rejects the reader's identity constant for a
/// `time` column after a file was opened) must leave no written-but-uncommitted files behind.
#[tokio::test]
async fn attack_a_failed_rewrite_leaves_no_output_files() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.failing.events";
    create(dir.path(), "identity-types", t, &["--type-name", "time"]);
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    assert!(matches!(r.status, TableStatus::Failed { .. }), "the rewrite is expected to fail: {r:#?}");
    let left: Vec<_> = crate::support::snapshot_bytes(&dir.path().join("warehouse"))
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("/compact-"))
        .collect();
    assert!(left.is_empty(), "uncommitted outputs left behind: {left:#?}");
}

/// Files of an old spec whose source column has since been dropped: PyIceberg reads the table; after
/// compaction both engines must still read it, with the same rows.
#[tokio::test]
#[ignore = "open: partitions of an old spec whose source column was dropped fail every pass instead of a counted skip"]
async fn attack_old_spec_with_a_dropped_source_column() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.dropped.source";
    create(dir.path(), "dropped-partition-source", t, &[]);
    // DuckDB cannot read this table even before compaction (a DuckDB limitation): PyIceberg only.
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    let after = scan(dir.path(), t, None);
    assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]), "{r:#?}");
    assert!(!matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
}

/// float -> double and decimal(9,2) -> decimal(20,2): filtered scans agree before and after.
#[tokio::test]
async fn attack_promoted_columns_filtered_scans_agree() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.promote.filters";
    create(dir.path(), "promote-more", t, &[]);
    let filters = [
        ("f > 10.5", "f > 10.5"),
        ("f == 1.5", "f = 1.5"),
        ("dec > 20.34", "dec > 20.34"),
        ("dec == 12.34", "dec = 12.34"),
        ("dec < 13", "dec < 13"),
    ];
    let before = scan(dir.path(), t, None);
    let befores: Vec<_> = filters
        .iter()
        .map(|(py, sql)| {
            (scan(dir.path(), t, Some(py)), duckdb(dir.path(), &["scan", "--table", t, "--filter", sql]))
        })
        .collect();
    let reports = compact(dir.path()).await;
    let mut p = problems(dir.path(), &reports, t, &before);
    p.extend(filtered_problems(dir.path(), t, &filters, &befores));
    assert!(p.is_empty(), "{p:#?}");
}

/// A top-level struct whose child was renamed and then moved (two longs of the same range), default
/// metrics, no list or map: iceberg-rust casts the file's struct {x, y} to {y, x_old} by position
/// (the names differ), so x and y trade values; the statistics of both columns are alike, so the
/// content invariants pass and the swap is committed.
#[tokio::test]
#[ignore = "open: such partitions are skipped (`nested_layout_changed`, see nested_layout_changes_are_skipped_not_swapped) rather than compacted"]
async fn attack_struct_child_renamed_and_moved_keeps_values() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.struct.moved";
    create(dir.path(), "struct-move-rename", t, &[]);
    let before = scan(dir.path(), t, None);
    let reports = compact(dir.path()).await;
    let p = problems(dir.path(), &reports, t, &before);
    assert!(p.is_empty(), "{p:#?}");
}

/// The reshaped nested layouts above (a struct child renamed and moved; rename, re-add and reorder in a
/// struct, a list element and a map value): iceberg 0.10.1's struct cast would pair their children by
/// position, so those partitions are skipped (`nested_layout_changed`), nothing is committed, and both
/// engines read exactly the rows they read before.
#[tokio::test]
async fn nested_layout_changes_are_skipped_not_swapped() {
    for (kind, t, args) in [
        ("struct-move-rename", "attack.struct.moved", &[][..]),
        ("reshape", "attack.reshape.events", &[][..]),
        ("reshape-list", "attack.reshape.lists", &[][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), kind, t, args);
        let before = scan(dir.path(), t, None);
        let duck_before = duckdb(dir.path(), &["scan", "--table", t]);
        let reports = compact(dir.path()).await;
        let r = reports.iter().find(|r| r.table == t).unwrap();
        assert!(!matches!(r.status, TableStatus::Failed { .. }), "{t}: {r:#?}");
        assert!(
            r.partition_reports.iter().any(
                |p| matches!(&p.status, PartitionStatus::Skipped { reason } if reason == "nested_layout_changed")
            ),
            "{t}: {r:#?}"
        );
        assert!(
            r.partition_reports.iter().all(|p| !matches!(p.status, PartitionStatus::Succeeded)),
            "{t}: nothing of a reshaped layout is rewritten: {r:#?}"
        );
        let after = scan(dir.path(), t, None);
        assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]), "{t}");
        let duck = duckdb(dir.path(), &["scan", "--table", t]);
        assert_eq!(
            (&duck["rows"], &duck["checksum"]),
            (&duck_before["rows"], &duck_before["checksum"]),
            "{t}"
        );
    }
}

// ---- Second hostile review (2026-12-08): equality deletes iceberg-rust's reader cannot apply exactly.

/// DuckDB's rows of `t` before and after one compaction pass, and the pass's failed partitions.
async fn duckdb_rows_across_a_pass(dir: &std::path::Path, t: &str) -> (serde_json::Value, serde_json::Value) {
    let before = duckdb(dir, &["scan", "--table", t]);
    let reports = compact(dir).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    for p in &r.partition_reports {
        assert!(!matches!(p.status, PartitionStatus::Failed { .. }), "{r:#?}");
    }
    (before, duckdb(dir, &["scan", "--table", t]))
}

/// An equality delete on a column promoted int → long (values 5 and 3,000,000,000) or float → double
/// (0.1). iceberg-rust's reader casts the delete's values to the type the file was written in before
/// promoting the file's column: 3,000,000,000 becomes NULL and `id != NULL` dropped all 30 rows; 0.1
/// became 0.1f and deleted a row no Java reader deletes. The delete was then removed as applied.
#[tokio::test]
async fn attack_equality_deletes_on_promoted_columns_keep_their_rows() {
    for (kind, expected) in [("int", 29), ("float", 30)] {
        let dir = tempfile::tempdir().unwrap();
        let t = "attack.promoted.events";
        pyiceberg(
            dir.path(),
            &[
                "kind",
                "--kind",
                "eqdelete-promoted",
                "--table",
                t,
                "--rows",
                "10",
                "--appends",
                "3",
                "--type-name",
                kind,
            ],
        );
        let (before, after) = duckdb_rows_across_a_pass(dir.path(), t).await;
        assert_eq!(before["rows"], expected, "{kind}: DuckDB compares in the table's type");
        assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]), "{kind}");
    }
}

/// An equality delete committed under an all-void spec (a v1 table whose truncate field was removed,
/// then upgraded) is global, as Java's `isUnpartitioned` says. Its partition tuple (one null) made it
/// look like a delete of the void-spec partition only: the old spec's files were compacted without
/// it and it was removed, so 5 deleted rows came back.
#[tokio::test]
async fn attack_equality_deletes_of_an_all_void_spec_are_not_resurrected() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.voideq.events";
    pyiceberg(
        dir.path(),
        &["kind", "--kind", "void-spec-eqdelete", "--table", t, "--rows", "10", "--appends", "3"],
    );
    let (before, after) = duckdb_rows_across_a_pass(dir.path(), t).await;
    assert_eq!(before["rows"], 42, "50 rows, 8 deleted across both specs");
    assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]));
}

/// The same delete against a file imported with `id` stored as INT32 into a table whose `id` was
/// always a long: no schema of the table says `int`, only the file's footer does (the same happens
/// when the pre-promotion schema was expired). The group is left alone.
#[tokio::test]
async fn attack_equality_deletes_against_an_imported_narrower_column_keep_their_rows() {
    // Also an `int` column stored as INT32 annotated INT(16) (a Spark ShortType import): the same
    // physical type, but the reader casts the delete's 70000 to Int16.
    for stored in ["int32-in-long", "int16"] {
        let dir = tempfile::tempdir().unwrap();
        let t = "attack.narrow.events";
        pyiceberg(
            dir.path(),
            &[
                "kind",
                "--kind",
                "eqdelete-narrow-import",
                "--table",
                t,
                "--rows",
                "10",
                "--appends",
                "2",
                "--type-name",
                stored,
            ],
        );
        let (before, after) = duckdb_rows_across_a_pass(dir.path(), t).await;
        assert_eq!(before["rows"], 29, "{stored}: DuckDB compares in the table's type");
        assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]), "{stored}");
    }
}

/// The void-spec position delete of the test above, with data files of the void spec itself (older
/// than the delete) and an append after it. PyIceberg attaches a position delete only to files of its
/// own spec and partition: rewriting the void partition (outputs newer than the delete) would leave
/// it attached to nothing and bring its rows back there. The partition the delete crosses out of is
/// kept as it is; both engines read what they read before.
#[tokio::test]
async fn attack_position_deletes_of_an_all_void_spec_with_void_data_files_keep_every_view() {
    let dir = tempfile::tempdir().unwrap();
    let t = "attack.voidmixed.events";
    create(dir.path(), "void-spec-position-delete", t, &["--type-name", "truncate-mixed"]);
    let py_before = scan(dir.path(), t, None);
    let duck_before = duckdb(dir.path(), &["scan", "--table", t]);
    let reports = compact(dir.path()).await;
    let r = reports.iter().find(|r| r.table == t).unwrap();
    assert!(!matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
    let (py, duck) = (scan(dir.path(), t, None), duckdb(dir.path(), &["scan", "--table", t]));
    assert_eq!(
        (&py["rows"], &py["checksum"]),
        (&py_before["rows"], &py_before["checksum"]),
        "PyIceberg: {r:#?}"
    );
    assert_eq!(
        (&duck["rows"], &duck["checksum"]),
        (&duck_before["rows"], &duck_before["checksum"]),
        "DuckDB"
    );
}
