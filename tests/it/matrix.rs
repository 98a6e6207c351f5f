//! The jobs' acceptance scenario on every backend pair: SQLite or PostgreSQL catalog × local directory or
//! S3 bucket (real servers started by the fixtures), with PyIceberg reading and writing the same tables
//! through the same catalog and storage.
//!
//! One scenario per pair: a fully dry-run process changes no object and no catalog row; compaction (with
//! an append committed between its rewrite and its commit) keeps every row, leaves one file per closed
//! hour and the open hour alone, commits `replace`, and a second pass commits nothing; a PyIceberg table
//! is compacted, then read and appended to by PyIceberg; retention drops every expired hour with a
//! `delete` snapshot and expires snapshots, idempotently; orphan cleanup keeps a young orphan and, once it
//! is old, deletes it and nothing live; deep verify finds nothing; audit and checkpoint rows exist.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::Array;
use chrono::TimeDelta;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use signaldb_compactor::catalog::Access;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{Config, Mode, RetentionValue, StorageConfig};
use signaldb_compactor::job::{
    BeforeCommitHook, Job, PartitionStatus, PassRequest, TableFilter, TableStatus,
};
use signaldb_compactor::orphans::OrphanJob;
use signaldb_compactor::retention::RetentionJob;
use signaldb_compactor::service::Context;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::support::{
    Postgres, S3Server, context_with_access, files_per_partition, fixed_end, small_options,
};

/// One catalog database and one warehouse, with the servers behind them.
pub struct Backend {
    pub dir: tempfile::TempDir,
    /// The catalog URI as the compactor takes it.
    pub uri: String,
    pub storage: Option<StorageConfig>,
    pub pg: Option<Postgres>,
    s3: Option<S3Server>,
}

impl Backend {
    pub async fn new(postgres: bool, s3: bool) -> Backend {
        let pg = postgres.then(Postgres::start);
        Backend::with(pg, s3).await
    }

    /// A backend on an already started PostgreSQL server (e.g. a TLS-only one).
    pub async fn with(pg: Option<Postgres>, s3: bool) -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let uri = match &pg {
            Some(pg) => pg.database("signaldb").await,
            None => signaldb_compactor::generate::dir_config(dir.path()).0.uri,
        };
        let s3 = s3.then(S3Server::start);
        let storage = s3.as_ref().map(|s| s.bucket("lake", "warehouse"));
        Backend { dir, uri, storage, pg, s3 }
    }

    pub(crate) fn name(&self) -> String {
        format!(
            "{} + {}",
            if self.pg.is_some() { "postgresql" } else { "sqlite" },
            if self.s3.is_some() { "s3" } else { "local" }
        )
    }

    /// A context on this backend with the given access and clock.
    pub(crate) async fn context(
        &self,
        access: Access,
        now: chrono::DateTime<chrono::Utc>,
        tweak: fn(&mut Config),
    ) -> Context {
        let (uri, storage) = (self.uri.clone(), self.storage.clone());
        context_with_access(self.dir.path(), now, access, move |c| {
            c.catalog.uri = uri;
            if let Some(storage) = storage {
                c.storage = storage;
            }
            tweak(c);
        })
        .await
    }

    /// Runs the PyIceberg helper on this backend's catalog and warehouse.
    pub(crate) fn pyiceberg(&self, args: &[&str]) -> serde_json::Value {
        self.helper("pyiceberg_tool.py", args)
    }

    /// Runs the DuckDB helper (DuckDB's Iceberg extension) on this backend's catalog and warehouse.
    fn duckdb(&self, args: &[&str]) -> serde_json::Value {
        self.helper("duckdb_tool.py", args)
    }

    /// DuckDB reads every table of the catalog with exactly PyIceberg's rows (content checksum). Local
    /// warehouses only: DuckDB reads S3 through another extension, which is not installed offline.
    pub(crate) async fn readers_agree(&self, ctx: &Context, after: &str) {
        if self.storage.is_some() {
            return;
        }
        for t in ctx.catalog.discover().await.unwrap() {
            let q = t.qualified();
            let py = self.pyiceberg(&["scan", "--table", &q]);
            let duck = self.duckdb(&["scan", "--table", &q]);
            assert_eq!(
                (&duck["rows"], &duck["checksum"]),
                (&py["rows"], &py["checksum"]),
                "{}: {q} after {after}: DuckDB and PyIceberg read different rows",
                self.name()
            );
        }
    }

    fn helper(&self, script: &str, args: &[&str]) -> serde_json::Value {
        let uri = match &self.pg {
            Some(_) => self.uri.replacen("postgres://", "postgresql+psycopg2://", 1),
            None => format!("sqlite:///{}", self.dir.path().join("catalog.db").display()),
        };
        let warehouse = match &self.storage {
            Some(s) => s.dsn.root_location(),
            None => self.dir.path().join("warehouse").display().to_string(),
        };
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers").join(script)).args(args).args([
            "--uri",
            &uri,
            "--warehouse",
            &warehouse,
        ]);
        if let Some(s3) = &self.s3 {
            cmd.args(["--s3-endpoint", &s3.endpoint]);
        }
        let out = cmd.output().expect("python3 runs (see .ci/run)");
        assert!(
            out.status.success(),
            "{script} {args:?} on {}: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("helper prints JSON")
    }
}

