//! Rewriting one group: stream Arrow batches out of the input files (`read`: iceberg's reader, projected
//! to the current schema, bounded batch size) and into target-size Parquet files (iceberg's writers, so field
//! ids and column statistics are right), optionally sorted by the table's sort order.
//!
//! Hazard: the row count written must equal the row count read and the manifests' record counts; any
//! mismatch fails the group before anything is committed.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{
    DataFile, DataFileBuilder, DataFileFormat, PartitionKey, SchemaRef, SortOrderRef, Struct,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::columns;
use super::file_runs::{max_open_files, merge_layout, write_merged};
use super::read::{FileBatchStream, qualified, read_inputs};
use super::sort::{SortPlan, Tagged, sort_batches};
use crate::table::commit::discard_uncommitted;
use crate::table::{AddedFile, LiveFile};

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("table property {key} = {value:?}: {reason}")]
    BadProperty { key: &'static str, value: String, reason: String },
    #[error("row count mismatch: manifests say {expected}, read {read}, wrote {written}")]
    RowCount { expected: u64, read: u64, written: u64 },
    #[error(
        "row count out of bounds with deletes applied: manifests say {expected}, at most {deletable} \
         deleted by position deletes{eq}, read {read}, wrote {written}",
        eq = if *equality { " (plus equality deletes)" } else { "" }
    )]
    RowCountWithDeletes { expected: u64, deletable: u64, equality: bool, read: u64, written: u64 },
    #[error("partition spec {0} not found")]
    UnknownSpec(i32),
    #[error(transparent)]
    Iceberg(#[from] iceberg::Error),
    #[error("sort: {0}")]
    Sort(String),
    /// An input file claims the table's sort order but is not sorted by it (found while merging).
    #[error("{path} claims the sort order but its row {row} is out of order")]
    BrokenClaim { path: String, row: u64 },
    /// An input file has no Parquet field ids and the table no name mapping to resolve its columns:
    /// reading it by position could shift values between columns, so the group is left alone.
    #[error("{path} has no field ids and the table has no schema.name-mapping.default")]
    NoFieldIds { path: String },
    /// Inside a struct (or a list element / map value struct) the file's children are named or ordered
    /// differently from the current schema's (a child renamed, moved, or renamed and re-added). iceberg
    /// 0.10.1 converts such structs with an Arrow cast that pairs children by position when names
    /// differ, which moves values between fields: the group is left alone.
    #[error("{path}: the children of nested field {field} are renamed or reordered since it was written")]
    NestedLayoutChanged { path: String, field: i32 },
    /// An equality delete would be applied to a file that stores one of its columns in a narrower
    /// type than the table's (written before a promotion, or imported), or whose column cannot be
    /// found by field id: iceberg's reader casts the delete's values down to the file's type first
    /// (out of range: NULL, which drops every row; a double: rounded to a float). The group is left
    /// alone.
    #[error("{path}: field {field} of an equality delete {why}")]
    EqualityDeleteColumn { path: String, field: i32, why: String },
    #[error("reading the footer of {path}: {source}")]
    Footer { path: String, source: parquet::errors::ParquetError },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl RewriteError {
    /// The skip reason when the group was deliberately not rewritten (not a failure).
    pub fn skip_reason(&self) -> Option<&'static str> {
        match self {
            RewriteError::NoFieldIds { .. } => Some("no_field_ids"),
            RewriteError::NestedLayoutChanged { .. } => Some("nested_layout_changed"),
            RewriteError::EqualityDeleteColumn { .. } => Some("equality_delete_column_type"),
            _ => None,
        }
    }
}

/// What one group's rewrite produced.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub files: Vec<AddedFile>,
    pub rows: u64,
    pub bytes_written: u64,
    /// The sort order id the files claim (only when they really are sorted by it).
    pub sort_order_id: Option<i64>,
    /// Delete files were applied: fewer rows may have been written than the inputs hold.
    pub deletes_applied: bool,
}

/// One group to rewrite.
pub struct GroupInput {
    /// The table as planned (cheap to clone: its metadata is shared).
    pub table: Table,
    pub spec_id: i32,
    pub partition: Struct,
    pub files: Vec<LiveFile>,
    pub target_file_size: u64,
    pub memory_limit: u64,
    /// The spec the output is written under: `spec_id`, or the table's current spec when the group
    /// moves an older spec's files into it (rows are then split by the current spec's transforms).
    pub output_spec_id: i32,
    /// Per input file (same order as `files`), the delete files to apply while reading it.
    pub deletes: Vec<Vec<LiveFile>>,
}

