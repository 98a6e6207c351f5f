//! Reading a group's inputs: one iceberg reader per input file (its own delete files applied,
//! projected to the current schema, or to the schema the file was written with inside nested
//! columns), batches bounded by decoded bytes and tagged with their file, decoded on a task of their
//! own and made writable on the way.
//!
//! Hazard: a file without Parquet field ids is read only through the table's name mapping, never by
//! column position (`no_field_ids`), and a delete file reaches only the input it was given for.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::ArrowFileReader;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::io::FileMetadata;
use iceberg::scan::{FileScanTask, FileScanTaskDeleteFile};
use iceberg::spec::{DEFAULT_SCHEMA_NAME_MAPPING, DataFileFormat, NameMapping, SchemaRef, Struct};
use iceberg::table::Table;
use parquet::arrow::async_reader::AsyncFileReader;

use super::columns;
use super::rewrite::{GroupInput, RewriteError};
use crate::table::LiveFile;

/// Most rows per Arrow batch read from the inputs.
const BATCH_ROWS: usize = 8192;

/// Decoded bytes aimed at per input batch: with wide rows a batch holds fewer rows, so memory per
/// batch is bounded by bytes, not rows.
const BATCH_BYTES: u64 = 4 << 20;

/// Decoded bytes per compressed byte assumed when sizing batches (zstd Parquet of telemetry decodes to
/// 4–7× its size; a higher guess only makes batches smaller).
const DECODE_EXPANSION: u64 = 8;

/// The widest of `files`' estimated decoded row sizes (compressed bytes per row × [`DECODE_EXPANSION`]).
pub(super) fn decoded_row_bytes(files: &[LiveFile]) -> u64 {
    let widest = files.iter().map(|f| f.size() / f.records().max(1)).max().unwrap_or(0);
    (widest * DECODE_EXPANSION).max(1)
}

/// Rows per input batch for `files`: [`BATCH_BYTES`] over the widest file's estimated decoded row size.
fn batch_rows(files: &[LiveFile]) -> usize {
    usize::try_from(BATCH_BYTES / decoded_row_bytes(files)).unwrap_or(BATCH_ROWS).clamp(16, BATCH_ROWS)
}

/// One input file's batches through a reader of its own, `batch_rows` rows each, tagged with `index`.
fn read_file(table: &Table, batch_rows: usize, index: usize, task: FileScanTask) -> FileBatchStream {
    let reader =
        table.reader_builder().with_batch_size(batch_rows).with_data_file_concurrency_limit(1).build();
    match reader.read(futures::stream::iter([Ok(task)]).boxed()) {
        Ok(read) => read.stream().map_ok(move |b| (index, b)).boxed(),
        Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
    }
}

/// Batches read-ahead between the reader task and the writer.
const PIPELINE_DEPTH: usize = 4;

/// A decoded batch and the index of the input file it came from.
type FileBatch = (usize, arrow_array::RecordBatch);
pub(super) type FileBatchStream = futures::stream::BoxStream<'static, iceberg::Result<FileBatch>>;

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
        .map(move |(i, task)| read_file(&table, batch_rows, i, task))
        .flatten_unordered(FILE_CONCURRENCY)
        .boxed()
}