/// Every object under the warehouse with its bytes, and every row of the catalog's and the compactor's
/// tables: what a dry-run must leave identical.
async fn state(ctx: &Context) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let store = ctx.warehouse.store().clone();
    let root = ctx.warehouse.object_path(ctx.warehouse.root()).unwrap();
    let listed: Vec<object_store::ObjectMeta> = store.list(Some(&root)).try_collect().await.unwrap();
    let mut objects = BTreeMap::new();
    for meta in listed {
        let bytes = store.get(&meta.location).await.unwrap().bytes().await.unwrap();
        objects.insert(meta.location.to_string(), bytes.to_vec());
    }
    let mut rows = Vec::new();
    for (query, columns) in [
        (
            "SELECT catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location \
             FROM iceberg_tables ORDER BY 1, 2, 3",
            5,
        ),
        ("SELECT run_id, status, COALESCE(completed_at, '') FROM compactor_runs ORDER BY 1", 3),
        ("SELECT run_id, table_name, status, COALESCE(last_path, '') FROM cleanup_progress ORDER BY 1, 2", 4),
        ("SELECT table_name, holder_id FROM compactor_leases ORDER BY 1", 2),
    ] {
        for row in sqlx::query(query).fetch_all(ctx.catalog.pool()).await.unwrap() {
            let cells: Vec<String> = (0..columns)
                .map(|i| row.try_get::<Option<String>, _>(i).unwrap().unwrap_or_default())
                .collect();
            rows.push(cells.join("|"));
        }
    }
    (objects, rows)
}

/// Every row's trace id, sorted: a traces table's row multiset.
pub async fn trace_ids(ctx: &Context, table: &str) -> Vec<String> {
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == table).unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    let batches: Vec<arrow_array::RecordBatch> =
        table.scan().select_all().build().unwrap().to_arrow().await.unwrap().try_collect().await.unwrap();
    let mut ids = Vec::new();
    for b in batches {
        let col = b.column_by_name("trace_id").unwrap();
        let col = col.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    ids.sort();
    ids
}

fn configure(c: &mut Config) {
    c.compaction.min_input_files = 2;
    c.compaction.max_concurrent_rewrites = 1;
    c.commit.retry_backoff = std::time::Duration::from_millis(5);
    c.retention.enabled = true;
    c.retention.mode = Mode::Execute;
    c.retention.snapshots_to_keep = 1;
    c.retention.policy.global.traces = Some(RetentionValue::For(std::time::Duration::from_secs(86_400)));
    c.orphans.enabled = true;
    c.orphans.mode = Mode::Execute;
}