/// Parquet writer settings from `write.parquet.compression-codec` / `-level` (default zstd level 1).
/// The writer's buffered row group is bounded by rows and by an eighth of `memory_limit` bytes.
pub fn writer_properties(table: &Table, memory_limit: u64) -> Result<WriterProperties, RewriteError> {
    const CODEC: &str = "write.parquet.compression-codec";
    const LEVEL: &str = "write.parquet.compression-level";
    let props = table.metadata().properties();
    let codec = props.get(CODEC).map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| "zstd".into());
    let level = match props.get(LEVEL) {
        Some(v) => Some(v.parse::<i32>().map_err(|e| RewriteError::BadProperty {
            key: LEVEL,
            value: v.clone(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let bad = |reason: String| RewriteError::BadProperty { key: LEVEL, value: format!("{level:?}"), reason };
    let compression = match codec.as_str() {
        "zstd" => Compression::ZSTD(ZstdLevel::try_new(level.unwrap_or(1)).map_err(|e| bad(e.to_string()))?),
        "gzip" => {
            Compression::GZIP(GzipLevel::try_new(level.unwrap_or(6) as u32).map_err(|e| bad(e.to_string()))?)
        }
        "brotli" => Compression::BROTLI(
            BrotliLevel::try_new(level.unwrap_or(1) as u32).map_err(|e| bad(e.to_string()))?,
        ),
        "snappy" => Compression::SNAPPY,
        "lz4" => Compression::LZ4_RAW,
        "uncompressed" | "none" => Compression::UNCOMPRESSED,
        other => {
            return Err(RewriteError::BadProperty {
                key: CODEC,
                value: other.to_string(),
                reason: "unsupported codec (zstd, gzip, brotli, snappy, lz4, uncompressed)".into(),
            });
        }
    };
    Ok(parquet_properties(compression, memory_limit))
}

/// The Parquet writer settings of a rewrite with `compression` within `memory_limit` bytes: the
/// buffered row group is bounded by rows and by an eighth of the limit.
pub fn parquet_properties(compression: Compression, memory_limit: u64) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(compression)
        // Bounded row groups bound the writer's buffered (encoded, not yet flushed) data.
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(row_group_bytes(memory_limit)))
        .build()
}

/// Rows per Parquet row group written (the writer buffers one row group in memory).
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Encoded bytes per row group written: an eighth of the memory limit, between 1 and 128 MiB.
fn row_group_bytes(memory_limit: u64) -> usize {
    usize::try_from((memory_limit / 8).clamp(1 << 20, 128 << 20)).unwrap_or(128 << 20)
}

/// The writer every group's outputs go through.
pub(super) type GroupSink =
    Sink<DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>>;

/// Rewrites the group's files into new data files (not yet committed): read (applying the group's
/// deletes) → sort when the table declares an order → write rolling at the target → check row counts.
pub async fn rewrite(input: GroupInput) -> Result<Rewritten, RewriteError> {
    let metadata = input.table.metadata();
    let schema = metadata.current_schema().clone();
    metadata.partition_spec_by_id(input.spec_id).ok_or(RewriteError::UnknownSpec(input.spec_id))?;
    let expected: u64 = input.files.iter().map(|f| f.records()).sum();
    let sort = SortPlan::for_table(metadata.default_sort_order(), &schema);
    let mut writer = open_sink(&input, &schema).await?;
    let read = match &sort {
        Some(plan) => match merge_layout(&input, plan, &schema, max_open_files()) {
            Some(layout) => match write_merged(&input, plan, &schema, layout, &mut writer).await {
                Err(RewriteError::BrokenClaim { path, row }) => {
                    tracing::warn!(
                        table = %qualified(&input.table),
                        path,
                        row,
                        sort_order_id = plan.order_id,
                        "input file claims the sort order but is not sorted by it: the group is sorted, \
                         not merged"
                    );
                    let partial = std::mem::replace(&mut writer, open_sink(&input, &schema).await?);
                    let written: Vec<String> =
                        partial.close().await?.iter().map(|f| f.file_path().to_string()).collect();
                    discard_uncommitted(&input.table, &written).await;
                    let (batches, arrow_schema) = read_inputs(&input, &schema).await?;
                    write_sorted(&input, plan, batches, arrow_schema, &mut writer).await?
                }
                merged => merged?,
            },
            None => {
                let (batches, arrow_schema) = read_inputs(&input, &schema).await?;
                write_sorted(&input, plan, batches, arrow_schema, &mut writer).await?
            }
        },
        None => {
            let (batches, _) = read_inputs(&input, &schema).await?;
            write_unsorted(&input, batches, &mut writer).await?
        }
    };
    let files = writer.close().await?;
    let written: u64 = files.iter().map(|f| f.record_count()).sum();
    check_row_counts(&input, expected, read, written)?;
    let sort_order_id = sort.as_ref().map(|p| p.order_id);
    let bytes_written = files.iter().map(|f| f.file_size_in_bytes()).sum();
    let files = files
        .into_iter()
        .map(|f| {
            let file = match sort_order_id {
                Some(id) => with_sort_order(&f, input.output_spec_id, id)?,
                None => f,
            };
            Ok(AddedFile { file, spec_id: input.output_spec_id })
        })
        .collect::<Result<Vec<_>, RewriteError>>()?;
    let deletes_applied = input.deletes.iter().any(|d| !d.is_empty());
    Ok(Rewritten { files, rows: written, bytes_written, sort_order_id, deletes_applied })
}

/// The writer of the group's outputs: rolling at the target size, under the output spec (one
/// partition, or a fan-out by the current spec's transforms when moving an older spec's files).
async fn open_sink(input: &GroupInput, schema: &iceberg::spec::SchemaRef) -> Result<GroupSink, RewriteError> {
    let table = &input.table;
    let metadata = table.metadata();
    let out_spec = metadata
        .partition_spec_by_id(input.output_spec_id)
        .ok_or(RewriteError::UnknownSpec(input.output_spec_id))?;
    let respec = input.output_spec_id != input.spec_id;
    let value = if respec { Struct::empty() } else { input.partition.clone() };
    let key = PartitionKey::new(out_spec.as_ref().clone(), schema.clone(), value);
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(writer_properties(table, input.memory_limit)?, schema.clone()),
        usize::try_from(input.target_file_size).unwrap_or(usize::MAX),
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        DefaultFileNameGenerator::new(
            format!("compact-{}", uuid::Uuid::now_v7()),
            None,
            DataFileFormat::Parquet,
        ),
    );
    Ok(Sink::new(DataFileWriterBuilder::new(rolling), key, respec, out_spec, schema).await?)
}

/// Sorts the group's rows by the table's order (merging the runs of input files that claim it) into
/// `writer`; the rows read.
async fn write_sorted(
    input: &GroupInput,
    plan: &SortPlan,
    batches: FileBatchStream,
    arrow_schema: arrow_schema::SchemaRef,
    writer: &mut GroupSink,
) -> Result<u64, RewriteError> {
    let mut read = 0u64;
    // A file claims the order when its manifest entry names the table's current sort order.
    let claimed: Vec<bool> = input
        .files
        .iter()
        .map(|f| f.entry.data_file().sort_order_id().is_some_and(|id| i64::from(id) == plan.order_id))
        .collect();
    let tagged = batches.map_ok(|(file, batch)| {
        read += batch.num_rows() as u64;
        Tagged { file, claimed: claimed.get(file).copied().unwrap_or(false), batch }
    });
    let (mut sorted, report) = sort_batches(tagged.boxed(), plan, arrow_schema, input.memory_limit)
        .await
        .map_err(|e| RewriteError::Sort(e.to_string()))?;
    let qualified = qualified(&input.table);
    for &file in &report.unsorted_claims {
        tracing::warn!(
            table = %qualified,
            path = input.files[file].path(),
            sort_order_id = plan.order_id,
            "input file claims the sort order but is not sorted by it: its rows are sorted, not merged"
        );
    }
    tracing::debug!(table = %qualified, ?report, "sorted rewrite input");
    while let Some(batch) = sorted.try_next().await.map_err(|e| RewriteError::Sort(e.to_string()))? {
        for piece in slices(&batch, input.target_file_size) {
            writer.write(piece?).await?;
        }
    }
    drop(sorted);
    Ok(read)
}

/// The group's rows into `writer` as read; the rows read.
async fn write_unsorted(
    input: &GroupInput,
    mut batches: FileBatchStream,
    writer: &mut GroupSink,
) -> Result<u64, RewriteError> {
    let mut read = 0u64;
    while let Some((_, batch)) = batches.try_next().await? {
        read += batch.num_rows() as u64;
        for piece in slices(&batch, input.target_file_size) {
            writer.write(piece?).await?;
        }
    }
    Ok(read)
}

/// Every row read was written, and the rows read are the inputs' rows: exactly, or with deletes
/// applied, at most the position deletes' entries fewer (a bound; they may name other files) unless
/// an equality delete applies, which may delete any.
fn check_row_counts(input: &GroupInput, expected: u64, read: u64, written: u64) -> Result<(), RewriteError> {
    if !input.deletes.iter().any(|d| !d.is_empty()) {
        if read != expected || written != expected {
            return Err(RewriteError::RowCount { expected, read, written });
        }
        return Ok(());
    }
    let mut seen = HashSet::new();
    let (mut deletable, mut equality) = (0u64, false);
    for d in input.deletes.iter().flatten().filter(|d| seen.insert(d.path().to_string())) {
        match d.entry.content_type() {
            iceberg::spec::DataContentType::EqualityDeletes => equality = true,
            _ => deletable += d.records(),
        }
    }
    let floor = if equality { 0 } else { expected.saturating_sub(deletable) };
    if written != read || read > expected || read < floor {
        return Err(RewriteError::RowCountWithDeletes { expected, deletable, equality, read, written });
    }
    Ok(())
}

/// Where rewritten rows go: one writer for the group's partition, or (moving an older spec's files into
/// a partitioned current spec) a writer per current-spec partition, each row's partition computed
/// by the current spec's transforms.
pub(super) enum Sink<B: IcebergWriterBuilder> {
    One(B::R),
    Fanout(FanoutWriter<B>, Box<RecordBatchPartitionSplitter>),
}

impl<B: IcebergWriterBuilder> Sink<B> {
    async fn new(
        builder: B,
        key: PartitionKey,
        respec: bool,
        spec: &iceberg::spec::PartitionSpecRef,
        schema: &SchemaRef,
    ) -> iceberg::Result<Self> {
        if respec && !spec.is_unpartitioned() {
            let splitter =
                RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec.clone())?;
            return Ok(Sink::Fanout(FanoutWriter::new(builder), Box::new(splitter)));
        }
        Ok(Sink::One(builder.build(Some(key)).await?))
    }

    pub(super) async fn write(&mut self, batch: arrow_array::RecordBatch) -> iceberg::Result<()> {
        match self {
            Sink::One(w) => w.write(batch).await,
            Sink::Fanout(w, splitter) => {
                for (key, part) in splitter.split(&batch)? {
                    w.write(key, part).await?;
                }
                Ok(())
            }
        }
    }

    async fn close(self) -> iceberg::Result<Vec<DataFile>> {
        match self {
            Sink::One(mut w) => w.close().await,
            Sink::Fanout(w, _) => w.close().await,
        }
    }
}

