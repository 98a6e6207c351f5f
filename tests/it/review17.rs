//! Hostile review 17 of the changes landed without an outside attack: deletes applied while
//! rewriting, sorted-run merging, per-table properties. Tables are written by PyIceberg (an
//! independent writer, deletes committed as merge-on-read writers do), compacted, and read back.

use std::path::Path;

use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{Config, Mode};
use signaldb_compactor::job::{Job, PartitionStatus, PassRequest, TableReport, TableStatus};
use tokio_util::sync::CancellationToken;

use crate::support::{context, duckdb, pyiceberg};

async fn compact(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Vec<TableReport> {
    let ctx = context(dir, chrono::Utc::now(), tweak).await;
    CompactionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap()
        .tables
}

fn report<'a>(reports: &'a [TableReport], table: &str) -> &'a TableReport {
    reports.iter().find(|r| r.table == table).unwrap_or_else(|| panic!("{table} not in {reports:#?}"))
}

fn files(dir: &Path, table: &str) -> Vec<serde_json::Value> {
    pyiceberg(dir, &["files", "--table", table])["files"].as_array().unwrap().clone()
}

fn files_with_deletes(dir: &Path, table: &str) -> usize {
    files(dir, table).iter().filter(|f| f["deletes"].as_u64().unwrap() > 0).count()
}

/// Both engines read exactly `expected`'s rows and checksum.
fn assert_both_engines_read(dir: &Path, table: &str, expected: &serde_json::Value) {
    let py = pyiceberg(dir, &["scan", "--table", table]);
    let duck = duckdb(dir, &["scan", "--table", table]);
    let want = (&expected["rows"], &expected["checksum"]);
    assert_eq!((&py["rows"], &py["checksum"]), want, "{table}: PyIceberg");
    assert_eq!((&duck["rows"], &duck["checksum"]), want, "{table}: DuckDB");
}

// ---- equality deletes meeting NULLs ---------------------------------------------------------------

async fn compact_with(dir: &Path, request: PassRequest) -> Vec<TableReport> {
    let ctx = context(dir, chrono::Utc::now(), |c| c.compaction.min_input_files = 2).await;
    CompactionJob::new(&ctx).run_once(&request, &CancellationToken::new()).await.unwrap().tables
}

/// What each engine reads that differs from `expected` (empty: both read exactly its rows).
fn engines_differ(dir: &Path, table: &str, expected: &serde_json::Value) -> Vec<String> {
    let want = (&expected["rows"], &expected["checksum"]);
    let mut out = Vec::new();
    for (engine, got) in [
        ("PyIceberg", pyiceberg(dir, &["scan", "--table", table])),
        ("DuckDB", duckdb(dir, &["scan", "--table", table])),
    ] {
        if (&got["rows"], &got["checksum"]) != want {
            out.push(format!("{engine} reads {} rows, expected {}", got["rows"], expected["rows"]));
        }
    }
    out
}

/// The table's current metadata file (DuckDB's scan reports it; PyIceberg 0.12 cannot scan a table
/// with equality deletes).
fn pointer(dir: &Path, table: &str) -> serde_json::Value {
    duckdb(dir, &["scan", "--table", table])["metadata_location"].clone()
}

