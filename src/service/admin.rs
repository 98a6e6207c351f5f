//! The admin API on the HTTP server, enabled only when `[[compactor.http.admin_tokens]]` exist:
//!
//! - `POST /v1/{compaction,retention,orphans}/run` with an optional JSON body
//!   `{"tenant", "dataset", "table", "dry_run"}` (unknown fields → 400). A dry run executes now and
//!   returns its plan (200); a real run starts in the background (202) and is recorded in the audit
//!   trail. 409 while the same job already runs on one of the targeted tables.
//! - `GET /v1/runs?tenant=&type=&limit=`: audit rows, newest first.
//! - `GET /v1/tables`: per table files, small files, bytes, snapshots, last runs and a health verdict.
//!
//! Auth: `Authorization: Bearer <token>`, compared by SHA-256 in constant time. 401 for a missing or
//! unknown token, 403 when a `tenant_operator` token targets a tenant outside its list (or no tenant).
//! A request can ask for dry-run but never override a job configured as dry-run.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::catalog::{Catalog, TableRef};
use crate::config::{AdminRole, AdminToken, Mode};
use crate::job::{Job, JobKind, PassRequest, TableFilter};

pub struct AdminState {
    pub tokens: Vec<AdminToken>,
    pub jobs: Vec<Arc<dyn Job>>,
    pub catalog: Catalog,
    /// Whether audit rows exist to read (write access).
    pub audit_readable: bool,
    pub cancel: CancellationToken,
    /// (job, table) pairs with a run in flight.
    running: Mutex<HashSet<(JobKind, String)>>,
}

impl AdminState {
    pub fn new(
        tokens: Vec<AdminToken>,
        jobs: Vec<Arc<dyn Job>>,
        catalog: Catalog,
        audit_readable: bool,
        cancel: CancellationToken,
    ) -> Self {
        AdminState { tokens, jobs, catalog, audit_readable, cancel, running: Mutex::new(HashSet::new()) }
    }
}

/// The admin routes; an empty router (every path 404) when no token is configured.
pub fn router(state: Arc<AdminState>) -> Router {
    if state.tokens.is_empty() {
        return Router::new();
    }
    Router::new()
        .route("/v1/compaction/run", post(|s, h, b| run(JobKind::Compaction, s, h, b)))
        .route("/v1/retention/run", post(|s, h, b| run(JobKind::Retention, s, h, b)))
        .route("/v1/orphans/run", post(|s, h, b| run(JobKind::Orphans, s, h, b)))
        .route("/v1/runs", get(runs))
        .route("/v1/tables", get(tables))
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct ApiError {
    error: String,
}

fn reply(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(ApiError { error: message.into() })).into_response()
}

/// A refused request: 401 with the reason.
struct Denied(&'static str);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        reply(StatusCode::UNAUTHORIZED, self.0)
    }
}

/// The role behind the request's bearer token.
fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<AdminRole, Denied> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Denied("missing bearer token"))?;
    let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    state
        .tokens
        .iter()
        .find(|t| constant_time_eq(&t.sha256, &digest))
        .map(|t| t.role.clone())
        .ok_or(Denied("invalid token"))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `role` may act on `tenant` (`None`: every tenant).
