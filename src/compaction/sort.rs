//! Sorting a rewrite's rows by the table's sort order within a memory budget: a merge of the sorted
//! runs the input already holds, and an external sort of the rest.
//!
//! SignalDB's writer sorts every file by the table's sort order and says so (`sort_order_id` in the
//! manifest entry). Batches of such a file are a sorted run; the claim is verified as rows arrive (each
//! row's key, in arrow's row format, must not be below its predecessor's in the same file, across
//! batches and chunks). From the first batch that breaks it, the file's rows are treated like rows of
//! a file claiming nothing: sorted by comparison. Nothing is trusted that was not checked.
//!
//! Rows are gathered into chunks of at most a quarter of the budget; a full chunk is spilled on a
//! blocking thread while the next is gathered (the rest of the budget is headroom for the decoder,
//! the writer's buffered row group and allocator slack). A chunk's order is computed on
//! `(batch, row)` indexes: loose rows are sorted, then all runs are merged pairwise (`n log k` key
//! comparisons for `k` runs instead of `n log n`), and the output is assembled about `OUT_BYTES` at a
//! time with `interleave`, so a chunk is never copied whole. If the input fits one chunk it is emitted
//! directly, otherwise every chunk is spilled in order to a temporary Arrow IPC file and the spilled
//! runs are merged through a binary heap on a blocking thread, at most a quarter of the budget's worth
//! of runs open at once (more runs are first merged in groups, on disk).
//!
//! Whatever the path, the emitted stream re-checks that every row's key is not below its
//! predecessor's and fails the rewrite otherwise: output never claims an order it does not have.
//!
//! Only sort orders made of identity transforms on top-level primitive columns are handled; for any
//! other order `SortPlan::for_table` returns `None` and output claims no sort order.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;

use super::merge::{BrokenRun, NumberedRun, RunSource, merge_into, unpanicked};
use super::read::{Marked, received};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_row::{OwnedRow, RowConverter, Rows, SortField};
use arrow_schema::{ArrowError, SchemaRef, SortOptions};
use arrow_select::interleave::interleave_record_batch;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::spec::{NullOrder, Schema, SortDirection, SortOrder, Transform, Type};

/// Most rows per emitted (and spilled) batch.
pub(super) const OUT_ROWS: usize = 8192;

/// Bytes aimed at per emitted (and spilled) batch: wide rows give fewer rows per batch.
pub(super) const OUT_BYTES: u64 = 2 << 20;

/// Rows per emitted piece of `chunk`: [`OUT_BYTES`] over its average row size, at most [`OUT_ROWS`].
fn piece_rows(chunk: &Chunk) -> usize {
    let rows: usize = chunk.batches.iter().map(RecordBatch::num_rows).sum();
    let row_bytes = (chunk.bytes / rows.max(1) as u64).max(1);
    usize::try_from(OUT_BYTES / row_bytes).unwrap_or(OUT_ROWS).clamp(1, OUT_ROWS)
}

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

    pub(super) fn converter(&self, schema: &SchemaRef) -> Result<RowConverter, ArrowError> {
        RowConverter::new(
            self.keys
                .iter()
                .map(|(i, opts)| SortField::new_with_options(schema.field(*i).data_type().clone(), *opts))
                .collect(),
        )
    }

    /// `value` (one row of the first sort column's type) in arrow's row format as the first key alone:
    /// the prefix of the full key's encoding of any row with that first value, so its bytes compare
    /// with full rows (not above them exactly when the row's first value is not below `value`).
    pub(super) fn lead_row(&self, schema: &SchemaRef, value: ArrayRef) -> Result<Vec<u8>, ArrowError> {
        let &(index, options) =
            self.keys.first().ok_or_else(|| ArrowError::SchemaError("no sort key".into()))?;
        let field = SortField::new_with_options(schema.field(index).data_type().clone(), options);
        let rows = RowConverter::new(vec![field])?.convert_columns(&[value])?;
        Ok(rows.row(0).as_ref().to_vec())
    }

    pub(super) fn rows(&self, converter: &RowConverter, batch: &RecordBatch) -> Result<Rows, ArrowError> {
        let columns: Vec<_> = self.keys.iter().map(|(i, _)| batch.column(*i).clone()).collect();
        converter.convert_columns(&columns)
    }
}

/// `batch` sorted by `plan` (a whole batch in memory: for writers of small files, such as `generate`).
pub fn sort_batch(plan: &SortPlan, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let converter = plan.converter(batch.schema_ref())?;
    let rows = plan.rows(&converter, batch)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    arrow_select::take::take_record_batch(batch, &arrow_array::UInt32Array::from(order))
}

