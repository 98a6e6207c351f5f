//! Admin API: auth (401/403/404), validation (400), conflicts (409), dry-run plans, audited real runs,
//! and the OpenAPI document matching the routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{AdminRole, AdminToken, Mode};
use signaldb_compactor::job::{
    BeforeCommitHook, Job, JobError, JobKind, PassReport, PassRequest, TableFilter,
};
use signaldb_compactor::service::admin::{AdminState, router};
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, generate_small, http_request};

pub(crate) const ADMIN: &str = "admin-secret";
pub(crate) const ACME: &str = "acme-operator-secret";

pub(crate) fn token(secret: &str, role: AdminRole) -> AdminToken {
    AdminToken { sha256: Sha256::digest(secret.as_bytes()).into(), role }
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// Serves the admin router over `jobs` (all enabled) on a loopback port.
async fn serve(
    ctx: &signaldb_compactor::service::Context,
    tokens: Vec<AdminToken>,
    jobs: Vec<Arc<dyn Job>>,
) -> String {
    serve_jobs(ctx, tokens, jobs.into_iter().map(|j| (j, true)).collect()).await.0
}

/// Serves the admin router over `jobs` with their enabled flags; also returns the state.
pub(crate) async fn serve_jobs(
    ctx: &signaldb_compactor::service::Context,
    tokens: Vec<AdminToken>,
    jobs: Vec<(Arc<dyn Job>, bool)>,
) -> (String, Arc<AdminState>) {
    let state = Arc::new(AdminState::new(
        tokens,
        jobs,
        ctx.catalog.clone(),
        ctx.audit.is_enabled(),
        CancellationToken::new(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

/// Runs a blocking HTTP call off the test's runtime thread.
async fn call(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (addr, method, path) = (addr.to_string(), method.to_string(), path.to_string());
    let (auth, body) = (auth.map(bearer), body.map(str::to_string));
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> =
            auth.as_deref().map(|a| vec![("Authorization", a)]).unwrap_or_default();
        let (code, text) = http_request(&addr, &method, &path, &headers, body.as_deref());
        (code, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn no_token_configured_means_no_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end(), |_| {}).await;
    let addr = serve(&ctx, vec![], vec![Arc::new(CompactionJob::new(&ctx))]).await;
    assert_eq!(call(&addr, "POST", "/v1/compaction/run", Some(ADMIN), Some("{}")).await.0, 404);
    assert_eq!(call(&addr, "GET", "/v1/runs", Some(ADMIN), None).await.0, 404);
}

#[tokio::test]
async fn auth_scope_validation_conflicts_dry_runs_and_audited_runs() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end() + chrono::TimeDelta::minutes(5), |c| {
        c.compaction.min_input_files = 2
    })
    .await;
    // The real run blocks before its first commit until released: a second request must get 409.
    // A semaphore, not a Notify: releases must be counted exactly even if they come before the waits.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let hook: BeforeCommitHook = {
        let release = release.clone();
        Arc::new(move |_| {
            let release = release.clone();
            Box::pin(async move { release.acquire().await.unwrap().forget() })
                as futures::future::BoxFuture<'static, ()>
        })
    };
    let blocking = Arc::new(CompactionJob::new(&ctx).with_before_commit(hook)) as Arc<dyn Job>;
    let tokens = vec![
        token(ADMIN, AdminRole::OpsAdmin),
        token(ACME, AdminRole::TenantOperator { tenants: vec!["acme".into()] }),
    ];
    let addr = serve(&ctx, tokens, vec![blocking]).await;
    let traces = r#"{"table": "acme.production.traces"}"#;

    // 401 without or with a wrong token.
    assert_eq!(call(&addr, "POST", "/v1/compaction/run", None, Some(traces)).await.0, 401);
    assert_eq!(call(&addr, "POST", "/v1/compaction/run", Some("guess"), Some(traces)).await.0, 401);
    // 403: a tenant operator outside its tenant, or without naming one.
    assert_eq!(
        call(&addr, "POST", "/v1/compaction/run", Some(ACME), Some(r#"{"tenant": "globex"}"#)).await.0,
        403
    );
    assert_eq!(call(&addr, "POST", "/v1/compaction/run", Some(ACME), Some("{}")).await.0, 403);
    assert_eq!(call(&addr, "GET", "/v1/runs?tenant=globex", Some(ACME), None).await.0, 403);
    // 400: unknown fields.
    let (code, body) =
        call(&addr, "POST", "/v1/compaction/run", Some(ADMIN), Some(r#"{"tabel": "x"}"#)).await;
    assert_eq!(code, 400, "{body}");

    // A dry run returns the plan and changes nothing.
    let location =
        ctx.catalog.metadata_location(&ctx.catalog.discover().await.unwrap()[0].ident).await.unwrap();
    let (code, body) =
        call(&addr, "POST", "/v1/compaction/run", Some(ACME), Some(r#"{"tenant": "acme", "dry_run": true}"#))
            .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dry_run"], true);
    let planned: Vec<&serde_json::Value> = body["plan"]["tables"].as_array().unwrap().iter().collect();
    assert_eq!(planned.len(), 3, "acme's three tables only");
    assert!(planned.iter().all(|t| t["table"].as_str().unwrap().starts_with("acme.")));
    assert!(
        planned.iter().all(|t| t["partition_reports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["status"] == "planned"))
    );
    assert_eq!(
        ctx.catalog.metadata_location(&ctx.catalog.discover().await.unwrap()[0].ident).await.unwrap(),
        location
    );

    // A real run starts (202); the same job on the same table is refused while it runs (409).
    let (code, body) = call(&addr, "POST", "/v1/compaction/run", Some(ADMIN), Some(traces)).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["tables"], serde_json::json!(["acme.production.traces"]));
    let (code, body) = call(&addr, "POST", "/v1/compaction/run", Some(ACME), Some(traces)).await;
    assert_eq!(code, 409, "{body}");
    release.add_permits(2); // two closed hours: two groups, two commits

    // The run's audit row shows up in /v1/runs.
    let started = Instant::now();
    let row = loop {
        let (code, runs) = call(&addr, "GET", "/v1/runs?tenant=acme&type=compaction", Some(ACME), None).await;
        assert_eq!(code, 200, "{runs}");
        if let Some(row) = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["table_name"] == "traces" && r["status"] == "completed")
        {
            break row.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no completed audit row: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["run_type"], "compaction");
    assert_eq!(row["files_processed"], 8);
    assert!(row["snapshot_id"].as_i64().is_some());

    // /v1/tables is scoped to the token's tenants.
    let (code, tables) = call(&addr, "GET", "/v1/tables", Some(ACME), None).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = tables.as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme.production.logs", "acme.production.metrics_gauge", "acme.production.traces"]);
    let traces_info =
        tables.as_array().unwrap().iter().find(|t| t["table"] == "acme.production.traces").unwrap();
    assert!(
        traces_info["last_runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0] == "compaction" && r[1] == "completed")
    );
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    // JSON-style YAML: everything but `#` comment lines is JSON.
    let json: String =
        text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let doc: serde_json::Value = serde_json::from_str(&json).expect("docs/openapi.yaml is JSON-style YAML");
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end(), |_| {}).await;
    let addr =
        serve(&ctx, vec![token(ADMIN, AdminRole::OpsAdmin)], vec![Arc::new(CompactionJob::new(&ctx))]).await;
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let admin_routes: Vec<(String, String)> = [
        ("GET", "/v1/runs"),
        ("GET", "/v1/tables"),
        ("POST", "/v1/compaction/run"),
        ("POST", "/v1/orphans/run"),
        ("POST", "/v1/retention/run"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    let documented_admin: Vec<_> =
        documented.iter().filter(|(_, p)| p.starts_with("/v1/")).cloned().collect();
    assert_eq!(documented_admin, admin_routes);
    for (method, path) in &admin_routes {
        // Every documented route exists: with a valid token it never answers 404/405 for routing.
        let body = (method == "POST").then_some(r#"{"dry_run": true, "table": "acme.production.logs"}"#);
        let (code, answer) = call(&addr, method, path, Some(ADMIN), body).await;
        // An unrouted path answers 404 with an empty body; our handlers always answer JSON.
        assert!(
            code != 405 && !(code == 404 && answer == serde_json::Value::String(String::new())),
            "{method} {path}: {code} {answer}"
        );
    }
    for path in ["/metrics", "/health", "/ready", "/status"] {
        assert!(documented.iter().any(|(m, p)| m == "GET" && p == path), "{path} documented");
    }
}

/// A job that records every pass it is asked to run (mode and filter) and takes `delay` doing it.
pub(crate) struct RecordingJob {
    pub kind: JobKind,
    pub delay: Duration,
    pub runs: std::sync::Mutex<Vec<(Mode, TableFilter)>>,
}

impl RecordingJob {
    pub(crate) fn new(kind: JobKind, delay: Duration) -> Arc<RecordingJob> {
        Arc::new(RecordingJob { kind, delay, runs: Default::default() })
    }

    pub(crate) fn runs(&self) -> Vec<(Mode, TableFilter)> {
        self.runs.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Job for RecordingJob {
    fn kind(&self) -> JobKind {
        self.kind
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(3600)
    }
    fn mode(&self) -> Mode {
        Mode::Execute
    }
    async fn run_once(&self, request: &PassRequest, _: &CancellationToken) -> Result<PassReport, JobError> {
        self.runs.lock().unwrap().push((request.mode, request.filter.clone()));
        tokio::time::sleep(self.delay).await;
        let now = chrono::Utc::now();
        Ok(PassReport {
            job: self.kind,
            mode: request.mode,
            started_at: now,
            finished_at: now,
            tables: vec![],
        })
    }
}

/// Sends `request` as written (any bytes) and reads the answer for at most `timeout`: (status code,
/// body); code 0 when no answer came.
pub(crate) async fn raw(addr: &str, request: Vec<u8>, timeout: Duration) -> (u16, String) {
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || {
        // A partial exchange (the server answering and closing early) is an answer too.
        let (response, _) = crate::support::http_exchange(&addr, &request, timeout).unwrap();
        crate::support::http_parse(&response)
    })
    .await
    .unwrap()
}

fn tokens() -> Vec<AdminToken> {
    vec![
        token(ADMIN, AdminRole::OpsAdmin),
        token(ACME, AdminRole::TenantOperator { tenants: vec!["acme".into()] }),
    ]
}

#[tokio::test]
async fn a_disabled_job_answers_409_unless_the_body_asks_for_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    // Default config: retention and orphan cleanup disabled. Ten days on, the default policy (logs 3
    // days) would drop every hour of logs.
    let ctx = context(dir.path(), fixed_end() + chrono::TimeDelta::days(10), |_| {}).await;
    let jobs = signaldb_compactor::service::jobs(&ctx);
    assert!(jobs.iter().any(|(j, enabled)| j.kind() == JobKind::Retention && !enabled));
    let (addr, state) = serve_jobs(&ctx, tokens(), jobs).await;
    // Dry runs on this read-write context write audit rows; the warehouse must not change.
    let warehouse = dir.path().join("warehouse");
    let before = crate::support::snapshot_bytes(&warehouse);
    for (path, key) in [
        ("/v1/retention/run", "compactor.retention.enabled"),
        ("/v1/orphans/run", "compactor.orphan_cleanup.enabled"),
    ] {
        for body in [None, Some("{}"), Some(r#"{"dry_run": false}"#), Some(r#"{"tenant": "acme"}"#)] {
            let (code, answer) = call(&addr, "POST", path, Some(ADMIN), body).await;
            assert_eq!(code, 409, "{path} {body:?}: {answer}");
            let error = answer["error"].as_str().unwrap();
            assert!(error.starts_with("job disabled by configuration") && error.contains(key), "{error}");
        }
        let (code, answer) =
            call(&addr, "POST", path, Some(ACME), Some(r#"{"tenant": "acme", "dry_run": true}"#)).await;
        assert_eq!(code, 200, "{path}: {answer}");
        assert_eq!(answer["plan"]["mode"], "dry_run");
    }
    state.idle().await;
    assert!(crate::support::snapshot_bytes(&warehouse) == before, "a disabled job changed bytes");
}

#[tokio::test]
async fn every_selector_is_checked_against_the_tokens_scope() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end(), |_| {}).await;
    let job = RecordingJob::new(JobKind::Compaction, Duration::ZERO);
    let (addr, state) = serve_jobs(&ctx, tokens(), vec![(job.clone() as Arc<dyn Job>, true)]).await;
    let run = |token: &'static str, body: &'static str| {
        let addr = addr.clone();
        async move { call(&addr, "POST", "/v1/compaction/run", Some(token), Some(body)).await }
    };
    // Inconsistent selectors: 400, whoever asks.
    for body in [
        r#"{"tenant": "acme", "table": "globex.production.logs"}"#,
        r#"{"tenant": "acme", "dataset": "production", "table": "globex.production.logs"}"#,
        r#"{"dataset": "staging", "table": "acme.production.logs"}"#,
        r#"{"tenant": "", "table": "acme.production.logs"}"#,
    ] {
        for token in [ACME, ADMIN] {
            let (code, answer) = run(token, body).await;
            assert_eq!(code, 400, "{body}: {answer}");
        }
    }
    // Another tenant named only by the table: 403.
    assert_eq!(run(ACME, r#"{"table": "globex.production.logs"}"#).await.0, 403);
    assert_eq!(run(ACME, r#"{"dataset": "production"}"#).await.0, 403);
    // Consistent selectors within the scope run on exactly that table.
    let (code, answer) =
        run(ACME, r#"{"tenant": "acme", "dataset": "production", "table": "acme.production.logs"}"#).await;
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["tables"], serde_json::json!(["acme.production.logs"]));
    let (code, answer) = run(ACME, r#"{"tenant": "acme", "dataset": "production", "table": "traces"}"#).await;
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["tables"], serde_json::json!(["acme.production.traces"]));
    state.idle().await;
    let tables = ctx.catalog.discover().await.unwrap();
    let runs = job.runs();
    assert_eq!(runs.len(), 2, "only the two allowed requests ran: {runs:?}");
    for (_, filter) in &runs {
        let touched: Vec<_> = tables.iter().filter(|t| filter.matches(t)).collect();
        assert_eq!(touched.len(), 1);
        assert!(touched.iter().all(|t| t.tenant == "acme"), "{touched:?}");
    }
}

#[tokio::test]
async fn a_body_is_parsed_whatever_its_framing_or_refused_never_taken_for_empty() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end(), |_| {}).await;
    let job = RecordingJob::new(JobKind::Compaction, Duration::ZERO);
    let (addr, state) = serve_jobs(&ctx, tokens(), vec![(job.clone() as Arc<dyn Job>, true)]).await;
    let json = r#"{"dry_run":true,"tenant":"acme"}"#;
    let chunked = |content_type: &str| {
        format!(
            "POST /v1/compaction/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n{content_type}\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{json}\r\n0\r\n\r\n",
            json.len()
        )
        .into_bytes()
    };
    // Chunked without Content-Type: parsed, so a dry run on acme only.
    let (code, answer) = raw(&addr, chunked(""), Duration::from_secs(30)).await;
    assert_eq!(code, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["dry_run"], true);
    assert!(answer["tables"].as_array().unwrap().iter().all(|t| t.as_str().unwrap().starts_with("acme.")));
    // A Content-Type that is not JSON: 415, nothing runs.
    for ct in ["Content-Type: text/plain\r\n", "Content-Type: application/x-www-form-urlencoded\r\n"] {
        let (code, answer) = raw(&addr, chunked(ct), Duration::from_secs(30)).await;
        assert_eq!(code, 415, "{ct}: {answer}");
    }
    // JSON with parameters is JSON.
    let (code, answer) =
        raw(&addr, chunked("Content-Type: application/json; charset=utf-8\r\n"), Duration::from_secs(30))
            .await;
    assert_eq!(code, 200, "{answer}");
    // Garbage or whitespace is not an empty body.
    for body in ["  ", "dry_run=true", "{\"dry_run\": true", "[]", "null"] {
        let request = format!(
            "POST /v1/compaction/run HTTP/1.0\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (code, answer) = raw(&addr, request.into_bytes(), Duration::from_secs(30)).await;
        assert_eq!(code, 400, "{body:?}: {answer}");
    }
    state.idle().await;
    let runs = job.runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|(mode, _)| *mode == Mode::DryRun), "only the two dry runs ran: {runs:?}");
}

#[tokio::test]
async fn a_client_hanging_up_does_not_wedge_the_job() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end(), |_| {}).await;
    let job = RecordingJob::new(JobKind::Compaction, Duration::from_millis(300));
    let (addr, state) = serve_jobs(&ctx, tokens(), vec![(job.clone() as Arc<dyn Job>, true)]).await;
    let body = r#"{"dry_run": true, "tenant": "acme"}"#;
    let request = format!(
        "POST /v1/compaction/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
        let started = Instant::now();
        while job.runs().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "the dry run never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The client hangs up while the dry run is in flight.
    }
    let started = Instant::now();
    loop {
        let (code, answer) = call(&addr, "POST", "/v1/compaction/run", Some(ADMIN), Some(body)).await;
        if code == 200 {
            break;
        }
        assert_eq!(code, 409, "{answer}");
        // The run sleeps 300 ms; 30 s leaves a loaded machine room and still catches a run that never ends.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still 409 after the run must have ended: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state.idle().await;
    // The pass went through the loops' bookkeeping: counted on the status board.
    let board = state.status().snapshot();
    assert_eq!(board.iter().find(|l| l.job == JobKind::Compaction).unwrap().passes, 2);
}

#[tokio::test]
async fn oversized_bodies_are_413_before_buffering_and_bearer_parsing_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end(), |_| {}).await;
    let job = RecordingJob::new(JobKind::Compaction, Duration::ZERO);
    let (addr, state) = serve_jobs(&ctx, tokens(), vec![(job.clone() as Arc<dyn Job>, true)]).await;
    // A declared length over the limit: answered at once, before a byte of the body is sent.
    let request = format!(
        "POST /v1/compaction/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    );
    let (code, answer) = raw(&addr, request.into_bytes(), Duration::from_secs(5)).await;
    assert_eq!(code, 413, "{answer}");
    // A chunked body passing the limit: 413 too.
    let big = format!("{{\"tenant\": \"{}\"}}", "a".repeat(64 * 1024));
    let request = format!(
        "POST /v1/compaction/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let (code, answer) = raw(&addr, request.into_bytes(), Duration::from_secs(10)).await;
    assert_eq!(code, 413, "{answer}");
    // Bearer parsing: exactly `Bearer <token>`.
    for auth in [
        format!("Bearer  {ADMIN}"),
        format!("bearer {ADMIN}"),
        format!("Bearer\t{ADMIN}"),
        format!("Bearer {ADMIN} x"),
        format!("Basic {ADMIN}"),
        ADMIN.to_string(),
        "Bearer ".to_string(),
    ] {
        let request = format!(
            "POST /v1/compaction/run HTTP/1.0\r\nAuthorization: {auth}\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        let (code, answer) = raw(&addr, request.into_bytes(), Duration::from_secs(10)).await;
        assert_eq!(code, 401, "{auth:?}: {answer}");
    }
    // Two Authorization headers: refused, whichever is valid.
    let request = format!(
        "POST /v1/compaction/run HTTP/1.0\r\nAuthorization: Bearer {ACME}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Length: 2\r\n\r\n{{}}"
    );
    assert_eq!(raw(&addr, request.into_bytes(), Duration::from_secs(10)).await.0, 401);
    state.idle().await;
    assert!(job.runs().is_empty(), "{:?}", job.runs());
}