/// iceberg 0.10.1's reader applies an equality delete as the row filter `NOT (c1 = v1 AND …)`. Where a
/// data row's column is NULL that filter is NULL and the row is dropped, and for a file without the
/// column (added after it was written: every value NULL) the filter is `false` for every row. By the
/// spec NULL equals no value: those rows are live, and a rewrite must not drop them. (DuckDB 1.5 also
/// drops NULL rows before compaction, so the expected rows are computed by the helper, not read.)
#[tokio::test]
async fn equality_deletes_never_drop_rows_whose_delete_columns_are_null_or_absent() {
    let mut problems = Vec::new();
    for on in ["k", "kn", "tag"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = "acme.prod.eqnull";
        let expected = pyiceberg(d, &["eqnull", "--table", t, "--rows", "30", "--appends", "3", "--on", on]);
        assert!(expected["rows"].as_u64().unwrap() < expected["total"].as_u64().unwrap(), "{expected}");
        let start = pointer(d, t);
        let reports = compact(d, |c| c.compaction.min_input_files = 2).await;
        let r = report(&reports, t);
        if pointer(d, t) != start {
            // Whatever was committed, both engines read exactly the rows the spec keeps.
            problems.extend(engines_differ(d, t, &expected).into_iter().map(|p| format!("on {on}: {p}")));
            continue;
        }
        // Today: a partition whose files hold NULLs in (or lack) an equality delete's columns is left
        // alone (`has_delete_files`, decided by the read-only look: no lease, no audit row), with
        // nothing committed.
        assert_eq!(pointer(d, t), start, "on {on}: {r:#?}");
        assert_eq!(r.status, TableStatus::Unchanged, "on {on}: {r:#?}");
        let full = compact_with(d, PassRequest { full: true, ..PassRequest::all(Mode::DryRun) }).await;
        let r = report(&full, t);
        assert!(
            r.partition_reports.iter().all(|p| matches!(&p.status,
                PartitionStatus::Skipped { reason } if reason == "has_delete_files")),
            "on {on}: {r:#?}"
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

// ---- position deletes: many row groups, a file that does not exist --------------------------------

/// Files of 7 row groups each (16 rows per group), every 7th row of two files deleted (positions in
/// every row group), plus delete entries naming a file that does not exist: the rewrite drops exactly
/// the deleted rows, and the delete file leaves with its targets.
#[tokio::test]
async fn position_deletes_spread_over_many_row_groups_are_applied_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = "acme.prod.rowgroups";
    pyiceberg(d, &["create", "--table", t, "--rows", "300", "--appends", "3", "--row-group-limit", "16"]);
    let deleted = pyiceberg(d, &["posdelete", "--table", t, "--count", "40", "--every", "7", "--ghost"]);
    let before = pyiceberg(d, &["scan", "--table", t]);
    let full: u64 = files(d, t).iter().map(|f| f["records"].as_u64().unwrap()).sum();
    let real = deleted["deleted"].as_u64().unwrap() - deleted["ghost"].as_u64().unwrap();
    assert!(real > 16, "{deleted}");
    assert_eq!(before["rows"].as_u64().unwrap(), full - real);
    assert_both_engines_read(d, t, &before);

    let reports = compact(d, |c| c.compaction.min_input_files = 2).await;
    let r = report(&reports, t);
    assert_eq!(r.status, TableStatus::Succeeded, "{r:#?}");
    assert!(r.partition_reports.iter().all(|p| p.status == PartitionStatus::Succeeded), "{r:#?}");
    assert_both_engines_read(d, t, &before);
    assert_eq!(files_with_deletes(d, t), 0);
    // Every partition is one file now; the rows match the live ones.
    let after = files(d, t);
    let partitions: std::collections::BTreeSet<_> =
        after.iter().map(|f| f["partition"].to_string()).collect();
    assert_eq!(after.len(), partitions.len(), "{after:#?}");
    let records: u64 = after.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!(records, before["rows"].as_u64().unwrap());
}

// ---- table properties: target file size edge values ---------------------------------------------

#[test]
fn target_file_size_properties_out_of_bounds_or_malformed_fail_closed_and_foreign_ones_fall_back() {
    use signaldb_compactor::table::properties::{TARGET_FILE_SIZE_BYTES, TableProperties};
    let parse = |k: &str, v: &str| TableProperties::parse(&[(k.to_string(), v.to_string())].into());
    for bad in ["0", "-1", "abc", "", "1e9", "1_048_576", "0x100000", "17179869185", "18446744073709551616"] {
        assert!(parse(TARGET_FILE_SIZE_BYTES, bad).is_err(), "{bad:?} must fail closed");
    }
    assert_eq!(parse(TARGET_FILE_SIZE_BYTES, " 1048576 ").unwrap().target_file_size.unwrap().bytes, 1 << 20);
    // Another writer's setting out of bounds is not ours to refuse: the configuration's target applies.
    for foreign in ["0", "-5", "huge", "17179869185"] {
        let props = parse("write.target-file-size-bytes", foreign).unwrap();
        assert_eq!(props.target_file_size, None, "{foreign:?}");
        assert_eq!(props.target_file_size_or(123), 123);
    }
}

// ---- sorted-run merge: random layouts -------------------------------------------------------------

mod sort_layouts {
    use std::sync::Arc;

    use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow_row::{RowConverter, SortField};
    use arrow_schema::{DataType, Field, Schema, SortOptions};
    use futures::{StreamExt, TryStreamExt};
    use proptest::prelude::*;
    use signaldb_compactor::compaction::sort::{SortPlan, Tagged, sort_batch, sort_batches};

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
        ]))
    }

    /// One row: small domains, so that keys repeat within and across files; NULL, NaN, ±0.0, ±inf.
    fn row() -> impl Strategy<Value = (Option<i64>, Option<f64>, Option<String>)> {
        let f = prop_oneof![
            Just(None),
            Just(Some(f64::NAN)),
            Just(Some(-0.0)),
            Just(Some(0.0)),
            Just(Some(f64::NEG_INFINITY)),
            Just(Some(f64::INFINITY)),
            (-2i32..3).prop_map(|v| Some(f64::from(v) / 2.0)),
        ];
        let i = prop_oneof![Just(None), (-3i64..4).prop_map(Some)];
        let s = prop_oneof![
            Just(None),
            prop::sample::select(vec!["", "a", "ab", "b", "é"]).prop_map(|s| Some(s.to_string()))
        ];
        (i, f, s)
    }

    fn batch(rows: &[(Option<i64>, Option<f64>, Option<String>)], first_id: i64) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>())),
                Arc::new(Int64Array::from((0..rows.len() as i64).map(|k| first_id + k).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    /// A file: its rows, whether it claims the order, and whether the claim is made false by swapping
    /// two rows after sorting (`break_at` as a fraction of the file: late breaks land in the last batch).
    #[derive(Debug, Clone)]
    struct FileLayout {
        rows: Vec<(Option<i64>, Option<f64>, Option<String>)>,
        claimed: bool,
        break_at: Option<f64>,
        batch_rows: usize,
    }

    fn file() -> impl Strategy<Value = FileLayout> {
        (prop::collection::vec(row(), 0..60), any::<bool>(), prop::option::of(0.0f64..1.0), 1usize..17)
            .prop_map(|(rows, claimed, break_at, batch_rows)| FileLayout {
                rows,
                claimed,
                break_at,
                batch_rows,
            })
    }

    fn plan() -> impl Strategy<Value = SortPlan> {
        let key = (0usize..3, any::<bool>(), any::<bool>())
            .prop_map(|(c, descending, nulls_first)| (c, SortOptions { descending, nulls_first }));
        prop::collection::vec(key, 1..4).prop_map(|mut keys| {
            let mut seen = std::collections::HashSet::new();
            keys.retain(|(c, _)| seen.insert(*c));
            SortPlan { order_id: 1, keys }
        })
    }

    fn key_rows(plan: &SortPlan, batch: &RecordBatch) -> arrow_row::Rows {
        let converter = RowConverter::new(
            plan.keys
                .iter()
                .map(|(c, o)| SortField::new_with_options(batch.schema().field(*c).data_type().clone(), *o))
                .collect(),
        )
        .unwrap();
        converter
            .convert_columns(&plan.keys.iter().map(|(c, _)| batch.column(*c).clone()).collect::<Vec<_>>())
            .unwrap()
    }

    /// Every row of one id, as text (NaN and -0.0 kept apart).
    fn row_text(b: &RecordBatch, r: usize) -> (i64, String) {
        let i = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let f = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        let s = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        let id = b.column(3).as_any().downcast_ref::<Int64Array>().unwrap();
        let text = format!(
            "{:?}|{:?}|{:?}",
            (!i.is_null(r)).then(|| i.value(r)),
            (!f.is_null(r)).then(|| f.value(r).to_bits()),
            (!s.is_null(r)).then(|| s.value(r).to_string())
        );
        (id.value(r), text)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Whatever the files claim, the output holds every input row exactly once, unchanged, in the
        /// plan's order; memory limits from "spill every batch" to "all in memory".
        #[test]
        fn the_sort_emits_every_row_once_in_order(
            files in prop::collection::vec(file(), 1..5),
            plan in plan(),
            memory_limit in prop_oneof![Just(1u64), Just(2048u64), Just(1u64 << 30)],
            interleave_seed in any::<u64>(),
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            // Build each file's batches (sorted first when it claims the order, then maybe broken).
            let mut per_file: Vec<Vec<Tagged>> = Vec::new();
            let mut expected: Vec<(i64, String)> = Vec::new();
            let mut next_id = 0i64;
            for (index, f) in files.iter().enumerate() {
                let mut whole = batch(&f.rows, next_id);
                next_id += f.rows.len() as i64;
                if f.claimed && whole.num_rows() > 0 {
                    whole = sort_batch(&plan, &whole).unwrap();
                    if let Some(at) = f.break_at && whole.num_rows() > 1 {
                        // Swap row k with the file's first row (a break unless the keys are equal).
                        let k = (((whole.num_rows() - 1) as f64 * at) as usize).max(1);
                        let mut order: Vec<u32> = (0..whole.num_rows() as u32).collect();
                        order.swap(0, k);
                        whole = arrow_select::take::take_record_batch(&whole, &arrow_array::UInt32Array::from(order)).unwrap();
                    }
                }
                for r in 0..whole.num_rows() {
                    expected.push(row_text(&whole, r));
                }
                let batches = (0..whole.num_rows())
                    .step_by(f.batch_rows)
                    .map(|start| whole.slice(start, f.batch_rows.min(whole.num_rows() - start)))
                    .map(|b| Tagged { file: index, claimed: f.claimed, batch: b })
                    .collect();
                per_file.push(batches);
            }
            // Interleave files, keeping each file's batch order (as the reader does).
            let mut input = Vec::new();
            let mut state = interleave_seed | 1;
            let mut cursors = vec![0usize; per_file.len()];
            loop {
                let open: Vec<usize> = (0..per_file.len()).filter(|&i| cursors[i] < per_file[i].len()).collect();
                if open.is_empty() { break; }
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                let pick = open[(state % open.len() as u64) as usize];
                input.push(per_file[pick][cursors[pick]].clone());
                cursors[pick] += 1;
            }
            let output: Vec<RecordBatch> = runtime.block_on(async {
                let stream = futures::stream::iter(input.into_iter().map(Ok::<_, String>)).boxed();
                let (sorted, _report) = sort_batches(stream, &plan, schema(), memory_limit).await.unwrap();
                sorted.try_collect().await.unwrap()
            });
            let mut got: Vec<(i64, String)> = Vec::new();
            let mut last: Option<arrow_row::OwnedRow> = None;
            for b in &output {
                let rows = key_rows(&plan, b);
                for r in 0..b.num_rows() {
                    if let Some(l) = &last {
                        prop_assert!(l.row() <= rows.row(r), "out of order at output row {}", got.len());
                    }
                    last = Some(rows.row(r).owned());
                    got.push(row_text(b, r));
                }
            }
            got.sort();
            expected.sort();
            prop_assert_eq!(got, expected);
        }
    }
}

// ---- an equality delete committed between rewrite and commit ----------------------------------------

/// An equality delete committed to a partition while its group is rewritten (the hook runs between the
/// rewrite and the commit) abandons that group: the deleted rows stay deleted, the delete stays live.
#[tokio::test]
async fn an_equality_delete_committed_between_rewrite_and_commit_abandons_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let t = "acme.prod.traces";
    pyiceberg(&d, &["create", "--table", t, "--rows", "60", "--appends", "3"]);
    let before = pyiceberg(&d, &["scan", "--table", t]);
    let ctx = context(&d, chrono::Utc::now(), |c| {
        c.compaction.min_input_files = 2;
        c.compaction.max_concurrent_rewrites = 1;
    })
    .await;
    let (hook_dir, fired) = (d.clone(), std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let hook_fired = fired.clone();
    let hook: signaldb_compactor::job::BeforeCommitHook = std::sync::Arc::new(move |_label| {
        let (dir, fired) = (hook_dir.clone(), hook_fired.clone());
        Box::pin(async move {
            if !fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // The first partition's first file: the group about to commit is the first one.
                tokio::task::spawn_blocking(move || {
                    pyiceberg(&dir, &["eqdelete", "--table", "acme.prod.traces", "--count", "4"]);
                })
                .await
                .unwrap();
            }
        }) as futures::future::BoxFuture<'static, ()>
    });
    let job = CompactionJob::new(&ctx).with_before_commit(hook);
    let pass = job.run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new()).await.unwrap();
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
    let r = report(&pass.tables, t);
    // Exactly the four rows the delete names are gone (DuckDB: PyIceberg 0.12 cannot read the delete).
    let after = duckdb(&d, &["scan", "--table", t]);
    assert_eq!(after["rows"].as_u64().unwrap(), before["rows"].as_u64().unwrap() - 4, "{r:#?}");
    let abandoned = r
        .partition_reports
        .iter()
        .filter(|p| {
            matches!(&p.status, PartitionStatus::Skipped { reason }
            if reason.starts_with("abandoned") && reason.contains("committed to the partition meanwhile"))
        })
        .count();
    let succeeded = r.partition_reports.iter().filter(|p| p.status == PartitionStatus::Succeeded).count();
    assert_eq!((abandoned, succeeded), (1, 2), "{r:#?}");
    // The next pass applies the delete (its columns hold no NULL) and removes it: both engines agree.
    let again = compact(&d, |c| c.compaction.min_input_files = 2).await;
    assert_eq!(report(&again, t).status, TableStatus::Succeeded, "{again:#?}");
    assert_eq!(files_with_deletes(&d, t), 0);
    assert_both_engines_read(&d, t, &after);
}