/// Parts of a batch that each hold at most a sixteenth of the target in Arrow memory, made one at a
/// time as they are written. The rolling writer checks its size before each write, so a file passes
/// the target by at most one write: written whole, one batch could make a file of a small target
/// oversized (and split again on every pass). Each part owns its lists and maps
/// ([`columns::rows`]): iceberg's writer counts the NaNs inside a list or a map over the whole child
/// array, which a slice shares with the rest of its batch.
pub(super) fn slices(
    batch: &arrow_array::RecordBatch,
    target: u64,
) -> impl Iterator<Item = iceberg::Result<arrow_array::RecordBatch>> + '_ {
    let rows = batch.num_rows();
    let bytes = batch.get_array_memory_size() as u64;
    let budget = (target / 16).max(1);
    let per_slice = if rows <= 1 || bytes <= budget {
        rows.max(1)
    } else {
        usize::try_from((rows as u64).saturating_mul(budget) / bytes).unwrap_or(rows).max(1)
    };
    let whole = per_slice >= rows;
    (0..rows.max(1)).step_by(per_slice).map(move |start| {
        if whole {
            return Ok(batch.clone());
        }
        columns::rows(batch, start, per_slice.min(rows - start)).map_err(|e| {
            iceberg::Error::new(iceberg::ErrorKind::Unexpected, "splitting a batch for the writer")
                .with_source(e)
        })
    })
}