pub(super) type BatchStream = BoxStream<'static, Result<RecordBatch, ArrowError>>;

/// One input batch, tagged with the input file it came from and whether that file claims (in its
/// manifest entry) to be sorted by the plan's order.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub file: usize,
    pub claimed: bool,
    pub batch: RecordBatch,
}

/// What the sort learned about its input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SortReport {
    /// Batches merged as parts of verified sorted runs (not re-sorted).
    pub merged_batches: usize,
    /// Batches sorted by comparison (files not claiming the order, or found out of order).
    pub sorted_batches: usize,
    /// Input files that claim the order but are not sorted by it (their rows from the first
    /// out-of-order batch on were sorted like unclaimed rows).
    pub unsorted_claims: Vec<usize>,
    /// Sorted runs spilled to disk.
    pub spilled_runs: usize,
}

pub(super) fn batch_bytes(b: &RecordBatch) -> u64 {
    b.get_array_memory_size() as u64
}

/// A claimed file's verification state: the key of its last row seen and, if that row's batch is in
/// the current chunk, the chunk run it extends.
struct ClaimState {
    last: OwnedRow,
    run: Option<usize>,
}

/// The rows gathered for one in-memory sort: verified sorted runs (batch indexes, in order) and loose
/// batches to be sorted by comparison.
#[derive(Default)]
struct Chunk {
    batches: Vec<RecordBatch>,
    rows: Vec<Rows>,
    runs: Vec<Vec<usize>>,
    loose: Vec<usize>,
    bytes: u64,
}

/// Gathers tagged batches into chunks, verifying claimed files' order as rows arrive.
struct Gatherer {
    plan: SortPlan,
    converter: RowConverter,
    claims: HashMap<usize, ClaimState>,
    broken: HashSet<usize>,
    chunk: Chunk,
    report: SortReport,
}

impl Gatherer {
    fn push(&mut self, t: Tagged) -> Result<(), ArrowError> {
        if t.batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = self.plan.rows(&self.converter, &t.batch)?;
        let index = self.chunk.batches.len();
        self.chunk.bytes += batch_bytes(&t.batch) + rows.size() as u64;
        let mut in_run = false;
        if t.claimed && !self.broken.contains(&t.file) {
            let state = self.claims.get(&t.file);
            let continues = state.is_none_or(|s| s.last.row() <= rows.row(0));
            if continues && (1..rows.num_rows()).all(|i| rows.row(i - 1) <= rows.row(i)) {
                let run = match state.and_then(|s| s.run) {
                    Some(run) => {
                        self.chunk.runs[run].push(index);
                        run
                    }
                    None => {
                        self.chunk.runs.push(vec![index]);
                        self.chunk.runs.len() - 1
                    }
                };
                let last = rows.row(rows.num_rows() - 1).owned();
                self.claims.insert(t.file, ClaimState { last, run: Some(run) });
                in_run = true;
            } else {
                self.claims.remove(&t.file);
                self.broken.insert(t.file);
                self.report.unsorted_claims.push(t.file);
            }
        }
        if in_run {
            self.report.merged_batches += 1;
        } else {
            self.chunk.loose.push(index);
            self.report.sorted_batches += 1;
        }
        self.chunk.batches.push(t.batch);
        self.chunk.rows.push(rows);
        Ok(())
    }

    /// Takes the current chunk; claimed files continue in a new run of the next chunk.
    fn take(&mut self) -> Chunk {
        for state in self.claims.values_mut() {
            state.run = None;
        }
        std::mem::take(&mut self.chunk)
    }
}

/// Merges two sorted index runs (stable: `a` first on ties).
fn merge2(a: &[(u32, u32)], b: &[(u32, u32)], rows: &[Rows]) -> Vec<(u32, u32)> {
    let key = |&(b, i): &(u32, u32)| rows[b as usize].row(i as usize);
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if key(&b[j]) < key(&a[i]) {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The `(batch, row)` order that sorts a chunk: loose batches are sorted by comparison, then every
/// run is merged pairwise (a balanced merge tree: `n log k` comparisons for `k` runs).
fn sorted_order(chunk: &Chunk) -> Vec<(u32, u32)> {
    let rows = &chunk.rows;
    let indexes = |b: usize| (0..chunk.batches[b].num_rows()).map(move |i| (b as u32, i as u32));
    let mut runs: Vec<Vec<(u32, u32)>> =
        chunk.runs.iter().map(|run| run.iter().flat_map(|&b| indexes(b)).collect()).collect();
    if !chunk.loose.is_empty() {
        let mut loose: Vec<(u32, u32)> = chunk.loose.iter().flat_map(|&b| indexes(b)).collect();
        loose.sort_by(|&(ab, ai), &(bb, bi)| {
            rows[ab as usize].row(ai as usize).cmp(&rows[bb as usize].row(bi as usize))
        });
        runs.push(loose);
    }
    while runs.len() > 1 {
        let mut next = Vec::with_capacity(runs.len().div_ceil(2));
        let mut it = runs.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(merge2(&a, &b, rows)),
                None => next.push(a),
            }
        }
        runs = next;
    }
    runs.pop().unwrap_or_default()
}

