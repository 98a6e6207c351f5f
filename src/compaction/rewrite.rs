//! Rewriting one group: stream Arrow batches out of the input files (iceberg's reader, projected to the
//! current schema, bounded batch size) and into target-size Parquet files (iceberg's writers, so field
//! ids and column statistics are right), optionally sorted by the table's sort order.
//!
//! Hazard: the row count written must equal the row count read and the manifests' record counts; any
//! mismatch fails the group before anything is committed.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::ArrowFileReader;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::io::FileMetadata;
use iceberg::scan::{FileScanTask, FileScanTaskDeleteFile};
use iceberg::spec::{
    DEFAULT_SCHEMA_NAME_MAPPING, DataFile, DataFileBuilder, DataFileFormat, NameMapping, PartitionKey,
    SchemaRef, SortOrderRef, Struct,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::columns;
use super::sort::{SortPlan, Tagged, sort_batches};
use crate::table::{AddedFile, LiveFile};

/// Most rows per Arrow batch read from the inputs.
const BATCH_ROWS: usize = 8192;

/// Decoded bytes aimed at per input batch: with wide rows a batch holds fewer rows, so memory per
/// batch is bounded by bytes, not rows.
const BATCH_BYTES: u64 = 4 << 20;

/// Decoded bytes per compressed byte assumed when sizing batches (zstd Parquet of telemetry decodes to
/// 4–7× its size; a higher guess only makes batches smaller).
const DECODE_EXPANSION: u64 = 8;

/// Rows per input batch for `files`: [`BATCH_BYTES`] over the widest file's estimated decoded row size.
fn batch_rows(files: &[&LiveFile]) -> usize {
    let widest = files.iter().map(|f| f.size() / f.records().max(1)).max().unwrap_or(0);
    let row_bytes = (widest * DECODE_EXPANSION).max(1);
    usize::try_from(BATCH_BYTES / row_bytes).unwrap_or(BATCH_ROWS).clamp(16, BATCH_ROWS)
}

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
pub struct GroupInput<'a> {
    pub table: &'a Table,
    pub spec_id: i32,
    pub partition: Struct,
    pub files: Vec<&'a LiveFile>,
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
    Ok(WriterProperties::builder()
        .set_compression(compression)
        // Bounded row groups bound the writer's buffered (encoded, not yet flushed) data.
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(row_group_bytes(memory_limit)))
        .build())
}

/// Rows per Parquet row group written (the writer buffers one row group in memory).
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Encoded bytes per row group written: an eighth of the memory limit, between 1 and 128 MiB.
fn row_group_bytes(memory_limit: u64) -> usize {
    usize::try_from((memory_limit / 8).clamp(1 << 20, 128 << 20)).unwrap_or(128 << 20)
}

/// Batches read-ahead between the reader task and the writer.
const PIPELINE_DEPTH: usize = 4;

/// A decoded batch and the index of the input file it came from.
type FileBatch = (usize, arrow_array::RecordBatch);
type FileBatchStream = futures::stream::BoxStream<'static, iceberg::Result<FileBatch>>;

/// Input files decoded at a time. Batches of different files interleave; each is tagged with its file.
const FILE_CONCURRENCY: usize = 2;