/// The same data file, claiming `sort_order_id` (iceberg's writer leaves it unset).
pub(crate) fn with_sort_order(
    f: &DataFile,
    spec_id: i32,
    sort_order_id: i64,
) -> Result<DataFile, RewriteError> {
    let id = i32::try_from(sort_order_id)
        .map_err(|_| RewriteError::Sort(format!("sort order id {sort_order_id}")))?;
    DataFileBuilder::default()
        .content(f.content_type())
        .file_path(f.file_path().to_string())
        .file_format(f.file_format())
        .partition(f.partition().clone())
        .record_count(f.record_count())
        .file_size_in_bytes(f.file_size_in_bytes())
        .column_sizes(f.column_sizes().clone())
        .value_counts(f.value_counts().clone())
        .null_value_counts(f.null_value_counts().clone())
        .nan_value_counts(f.nan_value_counts().clone())
        .lower_bounds(f.lower_bounds().clone())
        .upper_bounds(f.upper_bounds().clone())
        .key_metadata(f.key_metadata().map(<[u8]>::to_vec))
        .split_offsets(f.split_offsets().map(<[i64]>::to_vec))
        .equality_ids(f.equality_ids())
        .sort_order_id(id)
        .first_row_id(f.first_row_id())
        .partition_spec_id(spec_id)
        .build()
        .map_err(|e| RewriteError::Sort(format!("rebuilding data file: {e}")))
}

