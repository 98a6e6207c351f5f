//! Sorting a rewrite's rows by the table's sort order within a memory budget: an external merge sort.
//!
//! Rows are gathered into chunks of at most a quarter of the budget (the rest is headroom for the
//! decoder, the writer's buffered row group and allocator slack). A chunk is sorted in place: its rows'
//! keys are encoded with arrow's row format, `(batch, row)` indexes are sorted by them, and the output
//! is assembled 8k rows at a time with `interleave`, so a chunk is never copied whole. If the input
//! fits one chunk it is emitted directly, otherwise every sorted chunk is spilled to a temporary Arrow
//! IPC file and the runs are merged, a batch at a time, on a blocking thread.
//!
//! Only sort orders made of identity transforms on top-level primitive columns are handled; for any
//! other order `SortPlan::for_table` returns `None` and output claims no sort order.

use std::fs::File;
use std::path::PathBuf;

use arrow_array::RecordBatch;
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{ArrowError, SchemaRef, SortOptions};
use arrow_select::interleave::interleave_record_batch;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::spec::{NullOrder, Schema, SortDirection, SortOrder, Transform, Type};

/// Rows per emitted batch.
const OUT_ROWS: usize = 8192;

/// How to sort: the order's id and, per key, the top-level column index and direction.
#[derive(Debug, Clone, PartialEq)]
pub struct SortPlan {
    pub order_id: i64,
    pub keys: Vec<(usize, SortOptions)>,
}

