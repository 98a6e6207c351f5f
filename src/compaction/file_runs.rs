//! A sorted group whose input files all claim the table's sort order, merged straight from the files'
//! readers ([`merge`](super::merge)) instead of gathered and sorted: whether the files the merge would
//! hold open at once fit the budget (read from the manifests' bounds of the first sort column), where
//! each file's run starts, and the writing.
//!
//! Hazard: bounds are claims like the order. A file whose rows start below its claimed start fails the
//! merge (the caller then discards the output and sorts); one that ends past its claimed end only
//! holds memory longer than estimated.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{Datum, SchemaRef};

use super::merge::{BrokenRun, FileRun, RunSource, merge_sorted_files};
use super::read::{RunStream, decoded_row_bytes, qualified, read_runs};
use super::rewrite::{GroupInput, GroupSink, RewriteError, slices};
use super::sort::SortPlan;
use crate::table::LiveFile;

/// How a group whose inputs all claim the table's sort order is merged straight from its files: rows
/// per input batch, and where each file's run starts (see [`FileRun`]).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MergeLayout {
    batch_rows: usize,
    starts: Vec<Option<Vec<u8>>>,
}

/// Bytes an open input file holds per byte of its size: its reader decompresses a whole page of every
/// column, and a small file is one page per column (measured: 1,000 open ~80 KB zstd `traces` files
/// peaked at ~800 MB).
const OPEN_EXPANSION: u64 = 12;

/// Input files the merge may hold open at once: a quarter of the process's open-file limit (each
/// open reader may hold a file open), at most 4,096.
pub(super) fn max_open_files() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(soft / 4).unwrap_or(4096).clamp(16, 4096)
}

/// The merge layout when every input claims `plan`'s order (SignalDB's writer sorts every file and
/// says so) and the files the merge would hold open at once fit half the budget; `None` otherwise (the
/// rows are then gathered and sorted within the budget). Which files overlap is read from the
/// manifests' bounds of the first sort column: a file is opened when the merge reaches its first
/// value and closed after its last, so files covering successive stretches of time (successive
/// flushes of an ingest writer) are open a few at a time. Bounds are claims like the order: a file
/// whose rows start below its claimed start fails the merge ([`BrokenRun`]); one that ends past
/// its claimed end only holds memory longer than estimated.
pub(super) fn merge_layout(
    input: &GroupInput,
    plan: &SortPlan,
    schema: &SchemaRef,
    max_open: usize,
) -> Option<MergeLayout> {
    let files = &input.files;
    let claims =
        |f: &LiveFile| f.entry.data_file().sort_order_id().is_some_and(|id| i64::from(id) == plan.order_id);
    if files.len() < 2 || !files.iter().all(claims) {
        return None;
    }
    let arrow_schema = Arc::new(schema_to_arrow_schema(schema).ok()?);
    let row_bytes = decoded_row_bytes(files);
    let batch_rows = (BATCH_BYTES / row_bytes).clamp(16, 8192);
    let spans: Vec<Span> = files.iter().map(|f| file_span(f, plan, schema, &arrow_schema)).collect();
    // Sweep the spans in start order (unknown starts first), keeping the ends of the open ones.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| spans[a].0.cmp(&spans[b].0));
    let cost = |i: usize| files[i].size().saturating_mul(OPEN_EXPANSION) + batch_rows * row_bytes;
    let mut open: Vec<usize> = Vec::new();
    let (mut held, mut peak, mut most) = (0u64, 0u64, 0usize);
    for &i in &order {
        // A run whose end is below this start is exhausted before this one opens (unknown end: never).
        open.retain(|&j| {
            let done = matches!((&spans[j].1, &spans[i].0), (Some(end), Some(start)) if end < start);
            if done {
                held -= cost(j);
            }
            !done
        });
        open.push(i);
        held += cost(i);
        peak = peak.max(held);
        most = most.max(open.len());
    }
    if peak > input.memory_limit / 2 || most > max_open {
        return None;
    }
    let starts = spans.into_iter().map(|(start, _)| start).collect();
    Some(MergeLayout { batch_rows: usize::try_from(batch_rows).unwrap_or(8192), starts })
}