/// The chunk's rows in `order` (at most `OUT_ROWS` of them).
fn sorted_piece(batches: &[RecordBatch], order: &[(u32, u32)]) -> Result<RecordBatch, ArrowError> {
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let order: Vec<(usize, usize)> = order.iter().map(|&(b, i)| (b as usize, i as usize)).collect();
    interleave_record_batch(&refs, &order)
}

/// Batches `produce` emits on a blocking thread (`what` names it in errors), two ahead of the
/// consumer. `produce` gets a sender that answers `false` once the consumer is gone (then it should
/// stop). The stream ends only when `produce` returned `Ok`: a panic or an error ends it with that
/// error, and a producer that never ran or stopped without returning (its task dropped as the
/// runtime shut down) ends it with an error too, never with a silent end that reads as "no more rows".
fn produced(
    what: &'static str,
    produce: impl FnOnce(&mut dyn FnMut(RecordBatch) -> bool) -> Result<(), ArrowError> + Send + 'static,
) -> BatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Marked<RecordBatch, ArrowError>>(2);
    tokio::task::spawn_blocking(move || {
        let result =
            unpanicked(what, || produce(&mut |batch| tx.blocking_send(Marked::Item(Ok(batch))).is_ok()));
        let _ = tx.blocking_send(match result {
            Ok(()) => Marked::End,
            Err(e) => Marked::Failed(e),
        });
    });
    futures::stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        let stopped = || ArrowError::ExternalError(format!("{what} stopped before its end").into());
        received(rx.recv().await, stopped).map(|(item, more)| (item, more.then_some(rx)))
    })
    .boxed()
}

/// Emits one in-memory chunk: pieces are assembled on a blocking thread, a couple ahead of the writer,
/// so assembling and encoding use both cores.
fn sorted_stream(chunk: Chunk) -> BatchStream {
    produced("sorting a chunk", move |send| {
        let order = sorted_order(&chunk);
        for piece in order.chunks(piece_rows(&chunk)) {
            // The writer stopped reading: stop.
            if !send(sorted_piece(&chunk.batches, piece)?) {
                break;
            }
        }
        Ok(())
    })
}

/// Sorts `input` by `plan` within `memory_limit` bytes (spilling to a temporary directory beyond it).
/// Batches of files that claim the order are merged as sorted runs once their order is verified; the
/// rest are sorted. The returned stream re-checks the order of every row it emits and fails rather
/// than yield a row out of order.
pub async fn sort_batches<E>(
    mut input: BoxStream<'_, Result<Tagged, E>>,
    plan: &SortPlan,
    schema: SchemaRef,
    memory_limit: u64,
) -> Result<(BatchStream, SortReport), ArrowError>
where
    E: std::fmt::Display,
{
    let chunk_budget = (memory_limit / 4).max(1);
    let mut gatherer = Gatherer {
        plan: plan.clone(),
        converter: plan.converter(&schema)?,
        claims: HashMap::new(),
        broken: HashSet::new(),
        chunk: Chunk::default(),
        report: SortReport::default(),
    };
    let mut spill: Option<(tempfile::TempDir, Vec<PathBuf>)> = None;
    // A full chunk is spilled on a blocking thread while the next one is gathered (at most one spill in
    // flight: two chunks, half the budget, at a time).
    let mut spilling: Option<tokio::task::JoinHandle<Result<(), ArrowError>>> = None;
    while let Some(tagged) = input.next().await {
        let tagged = tagged.map_err(|e| ArrowError::ExternalError(e.to_string().into()))?;
        gatherer.push(tagged)?;
        if gatherer.chunk.bytes >= chunk_budget {
            let (dir, runs) = match &mut spill {
                Some(s) => s,
                None => spill.insert((
                    tempfile::Builder::new().prefix("signaldb-compactor-sort-").tempdir()?,
                    Vec::new(),
                )),
            };
            let path = dir.path().join(format!("run-{}.arrow", runs.len()));
            runs.push(path.clone());
            if let Some(previous) = spilling.take() {
                join_spill(previous).await?;
            }
            let (chunk, schema) = (gatherer.take(), schema.clone());
            spilling = Some(tokio::task::spawn_blocking(move || spill_run(&schema, &chunk, &path)));
        }
    }
    if let Some(previous) = spilling.take() {
        join_spill(previous).await?;
    }
    let chunk = gatherer.take();
    let mut report = std::mem::take(&mut gatherer.report);
    let stream = match spill {
        None => sorted_stream(chunk),
        Some((dir, mut runs)) => {
            if !chunk.batches.is_empty() {
                let path = dir.path().join(format!("run-{}.arrow", runs.len()));
                let schema = schema.clone();
                let spilled = path.clone();
                join_spill(tokio::task::spawn_blocking(move || spill_run(&schema, &chunk, &spilled))).await?;
                runs.push(path);
            }
            report.spilled_runs = runs.len();
            // Each open run holds one batch of about `OUT_BYTES`; open runs share a quarter of the budget.
            let fan_in = usize::try_from(chunk_budget / OUT_BYTES).unwrap_or(usize::MAX).max(2);
            merge_runs(plan.clone(), schema.clone(), dir, runs, fan_in)
        }
    };
    Ok((checked(stream, plan.clone(), schema)?, report))
}