impl SortPlan {
    /// The plan for `order` over `schema`, or `None` if the order is unsorted or uses anything but
    /// identity transforms of top-level primitive columns.
    pub fn for_table(order: &SortOrder, schema: &Schema) -> Option<SortPlan> {
        if order.is_unsorted() {
            return None;
        }
        let fields = schema.as_struct().fields();
        let keys = order
            .fields
            .iter()
            .map(|f| {
                let index = fields.iter().position(|c| c.id == f.source_id)?;
                let primitive = matches!(fields[index].field_type.as_ref(), Type::Primitive(_));
                (f.transform == Transform::Identity && primitive).then_some((
                    index,
                    SortOptions {
                        descending: f.direction == SortDirection::Descending,
                        nulls_first: f.null_order == NullOrder::First,
                    },
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SortPlan { order_id: order.order_id, keys })
    }

    fn converter(&self, schema: &SchemaRef) -> Result<RowConverter, ArrowError> {
        RowConverter::new(
            self.keys
                .iter()
                .map(|(i, opts)| SortField::new_with_options(schema.field(*i).data_type().clone(), *opts))
                .collect(),
        )
    }

    fn rows(&self, converter: &RowConverter, batch: &RecordBatch) -> Result<Rows, ArrowError> {
        let columns: Vec<_> = self.keys.iter().map(|(i, _)| batch.column(*i).clone()).collect();
        converter.convert_columns(&columns)
    }
}

type BatchStream = BoxStream<'static, Result<RecordBatch, ArrowError>>;

fn batch_bytes(b: &RecordBatch) -> u64 {
    b.get_array_memory_size() as u64
}

/// The `(batch, row)` order that sorts a chunk.
fn sorted_order(
    plan: &SortPlan,
    schema: &SchemaRef,
    chunk: &[RecordBatch],
) -> Result<Vec<(usize, usize)>, ArrowError> {
    let converter = plan.converter(schema)?;
    let rows = chunk.iter().map(|b| plan.rows(&converter, b)).collect::<Result<Vec<Rows>, _>>()?;
    let mut order: Vec<(usize, usize)> =
        chunk.iter().enumerate().flat_map(|(b, batch)| (0..batch.num_rows()).map(move |i| (b, i))).collect();
    order.sort_by(|&(ab, ai), &(bb, bi)| rows[ab].row(ai).cmp(&rows[bb].row(bi)));
    Ok(order)
}

/// The chunk's rows in `order` (at most `OUT_ROWS` of them).
fn sorted_piece(chunk: &[RecordBatch], order: &[(usize, usize)]) -> Result<RecordBatch, ArrowError> {
    let refs: Vec<&RecordBatch> = chunk.iter().collect();
    interleave_record_batch(&refs, order)
}

/// Sorts one in-memory chunk lazily: each poll assembles the next piece.
fn sorted_stream(
    plan: &SortPlan,
    schema: &SchemaRef,
    chunk: Vec<RecordBatch>,
) -> Result<BatchStream, ArrowError> {
    let order = sorted_order(plan, schema, &chunk)?;
    Ok(futures::stream::unfold((chunk, order, 0usize), |(chunk, order, pos)| async move {
        if pos >= order.len() {
            return None;
        }
        let end = (pos + OUT_ROWS).min(order.len());
        let piece = sorted_piece(&chunk, &order[pos..end]);
        Some((piece, (chunk, order, end)))
    })
    .boxed())
}

/// Sorts `input` by `plan` within `memory_limit` bytes (spilling to a temporary directory beyond it).
pub async fn sort_batches<E>(
    mut input: BoxStream<'_, Result<RecordBatch, E>>,
    plan: &SortPlan,
    schema: SchemaRef,
    memory_limit: u64,
) -> Result<BatchStream, ArrowError>
where
    E: std::fmt::Display,
{
    let chunk_budget = (memory_limit / 4).max(1);
    let mut chunk: Vec<RecordBatch> = Vec::new();
    let mut chunk_bytes = 0u64;
    let mut spill: Option<(tempfile::TempDir, Vec<PathBuf>)> = None;
    while let Some(batch) = input.next().await {
        let batch = batch.map_err(|e| ArrowError::ExternalError(e.to_string().into()))?;
        chunk_bytes += batch_bytes(&batch);
        chunk.push(batch);
        if chunk_bytes >= chunk_budget {
            let (dir, runs) = match &mut spill {
                Some(s) => s,
                None => spill.insert((
                    tempfile::Builder::new().prefix("signaldb-compactor-sort-").tempdir()?,
                    Vec::new(),
                )),
            };
            let path = dir.path().join(format!("run-{}.arrow", runs.len()));
            spill_run(plan, &schema, &std::mem::take(&mut chunk), &path)?;
            runs.push(path);
            chunk_bytes = 0;
        }
    }
    let Some((dir, mut runs)) = spill else {
        return sorted_stream(plan, &schema, chunk);
    };
    if !chunk.is_empty() {
        let path = dir.path().join(format!("run-{}.arrow", runs.len()));
        spill_run(plan, &schema, &chunk, &path)?;
        runs.push(path);
    }
    drop(chunk);
    Ok(merge_runs(plan.clone(), schema, dir, runs))
}

fn spill_run(
    plan: &SortPlan,
    schema: &SchemaRef,
    chunk: &[RecordBatch],
    path: &PathBuf,
) -> Result<(), ArrowError> {
    let order = sorted_order(plan, schema, chunk)?;
    let mut writer = FileWriter::try_new(File::create(path)?, schema)?;
    for piece in order.chunks(OUT_ROWS) {
        writer.write(&sorted_piece(chunk, piece)?)?;
    }
    writer.finish()
}

/// One sorted run being merged: its reader, current batch, that batch's row keys and a cursor.
struct Run {
    reader: FileReader<File>,
    batch: RecordBatch,
    rows: Rows,
    pos: usize,
    /// Index of `batch` in the merge's current sources.
    source: usize,
}

/// Merges sorted runs on a blocking thread; batches come back through a small channel (bounded memory).
fn merge_runs(plan: SortPlan, schema: SchemaRef, dir: tempfile::TempDir, runs: Vec<PathBuf>) -> BatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, ArrowError>>(2);
    tokio::task::spawn_blocking(move || {
        let _keep_until_merged = dir;
        if let Err(e) = merge_into(&plan, &schema, &runs, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

fn merge_into(
    plan: &SortPlan,
    schema: &SchemaRef,
    paths: &[PathBuf],
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, ArrowError>>,
) -> Result<(), ArrowError> {
    let converter = plan.converter(schema)?;
    let mut sources: Vec<RecordBatch> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    for path in paths {
        let mut reader = FileReader::try_new(File::open(path)?, None)?;
        if let Some(batch) = reader.next().transpose()? {
            let rows = plan.rows(&converter, &batch)?;
            sources.push(batch.clone());
            runs.push(Run { reader, batch, rows, pos: 0, source: sources.len() - 1 });
        }
    }
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(OUT_ROWS);
    while !runs.is_empty() {
        // The smallest current row among the runs (few runs: a linear scan beats a heap here).
        let mut best = 0;
        for r in 1..runs.len() {
            if runs[r].rows.row(runs[r].pos) < runs[best].rows.row(runs[best].pos) {
                best = r;
            }
        }
        let run = &mut runs[best];
        indices.push((run.source, run.pos));
        run.pos += 1;
        if run.pos == run.batch.num_rows() {
            match run.reader.next().transpose()? {
                Some(batch) => {
                    run.rows = plan.rows(&converter, &batch)?;
                    sources.push(batch.clone());
                    run.batch = batch;
                    run.pos = 0;
                    run.source = sources.len() - 1;
                }
                None => {
                    runs.swap_remove(best);
                }
            }
        }
        if indices.len() == OUT_ROWS || runs.is_empty() {
            if !indices.is_empty() {
                let refs: Vec<&RecordBatch> = sources.iter().collect();
                let out = interleave_record_batch(&refs, &indices)?;
                indices.clear();
                if tx.blocking_send(Ok(out)).is_err() {
                    return Ok(()); // the writer stopped reading
                }
            }
            // Keep only the batches runs still point into, re-indexed.
            sources = runs.iter().map(|r| r.batch.clone()).collect();
            for (i, run) in runs.iter_mut().enumerate() {
                run.source = i;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema as ArrowSchema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(ArrowSchema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("id", DataType::Utf8, true),
        ]))
    }

    fn batch(ts: Vec<i64>, ids: Vec<Option<&str>>) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ts)), Arc::new(StringArray::from(ids))])
            .unwrap()
    }

    fn plan() -> SortPlan {
        SortPlan {
            order_id: 1,
            keys: vec![
                (0, SortOptions { descending: false, nulls_first: true }),
                (1, SortOptions { descending: false, nulls_first: true }),
            ],
        }
    }

    async fn run(batches: Vec<RecordBatch>, memory: u64) -> Vec<(i64, Option<String>)> {
        let input = futures::stream::iter(batches.into_iter().map(Ok::<_, ArrowError>)).boxed();
        let mut out = sort_batches(input, &plan(), schema(), memory).await.unwrap();
        let mut rows = Vec::new();
        while let Some(b) = out.next().await {
            let b = b.unwrap();
            let ts = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let id = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..b.num_rows() {
                rows.push((ts.value(i), (!id.is_null(i)).then(|| id.value(i).to_string())));
            }
        }
        rows
    }

    fn inputs() -> (Vec<RecordBatch>, Vec<(i64, Option<String>)>) {
        let mut all = Vec::new();
        let mut batches = Vec::new();
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..40 {
            let mut ts = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..1000 {
                // xorshift: deterministic, no overflow.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let x = x.rem_euclid(1_000_003);
                let id = (x % 7 != 0).then(|| format!("id{}", x % 13));
                ts.push(x % 500);
                all.push((x % 500, id.clone()));
                ids.push(id);
            }
            batches.push(batch(ts, ids.iter().map(|s| s.as_deref()).collect()));
        }
        all.sort();
        (batches, all)
    }

    #[tokio::test]
    async fn in_memory_sort_orders_by_all_keys() {
        let (batches, want) = inputs();
        assert_eq!(run(batches, 1 << 30).await, want);
    }

    #[tokio::test]
    async fn spilled_runs_merge_into_the_same_order() {
        let (batches, want) = inputs();
        // ~40 batches of ~20 KB each with a 64 KB budget: many spilled runs.
        assert_eq!(run(batches, 64 * 1024).await, want);
    }

    #[tokio::test]
    async fn empty_input_yields_nothing() {
        assert!(run(vec![], 1024).await.is_empty());
    }
}
