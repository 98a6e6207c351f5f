//! Hostile tests of the lazy file merge (merge.rs) and of `SortPlan::lead_row`.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, SortOptions};
use futures::StreamExt;

use super::super::sort::SortPlan;
use super::{BrokenRun, FileRun, RunSource, merge_sorted_files};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, true),
        Field::new("id", DataType::Utf8, true),
    ]))
}

fn batch(rows: &[(Option<i64>, Option<String>)]) -> RecordBatch {
    let ts: Int64Array = rows.iter().map(|r| r.0).collect();
    let id: StringArray = rows.iter().map(|r| r.1.as_deref()).collect();
    RecordBatch::try_new(schema(), vec![Arc::new(ts), Arc::new(id)]).unwrap()
}

struct Batches(VecDeque<RecordBatch>);

impl RunSource for Batches {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        Ok(self.0.pop_front())
    }
}

fn run_of(rows: &[(Option<i64>, Option<String>)], per_batch: usize) -> Box<dyn RunSource> {
    Box::new(Batches(rows.chunks(per_batch.max(1)).map(batch).collect()))
}

fn plan(descending: bool, nulls_first: bool) -> SortPlan {
    SortPlan {
        order_id: 1,
        keys: vec![
            (0, SortOptions { descending, nulls_first }),
            (1, SortOptions { descending: !descending, nulls_first }),
        ],
    }
}

fn start_of(plan: &SortPlan, ts: Option<i64>) -> Vec<u8> {
    plan.lead_row(&schema(), Arc::new(Int64Array::from(vec![ts]))).unwrap()
}

fn values(b: &RecordBatch) -> Vec<(Option<i64>, Option<String>)> {
    let ts = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    let id = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
    (0..b.num_rows())
        .map(|i| ((!ts.is_null(i)).then(|| ts.value(i)), (!id.is_null(i)).then(|| id.value(i).to_string())))
        .collect()
}

async fn merge(
    plan: &SortPlan,
    runs: Vec<FileRun>,
) -> Result<Vec<(Option<i64>, Option<String>)>, ArrowError> {
    let mut out = merge_sorted_files(plan, schema(), runs)?;
    let mut got = Vec::new();
    while let Some(b) = out.next().await {
        got.extend(values(&b?));
    }
    Ok(got)
}

fn sort_rows(plan: &SortPlan, rows: &mut Vec<(Option<i64>, Option<String>)>) {
    let b = batch(rows);
    let sorted = super::super::sort::sort_batch(plan, &b).unwrap();
    *rows = values(&sorted);
}

/// A file whose rows are all deleted (position deletes) still has manifest bounds, so it gets a start.
/// When it is the last run the merge reaches, the rows gathered since the last output batch must not
/// be dropped.
#[tokio::test]
async fn an_empty_last_run_with_a_start_loses_no_rows() {
    let plan = plan(false, true);
    let rows: Vec<_> = (0..10).map(|i| (Some(i), Some(format!("r{i}")))).collect();
    let runs = vec![
        FileRun { run: run_of(&rows, 4), start: Some(start_of(&plan, Some(0))) },
        // Claims to start at 100 (its manifest bounds) but every row was deleted.
        FileRun { run: Box::new(Batches(VecDeque::new())), start: Some(start_of(&plan, Some(100))) },
    ];
    let got = merge(&plan, runs).await.unwrap();
    assert_eq!(got, rows, "rows emitted by the merge");
}

/// The same with the empty run yielding only empty batches (a reader that filtered every row).
#[tokio::test]
async fn a_run_of_empty_batches_reached_last_loses_no_rows() {
    let plan = plan(false, true);
    let rows: Vec<_> = (0..10).map(|i| (Some(i), None)).collect();
    let empty = vec![batch(&[]), batch(&[])];
    let runs = vec![
        FileRun { run: run_of(&rows, 3), start: Some(start_of(&plan, Some(0))) },
        FileRun { run: Box::new(Batches(empty.into())), start: Some(start_of(&plan, Some(20))) },
    ];
    assert_eq!(merge(&plan, runs).await.unwrap(), rows);
}

/// `lead_row(v)` compares with full two-column rows exactly as `v` compares with the row's first key,
/// for every key type the file merge reads bounds as.
mod prefix {
    use super::*;
    use arrow_array::{
        Date32Array, Int32Array, LargeStringArray, TimestampMicrosecondArray, TimestampNanosecondArray,
    };
    use arrow_row::{RowConverter, SortField};
    use proptest::prelude::*;

