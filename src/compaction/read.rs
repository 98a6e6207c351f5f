//! Reading a group's inputs: one iceberg reader per input file (its own delete files applied,
//! projected to the current schema, or to the schema the file was written with inside nested
//! columns), batches bounded by decoded bytes and tagged with their file, decoded and made writable on
//! a task of their own, a few batches ahead of the consumer.
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

/// A decoded batch and the index of the input file it came from.
type FileBatch = (usize, arrow_array::RecordBatch);
pub(super) type FileBatchStream = futures::stream::BoxStream<'static, iceberg::Result<FileBatch>>;

/// Input files decoded at a time when they are small. Batches of different files interleave; each is
/// tagged with its file.
const FILE_CONCURRENCY: usize = 2;

/// Input files decoded at a time for a rewrite of `files` within `memory_limit` bytes: two (opening the
/// next small file while one decodes) while they together fit an eighth of the limit, else one. An
/// open file's reader holds its current row group's projected column chunks, compressed, at most the
/// file's size: with 21 MB input files, the readers' buffers were 44 MB of the 115 MB live heap of a
/// pass at `memory_limit_mb = 64` (docs/BENCHMARKS.md, "Allocator").
pub(super) fn file_concurrency(files: &[LiveFile], memory_limit: u64) -> usize {
    at_once(files, memory_limit, FILE_CONCURRENCY)
}

/// `most` while that many of the largest of `files` fit an eighth of `memory_limit`, else one.
fn at_once(files: &[LiveFile], memory_limit: u64, most: usize) -> usize {
    let largest = files.iter().map(LiveFile::size).max().unwrap_or(0);
    if largest.saturating_mul(most as u64) <= memory_limit / 8 { most } else { 1 }
}

/// Batches decoded ahead of the consumer (the sort, or the writer).
const PIPELINE_DEPTH: usize = 4;

/// Reads each task with its own reader stream, tagging every batch with the task's index, so the sort
/// can treat each file claiming the sort order as a sorted run.
///
/// Each input gets a reader of its own: iceberg's reader keeps loaded position deletes by data file
/// path for all the tasks it reads, so a delete file given to one input must not reach another whose
/// sequence number it does not cover.
///
/// All files decode on one task: decoding files on tasks of their own measured 1.2× slower on an
/// unsorted rewrite (the writer, the slower side, then shares its core with two decoders).
fn read_tagged(
    table: &Table,
    batch_rows: usize,
    files_at_once: usize,
    tasks: Vec<FileScanTask>,
) -> FileBatchStream {
    let table = table.clone();
    futures::stream::iter(tasks.into_iter().enumerate())
        .map(move |(i, task)| read_file(&table, batch_rows, i, task))
        .flatten_unordered(files_at_once)
        .boxed()
}

/// `batches` made writable one by one ([`writable`]).
fn writable_file(batches: FileBatchStream, target: &arrow_schema::SchemaRef) -> FileBatchStream {
    let target = target.clone();
    batches.map(move |item| item.and_then(|(file, b)| writable(b, &target).map(|b| (file, b)))).boxed()
}

/// What a producer on another task or thread ([`ahead`], `sort.rs`'s `produced`) hands its
/// consumer through a channel: an item, the real end, or the error that ended it early. A channel
/// closed without [`Marked::End`] is never the end ([`received`]).
pub(super) enum Marked<T, E> {
    Item(Result<T, E>),
    End,
    Failed(E),
}

/// What the consumer makes of the next message: an item and whether more may follow, or `None` at
/// the real end. A channel closed without the end marker (the producer panicked past its guard, or
/// was dropped before it ran) gives `stopped()`'s error, never a silent end that reads as "no more
/// rows".
pub(super) fn received<T, E>(
    message: Option<Marked<T, E>>,
    stopped: impl FnOnce() -> E,
) -> Option<(Result<T, E>, bool)> {
    match message {
        Some(Marked::Item(item)) => Some((item, true)),
        Some(Marked::End) => None,
        Some(Marked::Failed(e)) => Some((Err(e), false)),
        None => Some((Err(stopped()), false)),
    }
}

