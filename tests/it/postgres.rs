//! The jobs on a PostgreSQL catalog (a real server started by the fixture): compaction with a forced
//! compare-and-swap conflict, retention with snapshot expiry, orphan cleanup with checkpoints, audit rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::Array;
use chrono::TimeDelta;
use futures::{FutureExt, TryStreamExt};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{Mode, RetentionValue};
use signaldb_compactor::job::{BeforeCommitHook, Job, PartitionStatus, PassRequest, TableStatus};
use signaldb_compactor::orphans::OrphanJob;
use signaldb_compactor::retention::RetentionJob;
use signaldb_compactor::service::Context;
use tokio_util::sync::CancellationToken;

use crate::support::{Postgres, context, fixed_end, small_options};

/// Every row's trace id, sorted: a table's row multiset for traces-shaped tables.
async fn trace_ids(ctx: &Context, table: &str) -> Vec<String> {
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == table).unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    let batches: Vec<arrow_array::RecordBatch> =
        table.scan().select_all().build().unwrap().to_arrow().await.unwrap().try_collect().await.unwrap();
    let mut ids = Vec::new();
    for b in batches {
        let col = b
            .column_by_name("trace_id")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn every_job_on_postgresql_and_local_files() {
    let pg = Postgres::start();
    let uri = pg.database("signaldb").await;
    scenario(&uri, None).await;
}

#[tokio::test]
async fn every_job_on_postgresql_and_s3() {
    let pg = Postgres::start();
    let uri = pg.database("signaldb").await;
    let s3 = crate::support::S3Server::start();
    scenario(&uri, Some(s3.bucket("signaldb-lake", "warehouse"))).await;
}

/// The same scenario over TLS: the server accepts TCP clients only over TLS, the catalog URI verifies
/// its certificate and host name (`sslmode=verify-full`, `sslrootcert`). A plain connection is refused,
/// and a certificate from another CA fails the connection with an error naming the catalog.
#[tokio::test]
async fn every_job_on_postgresql_over_tls() {
    let pg = Postgres::start_tls();
    let uri = pg.database("signaldb").await;
    assert!(uri.contains("sslmode=verify-full"), "{uri}");
    scenario(&uri, None).await;

    let plain = uri.split('?').next().unwrap().replace("localhost", "127.0.0.1") + "?sslmode=disable";
    let Err(refused) = sqlx::PgPool::connect(&plain).await else { panic!("plain TCP refused") };
    let refused = refused.to_string();
    assert!(refused.contains("no encryption") || refused.contains("pg_hba"), "{refused}");

    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(other.path())
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other-ca"])
        .args(["-keyout", "other.key", "-out", "other.crt"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let wrong_ca = uri.replace(
        &pg.tls_ca().unwrap().display().to_string(),
        &other.path().join("other.crt").display().to_string(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (catalog, storage) = signaldb_compactor::generate::dir_config(dir.path());
    let catalog = signaldb_compactor::config::CatalogConfig { uri: wrong_ca, ..catalog };
    let warehouse = signaldb_compactor::storage::Warehouse::open(
        &storage,
        signaldb_compactor::catalog::Access::ReadWrite,
    )
    .unwrap();
    let Err(error) = signaldb_compactor::catalog::Catalog::connect(
        &catalog,
        &warehouse,
        signaldb_compactor::catalog::Access::ReadWrite,
    )
    .await
    else {
        panic!("an untrusted certificate fails the connection")
    };
    let error = error.to_string();
    assert!(error.contains("postgres://postgres@localhost"), "names the catalog: {error}");
    assert!(error.to_lowercase().contains("certificate") || error.contains("UnknownIssuer"), "{error}");
}

/// Generate, compact with a forced conflict, retain, clean orphans and audit, on the given catalog and
/// storage (`None`: the temp dir's local warehouse).
async fn scenario(uri: &str, storage: Option<signaldb_compactor::config::StorageConfig>) {
    let dir = tempfile::tempdir().unwrap();
    signaldb_compactor::generate::generate_into(&small_options(dir.path()), Some(uri), storage.clone())
        .await
        .unwrap();
    assert!(!dir.path().join("catalog.db").exists(), "the catalog lives in PostgreSQL");
    let uri = uri.to_string();
    let mut ctx = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |c| {
        if let Some(storage) = storage {
            c.storage = storage;
        }
        c.catalog.uri = uri.clone();
        c.compaction.min_input_files = 2;
        c.compaction.commit_retry_backoff = std::time::Duration::from_millis(5);
        c.retention.enabled = true;
        c.retention.mode = Mode::Execute;
        c.retention.snapshots_to_keep = 1;
        c.retention.policy.global.traces = Some(RetentionValue::For(std::time::Duration::from_secs(86_400)));
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
    })
    .await;
    let traces = "acme.production.traces";
    let before = trace_ids(&ctx, traces).await;
    assert_eq!(before.len(), 3 * 4 * 50);

    // Compaction, with an append landing between rewrite and commit: one CAS conflict on PostgreSQL.
    let fired = Arc::new(AtomicBool::new(false));
    let hook: BeforeCommitHook = {
        let (catalog, fired) = (ctx.catalog.clone(), fired.clone());
        Arc::new(move |partition: String| {
            let (catalog, fired) = (catalog.clone(), fired.clone());
            Box::pin(async move {
                if partition != "timestamp_hour=2026-11-21-08" || fired.swap(true, Ordering::SeqCst) {
                    return;
                }
                let t = catalog
                    .discover()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|t| t.qualified() == "acme.production.traces")
                    .unwrap();
                let mut table = catalog.load(&t).await.unwrap();
                let start = fixed_end() - TimeDelta::minutes(150);
                let spec = signaldb_compactor::generate::batch::FileSpec {
                    seed: 77,
                    rows: 30,
                    start,
                    end: start + TimeDelta::minutes(5),
                };
                let columns = signaldb_compactor::generate::schema::columns("traces");
                signaldb_compactor::generate::append_file(&catalog, &mut table, &columns, &spec)
                    .await
                    .unwrap();
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let request = PassRequest {
        filter: signaldb_compactor::job::TableFilter::only([traces.to_string()]),
        ..PassRequest::all(Mode::Execute)
    };
    let report = CompactionJob::new(&ctx)
        .with_before_commit(hook)
        .run_once(&request, &CancellationToken::new())
        .await
        .unwrap();
    let hour8 = report.tables[0].partition_reports.iter().find(|p| p.partition.ends_with("-08")).unwrap();
    assert_eq!((hour8.status.clone(), hour8.attempts), (PartitionStatus::Succeeded, Some(2)), "{report:#?}");
    let after = trace_ids(&ctx, traces).await;
    assert_eq!(after.len(), before.len() + 30, "every row kept, the concurrent append too");
    assert!(before.iter().all(|id| after.binary_search(id).is_ok()));

    // Ten days later: retention drops every hour and expires snapshots; orphan cleanup collects a planted
    // file and checkpoints in PostgreSQL.
    ctx.clock = Arc::new(signaldb_compactor::clock::FixedClock(chrono::Utc::now() + TimeDelta::days(10)));
    let retention = RetentionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    let t = retention.tables.iter().find(|t| t.table == traces).unwrap();
    assert_eq!(t.status, TableStatus::Succeeded, "{t:#?}");
    assert!(trace_ids(&ctx, traces).await.is_empty(), "every hour expired");
    // Plant the orphan through the warehouse's own store (local directory or S3 bucket alike).
    let logs = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "logs").unwrap();
    let location =
        format!("{}/data/orphan.parquet", ctx.catalog.load(&logs).await.unwrap().metadata().location());
    let orphan = ctx.warehouse.object_path(&location).unwrap();
    use object_store::ObjectStoreExt;
    ctx.warehouse.store().put(&orphan, object_store::PutPayload::from_static(b"x")).await.unwrap();
    let orphans = OrphanJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    assert!(orphans.tables.iter().all(|t| !matches!(t.status, TableStatus::Failed { .. })), "{orphans:#?}");
    assert!(ctx.warehouse.store().head(&orphan).await.is_err(), "the orphan was deleted");
    let problems = signaldb_compactor::verify::verify(&ctx, &Default::default(), true).await.unwrap();
    assert!(problems.iter().all(|t| t.problems.is_empty()), "{problems:#?}");

    // Audit and checkpoint rows live in PostgreSQL.
    let pool = sqlx::PgPool::connect(&uri).await.unwrap();
    let runs: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT run_type, status FROM compactor_runs ORDER BY 1, 2")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(runs.contains(&("compaction".into(), "completed".into())), "{runs:?}");
    assert!(runs.contains(&("retention".into(), "completed".into())), "{runs:?}");
    assert!(runs.contains(&("orphans".into(), "completed".into())), "{runs:?}");
    let checkpoints: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM cleanup_progress WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(checkpoints, 6, "one completed checkpoint per table");
}

/// Data files of `table` now, read through a fresh connection.
async fn data_files(dir: &std::path::Path, uri: &str, table: &str) -> usize {
    let uri = uri.to_string();
    let ctx = context(dir, fixed_end(), move |c| c.catalog.uri = uri).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == table).unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    signaldb_compactor::table::inventory::Inventory::load(&table).await.unwrap().data.len()
}

/// Polls `check` every 200 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The catalog database restarts under a running daemon: `/ready` turns not-ready while it is down
/// (`/health` stays ok, the process keeps running and counts failed passes), and once it is back the
/// daemon reconnects by itself, turns ready and compacts new files, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_rides_out_a_catalog_database_restart() {
    use crate::support::http_get;

    let pg = Postgres::start();
    let uri = pg.database("signaldb").await;
    let dir = tempfile::tempdir().unwrap();
    signaldb_compactor::generate::generate_into(&small_options(dir.path()), Some(&uri), None).await.unwrap();
    let addr = format!("127.0.0.1:{}", crate::support::free_port());
    std::fs::write(
        dir.path().join("signaldb.toml"),
        format!(
            "[schema]\ncatalog_uri = \"{uri}\"\n[storage]\ndsn = \"file://{d}/warehouse\"\n\
             [compactor]\ninterval = \"1s\"\nmin_input_files = 2\n[compactor.http]\nlisten = \"{addr}\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = KillOnDrop(
        crate::support::bin()
            .current_dir(dir.path())
            .arg("run")
            .env_remove("SIGNALDB_COMPACTOR_DRY_RUN")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let secs = std::time::Duration::from_secs;
    let traces = "acme.production.traces";
    let ready = |want: u16| {
        let addr = addr.clone();
        move || {
            let addr = addr.clone();
            async move {
                tokio::task::spawn_blocking(move || http_get(&addr, "/ready").map(|(c, _)| c).unwrap_or(0))
                    .await
                    .unwrap()
                    == want
            }
        }
    };
    eventually(secs(60), "the daemon to be ready", ready(200)).await;
    // 3 hours x 4 files: compacted to one file per hour.
    eventually(secs(60), "the first compaction", || data_files(dir.path(), &uri, traces).map(|n| n == 3))
        .await;
    let scrape_has = |needle: &'static str| {
        let addr = addr.clone();
        move || {
            let addr = addr.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    http_get(&addr, "/metrics").map(|(_, b)| b).unwrap_or_default()
                })
                .await
                .unwrap()
                .contains(needle)
            }
        }
    };
    // Stop the database between passes, most likely: a pass over these tables takes a fraction of the
    // 1 s interval.
    let ok_pass = "compactor_passes_total{job=\"compaction\",result=\"ok\"}";
    eventually(secs(60), "a whole successful pass", scrape_has(ok_pass)).await;

    pg.stop();
    eventually(secs(20), "/ready to report the catalog down", ready(503)).await;
    let (code, body) = http_get(&addr, "/ready").unwrap();
    assert_eq!(code, 503);
    assert!(body.contains("\"ready\":false"), "{body}");
    assert_eq!(http_get(&addr, "/health").unwrap().0, 200, "alive while the catalog is down");
    // A pass waits for a connection up to the pool's acquire timeout (10 s), then ends as failed; a
    // pass caught mid-table first fails that table's statements the same way.
    let failed_pass = "compactor_passes_total{job=\"compaction\",result=\"failed\"}";
    eventually(secs(120), "a failed pass while the catalog is down", scrape_has(failed_pass)).await;
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "the daemon keeps running: {}",
        std::fs::read_to_string(&log).unwrap()
    );

    pg.start_again();
    eventually(secs(60), "/ready after the catalog is back", ready(200)).await;
    // New small files land in a closed hour; the same daemon compacts them.
    {
        let uri = uri.clone();
        let ctx = context(dir.path(), fixed_end(), move |c| c.catalog.uri = uri).await;
        let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == traces).unwrap();
        let columns = signaldb_compactor::generate::schema::columns("traces");
        for seed in [501, 502] {
            let mut table = ctx.catalog.load(&t).await.unwrap();
            let spec = signaldb_compactor::generate::batch::FileSpec {
                seed,
                rows: 40,
                start: fixed_end() - TimeDelta::minutes(140),
                end: fixed_end() - TimeDelta::minutes(100),
            };
            signaldb_compactor::generate::append_file(&ctx.catalog, &mut table, &columns, &spec)
                .await
                .unwrap();
        }
    }
    assert_eq!(data_files(dir.path(), &uri, traces).await, 5);
    eventually(secs(60), "compaction after the restart", || {
        data_files(dir.path(), &uri, traces).map(|n| n == 3)
    })
    .await;

    let pid = daemon.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "clean shutdown: {}", std::fs::read_to_string(&log).unwrap());
}

/// A child process killed when the test ends, passing or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
