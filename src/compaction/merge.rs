//! The k-way merge of sorted runs: spilled runs of the sort, or input files that claim the table's
//! sort order, read straight from their readers.
//!
//! A run is trusted only as far as it was checked: every batch a run yields must be sorted and start
//! not below the run's previous row ([`BrokenRun`] otherwise). A run may carry a start (a prefix of its
//! first key, from its file's manifest bounds): it is opened only when the merge reaches that key, so
//! files covering successive stretches of time are held open a few at a time. A start that lies
//! (above the run's real first row) shows as output out of order, which the emitted stream's check
//! refuses. Output batches are assembled with `interleave` about `OUT_BYTES` at a time, through a
//! binary heap of runs on a blocking thread.

use std::fs::File;

use arrow_array::RecordBatch;
use arrow_ipc::reader::FileReader;
use arrow_row::{RowConverter, Rows};
use arrow_schema::{ArrowError, SchemaRef};
use arrow_select::interleave::interleave_record_batch;
use futures::StreamExt;

use super::sort::{BatchStream, OUT_BYTES, OUT_ROWS, SortPlan, batch_bytes, checked};

/// A sorted run the merge reads a batch at a time, on a blocking thread: a spilled run, or an input
/// file that claims the order (read through its own reader).
pub(super) trait RunSource: Send {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError>;
}

impl RunSource for FileReader<File> {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.next().transpose()
    }
}

/// Rows found out of order in a merge of runs that claimed to be sorted: inside run `run` (an input
/// file whose claim is false), or (`run: None`) in the output, where a run was opened later than its
/// first row needed (its claimed bounds are false). Rows before it were emitted: the caller discards
/// the output.
#[derive(Debug)]
pub(super) struct BrokenRun {
    /// The run's id as the caller numbered it (for input files: the file's index).
    pub run: Option<usize>,
    /// The row of the run (or of the output) that is below its predecessor.
    pub row: u64,
}

impl std::fmt::Display for BrokenRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.run {
            Some(run) => write!(f, "sorted run {run} is out of order at its row {}", self.row),
            None => write!(f, "sorted output out of order at row {}: refusing to write it", self.row),
        }
    }
}

impl std::error::Error for BrokenRun {}

impl BrokenRun {
    /// The broken run named by `e`, if `e` is one.
    pub(super) fn of(e: &ArrowError) -> Option<&BrokenRun> {
        match e {
            ArrowError::ExternalError(inner) => inner.downcast_ref::<BrokenRun>(),
            _ => None,
        }
    }

    pub(super) fn error(run: Option<usize>, row: u64) -> ArrowError {
        ArrowError::ExternalError(Box::new(BrokenRun { run, row }))
    }
}

/// The source of a run already read to its end.
struct Exhausted;

impl RunSource for Exhausted {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        Ok(None)
    }
}

/// One sorted run being merged: its source, current batch, that batch's row keys and a cursor.
struct Run {
    id: usize,
    source: Box<dyn RunSource>,
    batch: RecordBatch,
    rows: Rows,
    pos: usize,
    /// Rows of this run before `batch`.
    before: u64,
    /// Index of `batch` in the merge's current batches.
    slot: usize,
}

impl Run {
    /// Opens a run at its first row; `None` if it has none.
    fn open(
        id: usize,
        mut source: Box<dyn RunSource>,
        plan: &SortPlan,
        converter: &RowConverter,
    ) -> Result<Option<Run>, ArrowError> {
        let Some((batch, rows)) = next_sorted(&mut *source, plan, converter, None, id, 0)? else {
            return Ok(None);
        };
        Ok(Some(Run { id, source, batch, rows, pos: 0, before: 0, slot: 0 }))
    }

    /// Lets go of an exhausted run's source and batch.
    fn close(&mut self, converter: &RowConverter) {
        self.source = Box::new(Exhausted);
        self.batch = RecordBatch::new_empty(self.batch.schema());
        self.rows = converter.empty_rows(0, 0);
    }