fn allowed(role: &AdminRole, tenant: Option<&str>) -> bool {
    match (role, tenant) {
        (AdminRole::OpsAdmin, _) => true,
        (AdminRole::TenantOperator { tenants }, Some(t)) => tenants.iter().any(|x| x == t),
        (AdminRole::TenantOperator { .. }, None) => false,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    tenant: Option<String>,
    dataset: Option<String>,
    /// `TENANT.DATASET.TABLE`, or a table name within `tenant`/`dataset`.
    table: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
struct RunAccepted {
    run_id: String,
    job: JobKind,
    dry_run: bool,
    tables: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<crate::job::PassReport>,
}

async fn run(
    kind: JobKind,
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Json<RunBody>, JsonRejection>,
) -> Response {
    let role = match authorize(&state, &headers) {
        Ok(role) => role,
        Err(denied) => return denied.into_response(),
    };
    let body = match body {
        Ok(Json(b)) => b,
        Err(JsonRejection::MissingJsonContentType(_))
            if headers.get("content-length").is_none_or(|v| v == "0") =>
        {
            RunBody::default()
        }
        Err(e) => return reply(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let tenant = body
        .tenant
        .clone()
        .or_else(|| body.table.as_deref().and_then(|t| t.split('.').next()).map(str::to_string));
    if !allowed(&role, tenant.as_deref()) {
        return reply(
            StatusCode::FORBIDDEN,
            "this token may not act on that tenant (name one of its tenants)",
        );
    }
    let Some(job) = state.jobs.iter().find(|j| j.kind() == kind).cloned() else {
        return reply(StatusCode::NOT_FOUND, format!("job {kind} is not part of this build"));
    };
    let filter = match filter_for(&body) {
        Ok(f) => f,
        Err(why) => return reply(StatusCode::BAD_REQUEST, why),
    };
    let targets: Vec<TableRef> = match state.catalog.discover().await {
        Ok(all) => all.into_iter().filter(|t| filter.matches(t)).collect(),
        Err(e) => return reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    if targets.is_empty() {
        return reply(StatusCode::NOT_FOUND, "no table matches");
    }
    let names: Vec<String> = targets.iter().map(|t| t.qualified()).collect();
    let mode = job.mode().and(Mode::from_dry_run(body.dry_run.unwrap_or(false)));
    {
        let mut running = state.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(busy) = names.iter().find(|n| running.contains(&(kind, (*n).clone()))) {
            return reply(StatusCode::CONFLICT, format!("{kind} is already running on {busy}"));
        }
        running.extend(names.iter().map(|n| (kind, n.clone())));
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    let request = PassRequest { mode, filter, partitions: Vec::new(), full: false };
    info!(run_id, job = %kind, tables = names.len(), dry_run = mode.is_dry_run(), "admin run requested");
    let finish = {
        let (state, names) = (state.clone(), names.clone());
        move || {
            let mut running = state.running.lock().unwrap_or_else(|p| p.into_inner());
            for n in names {
                running.remove(&(kind, n));
            }
        }
    };
    if mode.is_dry_run() {
        let outcome = job.run_once(&request, &state.cancel).await;
        finish();
        return match outcome {
            Ok(plan) => (
                StatusCode::OK,
                Json(RunAccepted { run_id, job: kind, dry_run: true, tables: names, plan: Some(plan) }),
            )
                .into_response(),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let cancel = state.cancel.clone();
    let id = run_id.clone();
    tokio::spawn(async move {
        if let Err(e) = job.run_once(&request, &cancel).await {
            warn!(run_id = id, error = %e, "admin-requested run failed");
        }
        finish();
    });
    (StatusCode::ACCEPTED, Json(RunAccepted { run_id, job: kind, dry_run: false, tables: names, plan: None }))
        .into_response()
}

fn filter_for(body: &RunBody) -> Result<TableFilter, String> {
    match body.table.as_deref() {
        Some(t) if t.split('.').count() >= 3 => t.parse::<TableFilter>(),
        Some(t) => match (&body.tenant, &body.dataset) {
            (Some(tenant), Some(dataset)) => Ok(TableFilter::only([format!("{tenant}.{dataset}.{t}")])),
            _ => Err("`table` needs TENANT.DATASET.TABLE, or `tenant` and `dataset` next to it".into()),
        },
        None => Ok(TableFilter::scoped(body.tenant.clone(), body.dataset.clone())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    tenant: Option<String>,
    #[serde(rename = "type")]
    run_type: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct RunRow {
    run_id: String,
    run_type: String,
    tenant_id: String,
    dataset_id: String,
    table_name: String,
    started_at: String,
    completed_at: Option<String>,
    status: String,
    partitions_affected: i64,
    files_processed: i64,
    bytes_reclaimed: i64,
    snapshot_id: Option<i64>,
    error_message: Option<String>,
}

async fn runs(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let role = match authorize(&state, &headers) {
        Ok(role) => role,
        Err(denied) => return denied.into_response(),
    };
    let Ok(Query(q)) = query else { return reply(StatusCode::BAD_REQUEST, "query: tenant, type, limit") };
    if !allowed(&role, q.tenant.as_deref()) {
        return reply(
            StatusCode::FORBIDDEN,
            "this token may not read that tenant's runs (name one of its tenants)",
        );
    }
    if !state.audit_readable {
        return Json(Vec::<RunRow>::new()).into_response();
    }
    let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 1000));
    let rows = sqlx::query(
        "SELECT run_id, run_type, tenant_id, dataset_id, table_name, started_at, completed_at, status, \
         partitions_affected, files_processed, bytes_reclaimed, snapshot_id, error_message FROM compactor_runs \
         WHERE ($1 = '' OR tenant_id = $2) AND ($3 = '' OR run_type = $4) ORDER BY started_at DESC LIMIT $5",
    )
    .bind(q.tenant.clone().unwrap_or_default())
    .bind(q.tenant.clone().unwrap_or_default())
    .bind(q.run_type.clone().unwrap_or_default())
    .bind(q.run_type.clone().unwrap_or_default())
    .bind(limit)
    .fetch_all(state.catalog.pool())
    .await;
    match rows {
        Ok(rows) => Json(
            rows.iter()
                .map(|r| RunRow {
                    run_id: r.try_get(0).unwrap_or_default(),
                    run_type: r.try_get(1).unwrap_or_default(),
                    tenant_id: r.try_get(2).unwrap_or_default(),
                    dataset_id: r.try_get(3).unwrap_or_default(),
                    table_name: r.try_get(4).unwrap_or_default(),
                    started_at: r.try_get(5).unwrap_or_default(),
                    completed_at: r.try_get(6).ok().flatten(),
                    status: r.try_get(7).unwrap_or_default(),
                    partitions_affected: r.try_get(8).unwrap_or_default(),
                    files_processed: r.try_get(9).unwrap_or_default(),
                    bytes_reclaimed: r.try_get(10).unwrap_or_default(),
                    snapshot_id: r.try_get(11).ok().flatten(),
                    error_message: r.try_get(12).ok().flatten(),
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Serialize)]
struct TableInfo {
    table: String,
    data_files: u64,
    small_files: u64,
    bytes: u64,
    rows: u64,
    snapshots: u64,
    last_runs: Vec<(String, String, String)>,
    health: &'static str,
}

async fn tables(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let role = match authorize(&state, &headers) {
        Ok(role) => role,
        Err(denied) => return denied.into_response(),
    };
    let all = match state.catalog.discover().await {
        Ok(all) => all,
        Err(e) => return reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut out = Vec::new();
    for t in all.iter().filter(|t| allowed(&role, Some(&t.tenant))) {
        let Ok(table) = state.catalog.load(t).await else { continue };
        let stats = crate::stats::TableStats::of(&table);
        let target = table
            .metadata()
            .properties()
            .get("write.target-file-size-bytes")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(128 * 1024 * 1024);
        let small_files = match crate::table::Inventory::load(&table).await {
            Ok(inv) => inv.data.iter().filter(|f| f.size() < target / 4 * 3).count() as u64,
            Err(_) => 0,
        };
        let last_runs = if state.audit_readable { last_runs(&state.catalog, t).await } else { Vec::new() };
        let failing = last_runs.iter().any(|(_, status, _)| status == "failed");
        let health = match () {
            _ if failing => "failing",
            _ if small_files > 10 && small_files * 2 > stats.data_files => "needs_compaction",
            _ => "healthy",
        };
        out.push(TableInfo {
            table: t.qualified(),
            data_files: stats.data_files,
            small_files,
            bytes: stats.bytes,
            rows: stats.rows,
            snapshots: stats.snapshots,
            last_runs,
            health,
        });
    }
    Json(out).into_response()
}

/// The latest run of each type on a table: (type, status, started_at).
async fn last_runs(catalog: &Catalog, t: &TableRef) -> Vec<(String, String, String)> {
    let rows = sqlx::query(
        "SELECT r.run_type, r.status, r.started_at FROM compactor_runs r \
         WHERE r.tenant_id = $1 AND r.dataset_id = $2 AND r.table_name = $3 AND r.started_at = \
         (SELECT MAX(s.started_at) FROM compactor_runs s WHERE s.tenant_id = r.tenant_id AND s.dataset_id = r.dataset_id \
          AND s.table_name = r.table_name AND s.run_type = r.run_type) ORDER BY r.run_type",
    )
    .bind(&t.tenant)
    .bind(&t.dataset)
    .bind(&t.table)
    .fetch_all(catalog.pool())
    .await
    .unwrap_or_default();
    rows.iter()
        .map(|r| {
            (
                r.try_get(0).unwrap_or_default(),
                r.try_get(1).unwrap_or_default(),
                r.try_get(2).unwrap_or_default(),
            )
        })
        .collect()
}
