//! `generate`: a SignalDB-shaped warehouse of many small files, for demos, tests and benchmarks.
//!
//! Layout under DIR: `catalog.db` (SQLite Iceberg catalog named `signaldb`) and `warehouse/`. Namespaces
//! are `[tenant, dataset]`; every table gets `--files-per-hour` files for each of `--hours` hours ending
//! at `--end` (default now), each committed by its own fast-append, as SignalDB's 5-second writer does.
//! Row content is a pure function of the seed, table, hour and file index, so a run is reproducible
//! whatever the task interleaving.

pub mod batch;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{DataFileFormat, Literal, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog as _, NamespaceIdent, TableCreation};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::catalog::{Access, Catalog};
use crate::compaction::rewrite::with_sort_order;
use crate::compaction::sort::{SortPlan, sort_batch};
use crate::config::{CatalogConfig, StorageConfig};
use crate::storage::{Dsn, Warehouse};

const TENANTS: &[&str] = &["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"];
const DATASETS: &[&str] = &["production", "staging", "dev", "qa", "canary", "archive"];

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub dir: PathBuf,
    pub tenants: usize,
    pub datasets: usize,
    pub hours: u32,
    pub files_per_hour: usize,
    pub rows_per_file: usize,
    pub seed: u64,
    pub all_signals: bool,
    /// Only these tables (empty: the default set, or all eight with `all_signals`).
    pub tables: Vec<String>,
    /// Declare no sort order on the tables.
    pub unsorted: bool,
    /// Write files in generation order, claiming no sort order, even where the table declares one
    /// (by default files are sorted by the declared order and claim it, as SignalDB's writer does).
    pub unsorted_files: bool,
    /// Give file `i` of `n` in an hour the stretch `[i, i + 2)` of the hour's `n` equal stretches (the
    /// last one cut at the hour's end): successive files cover successive times and each overlaps the
    /// next, as successive flushes of an ingest writer do. By default every file's timestamps spread
    /// over its whole hour, so every file overlaps every other.
    pub windowed_files: bool,
    /// The end of the generated time range (exclusive); the last hour is the one containing it.
    pub end: DateTime<Utc>,
    /// Tables generated concurrently.
    pub concurrency: usize,
}