/// `stream` driven on a task of its own, at most `depth` items queued ahead of the consumer (plus
/// the one the task holds while it waits for room): the task decodes while the consumer works. The
/// task is spawned when the returned stream is first polled (nothing is read before the consumer
/// asks) and aborted when it is dropped. The stream ends only when `stream` did: a panic, or a task
/// that stops without reaching the end (runtime shutdown), ends it with an error, never with a
/// silent end that reads as "no more rows".
fn ahead<T: Send + 'static>(
    stream: futures::stream::BoxStream<'static, iceberg::Result<T>>,
    depth: usize,
) -> futures::stream::BoxStream<'static, iceberg::Result<T>> {
    enum State<T> {
        Idle(futures::stream::BoxStream<'static, iceberg::Result<T>>),
        Running(
            tokio::sync::mpsc::Receiver<Marked<T, iceberg::Error>>,
            tokio_util::task::AbortOnDropHandle<()>,
        ),
        Done,
    }
    futures::stream::unfold(State::Idle(stream), move |state| async move {
        let (mut rx, task) = match state {
            State::Idle(mut stream) => {
                let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
                let drive = async move {
                    let sender = tx.clone();
                    let forward = async move {
                        while let Some(item) = stream.next().await {
                            if sender.send(Marked::Item(item)).await.is_err() {
                                return; // the consumer stopped: stop reading
                            }
                        }
                        let _ = sender.send(Marked::End).await;
                    };
                    let unwound = std::panic::AssertUnwindSafe(forward);
                    if futures::FutureExt::catch_unwind(unwound).await.is_err() {
                        let panicked = iceberg::Error::new(
                            iceberg::ErrorKind::Unexpected,
                            "decoding the input panicked",
                        );
                        let _ = tx.send(Marked::Failed(panicked)).await;
                    }
                };
                (rx, tokio_util::task::AbortOnDropHandle::new(tokio::spawn(drive)))
            }
            State::Running(rx, task) => (rx, task),
            State::Done => return None,
        };
        let stopped = || {
            let message = "the input's reader task stopped before the end of the input";
            iceberg::Error::new(iceberg::ErrorKind::Unexpected, message)
        };
        received(rx.recv().await, stopped)
            .map(|(item, more)| (item, if more { State::Running(rx, task) } else { State::Done }))
    })
    .boxed()
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

/// Footers [`read_schemas`] reads at a time while that many of the largest inputs fit an eighth of
/// the rewrite's memory share, else one. Read one after another, the 1,000 footers of an hour of
/// ingest files held up the rewrite's start with the second core mostly idle (each read waits for a
/// blocking-pool thread); 8 at a time took about 2 % off that rewrite (docs/BENCHMARKS.md, "Footers
/// read eight at a time"). A read in flight holds up to its file's size: iceberg's reader fetches the
/// file's last 512 KiB and its page indexes, then parses the footer; a finished read keeps only the
/// field ids and the nested layout.
const FOOTER_CONCURRENCY: usize = 8;

/// The schema to read each input with: the current one, or (for a file written before fields were
/// added inside nested columns) the current one without them. Refuses inputs the reader could only
/// resolve by column position (no field ids, no name mapping). Footers are read only when needed,
/// up to [`FOOTER_CONCURRENCY`] at a time, and checked in the files' order: the first file that fails
/// (in that order) is the one named.
async fn read_schemas(
    table: &Table,
    files: &[LiveFile],
    mapping: Option<&NameMapping>,
    memory_limit: u64,
) -> Result<Vec<SchemaRef>, RewriteError> {
    let schema = table.metadata().current_schema();
    let nested = columns::has_nested(schema);
    if mapping.is_some() && !nested {
        return Ok(vec![schema.clone(); files.len()]);
    }
    let reads: Vec<_> =
        files.iter().map(|file| async move { (file, file_field_ids(table, file).await) }).collect();
    let mut footers = futures::stream::iter(reads).buffered(at_once(files, memory_limit, FOOTER_CONCURRENCY));
    let mut out = Vec::with_capacity(files.len());
    while let Some((file, ids)) = footers.next().await {
        let mut read_with = schema.clone();
        match ids? {
            None if mapping.is_none() => {
                return Err(RewriteError::NoFieldIds { path: file.path().to_string() });
            }
            Some((ids, children)) if nested => {
                if let Some(field) = columns::nested_layout_mismatch(&children, schema) {
                    return Err(RewriteError::NestedLayoutChanged { path: file.path().to_string(), field });
                }
                if let Some(pruned) = columns::prune_nested(schema, &ids) {
                    read_with = Arc::new(pruned);
                }
            }
            _ => {}
        }
        out.push(read_with);
    }
    Ok(out)
}

/// Refuses an input that stores a column of an equality delete applied to it in another type than
/// the table's current type reads as: iceberg's reader filters on the Arrow type parquet derives from
/// the file's footer and casts the delete's values to it (`int` for a `long`, an `INT(16)` or
/// unsigned annotation, `float` for a `double`, another decimal, milliseconds for microseconds). The
/// table's schema history does not tell: schemas can be expired, and imported files can be narrower
/// than any schema ever was. Only the footer says. A column not found by field id (read by name
/// mapping) cannot be checked and is refused too.
async fn check_equality_columns(
    table: &Table,
    file: &LiveFile,
    deletes: &[LiveFile],
) -> Result<(), RewriteError> {
    use arrow_schema::DataType;
    let ids: HashSet<i32> = deletes
        .iter()
        .filter(|d| d.entry.content_type() == iceberg::spec::DataContentType::EqualityDeletes)
        .flat_map(|d| d.entry.data_file().equality_ids().unwrap_or_default())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let refuse = |field: i32, why: String| RewriteError::EqualityDeleteColumn {
        path: file.path().to_string(),
        field,
        why,
    };
    let footer = |source| RewriteError::Footer { path: file.path().to_string(), source };
    let reader = table.file_io().new_input(file.path())?.reader().await?;
    let mut reader = ArrowFileReader::new(FileMetadata { size: file.size() }, reader);
    let metadata = reader.get_metadata(None).await.map_err(footer)?;
    let stored = parquet::arrow::parquet_to_arrow_schema(
        metadata.file_metadata().schema_descr(),
        metadata.file_metadata().key_value_metadata(),
    )
    .map_err(footer)?;
    let wanted = schema_to_arrow_schema(table.metadata().current_schema())?;
    for &id in &ids {
        let (Some(stored), Some(wanted)) =
            (columns::arrow_field_by_id(&stored, id), columns::arrow_field_by_id(&wanted, id))
        else {
            return Err(refuse(
                id,
                "is not found by field id in the file, so its stored type cannot be checked".into(),
            ));
        };
        let fits = match (wanted.data_type(), stored.data_type()) {
            (DataType::Timestamp(unit, _), DataType::Timestamp(stored_unit, _)) => unit == stored_unit,
            (w, s) if w.is_numeric() || w.is_temporal() => w == s,
            // Strings, binary, booleans, UUIDs, fixed: no promotion reaches or leaves them.
            _ => true,
        };
        if !fits {
            return Err(refuse(
                id,
                format!("is stored as {}, not as the table's {}", stored.data_type(), wanted.data_type()),
            ));
        }
    }
    Ok(())
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
    let read_schemas = read_schemas(table, &input.files, mapping.as_deref(), input.memory_limit).await?;
    let no_deletes: Vec<LiveFile> = Vec::new();
    // Footers of inputs an equality delete applies to, a few at a time like the schemas' above.
    let checks: Vec<_> = input
        .files
        .iter()
        .enumerate()
        .map(|(i, file)| check_equality_columns(table, file, input.deletes.get(i).unwrap_or(&no_deletes)))
        .collect();
    futures::stream::iter(checks)
        .buffered(at_once(&input.files, input.memory_limit, FOOTER_CONCURRENCY))
        .try_collect::<Vec<()>>()
        .await?;
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
    let at_once = file_concurrency(&input.files, input.memory_limit);
    let arrow_schema = Arc::new(schema_to_arrow_schema(schema)?);
    // Decoded and made writable on a task of their own, so reading and writing use both cores.
    let batches =
        ahead(writable_file(read_tagged(table, rows, at_once, tasks), &arrow_schema), PIPELINE_DEPTH);
    Ok((swap_columns_fault(table, batches), arrow_schema))
}

/// One input file's writable batches, in the file's order.
pub(super) type RunStream = futures::stream::BoxStream<'static, iceberg::Result<arrow_array::RecordBatch>>;

/// Each input file's rows as a stream of its own (deletes applied, made writable), `batch_rows` rows
/// per batch, for a merge that holds every file open at once. Nothing is read until a stream is
/// polled. The merge decodes them on its own thread: decoding each on a task of its own ([`ahead`])
/// measured no faster (the writer, on the other core, is the slower side).
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
            let batches = writable_file(read_file(table, batch_rows, 0, task), &arrow_schema);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::StreamExt;
    use futures::stream::BoxStream;

    use super::ahead;

    fn counted(
        produced: Arc<AtomicUsize>,
        until: Option<usize>,
    ) -> BoxStream<'static, iceberg::Result<usize>> {
        futures::stream::iter(0..)
            .take_while(move |&i| futures::future::ready(until.is_none_or(|n| i < n)))
            .map(move |i| {
                produced.fetch_add(1, Ordering::SeqCst);
                Ok(i)
            })
            .boxed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_arrive_in_order_and_the_end_is_the_streams_end() {
        let produced = Arc::new(AtomicUsize::new(0));
        let got: Vec<usize> = ahead(counted(produced.clone(), Some(1000)), 2)
            .map(|item| item.expect("an item"))
            .collect()
            .await;
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(produced.load(Ordering::SeqCst), 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_read_before_the_first_poll_and_never_more_than_depth_ahead() {
        let produced = Arc::new(AtomicUsize::new(0));
        let mut stream = ahead(counted(produced.clone(), None), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(produced.load(Ordering::SeqCst), 0, "a stream not yet polled reads nothing");
        for want in 0..3 {
            assert_eq!(stream.next().await.expect("an item").expect("no error"), want);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Three taken, two queued, one held waiting for room: never more, however the threads ran.
        let produced = produced.load(Ordering::SeqCst);
        assert!((3..=6).contains(&produced), "{produced} produced");
    }

    /// Drops its flag's value to `true` when the stream holding it is dropped.
    struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_consumer_stops_a_task_that_is_waiting_on_its_input() {
        // The input yields one item and then waits forever (a reader stuck on storage): only an
        // abort, not a failed send, can stop the task.
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let input = futures::stream::iter([Ok(1)])
            .chain(futures::stream::pending())
            .map(move |item| {
                let _holds = &flag;
                item
            })
            .boxed();
        let mut stream = ahead(input, 2);
        assert_eq!(stream.next().await.expect("an item").expect("no error"), 1);
        assert!(!dropped.load(Ordering::SeqCst));
        drop(stream);
        let stopped = tokio::time::timeout(Duration::from_secs(30), async {
            while !dropped.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(stopped.is_ok(), "the task still holds its input 30 s after its consumer was dropped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_ends_the_stream_with_an_error_not_a_silent_end() {
        let stream = futures::stream::iter(0..10)
            .map(|i| {
                assert!(i < 5, "decoder bug at item {i}");
                Ok(i)
            })
            .boxed();
        let items: Vec<iceberg::Result<i32>> = ahead(stream, 2).collect().await;
        assert_eq!(items.len(), 6, "five items, then the error");
        assert!(items[..5].iter().all(Result::is_ok));
        let err = items[5].as_ref().expect_err("the panic is an error");
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[test]
    fn a_task_stopped_before_the_end_is_an_error_not_a_silent_end() {
        // The producer's runtime shuts down (process shutdown) after one item, its stream unfinished.
        let producer =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let stream = futures::stream::iter([Ok(1)]).chain(futures::stream::pending()).boxed();
        let mut stream = ahead(stream, 1);
        assert_eq!(producer.block_on(stream.next()).expect("an item").expect("no error"), 1);
        producer.shutdown_background();
        let consumer = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let next =
            consumer.block_on(async { tokio::time::timeout(Duration::from_secs(30), stream.next()).await });
        let err = next.expect("the stream answers").expect("an item, not the end").expect_err("an error");
        assert!(err.to_string().contains("stopped before the end"), "{err}");
    }

    fn file_of(bytes: u64) -> crate::table::LiveFile {
        use iceberg::spec::{
            DataContentType, DataFileBuilder, DataFileFormat, ManifestEntry, ManifestStatus,
        };
        let data_file = DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path(format!("file:///w/{bytes}.parquet"))
            .file_format(DataFileFormat::Parquet)
            .record_count(1000)
            .file_size_in_bytes(bytes)
            .build()
            .expect("a data file");
        let entry = ManifestEntry::builder().status(ManifestStatus::Added).data_file(data_file).build();
        crate::table::LiveFile { entry: Arc::new(entry), spec_id: 0, manifest: 0 }
    }

    /// Small files decode two at a time; once two of the largest would take more than an eighth of
    /// the rewrite's memory share, one at a time (an open reader holds up to its file's size).
    #[test]
    fn two_files_decode_at_once_only_while_they_fit_an_eighth_of_the_limit() {
        use super::file_concurrency;
        let limit = 128 << 20;
        let small = [file_of(80 << 10), file_of(90 << 10), file_of(1 << 20)];
        assert_eq!(file_concurrency(&small, limit), 2);
        assert_eq!(
            file_concurrency(&[file_of(8 << 20), file_of(1 << 10)], limit),
            2,
            "2 × 8 MiB = 16 MiB = limit / 8"
        );
        assert_eq!(file_concurrency(&[file_of(1 << 10), file_of((8 << 20) + 1)], limit), 1);
        assert_eq!(
            file_concurrency(&[file_of(21 << 20), file_of(21 << 20)], limit),
            1,
            "the 2 GiB benchmark's 21 MB files"
        );
        assert_eq!(file_concurrency(&[file_of(80 << 10)], 1 << 20), 1, "a tiny limit");
        assert_eq!(file_concurrency(&[], limit), 2);
        assert_eq!(file_concurrency(&[file_of(u64::MAX)], u64::MAX), 1, "no overflow");
    }

    /// Footers are read eight at a time under the same rule: an hour of ingest files, yes; the 2 GiB
    /// benchmark's 21 MB files at a 64 MiB limit, one at a time.
    #[test]
    fn footers_are_read_eight_at_a_time_only_while_eight_fit_an_eighth_of_the_limit() {
        use super::{FOOTER_CONCURRENCY, at_once};
        let ingest = [file_of(80 << 10), file_of(90 << 10)];
        assert_eq!(at_once(&ingest, 256 << 20, FOOTER_CONCURRENCY), 8);
        assert_eq!(at_once(&[file_of(1 << 20)], 64 << 20, FOOTER_CONCURRENCY), 8, "8 × 1 MiB = 64 MiB / 8");
        assert_eq!(at_once(&[file_of((1 << 20) + 1)], 64 << 20, FOOTER_CONCURRENCY), 1);
        assert_eq!(at_once(&[file_of(21 << 20)], 64 << 20, FOOTER_CONCURRENCY), 1);
    }
}
