//! PostgreSQL specifics (a real server started by the fixture): the catalog over TLS, and the daemon
//! riding out a restart of the catalog database. The jobs' acceptance scenario on PostgreSQL is in
//! `matrix.rs`.

use chrono::TimeDelta;
use futures::FutureExt;

use crate::support::{Postgres, context, fixed_end, small_options};

/// The matrix's acceptance scenario over TLS: the server accepts TCP clients only over TLS, the catalog URI verifies
/// its certificate and host name (`sslmode=verify-full`, `sslrootcert`). A plain connection is refused,
/// and a certificate from another CA fails the connection with an error naming the catalog.
#[tokio::test]
async fn every_job_on_postgresql_over_tls() {
    let backend = crate::matrix::Backend::with(Some(Postgres::start_tls()), false).await;
    let uri = backend.uri.clone();
    assert!(uri.contains("sslmode=verify-full"), "{uri}");
    crate::matrix::acceptance(&backend).await;
    let pg = backend.pg.as_ref().unwrap();

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

/// Data files of `table` now, read through a fresh connection.
async fn data_files(dir: &std::path::Path, uri: &str, table: &str) -> usize {
    files_and_rows(dir, uri, table).await.0
}

/// (data files, rows) of `table` now, read through a fresh connection.
async fn files_and_rows(dir: &std::path::Path, uri: &str, table: &str) -> (usize, u64) {
    let uri = uri.to_string();
    let ctx = context(dir, fixed_end(), move |c| c.catalog.uri = uri).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == table).unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    let inventory = signaldb_compactor::table::inventory::Inventory::load(&table).await.unwrap();
    (inventory.data.len(), inventory.data.iter().map(|f| f.entry.data_file().record_count()).sum())
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
    eventually(secs(120), "the daemon to be ready", ready(200)).await;
    // 3 hours x 4 files: compacted to one file per hour.
    eventually(secs(120), "the first compaction", || data_files(dir.path(), &uri, traces).map(|n| n == 3))
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
    eventually(secs(120), "a whole successful pass", scrape_has(ok_pass)).await;

    let (_, rows_before) = files_and_rows(dir.path(), &uri, traces).await;
    pg.stop();
    eventually(secs(60), "/ready to report the catalog down", ready(503)).await;
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
    eventually(secs(120), "/ready after the catalog is back", ready(200)).await;
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
    // The daemon may already be compacting the first append while the second lands: wait for the end
    // state, one file per hour holding every row, the 80 appended ones too.
    let want = (3, rows_before + 80);
    eventually(secs(120), "compaction after the restart", || {
        files_and_rows(dir.path(), &uri, traces).map(move |got| got == want)
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