impl GenerateOptions {
    /// A small warehouse under `dir`: two tenants, one dataset, the default tables, three hours of
    /// four files of 50 rows each, seed 7, ending at a fixed instant (2026-11-21 10:30 UTC) so that
    /// runs are reproducible. Tests and examples change what they need with `..small(dir)`.
    pub fn small(dir: &Path) -> GenerateOptions {
        GenerateOptions {
            dir: dir.to_path_buf(),
            tenants: 2,
            datasets: 1,
            hours: 3,
            files_per_hour: 4,
            rows_per_file: 50,
            seed: 7,
            all_signals: false,
            tables: Vec::new(),
            unsorted: false,
            unsorted_files: false,
            windowed_files: false,
            end: DateTime::from_timestamp(1_795_257_000, 0).expect("a valid instant"),
            concurrency: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    pub dir: PathBuf,
    pub catalog_uri: String,
    pub warehouse: String,
    pub tables: usize,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub elapsed_secs: f64,
    pub files_per_minute: f64,
}

/// Catalog and storage settings for a generated directory.
pub fn dir_config(dir: &Path) -> (CatalogConfig, StorageConfig) {
    let catalog = CatalogConfig {
        uri: format!("sqlite:{}?mode=rwc", dir.join("catalog.db").display()),
        name: "signaldb".into(),
        pool_max_connections: 4,
    };
    let storage = StorageConfig {
        dsn: Dsn::Local { root: dir.join("warehouse") },
        extra_roots: Vec::new(),
        endpoint: None,
        region: None,
        access_key_id: None,
        secret_access_key: None,
        allow_http: false,
        path_style: false,
    };
    (catalog, storage)
}

fn tenant_name(i: usize) -> String {
    TENANTS.get(i).map(|s| s.to_string()).unwrap_or_else(|| format!("tenant{i:03}"))
}

fn dataset_name(i: usize) -> String {
    DATASETS.get(i).map(|s| s.to_string()).unwrap_or_else(|| format!("dataset{i:03}"))
}

/// One table to create and fill.
#[derive(Debug, Clone)]
struct TableJob {
    namespace: NamespaceIdent,
    table: &'static str,
}

pub async fn generate(opts: &GenerateOptions) -> anyhow::Result<GenerateReport> {
    generate_with_catalog(opts, None).await
}

/// [`generate`] into another catalog database (e.g. PostgreSQL) than `DIR/catalog.db`.
pub async fn generate_with_catalog(
    opts: &GenerateOptions,
    catalog_uri: Option<&str>,
) -> anyhow::Result<GenerateReport> {
    generate_into(opts, catalog_uri, None).await
}

/// [`generate`] into another catalog database and/or another warehouse (e.g. S3) than DIR's.
pub async fn generate_into(
    opts: &GenerateOptions,
    catalog_uri: Option<&str>,
    storage: Option<StorageConfig>,
) -> anyhow::Result<GenerateReport> {
    if opts.tenants == 0
        || opts.datasets == 0
        || opts.hours == 0
        || opts.files_per_hour == 0
        || opts.rows_per_file == 0
    {
        bail!("--tenants, --datasets, --hours, --files-per-hour and --rows-per-file must all be at least 1");
    }
    if let Some(unknown) = opts.tables.iter().find(|t| !schema::table_names(true).contains(&t.as_str())) {
        bail!(
            "--tables: unknown table {unknown:?} (expected SignalDB table names such as traces, logs, metrics_gauge)"
        );
    }
    let dir = std::path::absolute(&opts.dir).with_context(|| format!("resolving {}", opts.dir.display()))?;
    if dir.join("catalog.db").exists() {
        bail!("{} already holds a catalog.db; generate into an empty directory", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (mut catalog_config, mut storage_config) = dir_config(&dir);
    if let Some(uri) = catalog_uri {
        catalog_config.uri = uri.to_string();
    }
    if let Some(storage) = storage {
        storage_config = storage;
    }
    let warehouse = Warehouse::open(&storage_config, Access::ReadWrite)?;
    let catalog = Catalog::connect(&catalog_config, &warehouse, Access::ReadWrite).await?;

    let mut jobs = Vec::new();
    for t in 0..opts.tenants {
        for d in 0..opts.datasets {
            let namespace = NamespaceIdent::from_vec(vec![tenant_name(t), dataset_name(d)])?;
            catalog.iceberg().create_namespace(&namespace, Default::default()).await?;
            for table in schema::table_names(opts.all_signals || !opts.tables.is_empty()) {
                if opts.tables.is_empty() || opts.tables.iter().any(|t| t == table) {
                    jobs.push(TableJob { namespace: namespace.clone(), table });
                }
            }
        }
    }
    let started = Instant::now();
    let totals: Vec<(usize, u64, u64)> = futures::stream::iter(jobs.iter().cloned())
        .map(|job| {
            let catalog = catalog.clone();
            let opts = opts.clone();
            tokio::spawn(async move { fill_table(&catalog, &job, &opts).await })
        })
        .buffer_unordered(opts.concurrency.max(1))
        .map(|joined| joined.context("generator task panicked")?)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    let files = totals.iter().map(|t| t.0).sum::<usize>();
    Ok(GenerateReport {
        catalog_uri: catalog_config.uri,
        warehouse: warehouse.root().to_string(),
        dir,
        tables: jobs.len(),
        files,
        rows: totals.iter().map(|t| t.1).sum(),
        bytes: totals.iter().map(|t| t.2).sum(),
        elapsed_secs: elapsed.as_secs_f64(),
        files_per_minute: files as f64 / elapsed.as_secs_f64().max(1e-9) * 60.0,
    })
}

/// The first hour generated and the end of the range.
fn hour_range(opts: &GenerateOptions) -> (DateTime<Utc>, DateTime<Utc>) {
    let last_hour = opts.end.duration_trunc(TimeDelta::hours(1)).expect("hour truncation");
    (last_hour - TimeDelta::hours(i64::from(opts.hours) - 1), opts.end)
}

/// Creates one table and appends every file of every hour to it; returns (files, rows, bytes).
async fn fill_table(
    catalog: &Catalog,
    job: &TableJob,
    opts: &GenerateOptions,
) -> anyhow::Result<(usize, u64, u64)> {
    let columns = schema::columns(job.table);
    let table_schema = schema::schema(&columns)?;
    let creation = TableCreation::builder()
        .name(job.table.to_string())
        .schema(table_schema.clone())
        .partition_spec(schema::partition_spec(&table_schema)?)
        .sort_order_opt(if opts.unsorted { None } else { schema::sort_order(job.table, &table_schema)? })
        .properties(schema::properties(job.table))
        .build();
    let mut table = catalog
        .iceberg()
        .create_table(&job.namespace, creation)
        .await
        .with_context(|| format!("creating {}.{}", job.namespace.join("."), job.table))?;
    let (first_hour, end) = hour_range(opts);
    let (mut files, mut rows, mut bytes) = (0, 0u64, 0u64);
    for h in 0..opts.hours {
        let hour_start = first_hour + TimeDelta::hours(i64::from(h));
        let hour_end = (hour_start + TimeDelta::hours(1)).min(end);
        if hour_end <= hour_start {
            continue;
        }
        for f in 0..opts.files_per_hour {
            let seed = batch::file_seed(opts.seed, &job.namespace.join("."), job.table, hour_start, f);
            let (start, end) = if opts.windowed_files {
                let stretch = ((hour_end - hour_start)
                    / i32::try_from(opts.files_per_hour).unwrap_or(i32::MAX))
                .max(TimeDelta::microseconds(1));
                let start =
                    (hour_start + stretch * i32::try_from(f).unwrap_or(i32::MAX)).min(hour_end - stretch);
                (start, (start + stretch * 2).min(hour_end))
            } else {
                (hour_start, hour_end)
            };
            let spec = batch::FileSpec { seed, rows: opts.rows_per_file, start, end };
            let layout = if opts.unsorted_files { FileLayout::Unsorted } else { FileLayout::Sorted };
            let (n, size) = append_file_as(catalog, &mut table, &columns, &spec, layout).await?;
            files += 1;
            rows += n;
            bytes += size;
        }
    }
    Ok((files, rows, bytes))
}

/// Writes one Parquet file into its hour partition and commits it with a fast-append (what SignalDB's
/// ingest writer does every few seconds). Returns (rows, bytes).
pub async fn append_file(
    catalog: &Catalog,
    table: &mut Table,
    columns: &[schema::Column],
    spec: &batch::FileSpec,
) -> anyhow::Result<(u64, u64)> {
    append_file_as(catalog, table, columns, spec, FileLayout::Sorted).await
}

/// [`append_file`] with the given row layout.
pub async fn append_file_as(
    catalog: &Catalog,
    table: &mut Table,
    columns: &[schema::Column],
    spec: &batch::FileSpec,
    layout: FileLayout,
) -> anyhow::Result<(u64, u64)> {
    let data_files = write_file_as(table, columns, spec, layout).await?;
    let rows = data_files.iter().map(|f| f.record_count()).sum();
    let bytes = data_files.iter().map(|f| f.file_size_in_bytes()).sum();
    let tx = Transaction::new(table);
    let tx = tx.fast_append().with_check_duplicate(false).add_data_files(data_files).apply(tx)?;
    *table = commit_with_retry(catalog, tx).await?;
    Ok((rows, bytes))
}

/// How a generated file's rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileLayout {
    /// Sorted by the table's declared sort order and claiming it (`sort_order_id` in the manifest
    /// entry), as SignalDB's writer does. Tables without a sort order get unsorted files.
    #[default]
    Sorted,
    /// In generation order, claiming no sort order (files from a writer that does not sort).
    Unsorted,
    /// In reverse generation order (timestamps descending) but claiming the table's sort order: a
    /// buggy writer's files, for tests of the compactor's verification of sort claims.
    Misclaimed,
}

/// Writes one Parquet file into its hour partition without committing it, as SignalDB's writer does.
pub async fn write_file(
    table: &Table,
    columns: &[schema::Column],
    spec: &batch::FileSpec,
) -> anyhow::Result<Vec<iceberg::spec::DataFile>> {
    write_file_as(table, columns, spec, FileLayout::Sorted).await
}

/// [`write_file`] with the given row layout.
pub async fn write_file_as(
    table: &Table,
    columns: &[schema::Column],
    spec: &batch::FileSpec,
    layout: FileLayout,
) -> anyhow::Result<Vec<iceberg::spec::DataFile>> {
    let metadata = table.metadata();
    let iceberg_schema = metadata.current_schema().clone();
    let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&iceberg_schema)?);
    let mut record_batch = batch::build(columns, &arrow_schema, spec)?;
    let sort = match layout {
        FileLayout::Sorted | FileLayout::Misclaimed => {
            SortPlan::for_table(metadata.default_sort_order(), &iceberg_schema)
        }
        FileLayout::Unsorted => None,
    };
    match (&sort, layout) {
        (Some(plan), FileLayout::Sorted) => record_batch = sort_batch(plan, &record_batch)?,
        (_, FileLayout::Misclaimed) => {
            let reversed: Vec<u32> = (0..record_batch.num_rows() as u32).rev().collect();
            record_batch = arrow_select::take::take_record_batch(
                &record_batch,
                &arrow_array::UInt32Array::from(reversed),
            )?;
        }
        _ => {}
    }
    let hour = (spec.start.timestamp() / 3600) as i32;
    let partition = Struct::from_iter([Some(Literal::int(hour))]);
    let key = PartitionKey::new(
        metadata.default_partition_spec().as_ref().clone(),
        iceberg_schema.clone(),
        partition,
    );
    let props =
        WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?)).build();
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props, iceberg_schema),
        usize::MAX,
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        DefaultFileNameGenerator::new(
            format!("gen-{hour}"),
            Some(uuid::Uuid::now_v7().to_string()),
            DataFileFormat::Parquet,
        ),
    );
    let mut writer = DataFileWriterBuilder::new(rolling).build(Some(key)).await?;
    writer.write(record_batch).await?;
    let files = writer.close().await?;
    match &sort {
        Some(plan) => files
            .iter()
            .map(|f| Ok(with_sort_order(f, metadata.default_partition_spec_id(), plan.order_id)?))
            .collect(),
        None => Ok(files),
    }
}

/// `Transaction::commit` retries conflicts itself; SQLite "database is locked" under parallel writers
/// surfaces as a non-retryable error, so retry those briefly here.
async fn commit_with_retry(catalog: &Catalog, tx: Transaction) -> anyhow::Result<Table> {
    let mut attempt = 0;
    loop {
        match tx.clone().commit(catalog.iceberg()).await {
            Ok(table) => return Ok(table),
            Err(e) if attempt < 5 && e.to_string().contains("locked") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