/// Decoded bytes aimed at per input batch of the merge.
const BATCH_BYTES: u64 = 1 << 20;

/// Where a run starts and where it ends (key prefixes in arrow's row format; `None`: unknown).
type Span = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Where a file's run starts and ends, as prefixes of the sort key in arrow's row format, from its
/// manifest bounds of the first sort column: `None` where unknown (no bound, a type the bound cannot be
/// read as, or nulls that sort first at the start / last at the end).
fn file_span(
    f: &LiveFile,
    plan: &SortPlan,
    schema: &SchemaRef,
    arrow_schema: &arrow_schema::SchemaRef,
) -> Span {
    let Some(&(index, options)) = plan.keys.first() else { return (None, None) };
    let Some(field) = schema.as_struct().fields().get(index) else { return (None, None) };
    let file = f.entry.data_file();
    let nulls = file.null_value_counts().get(&field.id).is_none_or(|&n| n > 0);
    let (first, last) = if options.descending {
        (file.upper_bounds().get(&field.id), file.lower_bounds().get(&field.id))
    } else {
        (file.lower_bounds().get(&field.id), file.upper_bounds().get(&field.id))
    };
    let data_type = arrow_schema.field(index).data_type();
    let encode = |bound: Option<&Datum>| {
        let value = bound_array(bound?, data_type)?;
        plan.lead_row(arrow_schema, value).ok()
    };
    let start = if nulls && options.nulls_first { None } else { encode(first) };
    let end = if nulls && !options.nulls_first { None } else { encode(last) };
    (start, end)
}

/// A manifest bound as a one-row array of the column's Arrow type, for the types a sort key of
/// telemetry uses (integers, dates, timestamps, strings); `None` for any other pairing.
fn bound_array(bound: &Datum, data_type: &arrow_schema::DataType) -> Option<arrow_array::ArrayRef> {
    use arrow_array::{Date32Array, Int32Array, Int64Array, LargeStringArray, StringArray};
    use arrow_array::{TimestampMicrosecondArray, TimestampNanosecondArray};
    use arrow_schema::{DataType, TimeUnit};
    use iceberg::spec::{PrimitiveLiteral as L, PrimitiveType as P};
    Some(match (bound.data_type(), bound.literal(), data_type) {
        (P::Int, L::Int(v), DataType::Int32) => Arc::new(Int32Array::from(vec![*v])),
        (P::Int, L::Int(v), DataType::Int64) => Arc::new(Int64Array::from(vec![i64::from(*v)])),
        (P::Long, L::Long(v), DataType::Int64) => Arc::new(Int64Array::from(vec![*v])),
        (P::Date, L::Int(v), DataType::Date32) => Arc::new(Date32Array::from(vec![*v])),
        (P::Timestamp, L::Long(v), DataType::Timestamp(TimeUnit::Microsecond, tz @ None))
        | (P::Timestamptz, L::Long(v), DataType::Timestamp(TimeUnit::Microsecond, tz @ Some(_))) => {
            Arc::new(TimestampMicrosecondArray::from(vec![*v]).with_timezone_opt(tz.clone()))
        }
        (P::TimestampNs, L::Long(v), DataType::Timestamp(TimeUnit::Nanosecond, tz @ None))
        | (P::TimestamptzNs, L::Long(v), DataType::Timestamp(TimeUnit::Nanosecond, tz @ Some(_))) => {
            Arc::new(TimestampNanosecondArray::from(vec![*v]).with_timezone_opt(tz.clone()))
        }
        (P::String, L::String(v), DataType::Utf8) => Arc::new(StringArray::from(vec![v.as_str()])),
        (P::String, L::String(v), DataType::LargeUtf8) => Arc::new(LargeStringArray::from(vec![v.as_str()])),
        _ => return None,
    })
}

/// An input file read as a sorted run on the merge's blocking thread, counting the rows it yields.
struct BlockingRun {
    stream: RunStream,
    runtime: tokio::runtime::Handle,
    read: Arc<AtomicU64>,
}