/// Reads each task with its own reader stream, tagging every batch with the task's index, so the sort
/// can treat each file claiming the sort order as a sorted run.
///
/// Each input gets a reader of its own: iceberg's reader keeps loaded position deletes by data file
/// path for all the tasks it reads, so a delete file given to one input must not reach another whose
/// sequence number it does not cover.
fn read_tagged(table: &Table, batch_rows: usize, tasks: Vec<FileScanTask>) -> FileBatchStream {
    let table = table.clone();
    futures::stream::iter(tasks.into_iter().enumerate())
        .map(move |(i, task)| {
            let reader = table
                .reader_builder()
                .with_batch_size(batch_rows)
                .with_data_file_concurrency_limit(1)
                .build();
            (i, reader.read(futures::stream::iter([Ok(task)]).boxed()))
        })
        .map(|(i, read)| match read {
            Ok(read) => read.stream().map_ok(move |b| (i, b)).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten_unordered(FILE_CONCURRENCY)
        .boxed()
}

/// Decodes the input on its own task so reading and writing use both cores; the bounded channel keeps
/// at most `PIPELINE_DEPTH` batches in flight.
/// Batches are made writable on the way ([`columns::materialize`], [`columns::conform`] to `target`).
fn pipelined(mut input: FileBatchStream, target: arrow_schema::SchemaRef) -> FileBatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
    tokio::spawn(async move {
        while let Some(item) = input.next().await {
            let item = item.and_then(|(file, batch)| {
                columns::materialize(batch)
                    .and_then(|b| columns::conform(b, &target))
                    .map(|b| (file, b))
                    .map_err(|e| {
                        iceberg::Error::new(iceberg::ErrorKind::Unexpected, "making the batch writable")
                            .with_source(e)
                    })
            });
            if tx.send(item).await.is_err() {
                break; // the writer stopped: stop reading
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// The table's `schema.name-mapping.default`, which resolves the columns of files written without
/// Parquet field ids (imported with PyIceberg `add_files`, Hive migrations).
fn name_mapping(table: &Table) -> Result<Option<Arc<NameMapping>>, RewriteError> {
    let Some(raw) = table.metadata().properties().get(DEFAULT_SCHEMA_NAME_MAPPING) else {
        return Ok(None);
    };
    serde_json::from_str::<NameMapping>(raw).map(|m| Some(Arc::new(m))).map_err(|e| {
        RewriteError::BadProperty {
            key: DEFAULT_SCHEMA_NAME_MAPPING,
            value: raw.chars().take(80).collect(),
            reason: e.to_string(),
        }
    })
}

/// The field ids a Parquet file carries, or `None` if it has none (the same test as iceberg's reader
/// and Java's `ParquetSchemaUtil.hasIds`: the first top-level column has one). Reads only the footer.
async fn file_field_ids(
    table: &Table,
    file: &LiveFile,
) -> Result<Option<(HashSet<i32>, columns::StructChildren)>, RewriteError> {
    let footer = |source| RewriteError::Footer { path: file.path().to_string(), source };
    let reader = table.file_io().new_input(file.path())?.reader().await?;
    let mut reader = ArrowFileReader::new(FileMetadata { size: file.size() }, reader);
    let metadata = reader.get_metadata(None).await.map_err(footer)?;
    let root = metadata.file_metadata().schema_descr().root_schema();
    if root.get_fields().first().is_some_and(|f| !f.get_basic_info().has_id()) {
        return Ok(None);
    }
    Ok(Some((columns::parquet_field_ids(root), columns::parquet_struct_children(root))))
}

/// The schema to read each input with: the current one, or (for a file written before fields were
/// added inside nested columns) the current one without them. Refuses inputs the reader could only
/// resolve by column position (no field ids, no name mapping). Footers are read only when needed.
async fn read_schemas(
    table: &Table,
    files: &[&LiveFile],
    mapping: Option<&NameMapping>,
) -> Result<Vec<SchemaRef>, RewriteError> {
    let schema = table.metadata().current_schema();
    let nested = columns::has_nested(schema);
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let mut read_with = schema.clone();
        if mapping.is_none() || nested {
            match file_field_ids(table, file).await? {
                None if mapping.is_none() => {
                    return Err(RewriteError::NoFieldIds { path: file.path().to_string() });
                }
                Some((ids, children)) if nested => {
                    if let Some(field) = columns::nested_layout_mismatch(&children, schema) {
                        return Err(RewriteError::NestedLayoutChanged {
                            path: file.path().to_string(),
                            field,
                        });
                    }
                    if let Some(pruned) = columns::prune_nested(schema, &ids) {
                        read_with = Arc::new(pruned);
                    }
                }
                _ => {}
            }
        }
        out.push(read_with);
    }
    Ok(out)
}

/// A delete file as iceberg's reader takes it.
fn delete_task(d: &LiveFile) -> FileScanTaskDeleteFile {
    let file = d.entry.data_file();
    FileScanTaskDeleteFile {
        file_path: d.path().to_string(),
        file_size_in_bytes: d.size(),
        file_type: d.entry.content_type(),
        partition_spec_id: d.spec_id,
        equality_ids: file.equality_ids(),
    }
}

fn scan_task(
    table: &Table,
    file: &LiveFile,
    schema: SchemaRef,
    spec_id: i32,
    partition: &Struct,
    name_mapping: Option<Arc<NameMapping>>,
    deletes: &[LiveFile],
) -> FileScanTask {
    let project_field_ids = schema.as_struct().fields().iter().map(|f| f.id).collect();
    FileScanTask::builder()
        .with_deletes(deletes.iter().map(delete_task).collect())
        .with_file_size_in_bytes(file.size())
        .with_start(0)
        .with_length(file.size())
        .with_record_count(Some(file.records()))
        .with_data_file_path(file.path().to_string())
        .with_data_file_format(DataFileFormat::Parquet)
        .with_schema(schema)
        .with_project_field_ids(project_field_ids)
        // The group's partition value, typed as the current schema types it (the file's own tuple
        // may predate a type promotion of the source column).
        .with_partition(Some(partition.clone()))
        .with_partition_spec(table.metadata().partition_spec_by_id(spec_id).cloned())
        .with_name_mapping(name_mapping)
        .with_case_sensitive(true)
        .build()
}

/// Rewrites the group's files into new data files (not yet committed).
pub async fn rewrite(input: GroupInput<'_>) -> Result<Rewritten, RewriteError> {
    let table = input.table;
    let metadata = table.metadata();
    let schema = metadata.current_schema().clone();
    metadata.partition_spec_by_id(input.spec_id).ok_or(RewriteError::UnknownSpec(input.spec_id))?;
    let expected: u64 = input.files.iter().map(|f| f.records()).sum();

    let mapping = name_mapping(table)?;
    let read_schemas = read_schemas(table, &input.files, mapping.as_deref()).await?;
    let no_deletes: Vec<LiveFile> = Vec::new();
    let tasks: Vec<FileScanTask> = input
        .files
        .iter()
        .zip(read_schemas)
        .enumerate()
        .map(|(i, (f, s))| {
            let deletes = input.deletes.get(i).unwrap_or(&no_deletes);
            scan_task(table, f, s, input.spec_id, &input.partition, mapping.clone(), deletes)
        })
        .collect();
    let with_deletes = input.deletes.iter().any(|d| !d.is_empty());
    let rows = batch_rows(&input.files);
    let arrow_schema = Arc::new(schema_to_arrow_schema(&schema)?);
    let batches = pipelined(read_tagged(table, rows, tasks), arrow_schema.clone());
    let qualified = format!("{}.{}", table.identifier().namespace().join("."), table.identifier().name());
    let batches = if crate::failpoint::is_armed(crate::failpoint::COMPACTION_SWAP_COLUMNS, &qualified) {
        batches.map_ok(|(file, b)| (file, columns::swap_first_two_of_a_type(b))).boxed()
    } else {
        batches
    };

    let sort = SortPlan::for_table(metadata.default_sort_order(), &schema);
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
    let mut writer = Sink::new(DataFileWriterBuilder::new(rolling), key, respec, out_spec, &schema).await?;
    let mut read = 0u64;
    match &sort {
        Some(plan) => {
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
                    writer.write(piece).await?;
                }
            }
        }
        None => {
            let mut batches = batches;
            while let Some((_, batch)) = batches.try_next().await? {
                read += batch.num_rows() as u64;
                for piece in slices(&batch, input.target_file_size) {
                    writer.write(piece).await?;
                }
            }
        }
    }
    let files = writer.close().await?;
    let written: u64 = files.iter().map(|f| f.record_count()).sum();
    if with_deletes {
        // Rows deleted by the applied deletes are gone: at most the position deletes' entries (a
        // bound; they may name other files) unless an equality delete applies, which may delete any.
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
    } else if read != expected || written != expected {
        return Err(RewriteError::RowCount { expected, read, written });
    }
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
    Ok(Rewritten { files, rows: written, bytes_written, sort_order_id, deletes_applied: with_deletes })
}

/// Where rewritten rows go: one writer for the group's partition, or (moving an older spec's files into
/// a partitioned current spec) a writer per current-spec partition, each row's partition computed
/// by the current spec's transforms.
enum Sink<B: IcebergWriterBuilder> {
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

    async fn write(&mut self, batch: arrow_array::RecordBatch) -> iceberg::Result<()> {
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

/// Parts of a batch that each hold at most a sixteenth of the target in Arrow memory. The rolling writer
/// checks its size before each write, so a file passes the target by at most one write: written whole,
/// one batch could make a file of a small target oversized (and split again on every pass).
fn slices(batch: &arrow_array::RecordBatch, target: u64) -> Vec<arrow_array::RecordBatch> {
    let rows = batch.num_rows();
    let bytes = batch.get_array_memory_size() as u64;
    let budget = (target / 16).max(1);
    if rows <= 1 || bytes <= budget {
        return vec![batch.clone()];
    }
    let per_slice = usize::try_from((rows as u64).saturating_mul(budget) / bytes).unwrap_or(rows).max(1);
    (0..rows).step_by(per_slice).map(|start| batch.slice(start, per_slice.min(rows - start))).collect()
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