    fn array(kind: u8, values: &[Option<i64>], strings: &[Option<String>]) -> ArrayRef {
        match kind {
            0 => Arc::new(values.iter().map(|v| v.map(|v| v as i32)).collect::<Int32Array>()),
            1 => Arc::new(values.iter().copied().collect::<Int64Array>()),
            2 => Arc::new(values.iter().map(|v| v.map(|v| v as i32)).collect::<Date32Array>()),
            3 => Arc::new(
                values.iter().copied().collect::<TimestampMicrosecondArray>().with_timezone("+00:00"),
            ),
            4 => Arc::new(values.iter().copied().collect::<TimestampNanosecondArray>()),
            5 => Arc::new(strings.iter().map(|s| s.as_deref()).collect::<StringArray>()),
            _ => Arc::new(strings.iter().map(|s| s.as_deref()).collect::<LargeStringArray>()),
        }
    }

    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-c]{0,3}",
            proptest::collection::vec(
                prop_oneof![Just('\0'), Just('a'), Just('\u{ff}'), Just('\u{10ffff}')],
                0..40
            )
            .prop_map(|c| c.into_iter().collect()),
            "[ab\\x00]{30,70}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn lead_row_is_a_prefix_that_orders_like_the_first_key(
            kind in 0u8..7,
            descending in any::<bool>(),
            nulls_first in any::<bool>(),
            second_desc in any::<bool>(),
            v in -3i64..3,
            firsts in proptest::collection::vec(proptest::option::weighted(0.85, -3i64..3), 1..12),
            sv in string(),
            sfirsts in proptest::collection::vec(proptest::option::weighted(0.85, string()), 1..12),
            seconds in proptest::collection::vec(proptest::option::of(string()), 12),
        ) {
            let n = if kind >= 5 { sfirsts.len() } else { firsts.len() };
            let lead = array(kind, &firsts, &sfirsts).slice(0, n);
            let second: ArrayRef = Arc::new(seconds[..n].iter().map(|s| s.as_deref()).collect::<StringArray>());
            let opts = SortOptions { descending, nulls_first };
            let sschema = Arc::new(Schema::new(vec![
                Field::new("k", lead.data_type().clone(), true),
                Field::new("s", DataType::Utf8, true),
            ]));
            let plan = SortPlan {
                order_id: 1,
                keys: vec![(0, opts), (1, SortOptions { descending: second_desc, nulls_first: !nulls_first })],
            };
            let value = array(kind, &[Some(v)], &[Some(sv.clone())]);
            let start = plan.lead_row(&sschema, value.clone()).unwrap();
            let full = plan.converter(&sschema).unwrap().convert_columns(&[lead.clone(), second]).unwrap();
            let single = RowConverter::new(vec![SortField::new_with_options(lead.data_type().clone(), opts)]).unwrap();
            let lead_rows = single.convert_columns(std::slice::from_ref(&lead)).unwrap();
            let value_row = single.convert_columns(&[value]).unwrap();
            for i in 0..n {
                // The first key of row i compared with v under the key's options (the truth).
                let first_vs_v = lead_rows.row(i).cmp(&value_row.row(0));
                let not_below = first_vs_v.is_ge();
                prop_assert_eq!(start.as_slice() <= full.row(i).as_ref(), not_below,
                    "kind {} row {} opts {:?}", kind, i, opts);
                if first_vs_v.is_eq() {
                    prop_assert!(full.row(i).as_ref().starts_with(&start));
                }
            }
        }
    }
}

/// A stronger form of the commit's property: sorted runs (nullable first key, many equal keys), with
/// empty runs and runs of empty batches that still carry a start, starts at or below the true first
/// key: the merge gives exactly the rows of a full sort, in order.
mod merge_props {
    use super::*;
    use proptest::prelude::*;