    /// Moves to the next batch; false when the run is exhausted.
    fn advance(&mut self, plan: &SortPlan, converter: &RowConverter) -> Result<bool, ArrowError> {
        let last = self.rows.row(self.batch.num_rows() - 1);
        let before = self.before + self.batch.num_rows() as u64;
        match next_sorted(&mut *self.source, plan, converter, Some(last), self.id, before)? {
            Some((batch, rows)) => {
                (self.batch, self.rows, self.pos, self.before) = (batch, rows, 0, before);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The source's next non-empty batch and its keys, verified: sorted, and its first row not below
/// `last` (the run's previous row). A run is only ever trusted after this check.
fn next_sorted(
    source: &mut dyn RunSource,
    plan: &SortPlan,
    converter: &RowConverter,
    last: Option<arrow_row::Row<'_>>,
    id: usize,
    before: u64,
) -> Result<Option<(RecordBatch, Rows)>, ArrowError> {
    loop {
        let Some(batch) = source.next_batch()? else { return Ok(None) };
        if batch.num_rows() == 0 {
            continue;
        }
        let rows = plan.rows(converter, &batch)?;
        let first_ok = last.is_none_or(|l| l <= rows.row(0));
        if let Some(i) =
            (!first_ok).then_some(0).or_else(|| (1..rows.num_rows()).find(|&i| rows.row(i - 1) > rows.row(i)))
        {
            return Err(BrokenRun::error(Some(id), before + i as u64));
        }
        return Ok(Some((batch, rows)));
    }
}

/// `work`'s result, or an error naming `what` if it panicked: a producer thread that panics must end
/// its stream with an error, never with a silent end that reads as "no more rows".
pub(super) fn unpanicked<T>(
    what: &str,
    work: impl FnOnce() -> Result<T, ArrowError>,
) -> Result<T, ArrowError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(ArrowError::ExternalError(format!("{what} panicked").into())))
}

/// A run and the id errors name it by.
pub(super) type NumberedRun = (usize, Box<dyn RunSource>);

/// An input file for [`merge_sorted_files`]: its rows as a sorted run and, if known, where the run
/// starts: its first sort column's first value (from the file's manifest bounds) encoded in arrow's row
/// format ([`SortPlan::lead_row`]). A run with a start is opened only when the merge reaches it, so
/// files covering successive stretches of the key (an ingest writer's successive flushes) are held
/// open a few at a time; one without is opened at once.
pub(super) struct FileRun {
    pub run: Box<dyn RunSource>,
    pub start: Option<Vec<u8>>,
}

/// Merges input files that claim the order, each read straight from its own reader (no row is
/// gathered or sorted), on a blocking thread; batches come back through a small channel. Every run's
/// order is verified as it is read, and the output's as it is emitted: the first out-of-order row
/// fails the stream with a [`BrokenRun`].
pub(super) fn merge_sorted_files(
    plan: &SortPlan,
    schema: SchemaRef,
    files: Vec<FileRun>,
) -> Result<BatchStream, ArrowError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, ArrowError>>(2);
    let (merge_plan, merge_schema) = (plan.clone(), schema.clone());
    tokio::task::spawn_blocking(move || {
        let sources = files.into_iter().enumerate().collect();
        let result = unpanicked("merging sorted runs", || {
            merge_lazily(&merge_plan, &merge_schema, sources, &mut |batch| {
                tx.blocking_send(Ok(batch)).is_ok()
            })
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let merged = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    checked(merged.boxed(), plan.clone(), schema)
}

/// Merges the sorted runs of `sources`, handing each output batch to `sink` (which returns false to
/// stop). Each run's order is verified as its batches are read ([`BrokenRun`]).
pub(super) fn merge_into(
    plan: &SortPlan,
    schema: &SchemaRef,
    sources: Vec<NumberedRun>,
    sink: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<(), ArrowError> {
    merge_lazily(
        plan,
        schema,
        sources.into_iter().map(|(id, run)| (id, FileRun { run, start: None })).collect(),
        sink,
    )
}

/// [`merge_into`], where a run with a start (an encoded prefix of its first row's key) is opened only
/// once the smallest current row is not below it.
fn merge_lazily(
    plan: &SortPlan,
    schema: &SchemaRef,
    sources: Vec<(usize, FileRun)>,
    sink: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<(), ArrowError> {
    let converter = plan.converter(schema)?;
    // Runs not yet open, largest start first (popped from the end); runs without a start open first.
    let mut pending = sources;
    pending.sort_by(|a, b| b.1.start.cmp(&a.1.start));
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    // A binary min-heap of run indexes by each run's current row.
    let mut heap: Vec<usize> = Vec::new();
    let mut out_rows = 0usize;
    let mut indices: Vec<(usize, usize)> = Vec::new();
    loop {
        // Open every pending run whose start the merge has reached (a start that is a prefix of the
        // smallest row counts as reached: rows with that first value may sort below it).
        while let Some((_, FileRun { start, .. })) = pending.last() {
            let reached = match (start, heap.first()) {
                (Some(start), Some(&r)) => start.as_slice() <= runs[r].rows.row(runs[r].pos).as_ref(),
                _ => true,
            };
            if !reached {
                break;
            }
            let (id, file) = pending.pop().expect("a pending run");
            if let Some(mut run) = Run::open(id, file.run, plan, &converter)? {
                run.slot = batches.len();
                batches.push(run.batch.clone());
                runs.push(run);
                heap.push(runs.len() - 1);
                let last = heap.len() - 1;
                sift_up(&mut heap, last, &runs);
            }
        }
        let Some(&best) = heap.first() else { break };
        if out_rows == 0 {
            // Output batches sized by bytes, like the runs' own batches.
            let (bytes, rows) =
                batches.iter().fold((0u64, 0u64), |(b, r), s| (b + batch_bytes(s), r + s.num_rows() as u64));
            out_rows = usize::try_from(OUT_BYTES / (bytes / rows.max(1)).max(1))
                .unwrap_or(OUT_ROWS)
                .clamp(1, OUT_ROWS);
        }
        let run = &mut runs[best];
        indices.push((run.slot, run.pos));
        run.pos += 1;
        if run.pos == run.batch.num_rows() {
            if run.advance(plan, &converter)? {
                batches.push(run.batch.clone());
                run.slot = batches.len() - 1;
            } else {
                // Exhausted: its reader and last batch are let go (the batch lives on in `batches`
                // until the piece pointing into it is emitted).
                run.close(&converter);
                let last = heap.pop().expect("heap is not empty");
                if !heap.is_empty() {
                    heap[0] = last;
                }
            }
        }
        sift_down(&mut heap, 0, &runs);
        // Emitted when full, and whenever no run is open: pending runs may hold no rows at all (a file
        // whose rows were all deleted still has bounds), and the loop ends when opening them finds none.
        if indices.len() == out_rows || heap.is_empty() {
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            let out = interleave_record_batch(&refs, &indices)?;
            indices.clear();
            if !sink(out) {
                return Ok(()); // the consumer stopped
            }
            // Keep only the batches runs still point into, re-indexed.
            batches = heap.iter().map(|&r| runs[r].batch.clone()).collect();
            for (i, &r) in heap.iter().enumerate() {
                runs[r].slot = i;
            }
        }
    }
    Ok(())
}

fn sift_up(heap: &mut [usize], mut i: usize, runs: &[Run]) {
    let key = |r: usize| runs[r].rows.row(runs[r].pos);
    while i > 0 {
        let parent = (i - 1) / 2;
        if key(heap[i]) >= key(heap[parent]) {
            return;
        }
        heap.swap(i, parent);
        i = parent;
    }
}

fn sift_down(heap: &mut [usize], mut i: usize, runs: &[Run]) {
    let key = |r: usize| runs[r].rows.row(runs[r].pos);
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut least = i;
        if l < heap.len() && key(heap[l]) < key(heap[least]) {
            least = l;
        }
        if r < heap.len() && key(heap[r]) < key(heap[least]) {
            least = r;
        }
        if least == i {
            return;
        }
        heap.swap(i, least);
        i = least;
    }
}

#[cfg(test)]
#[path = "merge_attack_tests.rs"]
mod attack_tests;