fn dry_run(c: &mut Config) {
    configure(c);
    c.compaction.mode = Mode::DryRun;
    c.retention.mode = Mode::DryRun;
    c.orphans.mode = Mode::DryRun;
}

async fn run(job: &dyn Job, mode: Mode) -> signaldb_compactor::job::PassReport {
    job.run_once(&PassRequest::all(mode), &CancellationToken::new()).await.unwrap()
}

/// An append of 30 rows into hour 08 of acme's traces, committed between the rewrite of that hour and
/// its commit (once).
fn append_mid_compaction(ctx: &Context, fired: Arc<AtomicBool>) -> BeforeCommitHook {
    let catalog = ctx.catalog.clone();
    Arc::new(move |partition: String| {
        let (catalog, fired) = (catalog.clone(), fired.clone());
        Box::pin(async move {
            if partition != "timestamp_hour=2026-11-21-08" || fired.swap(true, Ordering::SeqCst) {
                return;
            }
            let t = catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
            let mut table = catalog.load(&t).await.unwrap();
            let start = fixed_end() - TimeDelta::minutes(150);
            let spec = signaldb_compactor::generate::batch::FileSpec {
                seed: 77,
                rows: 30,
                start,
                end: start + TimeDelta::minutes(5),
            };
            let columns = signaldb_compactor::generate::schema::columns("traces");
            signaldb_compactor::generate::append_file(&catalog, &mut table, &columns, &spec).await.unwrap();
        }) as futures::future::BoxFuture<'static, ()>
    })
}

