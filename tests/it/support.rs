//! Shared fixtures: the binary, generated warehouses, the PyIceberg helper, a tiny HTTP client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use signaldb_compactor::catalog::{Access, Catalog};
use signaldb_compactor::generate::{GenerateOptions, GenerateReport, dir_config, generate};
use signaldb_compactor::storage::Warehouse;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_signaldb-compactor"))
}

/// Runs the binary in `cwd` with only the given `SIGNALDB_*` variables set.
pub fn run_bin(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.current_dir(cwd).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SIGNALDB_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

/// A fixed end time so generated content is reproducible.
pub fn fixed_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 30, 0).unwrap()
}

pub fn small_options(dir: &Path) -> GenerateOptions {
    GenerateOptions::small(dir)
}

pub async fn generate_small(dir: &Path) -> GenerateReport {
    generate(&small_options(dir)).await.expect("generate succeeds")
}

pub async fn connect(dir: &Path) -> Catalog {
    let (catalog, storage) = dir_config(dir);
    let warehouse = Warehouse::open(&storage, Access::ReadWrite).unwrap();
    Catalog::connect(&catalog, &warehouse, Access::ReadWrite).await.unwrap()
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/pyiceberg_tool.py")
}

/// Runs the PyIceberg helper against DIR/catalog.db and DIR/warehouse; returns its JSON output.
/// The catalog's table named `qualified` (`tenant.dataset.table`), as discovery maps it.
pub async fn table_ref(catalog: &Catalog, qualified: &str) -> signaldb_compactor::catalog::TableRef {
    let tables = catalog.discover().await.unwrap();
    tables.into_iter().find(|t| t.qualified() == qualified).unwrap_or_else(|| panic!("no table {qualified}"))
}

pub fn pyiceberg(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(helper())
        .args(args)
        .arg("--db")
        .arg(dir.join("catalog.db"))
        .arg("--warehouse")
        .arg(dir.join("warehouse"))
        .output()
        .expect("python3 runs (install pyiceberg: see .ci/run)");
    assert!(
        out.status.success(),
        "pyiceberg helper {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("helper prints JSON")
}

/// Runs the DuckDB helper (DuckDB's Iceberg extension, a second independent reader) against
/// DIR/catalog.db and DIR/warehouse; returns its JSON output (`rows`, `checksum` as PyIceberg's `scan`).
pub fn duckdb(dir: &Path, args: &[&str]) -> serde_json::Value {
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/duckdb_tool.py");
    let out = Command::new("python3")
        .arg(helper)
        .args(args)
        .arg("--db")
        .arg(dir.join("catalog.db"))
        .arg("--warehouse")
        .arg(dir.join("warehouse"))
        .output()
        .expect("python3 runs (install duckdb and its iceberg/avro extensions: see .ci/run)");
    assert!(out.status.success(), "duckdb helper {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("helper prints JSON")
}

/// The one HTTP test client underneath every helper: connects, sends `request` as written (any
/// bytes), and reads until the server closes, each write and read bounded by `timeout`. Returns what
/// was read and the first write or read error (a fuzzer accepts a partial exchange; others do not).
pub fn http_exchange(
    addr: &str,
    request: &[u8],
    timeout: Duration,
) -> std::io::Result<(Vec<u8>, Option<std::io::Error>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let written = stream.write_all(request);
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    Ok((response, written.err().or(read.err())))
}

/// An HTTP/1.0 response's (status code, body); code 0 when there is no status line.
pub fn http_parse(response: &[u8]) -> (u16, String) {
    let response = String::from_utf8_lossy(response);
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// A minimal HTTP/1.0 GET: (status code, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let (response, failed) = http_exchange(addr, request.as_bytes(), Duration::from_secs(10))?;
    match failed {
        Some(e) => Err(e),
        None => Ok(http_parse(&response)),
    }
}

/// A free loopback port (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A daemon context on a generated directory with a fixed clock; `tweak` adjusts the defaults.
pub async fn context(
    dir: &Path,
    now: DateTime<Utc>,
    tweak: impl FnOnce(&mut signaldb_compactor::config::Config),
) -> signaldb_compactor::service::Context {
    context_with_access(dir, now, Access::ReadWrite, tweak).await
}

/// Like [`context`], with the access a real process would open with (read-only when all is dry-run).
pub async fn context_with_access(
    dir: &Path,
    now: DateTime<Utc>,
    access: Access,
    tweak: impl FnOnce(&mut signaldb_compactor::config::Config),
) -> signaldb_compactor::service::Context {
    // The audit recovery at build time runs on the system clock; the jobs then see `now`.
    context_builder(dir, access, tweak)
        .build()
        .await
        .expect("context builds")
        .with_clock(std::sync::Arc::new(signaldb_compactor::clock::FixedClock(now)))
}

/// The builder [`context_with_access`] uses: the directory's catalog and warehouse, `tweak`ed.
pub fn context_builder(
    dir: &Path,
    access: Access,
    tweak: impl FnOnce(&mut signaldb_compactor::config::Config),
) -> signaldb_compactor::service::ContextBuilder {
    let (mut config, _) =
        signaldb_compactor::config::Config::load(None, std::iter::empty(), dir).expect("default config");
    let (catalog, storage) = dir_config(dir);
    config.catalog = catalog;
    config.storage = storage;
    tweak(&mut config);
    signaldb_compactor::service::Context::builder(config, prometheus::Registry::new(), access)
}

/// Every file under `dir` with its bytes, sorted: a dry-run must leave this identical.
pub fn snapshot_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// Writes a `signaldb.toml` in `dir` pointing at `dir`'s catalog and warehouse, plus `extra` lines.
pub fn write_config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("signaldb.toml"),
        format!(
            "[schema]\ncatalog_uri = \"sqlite:{d}/catalog.db\"\n[storage]\ndsn = \"file://{d}/warehouse\"\n{extra}\n",
            d = dir.display()
        ),
    )
    .unwrap();
}