async fn join_spill(spill: tokio::task::JoinHandle<Result<(), ArrowError>>) -> Result<(), ArrowError> {
    spill.await.map_err(|e| ArrowError::ExternalError(format!("spilling a sorted run: {e}").into()))?
}

/// Passes `sorted` through, failing at the first row whose key is below its predecessor's.
pub(super) fn checked(
    sorted: BatchStream,
    plan: SortPlan,
    schema: SchemaRef,
) -> Result<BatchStream, ArrowError> {
    let converter = plan.converter(&schema)?;
    let mut last: Option<OwnedRow> = None;
    let mut emitted = 0u64;
    Ok(sorted
        .map(move |batch| {
            let batch = batch?;
            if batch.num_rows() == 0 {
                return Ok(batch);
            }
            let rows = plan.rows(&converter, &batch)?;
            let first_ok = last.as_ref().is_none_or(|l| l.row() <= rows.row(0));
            if let Some(i) = (!first_ok)
                .then_some(0)
                .or_else(|| (1..rows.num_rows()).find(|&i| rows.row(i - 1) > rows.row(i)))
            {
                return Err(BrokenRun::error(None, emitted + i as u64));
            }
            last = Some(rows.row(rows.num_rows() - 1).owned());
            emitted += batch.num_rows() as u64;
            Ok(batch)
        })
        .boxed())
}

fn spill_run(schema: &SchemaRef, chunk: &Chunk, path: &PathBuf) -> Result<(), ArrowError> {
    let order = sorted_order(chunk);
    let mut writer = FileWriter::try_new(File::create(path)?, schema)?;
    for piece in order.chunks(piece_rows(chunk)) {
        writer.write(&sorted_piece(&chunk.batches, piece)?)?;
    }
    writer.finish()
}

fn open_spilled(paths: &[PathBuf]) -> Result<Vec<NumberedRun>, ArrowError> {
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            Ok((i, Box::new(FileReader::try_new(File::open(path)?, None)?) as Box<dyn RunSource>))
        })
        .collect()
}

/// Merges sorted runs on a blocking thread; batches come back through a small channel (bounded memory).
/// At most `fan_in` runs are open at once: with more, groups of `fan_in` are first merged into longer
/// runs on disk.
fn merge_runs(
    plan: SortPlan,
    schema: SchemaRef,
    dir: tempfile::TempDir,
    runs: Vec<PathBuf>,
    fan_in: usize,
) -> BatchStream {
    produced("merging spilled runs", move |send| {
        let runs = merge_passes(&plan, &schema, dir.path(), runs, fan_in)?;
        merge_into(&plan, &schema, open_spilled(&runs)?, send)
    })
}