/// The acceptance scenario of every job on `backend`.
pub async fn acceptance(backend: &Backend) {
    let name = backend.name();
    let dir = backend.dir.path();
    signaldb_compactor::generate::generate_into(
        &small_options(dir),
        Some(&backend.uri),
        backend.storage.clone(),
    )
    .await
    .unwrap();
    // A table PyIceberg creates and fills itself (3 appends over 3 hours), on the same catalog/storage.
    let pyice = "initech.production.traces";
    backend.pyiceberg(&["create", "--table", pyice, "--rows", "90", "--appends", "3"]);
    let pyice_before = backend.pyiceberg(&["scan", "--table", pyice]);
    assert_eq!(pyice_before["rows"], 270);
    let now = fixed_end() + TimeDelta::minutes(5);
    let traces = "acme.production.traces";

    // 1. A fully dry-run process (opened read-only, as the binary does) changes nothing anywhere.
    let observer = backend.context(Access::ReadWrite, now, configure).await;
    let logs = observer.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "logs").unwrap();
    let logs_location = observer.catalog.load(&logs).await.unwrap().metadata().location().to_string();
    let orphan = observer.warehouse.object_path(&format!("{logs_location}/data/orphan.parquet")).unwrap();
    observer.warehouse.store().put(&orphan, object_store::PutPayload::from_static(b"orphan")).await.unwrap();
    let before_dry = state(&observer).await;
    {
        let later = chrono::Utc::now() + TimeDelta::days(10);
        let dry = backend.context(Access::ReadOnly, later, dry_run).await;
        for job in [
            Box::new(CompactionJob::new(&dry)) as Box<dyn Job>,
            Box::new(RetentionJob::new(&dry)),
            Box::new(OrphanJob::new(&dry)),
        ] {
            let report = run(job.as_ref(), Mode::DryRun).await;
            assert_eq!(report.failed_tables(), 0, "{name}: {report:#?}");
            assert!(
                report.tables.iter().any(|t| t.status == TableStatus::Succeeded),
                "{name}: the dry run planned work: {report:#?}"
            );
        }
    }
    assert!(before_dry == state(&observer).await, "{name}: a dry run changed an object or a catalog row");

    // 2. Compaction, with an append landing between rewrite and commit.
    let ctx = backend.context(Access::ReadWrite, now, configure).await;
    let before = trace_ids(&ctx, traces).await;
    assert_eq!(before.len(), 3 * 4 * 50);
    let fired = Arc::new(AtomicBool::new(false));
    let job = CompactionJob::new(&ctx).with_before_commit(append_mid_compaction(&ctx, fired.clone()));
    let only_traces =
        PassRequest { filter: TableFilter::only([traces.to_string()]), ..PassRequest::all(Mode::Execute) };
    let first = job.run_once(&only_traces, &CancellationToken::new()).await.unwrap();
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(first.failed_tables(), 0, "{name}: {first:#?}");
    // Then every other table, PyIceberg's among them.
    let report = run(&CompactionJob::new(&ctx), Mode::Execute).await;
    assert_eq!(report.failed_tables(), 0, "{name}: {report:#?}");
    assert_eq!(
        report.tables.iter().filter(|t| t.status == TableStatus::Succeeded).count(),
        7,
        "{name}: the five other generated tables, PyIceberg's, and hour 08 of traces again (its compacted \
         file and the concurrent append): {report:#?}"
    );
    let acme = first.tables.iter().find(|t| t.table == traces).unwrap();
    // Groups run one at a time here, so the append lands after hour 08's base state was taken: its
    // commit conflicts once and is rebased.
    let hour8 = acme.partition_reports.iter().find(|p| p.partition.ends_with("-08")).unwrap();
    assert_eq!(
        (hour8.status.clone(), hour8.attempts),
        (PartitionStatus::Succeeded, Some(2)),
        "{name}: {acme:#?}"
    );
    let after = trace_ids(&ctx, traces).await;
    assert_eq!(after.len(), before.len() + 30, "{name}: every row kept, the concurrent append too");
    assert!(before.iter().all(|id| after.binary_search(id).is_ok()));
    let files = files_per_partition(&ctx, traces).await;
    assert_eq!(files["timestamp_hour=2026-11-21-08"], 1, "{name}: {files:?}");
    assert_eq!(files["timestamp_hour=2026-11-21-09"], 1, "{name}: {files:?}");
    assert_eq!(files["timestamp_hour=2026-11-21-10"], 4, "{name}: the open hour is left alone");
    let scanned = backend.pyiceberg(&["scan", "--table", traces]);
    assert_eq!(scanned["rows"], after.len(), "{name}: PyIceberg reads the compacted table");
    assert_eq!(scanned["operation"], "replace");
    let pyice_after = backend.pyiceberg(&["scan", "--table", pyice]);
    assert_eq!(pyice_after["checksum"], pyice_before["checksum"], "{name}: PyIceberg's rows unchanged");
    assert_eq!(pyice_after["operation"], "replace");
    backend.readers_agree(&ctx, "compaction").await;
    backend.pyiceberg(&["append", "--table", pyice, "--rows", "25"]);
    assert_eq!(
        backend.pyiceberg(&["scan", "--table", pyice])["rows"],
        295,
        "{name}: PyIceberg appends after"
    );

    // A second pass over the compacted tables commits nothing (the PyIceberg append is one new file per
    // hour it touched, below min_input_files only where it added one).
    let locations = |ctx: &Context| {
        let catalog = ctx.catalog.clone();
        async move {
            let mut out = BTreeMap::new();
            for t in catalog.discover().await.unwrap() {
                if t.tenant != "initech" {
                    out.insert(t.qualified(), catalog.metadata_location(&t.ident).await.unwrap());
                }
            }
            out
        }
    };
    let settled = locations(&ctx).await;
    let again = run(&CompactionJob::new(&ctx), Mode::Execute).await;
    assert_eq!(again.failed_tables(), 0, "{name}: {again:#?}");
    assert_eq!(locations(&ctx).await, settled, "{name}: a second pass commits nothing");

    // 3. Orphan cleanup now: the planted orphan is younger than the grace period and stays.
    let ctx_now = backend.context(Access::ReadWrite, chrono::Utc::now(), configure).await;
    let report = run(&OrphanJob::new(&ctx_now), Mode::Execute).await;
    assert_eq!(report.failed_tables(), 0, "{name}: {report:#?}");
    assert!(ctx.warehouse.store().head(&orphan).await.is_ok(), "{name}: a young orphan is kept");

    // 4. Ten days later: retention drops every expired hour (PyIceberg's table too) and expires snapshots.
    let late = backend.context(Access::ReadWrite, now, configure).await.with_clock(Arc::new(
        signaldb_compactor::clock::FixedClock(chrono::Utc::now() + TimeDelta::days(10)),
    ));
    let retention = run(&RetentionJob::new(&late), Mode::Execute).await;
    assert_eq!(retention.failed_tables(), 0, "{name}: {retention:#?}");
    let t = retention.tables.iter().find(|t| t.table == traces).unwrap();
    assert_eq!(t.status, TableStatus::Succeeded, "{name}: {t:#?}");
    assert!(trace_ids(&late, traces).await.is_empty(), "{name}: every hour expired");
    let dropped = backend.pyiceberg(&["scan", "--table", traces]);
    assert_eq!(
        (dropped["rows"].as_u64(), dropped["operation"].as_str()),
        (Some(0), Some("delete")),
        "{name}"
    );
    assert_eq!(
        backend.pyiceberg(&["scan", "--table", pyice])["rows"],
        0,
        "{name}: PyIceberg's table expired too"
    );
    let settled = locations(&late).await;
    let again = run(&RetentionJob::new(&late), Mode::Execute).await;
    assert_eq!(again.failed_tables(), 0, "{name}: {again:#?}");
    assert_eq!(locations(&late).await, settled, "{name}: retention is idempotent");
    backend.readers_agree(&late, "retention").await;

    // 5. Orphan cleanup ten days later: the orphan is old now and goes; nothing live does.
    let report = run(&OrphanJob::new(&late), Mode::Execute).await;
    assert_eq!(report.failed_tables(), 0, "{name}: {report:#?}");
    assert!(late.warehouse.store().head(&orphan).await.is_err(), "{name}: the old orphan was deleted");
    let problems = signaldb_compactor::verify::verify(&late, &TableFilter::all(), true).await.unwrap();
    assert!(problems.iter().all(|t| t.problems.is_empty()), "{name}: {problems:#?}");
    backend.readers_agree(&late, "orphan cleanup").await;
    backend.pyiceberg(&["append", "--table", pyice, "--rows", "10"]);
    assert_eq!(
        backend.pyiceberg(&["scan", "--table", pyice])["rows"],
        10,
        "{name}: still writable by PyIceberg"
    );

    // 6. Audit and checkpoint rows live in the catalog database.
    let runs: Vec<(String, String)> = sqlx::query("SELECT DISTINCT run_type, status FROM compactor_runs")
        .fetch_all(late.catalog.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for run_type in ["compaction", "retention", "expiry", "orphans"] {
        assert!(runs.contains(&(run_type.into(), "completed".into())), "{name}: {run_type}: {runs:?}");
    }
    let checkpoints: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM cleanup_progress WHERE status = 'completed'")
            .fetch_one(late.catalog.pool())
            .await
            .unwrap();
    assert_eq!(checkpoints, 2 * 7, "{name}: one completed checkpoint per table per cleanup pass");
    let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM compactor_leases")
        .fetch_one(late.catalog.pool())
        .await
        .unwrap();
    assert_eq!(leases, 0, "{name}: every lease released");
}

#[tokio::test]
async fn acceptance_on_sqlite_and_local_files() {
    acceptance(&Backend::new(false, false).await).await;
}

#[tokio::test]
async fn acceptance_on_sqlite_and_s3() {
    acceptance(&Backend::new(false, true).await).await;
}

#[tokio::test]
async fn acceptance_on_postgresql_and_local_files() {
    acceptance(&Backend::new(true, false).await).await;
}

#[tokio::test]
async fn acceptance_on_postgresql_and_s3() {
    acceptance(&Backend::new(true, true).await).await;
}