impl RunSource for BlockingRun {
    fn next_batch(&mut self) -> Result<Option<arrow_array::RecordBatch>, arrow_schema::ArrowError> {
        let next = self
            .runtime
            .block_on(self.stream.next())
            .transpose()
            .map_err(|e| arrow_schema::ArrowError::ExternalError(Box::new(e)))?;
        if let Some(batch) = &next {
            self.read.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        }
        Ok(next)
    }
}

/// Merges the group's files, each a sorted run read straight from its reader, into `writer`; the rows
/// read. A file found out of order fails with [`RewriteError::BrokenClaim`] (output already written
/// is the caller's to discard).
pub(super) async fn write_merged(
    input: &GroupInput,
    plan: &SortPlan,
    schema: &SchemaRef,
    layout: MergeLayout,
    writer: &mut GroupSink,
) -> Result<u64, RewriteError> {
    let (runs, arrow_schema) = read_runs(input, schema, layout.batch_rows).await?;
    let read = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Handle::current();
    let files: Vec<FileRun> = runs
        .into_iter()
        .zip(layout.starts)
        .map(|(stream, start)| FileRun {
            run: Box::new(BlockingRun { stream, runtime: runtime.clone(), read: read.clone() }),
            start,
        })
        .collect();
    tracing::debug!(
        table = %qualified(&input.table), files = files.len(), batch_rows = layout.batch_rows,
        "merging sorted input files"
    );
    let mut merged = merge_sorted_files(plan, arrow_schema, files)?;
    loop {
        let batch = match merged.try_next().await {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                return Err(match BrokenRun::of(&e) {
                    Some(broken) => RewriteError::BrokenClaim {
                        path: broken
                            .run
                            .and_then(|i| input.files.get(i))
                            .map_or_else(|| "(a file's bounds)".to_string(), |f| f.path().to_string()),
                        row: broken.row,
                    },
                    None => RewriteError::Sort(e.to_string()),
                });
            }
        };
        for piece in slices(&batch, input.target_file_size) {
            writer.write(piece?).await?;
        }
    }
    Ok(read.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Schema, SortOptions, TimeUnit};

    use super::*;

    /// A bound is read only as the column's own type (or an int widened to long); encoded as a lead
    /// key it orders as the values do under the key's direction, and any other pairing is unknown
    /// (`None`: the file is opened at once, never later than its rows need).
    #[test]
    fn bounds_encode_in_the_keys_order_or_not_at_all() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
        let cases: Vec<(DataType, Datum, Datum)> = vec![
            (DataType::Int32, Datum::int(-5), Datum::int(7)),
            (DataType::Int64, Datum::int(-5), Datum::int(7)),
            (DataType::Int64, Datum::long(-5), Datum::long(1_i64 << 40)),
            (DataType::Date32, Datum::date(10), Datum::date(11)),
            (ts.clone(), Datum::timestamptz_micros(1), Datum::timestamptz_micros(2)),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Datum::timestamp_micros(-1),
                Datum::timestamp_micros(0),
            ),
            (DataType::Utf8, Datum::string("a"), Datum::string("ab")),
        ];
        for (data_type, low, high) in cases {
            for descending in [false, true] {
                let schema = Arc::new(Schema::new(vec![Field::new("k", data_type.clone(), true)]));
                let plan =
                    SortPlan { order_id: 1, keys: vec![(0, SortOptions { descending, nulls_first: true })] };
                let encode = |d: &Datum| plan.lead_row(&schema, bound_array(d, &data_type).unwrap()).unwrap();
                assert_eq!(
                    encode(&low) < encode(&high),
                    !descending,
                    "{data_type} {low} {high} desc {descending}"
                );
            }
        }
        for (datum, data_type) in [
            (Datum::long(1), DataType::Int32),
            (Datum::timestamp_micros(1), ts.clone()),
            (Datum::timestamp_nanos(1), DataType::Timestamp(TimeUnit::Microsecond, None)),
            (Datum::double(1.0), DataType::Float64),
            (Datum::string("x"), DataType::Int64),
            (Datum::bool(true), DataType::Boolean),
        ] {
            assert!(bound_array(&datum, &data_type).is_none(), "{datum} as {data_type}");
        }
    }
}

#[cfg(test)]
#[path = "file_runs_attack_tests.rs"]
mod attack_tests;