/// A minimal HTTP/1.0 request with headers and an optional JSON body: (status code, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    request.push_str("\r\n");
    if let Some(b) = body {
        request.push_str(b);
    }
    let (response, failed) =
        http_exchange(addr, request.as_bytes(), Duration::from_secs(60)).expect("connect");
    if let Some(e) = failed {
        panic!("HTTP exchange with {addr} failed: {e}");
    }
    http_parse(&response)
}

/// A throwaway PostgreSQL server (Debian's binaries: initdb + pg_ctl in a temp dir, on a free loopback
/// port, as the `postgres` user when the tests run as root). Stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
    /// With TLS: the CA certificate clients verify the server with (TLS-only connections over TCP).
    tls_ca: Option<PathBuf>,
}

fn pg_bin(name: &str) -> PathBuf {
    let candidates = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin").join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates.into_iter().find(|p| p.exists()).unwrap_or_else(|| PathBuf::from(name))
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A server that accepts only TLS connections over TCP, with a certificate for `localhost` and
    /// `127.0.0.1` issued by a throwaway CA (`openssl`); [`Postgres::tls_ca`] is that CA.
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    fn start_with(tls: bool) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres =
            std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        if as_postgres {
            assert!(Command::new("chown").args(["postgres"]).arg(dir.path()).status().unwrap().success());
        }
        let mut pg = Postgres { dir, port: free_port(), as_postgres, tls_ca: None };
        let data = pg.dir.path().join("data");
        pg.run(
            pg_bin("initdb"),
            &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        if tls {
            pg.tls_ca = Some(pg.enable_tls(&data));
        }
        pg.start_again();
        pg
    }

    /// Issues a server certificate from a new CA, turns `ssl` on and allows TCP clients only over TLS.
    fn enable_tls(&self, data: &Path) -> PathBuf {
        let d = self.dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").current_dir(d).args(args).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=signaldb-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(d.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.crt",
            "-extfile",
            "san.ext",
        ]);
        for f in ["server.crt", "server.key"] {
            std::fs::copy(d.join(f), data.join(f)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        if self.as_postgres {
            let files = [data.join("server.crt"), data.join("server.key")];
            assert!(Command::new("chown").arg("postgres").args(files).status().unwrap().success());
        }
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .unwrap();
        d.join("ca.crt")
    }

    /// The URI of database `name`: over TLS verifying the server's certificate and host name when the
    /// server was started with TLS.
    pub fn uri(&self, name: &str) -> String {
        match &self.tls_ca {
            Some(ca) => format!(
                "postgres://postgres@localhost:{}/{name}?sslmode=verify-full&sslrootcert={}",
                self.port,
                ca.display()
            ),
            None => format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
        }
    }

    /// Starts the (stopped) server again on the same port and data directory.
    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.run(
            pg_bin("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"],
        );
    }

    /// Stops the server (fast shutdown: open connections are closed), as a database restart would.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        self.run(pg_bin("pg_ctl"), &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
    }

    fn run(&self, bin: PathBuf, args: &[&str]) {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{} ({e}): install Debian's postgresql", bin.display()));
        assert!(out.status.success(), "{} {args:?}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    }

    /// A fresh database on this server.
    pub async fn database(&self, name: &str) -> String {
        let pool = sqlx::PgPool::connect(&self.uri("postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
        self.uri(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = std::panic::catch_unwind(|| {
            self.run(pg_bin("pg_ctl"), &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
        });
    }
}

/// A throwaway S3-compatible server (PyPI's `moto[server]`, a local process on a free loopback port).
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> S3Server {
        let port = free_port();
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]', see .ci/run)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        // Its imports alone take seconds; on a loaded machine tens of them.
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto server exited before listening on port {port}: {status}");
            }
            assert!(started.elapsed() < Duration::from_secs(120), "moto server did not start in 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        S3Server { child, endpoint }
    }

    /// Creates `bucket` and returns storage settings for `s3://bucket/prefix` on this server.
    pub fn bucket(&self, bucket: &str, prefix: &str) -> signaldb_compactor::config::StorageConfig {
        let addr = self.endpoint.trim_start_matches("http://");
        let (code, body) = http_request(addr, "PUT", &format!("/{bucket}"), &[], None);
        assert!(code == 200, "create bucket: {code} {body}");
        signaldb_compactor::config::StorageConfig {
            dsn: signaldb_compactor::storage::Dsn::S3 { bucket: bucket.into(), prefix: prefix.into() },
            extra_roots: Vec::new(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: true,
            path_style: true,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live data files per partition label of a table (`tenant.dataset.table`).
pub async fn files_per_partition(
    ctx: &signaldb_compactor::service::Context,
    qualified: &str,
) -> std::collections::BTreeMap<String, usize> {
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == qualified).unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    let inventory = signaldb_compactor::table::Inventory::load(&table).await.unwrap();
    let md = table.metadata();
    let mut out = std::collections::BTreeMap::new();
    for f in &inventory.data {
        let spec = md.partition_spec_by_id(f.spec_id).unwrap();
        let label = signaldb_compactor::table::partition::label(
            spec,
            md.current_schema(),
            f.entry.data_file().partition(),
        );
        *out.entry(label).or_insert(0) += 1;
    }
    out
}

/// The catalog name of the test contexts (the configuration's default).
pub const SIGNALDB: &str = "signaldb";

/// The compaction survey group of the catalog named `catalog` (`compactor_replicas.job`).
pub fn group(catalog: &str) -> String {
    signaldb_compactor::runtime::share::survey_group("compaction", catalog)
}

/// The catalog of the replicas' survey tests: 4 tenants × 2 datasets × the default signals, two
/// closed hours of two files each.
pub async fn generate_survey_catalog(dir: &Path) {
    let opts = GenerateOptions {
        tenants: 4,
        datasets: 2,
        hours: 2,
        files_per_hour: 2,
        rows_per_file: 20,
        ..small_options(dir)
    };
    generate(&opts).await.expect("generate succeeds");
}

/// A before-commit hook that stops the first commit it sees until `release` is notified (`entered`
/// is notified when it stops there); later commits go through. (hook, entered, release)
pub fn pause_at_first_commit() -> (
    signaldb_compactor::job::BeforeCommitHook,
    std::sync::Arc<tokio::sync::Notify>,
    std::sync::Arc<tokio::sync::Notify>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (entered, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
    let first = Arc::new(AtomicBool::new(true));
    let hook: signaldb_compactor::job::BeforeCommitHook = {
        let (entered, release) = (entered.clone(), release.clone());
        Arc::new(move |_| {
            let (entered, release, first) =
                (entered.clone(), release.clone(), first.swap(false, Ordering::SeqCst));
            Box::pin(async move {
                if first {
                    entered.notify_one();
                    release.notified().await;
                }
            })
        })
    };
    (hook, entered, release)
}

/// A small generated warehouse whose catalog is database `name` of `pg`, and a context on it (the
/// jobs' clock at [`fixed_end`]).
pub async fn postgres_context(pg: &Postgres, dir: &Path, name: &str) -> signaldb_compactor::service::Context {
    let uri = pg.database(name).await;
    signaldb_compactor::generate::generate_into(&small_options(dir), Some(&uri), None).await.unwrap();
    let ctx = context(dir, fixed_end(), |c| c.catalog.uri = uri.clone()).await;
    assert!(ctx.catalog.is_postgres());
    ctx
}

/// Each row's `timestamp` (microseconds) and `trace_id` (a null one as `""`) of a `traces` batch.
pub fn timestamp_and_trace_id(batch: &arrow_array::RecordBatch) -> Vec<(i64, String)> {
    use arrow_array::{Array, StringArray, TimestampMicrosecondArray};
    let column =
        |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).clone();
    let (ts, id) = (column("timestamp"), column("trace_id"));
    let ts = ts.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
    let id = id.as_any().downcast_ref::<StringArray>().unwrap();
    (0..batch.num_rows())
        .map(|i| (ts.value(i), if id.is_null(i) { String::new() } else { id.value(i).to_string() }))
        .collect()
}