/// Metadata-only view for callers that need the table's sort order.
pub fn declared_sort_order(table: &Table) -> Option<SortOrderRef> {
    let order = table.metadata().default_sort_order();
    (!order.is_unsorted()).then(|| order.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, ListArray, MapArray, RecordBatch, StringArray, StructArray};
    use arrow_buffer::{NullBuffer, OffsetBuffer};
    use arrow_schema::{DataType, Field};
    use iceberg::io::{FileIOBuilder, MemoryStorageFactory};
    use iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, Schema, StructType, Type};
    use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder};

    use super::*;

    fn schema() -> Arc<Schema> {
        let double = || Type::Primitive(PrimitiveType::Double);
        let element = NestedField::list_element(2, double(), false);
        let key = NestedField::map_key_element(4, Type::Primitive(PrimitiveType::String));
        let value = NestedField::map_value_element(5, double(), false);
        let required = StructType::new(vec![NestedField::required(8, "d", double()).into()]);
        let inner = NestedField::list_element(10, double(), false);
        let outer = StructType::new(vec![
            NestedField::required(7, "r", Type::Struct(required)).into(),
            NestedField::optional(9, "l", Type::List(ListType::new(inner.into()))).into(),
        ]);
        Arc::new(
            Schema::builder()
                .with_fields(vec![
                    NestedField::optional(1, "values", Type::List(ListType::new(element.into()))).into(),
                    NestedField::optional(3, "attrs", Type::Map(MapType::new(key.into(), value.into())))
                        .into(),
                    NestedField::optional(6, "s", Type::Struct(outer)).into(),
                ])
                .build()
                .unwrap(),
        )
    }

    /// `rows` rows of: a `list<double>` (four values each, the first NaN), a `map<string, double>`
    /// (two entries, the first NaN) and an optional struct (null every eighth row) holding a required
    /// struct of a required double (NaN every fourth row, null where the outer struct is, as the
    /// Parquet reader builds it) and a `list<double>` (two values, the first NaN).
    fn nested_batch(schema: &Schema, rows: usize) -> RecordBatch {
        let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(schema).unwrap());
        let nan_every = |n: usize| move |i: usize| if i.is_multiple_of(n) { f64::NAN } else { i as f64 };
        let list_of = |field: &Field, per_row: usize| {
            let DataType::List(element) = field.data_type().clone() else { unreachable!() };
            let values = Float64Array::from_iter_values((0..rows * per_row).map(nan_every(per_row)));
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(per_row, rows));
            Arc::new(ListArray::new(element, offsets, Arc::new(values), None)) as ArrayRef
        };
        let DataType::Map(entries, _) = arrow_schema.field(1).data_type().clone() else { unreachable!() };
        let DataType::Struct(key_value) = entries.data_type().clone() else { unreachable!() };
        let keys = StringArray::from_iter_values((0..rows * 2).map(|i| format!("k{}", i % 2)));
        let values = Float64Array::from_iter_values((0..rows * 2).map(nan_every(2)));
        let pairs = StructArray::new(key_value, vec![Arc::new(keys) as ArrayRef, Arc::new(values)], None);
        let map = MapArray::new(
            entries,
            OffsetBuffer::from_lengths(std::iter::repeat_n(2, rows)),
            pairs,
            None,
            false,
        );
        let DataType::Struct(outer) = arrow_schema.field(2).data_type().clone() else { unreachable!() };
        let DataType::Struct(required) = outer[0].data_type().clone() else { unreachable!() };
        let present = NullBuffer::from_iter((0..rows).map(|i| i % 8 != 7));
        let d = Float64Array::new((0..rows).map(nan_every(4)).collect(), Some(present.clone()));
        // SAFETY: the required child holds nulls only where the outer struct is null, as a Parquet
        // reader builds it; `StructArray::new` would reject it for not seeing the outer nulls.
        let r = unsafe { StructArray::new_unchecked(required, vec![Arc::new(d) as ArrayRef], None) };
        let s = StructArray::new(
            outer.clone(),
            vec![Arc::new(r) as ArrayRef, list_of(&outer[1], 2)],
            Some(present),
        );
        let columns = vec![list_of(arrow_schema.field(0), 4), Arc::new(map), Arc::new(s)];
        RecordBatch::try_new(arrow_schema, columns).unwrap()
    }

    async fn write(schema: &Arc<Schema>, batches: &[RecordBatch], path: &str) -> DataFile {
        let io = FileIOBuilder::new(Arc::new(MemoryStorageFactory)).build();
        let output = io.new_output(path).unwrap();
        let mut writer = ParquetWriterBuilder::new(WriterProperties::default(), schema.clone())
            .build(output)
            .await
            .unwrap();
        for batch in batches {
            writer.write(batch).await.unwrap();
        }
        writer.close().await.unwrap().remove(0).partition_spec_id(0).build().unwrap()
    }

    /// iceberg's writer counts the NaNs of a column inside a list or a map over the whole child
    /// array, so a piece that still carried its neighbours' values would count their NaNs too. The
    /// pieces written one after another must give the counts of the batch written whole.
    #[tokio::test]
    async fn pieces_count_each_nan_inside_lists_maps_and_structs_once() {
        let schema = schema();
        let rows = 64;
        let batch = nested_batch(&schema, rows);
        let pieces: Vec<RecordBatch> = slices(&batch, 16 * 1024).collect::<Result<_, _>>().unwrap();
        assert!(pieces.len() > 4, "{} pieces", pieces.len());
        let mut start = 0;
        for piece in &pieces {
            assert_eq!(*piece, batch.slice(start, piece.num_rows()), "rows from {start}");
            start += piece.num_rows();
        }
        assert_eq!(start, rows);

        let whole = write(&schema, std::slice::from_ref(&batch), "memory:///whole.parquet").await;
        let pieced = write(&schema, &pieces, "memory:///pieces.parquet").await;
        let rows = rows as u64;
        assert_eq!(whole.nan_value_counts().get(&2), Some(&rows), "NaNs of the top-level list");
        assert_eq!(whole.nan_value_counts().get(&5), Some(&rows), "NaNs of the map's values");
        assert_eq!(whole.nan_value_counts().get(&8), Some(&(rows / 4)), "NaNs of the required double");
        assert_eq!(whole.nan_value_counts().get(&10), Some(&rows), "NaNs of the list inside the struct");
        assert_eq!(pieced.nan_value_counts(), whole.nan_value_counts());
        assert_eq!(pieced.value_counts(), whole.value_counts());
        assert_eq!(pieced.null_value_counts(), whole.null_value_counts());
        assert_eq!(pieced.record_count(), rows);
    }
}