    fn row() -> impl Strategy<Value = (Option<i64>, Option<String>)> {
        (proptest::option::weighted(0.8, 0i64..6), proptest::option::weighted(0.8, "[ab]{0,2}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn lazy_merge_with_empty_runs_equals_a_full_sort(
            files in proptest::collection::vec(
                (proptest::collection::vec(row(), 0..40), 1usize..9, 0u8..4, -2i64..7, any::<bool>()), 1..8),
            descending in any::<bool>(),
            nulls_first in any::<bool>(),
        ) {
            check_lazy_merge(files, descending, nulls_first)?;
        }

        /// The same without runs that are empty as a whole (empty batches inside a run stay): what
        /// passes once the empty-last-run bug is set aside.
        #[test]
        fn lazy_merge_of_non_empty_runs_equals_a_full_sort(
            files in proptest::collection::vec(
                (proptest::collection::vec(row(), 1..40), 1usize..9, 0u8..4, -2i64..7, any::<bool>()), 1..8),
            descending in any::<bool>(),
            nulls_first in any::<bool>(),
        ) {
            check_lazy_merge(files, descending, nulls_first)?;
        }
    }

    type Files = Vec<(Vec<(Option<i64>, Option<String>)>, usize, u8, i64, bool)>;

    fn check_lazy_merge(files: Files, descending: bool, nulls_first: bool) -> Result<(), TestCaseError> {
        {
            let plan = plan(descending, nulls_first);
            let mut want = Vec::new();
            let mut runs = Vec::new();
            for (rows, per_batch, start_kind, fake, empty_batches) in files {
                let mut rows = rows;
                sort_rows(&plan, &mut rows);
                want.extend(rows.clone());
                // 0: no start; 1: the first key; 2: a start at or below it; 3: any start (empty runs only)
                let first = rows.first().map(|r| r.0);
                let start = match (start_kind, first) {
                    (0, _) => None,
                    (1, Some(f)) => Some(start_of(&plan, f)),
                    (_, None) => Some(start_of(&plan, Some(fake))),
                    (_, Some(f)) => {
                        let s = start_of(&plan, Some(fake));
                        let f = start_of(&plan, f);
                        Some(if s <= f { s } else { f })
                    }
                };
                let mut batches: VecDeque<RecordBatch> = rows.chunks(per_batch).map(batch).collect();
                if empty_batches {
                    let mut with_empty = VecDeque::new();
                    with_empty.push_back(batch(&[]));
                    for b in batches {
                        with_empty.push_back(b);
                        with_empty.push_back(batch(&[]));
                    }
                    batches = with_empty;
                }
                runs.push(FileRun { run: Box::new(Batches(batches)), start });
            }
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let got = rt.block_on(merge(&plan, runs));
            let got = match got {
                Ok(got) => got,
                Err(e) => panic!("merge failed: {e} {:?}", BrokenRun::of(&e)),
            };
            let mut sorted_want = want.clone();
            sort_rows(&plan, &mut sorted_want);
            let b = batch(&got);
            let resorted = values(&super::super::super::sort::sort_batch(&plan, &b).unwrap());
            prop_assert_eq!(got.len(), want.len(), "row count");
            // In order: sorting the output changes nothing in the key columns' order.
            let key = |r: &(Option<i64>, Option<String>)| r.clone();
            prop_assert_eq!(got.iter().map(key).collect::<Vec<_>>().len(), resorted.len());
            let mut a = got.clone();
            a.sort();
            let mut w = want;
            w.sort();
            prop_assert_eq!(a, w, "multiset");
            // Order check by the plan's rows
            let conv = plan.converter(&schema()).unwrap();
            let rows = plan.rows(&conv, &b).unwrap();
            for i in 1..rows.num_rows() {
                prop_assert!(rows.row(i - 1) <= rows.row(i), "out of order at {}", i);
            }
        }
        Ok(())
    }
}

/// A run source that panics (a reader bug, a corrupt page): the merged stream must end in an error,
/// never look complete.
#[tokio::test]
async fn a_panicking_run_fails_the_merged_stream_instead_of_ending_it() {
    struct Panics;
    impl RunSource for Panics {
        fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
            panic!("reader bug");
        }
    }
    let plan = plan(false, true);
    let rows: Vec<_> = (0..10).map(|i| (Some(i), None)).collect();
    let runs = vec![
        FileRun { run: run_of(&rows, 10), start: None },
        FileRun { run: Box::new(Panics), start: Some(start_of(&plan, Some(5))) },
    ];
    let got = merge(&plan, runs).await;
    assert!(got.is_err(), "the stream ended as if complete: {got:?}");
}