/// Merges `sources` into one spilled run at `path`.
fn spill_merged(
    plan: &SortPlan,
    schema: &SchemaRef,
    sources: Vec<NumberedRun>,
    path: &PathBuf,
) -> Result<(), ArrowError> {
    let mut writer = FileWriter::try_new(File::create(path)?, schema)?;
    let mut failed = None;
    merge_into(plan, schema, sources, &mut |batch| match writer.write(&batch) {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    writer.finish()
}

/// Merges groups of `fan_in` runs into single runs until at most `fan_in` remain.
fn merge_passes(
    plan: &SortPlan,
    schema: &SchemaRef,
    dir: &std::path::Path,
    mut runs: Vec<PathBuf>,
    fan_in: usize,
) -> Result<Vec<PathBuf>, ArrowError> {
    let fan_in = fan_in.max(2);
    let mut pass = 0;
    while runs.len() > fan_in {
        pass += 1;
        let mut next = Vec::with_capacity(runs.len().div_ceil(fan_in));
        for (i, group) in runs.chunks(fan_in).enumerate() {
            if group.len() == 1 {
                next.push(group[0].clone());
                continue;
            }
            let path = dir.join(format!("pass-{pass}-run-{i}.arrow"));
            spill_merged(plan, schema, open_spilled(group)?, &path)?;
            for merged in group {
                std::fs::remove_file(merged)?;
            }
            next.push(path);
        }
        runs = next;
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::super::merge::{BrokenRun, FileRun, RunSource, merge_sorted_files};
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

    fn values(b: &RecordBatch) -> Vec<(i64, Option<String>)> {
        let ts = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let id = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        (0..b.num_rows()).map(|i| (ts.value(i), (!id.is_null(i)).then(|| id.value(i).to_string()))).collect()
    }

    async fn sort_tagged(
        input: Vec<Tagged>,
        plan: &SortPlan,
        memory: u64,
    ) -> Result<(Vec<(i64, Option<String>)>, SortReport), ArrowError> {
        let input = futures::stream::iter(input.into_iter().map(Ok::<_, ArrowError>)).boxed();
        let (mut out, report) = sort_batches(input, plan, schema(), memory).await?;
        let mut rows = Vec::new();
        while let Some(b) = out.next().await {
            rows.extend(values(&b?));
        }
        Ok((rows, report))
    }

    async fn run(batches: Vec<RecordBatch>, memory: u64) -> Vec<(i64, Option<String>)> {
        let tagged = batches
            .into_iter()
            .enumerate()
            .map(|(file, batch)| Tagged { file, claimed: false, batch })
            .collect();
        sort_tagged(tagged, &plan(), memory).await.unwrap().0
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

    async fn drain(mut stream: BatchStream) -> (usize, Option<String>) {
        let mut batches = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => batches += 1,
                Err(e) => return (batches, Some(e.to_string())),
            }
        }
        (batches, None)
    }

    #[tokio::test]
    async fn a_producer_ends_its_stream_only_by_returning() {
        let ok = produced("three", |send| {
            for _ in 0..3 {
                assert!(send(batch(vec![1], vec![Some("a")])));
            }
            Ok(())
        });
        assert_eq!(drain(ok).await, (3, None));
        let failed = produced("failing", |send| {
            send(batch(vec![1], vec![None]));
            Err(ArrowError::ComputeError("boom".into()))
        });
        let (n, error) = drain(failed).await;
        assert_eq!(n, 1);
        assert!(error.unwrap().contains("boom"));
        let panicked = produced("panicking", |send| {
            send(batch(vec![1], vec![None]));
            panic!("injected");
        });
        let (n, error) = drain(panicked).await;
        assert_eq!(n, 1);
        assert!(error.unwrap().contains("panicking panicked"));
    }

    /// A producer whose blocking task is dropped before it runs (spawned as its runtime shuts down):
    /// the stream ends with an error, not as if the rows had ended.
    #[test]
    fn a_producer_that_never_ran_ends_its_stream_with_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let handle = rt.handle().clone();
        rt.shutdown_background();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stream = {
            let _runtime = handle.enter();
            let ran = Arc::clone(&ran);
            produced("queued", move |send| {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                send(batch(vec![1], vec![None]));
                Ok(())
            })
        };
        let other = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (n, error) = other.block_on(drain(stream));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "the producer must not have run");
        assert_eq!(n, 0);
        assert!(error.expect("an error, not an end").contains("queued stopped before its end"));
    }

    /// An independent comparator for `(ts, id)` under `plan` (column 0 then 1).
    fn cmp_under(
        plan: &SortPlan,
        a: &(i64, Option<String>),
        b: &(i64, Option<String>),
    ) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn one<T: Ord>(x: Option<&T>, y: Option<&T>, o: SortOptions) -> Ordering {
            match (x, y) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => {
                    if o.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (Some(_), None) => {
                    if o.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (Some(x), Some(y)) => {
                    if o.descending {
                        y.cmp(x)
                    } else {
                        x.cmp(y)
                    }
                }
            }
        }
        for &(col, o) in &plan.keys {
            let c =
                if col == 0 { one(Some(&a.0), Some(&b.0), o) } else { one(a.1.as_ref(), b.1.as_ref(), o) };
            if c != Ordering::Equal {
                return c;
            }
        }
        Ordering::Equal
    }

    fn assert_sorted_multiset(
        plan: &SortPlan,
        got: &[(i64, Option<String>)],
        mut want: Vec<(i64, Option<String>)>,
    ) {
        for w in got.windows(2) {
            assert_ne!(cmp_under(plan, &w[0], &w[1]), std::cmp::Ordering::Greater, "out of order: {w:?}");
        }
        let mut got = got.to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want, "rows differ as multisets");
    }

    /// `rows` split into tagged batches of at most `per_batch` rows, all from `file`.
    fn file_batches(
        file: usize,
        claimed: bool,
        rows: &[(i64, Option<String>)],
        per_batch: usize,
    ) -> Vec<Tagged> {
        rows.chunks(per_batch.max(1))
            .map(|c| Tagged {
                file,
                claimed,
                batch: batch(c.iter().map(|r| r.0).collect(), c.iter().map(|r| r.1.as_deref()).collect()),
            })
            .collect()
    }

    fn random_rows(seed: u64, n: usize) -> Vec<(i64, Option<String>)> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (x % 1_000_003) as i64;
                (v % 50, (v % 5 != 0).then(|| format!("k{}", v % 11)))
            })
            .collect()
    }

    fn plans() -> Vec<SortPlan> {
        let mut out = Vec::new();
        for descending in [false, true] {
            for nulls_first in [false, true] {
                out.push(SortPlan {
                    order_id: 3,
                    keys: vec![
                        (0, SortOptions { descending, nulls_first: !nulls_first }),
                        (1, SortOptions { descending: !descending, nulls_first }),
                    ],
                });
                out.push(SortPlan { order_id: 4, keys: vec![(1, SortOptions { descending, nulls_first })] });
            }
        }
        out
    }

    #[tokio::test]
    async fn claimed_sorted_runs_are_merged_not_sorted() {
        for plan in plans() {
            for memory in [1 << 30, 16 * 1024] {
                let mut per_file = Vec::new();
                let mut all = Vec::new();
                for file in 0..12 {
                    let mut rows = random_rows(file as u64 * 7 + 1, 700);
                    rows.sort_by(|a, b| cmp_under(&plan, a, b));
                    all.extend(rows.clone());
                    per_file.push(file_batches(file, true, &rows, 100).into_iter());
                }
                // Files interleave batch by batch, as files decoded at once do.
                let mut input = Vec::new();
                while input.len() < 12 * 7 {
                    input.extend(per_file.iter_mut().filter_map(Iterator::next));
                }
                let (got, report) = sort_tagged(input, &plan, memory).await.unwrap();
                assert_sorted_multiset(&plan, &got, all);
                assert_eq!(report.sorted_batches, 0, "{plan:?}");
                assert!(report.unsorted_claims.is_empty());
                assert_eq!(report.merged_batches, 12 * 7);
                assert_eq!(report.spilled_runs > 0, memory < 1 << 20);
            }
        }
    }

    #[tokio::test]
    async fn a_file_claiming_the_order_but_unsorted_is_sorted_not_merged() {
        let plan = plan();
        for memory in [1 << 30, 8 * 1024] {
            let mut sorted = random_rows(5, 600);
            sorted.sort_by(|a, b| cmp_under(&plan, a, b));
            // File 1 lies inside a batch; file 2 lies only across batches (each batch sorted on its own);
            // file 3 lies only in its last row.
            let liar_inside = random_rows(9, 600);
            let mut across = sorted.clone();
            across.rotate_left(300);
            let mut last = sorted.clone();
            last.push((-1, None));
            let mut input = file_batches(0, true, &sorted, 128);
            input.extend(file_batches(1, true, &liar_inside, 128));
            input.extend(file_batches(2, true, &across, 100));
            input.extend(file_batches(3, true, &last, 128));
            let want = [sorted.clone(), liar_inside, across, last].concat();
            let (got, report) = sort_tagged(input, &plan, memory).await.unwrap();
            assert_sorted_multiset(&plan, &got, want);
            assert_eq!(report.unsorted_claims, vec![1, 2, 3], "memory {memory}");
        }
    }

    #[tokio::test]
    async fn mixed_claimed_and_unclaimed_inputs_with_equal_keys_across_runs() {
        let plan = plan();
        let same: Vec<(i64, Option<String>)> = (0..300).map(|i| (i / 100, Some("k".to_string()))).collect();
        let mut input = Vec::new();
        let mut want = Vec::new();
        for file in 0..6 {
            let claimed = file % 2 == 0;
            let rows = if claimed { same.clone() } else { random_rows(file as u64 + 40, 300) };
            want.extend(rows.clone());
            input.extend(file_batches(file, claimed, &rows, 64));
        }
        let (got, report) = sort_tagged(input, &plan, 1 << 30).await.unwrap();
        assert_sorted_multiset(&plan, &got, want);
        assert!(report.merged_batches > 0 && report.sorted_batches > 0, "{report:?}");
    }

    #[tokio::test]
    async fn the_output_check_refuses_rows_out_of_order() {
        let unsorted = futures::stream::iter([
            Ok(batch(vec![1, 2], vec![Some("a"), Some("b")])),
            Ok(batch(vec![2, 1], vec![Some("c"), Some("a")])),
        ])
        .boxed();
        let mut out = checked(unsorted, plan(), schema()).unwrap();
        assert!(out.next().await.unwrap().is_ok());
        let err = out.next().await.unwrap().unwrap_err().to_string();
        assert!(err.contains("out of order at row 3"), "{err}");
    }

    /// In-memory batches as a run the file merge reads.
    struct Batches(std::collections::VecDeque<RecordBatch>);

    impl RunSource for Batches {
        fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
            Ok(self.0.pop_front())
        }
    }

    fn run_of(rows: &[(i64, Option<String>)], per_batch: usize) -> Box<dyn RunSource> {
        let batches = file_batches(0, true, rows, per_batch).into_iter().map(|t| t.batch).collect();
        Box::new(Batches(batches))
    }

    /// The lead key (first sort column) of `row` as a start for the file merge.
    fn start_of(plan: &SortPlan, row: &(i64, Option<String>)) -> Vec<u8> {
        let b = batch(vec![row.0], vec![row.1.as_deref()]);
        plan.lead_row(&schema(), b.column(plan.keys[0].0).clone()).unwrap()
    }

    async fn merge_files(
        plan: &SortPlan,
        runs: Vec<FileRun>,
    ) -> Result<Vec<(i64, Option<String>)>, ArrowError> {
        let mut out = merge_sorted_files(plan, schema(), runs)?;
        let mut got = Vec::new();
        while let Some(b) = out.next().await {
            got.extend(values(&b?));
        }
        Ok(got)
    }

    /// Files that lie about their order fail the merge with the file's index and the first row out of
    /// order (inside a batch, across batches, in the last row), opened at once or when reached; no row
    /// after it is trusted.
    #[tokio::test]
    async fn a_broken_run_fails_the_file_merge_naming_the_file_and_row() {
        let plan = plan();
        let mut sorted = random_rows(5, 600);
        sorted.sort_by(|a, b| cmp_under(&plan, a, b));
        let mut inside = sorted.clone();
        inside.swap(200, 260);
        let mut across = sorted.clone();
        across.rotate_left(300);
        let mut last = sorted.clone();
        last.push((-1, None));
        for (liar, rows, first_bad) in [(1usize, inside, 200u64), (2, across, 300), (1, last, 600)] {
            for with_starts in [false, true] {
                let files = (0..3)
                    .map(|i| {
                        let rows = if i == liar { &rows } else { &sorted };
                        let start = with_starts.then(|| start_of(&plan, &rows[0]));
                        FileRun { run: run_of(rows, if i == liar { 100 } else { 128 }), start }
                    })
                    .collect();
                let err = merge_files(&plan, files).await.unwrap_err();
                let broken = BrokenRun::of(&err).unwrap_or_else(|| panic!("{err}"));
                assert_eq!(broken.run, Some(liar), "starts {with_starts}");
                // The first row that is below its predecessor (a swap shows at its second row).
                assert!(broken.row >= first_bad && broken.row <= first_bad + 60, "{broken:?}");
            }
        }
    }

    /// Runs covering successive stretches of the key are opened only when the merge reaches them: at
    /// most the overlapping ones are open at once (here: two), and a start that lies (above the run's
    /// real first row) fails the merge instead of emitting rows out of order.
    #[tokio::test]
    async fn runs_are_opened_when_reached_and_a_lying_start_fails_the_merge() {
        let plan =
            SortPlan { order_id: 1, keys: vec![(0, SortOptions { descending: false, nulls_first: true })] };
        let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let open_now = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct Counted {
            rows: std::collections::VecDeque<RecordBatch>,
            started: bool,
            open_now: std::sync::Arc<std::sync::atomic::AtomicUsize>,
            most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        }
        impl RunSource for Counted {
            fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
                use std::sync::atomic::Ordering::SeqCst;
                if !self.started {
                    self.started = true;
                    let now = self.open_now.fetch_add(1, SeqCst) + 1;
                    self.most.fetch_max(now, SeqCst);
                }
                let next = self.rows.pop_front();
                if next.is_none() {
                    self.open_now.fetch_sub(1, SeqCst);
                }
                Ok(next)
            }
        }
        // 50 files, file i covering timestamps [10 i, 10 i + 15): each overlaps the next.
        let file_rows =
            |i: i64| -> Vec<(i64, Option<String>)> { (0..15).map(|k| (10 * i + k, None)).collect() };
        let files = (0..50)
            .map(|i| {
                let rows = file_rows(i);
                let batches = file_batches(0, true, &rows, 4).into_iter().map(|t| t.batch).collect();
                opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                FileRun {
                    run: Box::new(Counted {
                        rows: batches,
                        started: false,
                        open_now: open_now.clone(),
                        most: most.clone(),
                    }),
                    start: Some(start_of(&plan, &rows[0])),
                }
            })
            .collect();
        let got = merge_files(&plan, files).await.unwrap();
        assert_sorted_multiset(&plan, &got, (0..50).flat_map(file_rows).collect());
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2, "runs open at once");

        // File 3 claims to start at 45 but holds 30..45: opened after rows up to 44 were emitted.
        let files = (0..6)
            .map(|i| {
                let rows = file_rows(i);
                let start = if i == 3 { (45, None) } else { rows[0].clone() };
                FileRun { run: run_of(&rows, 4), start: Some(start_of(&plan, &start)) }
            })
            .collect();
        let err = merge_files(&plan, files).await.unwrap_err();
        assert_eq!(BrokenRun::of(&err).map(|b| b.run), Some(None), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn merge_equals_a_full_sort(
            files in proptest::collection::vec(
                (proptest::prelude::any::<u64>(), 0usize..400, 1usize..150, 0u8..3), 1..10),
            plan_index in 0usize..8,
            memory_kb in proptest::prelude::prop_oneof![proptest::prelude::Just(1usize << 20), 4usize..64],
        ) {
            let plan = plans()[plan_index].clone();
            let mut input = Vec::new();
            let mut want = Vec::new();
            for (file, &(seed, n, per_batch, kind)) in files.iter().enumerate() {
                let mut rows = random_rows(seed, n);
                // kind 0: claimed and sorted; 1: claimed but (maybe) unsorted; 2: unclaimed.
                if kind == 0 {
                    rows.sort_by(|a, b| cmp_under(&plan, a, b));
                }
                want.extend(rows.clone());
                input.extend(file_batches(file, kind < 2, &rows, per_batch));
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (got, _) = rt.block_on(sort_tagged(input, &plan, memory_kb as u64 * 1024)).unwrap();
            assert_sorted_multiset(&plan, &got, want);
        }

        /// Sorted files merged straight from their readers give exactly the rows of a full sort, in
        /// order, whatever the batch sizes, empty runs and starts; a start that lies (above the run's
        /// first key) may fail the merge with a broken run, never emit anything else.
        #[test]
        fn file_merge_equals_a_full_sort_or_fails(
            files in proptest::collection::vec(
                (proptest::prelude::any::<u64>(), 0usize..300, 1usize..90, 0u8..4, proptest::prelude::any::<u64>()), 1..12),
            plan_index in 0usize..8,
        ) {
            let plan = plans()[plan_index].clone();
            let mut want = Vec::new();
            let mut runs = Vec::new();
            let mut lied = false;
            for &(seed, n, per_batch, start_kind, pick) in &files {
                let mut rows = random_rows(seed, n);
                rows.sort_by(|a, b| cmp_under(&plan, a, b));
                want.extend(rows.clone());
                // 0: no start; 1: the true first key; 2: a key at or below it; 3: any key of the run
                // (a lie when above the first).
                let start = match (start_kind, rows.first()) {
                    (_, None) | (0, _) => None,
                    (1, Some(first)) => Some(start_of(&plan, first)),
                    (2, Some(first)) => {
                        let below = random_rows(pick, 20).into_iter().find(|r| cmp_under(&plan, r, first).is_le());
                        below.map(|r| start_of(&plan, &r))
                    }
                    (_, Some(first)) => {
                        let any = &rows[(pick % rows.len() as u64) as usize];
                        lied |= start_of(&plan, any) > start_of(&plan, first);
                        Some(start_of(&plan, any))
                    }
                };
                runs.push(FileRun { run: run_of(&rows, per_batch), start });
            }
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            match rt.block_on(merge_files(&plan, runs)) {
                Ok(got) => assert_sorted_multiset(&plan, &got, want),
                Err(e) => {
                    assert!(lied, "no start lied, yet: {e}");
                    assert!(BrokenRun::of(&e).is_some_and(|b| b.run.is_none()), "{e}");
                }
            }
        }
    }
}