// ---- a position delete naming a file of another partition -------------------------------------------

/// A position delete of hour 08 whose entries also name a file of hour 09. By the spec it applies to
/// hour 08's files only, but PyIceberg 0.12 and DuckDB 1.5 apply every entry to the file it names:
/// rewriting the hour-09 file (a new path) or removing the delete brought the three rows back for
/// both engines (174 rows read before compaction, 177 after). Now such a delete (its `file_path`
/// bounds cover a live file outside its partition, or it has none) leaves alone its own partition and
/// every partition it may name.
#[tokio::test]
async fn a_position_delete_naming_a_file_of_another_partition_is_never_undone_for_any_reader() {
    for bounds in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = "acme.prod.traces";
        pyiceberg(d, &["create", "--table", t, "--rows", "60", "--appends", "3"]);
        let start = files(d, t);
        let a = start[0]["path"].as_str().unwrap().to_string();
        let b =
            start.iter().find(|f| f["partition"] != start[0]["partition"]).unwrap()["path"].as_str().unwrap();
        let mut args = vec!["posdelete", "--table", t, "--count", "3", "--targets", &a, "--targets", b];
        if !bounds {
            args.push("--no-bounds");
        }
        pyiceberg(d, &args);
        let before = pyiceberg(d, &["scan", "--table", t]);
        assert_eq!(before["rows"], 180 - 6, "both engines apply both targets' entries");
        assert_both_engines_read(d, t, &before);

        let reports = compact(d, |c| c.compaction.min_input_files = 2).await;
        let r = report(&reports, t);
        assert_both_engines_read(d, t, &before);
        if bounds {
            let status = |hour: &str| {
                r.partition_reports
                    .iter()
                    .find(|p| p.partition == format!("timestamp_hour=2026-01-15-{hour}"))
                    .map(|p| p.status.clone())
                    .unwrap_or_else(|| panic!("hour {hour} not in {r:#?}"))
            };
            let skipped = PartitionStatus::Skipped { reason: "has_delete_files".into() };
            // Hour 08 too: PyIceberg applies the entries naming hour 09's file only while the delete
            // attaches to a file of hour 08 within its bounds. Hour 10's paths lie above the bounds.
            assert_eq!(status("08"), skipped, "{r:#?}");
            assert_eq!(status("09"), skipped, "{r:#?}");
            assert_eq!(status("10"), PartitionStatus::Succeeded, "{r:#?}");
        } else {
            // Without bounds the delete may name any file: nothing is rewritten.
            assert_eq!(r.status, TableStatus::Unchanged, "{r:#?}");
            let paths = |fs: &[serde_json::Value]| fs.iter().map(|f| f["path"].clone()).collect::<Vec<_>>();
            assert_eq!(paths(&files(d, t)), paths(&start));
        }
        // The delete is still live (it names the hour-09 file) and the next passes keep every row.
        for _ in 0..2 {
            compact(d, |c| c.compaction.min_input_files = 2).await;
            assert_both_engines_read(d, t, &before);
        }
    }
}
