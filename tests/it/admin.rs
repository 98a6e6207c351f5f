//! Admin API: auth (401/403/404), validation (400), conflicts (409), dry-run plans, audited real runs,
//! and the OpenAPI document matching the routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{AdminRole, AdminToken};
use signaldb_compactor::job::{BeforeCommitHook, Job};
use signaldb_compactor::service::admin::{AdminState, router};
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, generate_small, http_request};

const ADMIN: &str = "admin-secret";
const ACME: &str = "acme-operator-secret";

fn token(secret: &str, role: AdminRole) -> AdminToken {
    AdminToken { sha256: Sha256::digest(secret.as_bytes()).into(), role }
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// Serves the admin router over `jobs` on a loopback port.
async fn serve(
    ctx: &signaldb_compactor::service::Context,
    tokens: Vec<AdminToken>,
    jobs: Vec<Arc<dyn Job>>,
) -> String {
    let state = Arc::new(AdminState::new(
        tokens,
        jobs,
        ctx.catalog.clone(),
        ctx.audit.is_enabled(),
        CancellationToken::new(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    addr
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