/// Decodes the input on its own task so reading and writing use both cores; the bounded channel keeps
/// at most `PIPELINE_DEPTH` batches in flight.
/// Batches are made writable on the way ([`columns::materialize`], [`columns::conform`] to `target`).
fn pipelined(mut input: FileBatchStream, target: arrow_schema::SchemaRef) -> FileBatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
    tokio::spawn(async move {
        // A panic while decoding ends the stream with an error, never with a silent end.
        let sender = tx.clone();
        let decode = async move {
            while let Some(item) = input.next().await {
                let item = item.and_then(|(file, batch)| writable(batch, &target).map(|b| (file, b)));
                if sender.send(item).await.is_err() {
                    break; // the writer stopped: stop reading
                }
            }
        };
        if futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(decode)).await.is_err() {
            let panicked = iceberg::Error::new(iceberg::ErrorKind::Unexpected, "decoding the input panicked");
            let _ = tx.send(Err(panicked)).await;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// A decoded batch made writable ([`columns::materialize`], [`columns::conform`] to `target`).
fn writable(
    batch: arrow_array::RecordBatch,
    target: &arrow_schema::SchemaRef,
) -> iceberg::Result<arrow_array::RecordBatch> {
    columns::materialize(batch).and_then(|b| columns::conform(b, target)).map_err(|e| {
        iceberg::Error::new(iceberg::ErrorKind::Unexpected, "making the batch writable").with_source(e)
    })
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
    files: &[LiveFile],
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

/// One scan task per input file, each with the delete files that apply to it.
async fn scan_tasks(input: &GroupInput) -> Result<Vec<FileScanTask>, RewriteError> {
    let table = &input.table;
    let mapping = name_mapping(table)?;
    let read_schemas = read_schemas(table, &input.files, mapping.as_deref()).await?;
    let no_deletes: Vec<LiveFile> = Vec::new();
    Ok(input
        .files
        .iter()
        .zip(read_schemas)
        .enumerate()
        .map(|(i, (f, s))| {
            let deletes = input.deletes.get(i).unwrap_or(&no_deletes);
            scan_task(table, f, s, input.spec_id, &input.partition, mapping.clone(), deletes)
        })
        .collect())
}

/// The group's rows as the reader yields them (each batch tagged with its input file's index), with
/// the group's deletes applied, and their Arrow schema.
pub(super) async fn read_inputs(
    input: &GroupInput,
    schema: &iceberg::spec::SchemaRef,
) -> Result<(FileBatchStream, arrow_schema::SchemaRef), RewriteError> {
    let table = &input.table;
    let tasks = scan_tasks(input).await?;
    let rows = batch_rows(&input.files);
    let arrow_schema = Arc::new(schema_to_arrow_schema(schema)?);
    let batches = pipelined(read_tagged(table, rows, tasks), arrow_schema.clone());
    Ok((swap_columns_fault(table, batches), arrow_schema))
}

/// One input file's writable batches, in the file's order.
pub(super) type RunStream = futures::stream::BoxStream<'static, iceberg::Result<arrow_array::RecordBatch>>;

/// Each input file's rows as a stream of its own (deletes applied, made writable), `batch_rows` rows
/// per batch, for a merge that holds every file open at once. Nothing is read until a stream is
/// polled.
pub(super) async fn read_runs(
    input: &GroupInput,
    schema: &iceberg::spec::SchemaRef,
    batch_rows: usize,
) -> Result<(Vec<RunStream>, arrow_schema::SchemaRef), RewriteError> {
    let table = &input.table;
    let tasks = scan_tasks(input).await?;
    let arrow_schema = Arc::new(schema_to_arrow_schema(schema)?);
    let runs = tasks
        .into_iter()
        .map(|task| {
            let target = arrow_schema.clone();
            let batches = read_file(table, batch_rows, 0, task)
                .map(move |item| item.and_then(|(f, b)| writable(b, &target).map(|b| (f, b))))
                .boxed();
            swap_columns_fault(table, batches).map_ok(|(_, batch)| batch).boxed()
        })
        .collect();
    Ok((runs, arrow_schema))
}

/// Test fault (`test-util` builds only): a reader that resolves columns by position.
fn swap_columns_fault(table: &Table, batches: FileBatchStream) -> FileBatchStream {
    #[cfg(feature = "test-util")]
    if crate::failpoint::is_armed(crate::failpoint::COMPACTION_SWAP_COLUMNS, &qualified(table)) {
        return batches.map_ok(|(file, b)| (file, columns::swap_first_two_of_a_type(b))).boxed();
    }
    #[cfg(not(feature = "test-util"))]
    let _ = table;
    batches
}

/// `tenant.dataset.table`, for logs and per-table faults.
pub(super) fn qualified(table: &Table) -> String {
    format!("{}.{}", table.identifier().namespace().join("."), table.identifier().name())
}
