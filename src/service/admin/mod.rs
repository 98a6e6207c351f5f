//! The admin API on the HTTP server, enabled only when `[[compactor.http.admin_tokens]]` exist:
//!
//! - `POST /v1/{compaction,retention,orphans}/run` with an optional JSON body
//!   `{"tenant", "dataset", "table", "dry_run"}` (unknown fields → 400). A dry run executes now and
//!   returns its plan (200); a real run starts in the background (202) and is recorded in the audit
//!   trail. 409 while the same job already runs on one of the targeted tables, and 409 `job disabled by
//!   configuration` for a job whose `enabled` key is false unless the body asks for `"dry_run": true`.
//! - `GET /v1/runs?tenant=&type=&limit=`: audit rows, newest first.
//! - `GET /v1/tables`: per table files, small files, bytes, snapshots, last runs and a health verdict.
//!
//! Auth: `Authorization: Bearer <token>` exactly (scheme `Bearer`, one space, the token, nothing
//! trimmed), compared by SHA-256 in constant time. 401 for a missing or unknown token, 403 when a
//! `tenant_operator` token targets a tenant outside its list (or no tenant).
//!
//! Scope: every selector of a run body is checked. `table` as `TENANT.DATASET.TABLE` names its tenant
//! and dataset; a `tenant` or `dataset` next to it must agree (else 400). The token must cover the
//! tenant the selectors name, and, checked again after discovery, the tenant of every table the run
//! would touch (else 403).
//!
//! Body: read only up to [`MAX_BODY_BYTES`] (413 beyond, refused from `Content-Length` before reading
//! anything); a `Content-Type` other than JSON is 415; a body without `Content-Type` is parsed as JSON.
//! An unreadable body is never taken for an empty one. A request can ask for dry-run but never
//! override a job configured as dry-run.
//!
//! Runs: every run, dry or real, executes on the daemon's `TaskTracker` through `run_pass` (status
//! board, metrics, audit rows, as the loops). The "running" claim on its tables is a guard owned by
//! that task, so a client hanging up cannot leave it set.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span};

use super::status::StatusBoard;
use crate::catalog::{Catalog, TableRef};
use crate::config::{AdminRole, AdminToken, Mode};
use crate::job::{Job, JobKind, PassRequest, TableFilter};
use crate::metrics::Metrics;

mod reads;

/// The largest request body the admin API reads; a run body is a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The (job, table) pairs with a run in flight.
type Running = Arc<Mutex<HashSet<(JobKind, String)>>>;

pub struct AdminState {
    pub tokens: Vec<AdminToken>,
    /// Every job of this build, with whether the configuration enables it.
    pub jobs: Vec<(Arc<dyn Job>, bool)>,
    pub catalog: Catalog,
    /// Whether audit rows exist to read (write access).
    pub audit_readable: bool,
    pub cancel: CancellationToken,
    /// Where runs execute; the daemon's, so shutdown waits for them.
    tracker: TaskTracker,
    status: Arc<StatusBoard>,
    metrics: Metrics,
    running: Running,
    /// What `/v1/tables` counts as a small file (compaction's rule).
    small_files: SmallFileRule,
}

/// A data file is small when it is below `threshold_percent` of the table's target file size (the
/// table's own property, else `target`): the rule compaction picks files by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmallFileRule {
    pub target: u64,
    pub threshold_percent: u64,
}

impl Default for SmallFileRule {
    /// The configuration's defaults (`target_file_size_mb = 128`, `small_file_threshold_percent = 75`).
    fn default() -> Self {
        SmallFileRule { target: 128 * 1024 * 1024, threshold_percent: 75 }
    }
}

impl SmallFileRule {
    /// The configured rule.
    pub fn configured(config: &crate::config::CompactionConfig) -> Self {
        SmallFileRule {
            target: config.target_file_size_bytes,
            threshold_percent: config.small_file_threshold_percent,
        }
    }

    /// The size under which a file of `table` is small.
    fn limit(&self, table: &iceberg::table::Table) -> u64 {
        // A table whose switches do not parse is excluded from compaction; here it keeps the
        // configured target.
        let target = crate::table::properties::TableProperties::of(table)
            .map_or(self.target, |p| p.target_file_size_or(self.target));
        target / 100 * self.threshold_percent
    }
}

impl AdminState {
    /// A state with its own tracker, status board and metrics registry (tests); the daemon passes its
    /// own with [`on_daemon`](Self::on_daemon).
    pub fn new(
        tokens: Vec<AdminToken>,
        jobs: Vec<(Arc<dyn Job>, bool)>,
        catalog: Catalog,
        audit_readable: bool,
        cancel: CancellationToken,
    ) -> Self {
        let status = super::status_board(&jobs, Arc::new(crate::clock::SystemClock));
        AdminState {
            tokens,
            jobs,
            catalog,
            audit_readable,
            cancel,
            tracker: TaskTracker::new(),
            status,
            metrics: Metrics::new(prometheus::Registry::new()),
            running: Running::default(),
            small_files: SmallFileRule::default(),
        }
    }

    /// Counts small files in `/v1/tables` by `rule` (the daemon passes the configured one).
    pub fn with_small_file_rule(mut self, rule: SmallFileRule) -> Self {
        self.small_files = rule;
        self
    }

    /// Runs requested passes on the daemon's tracker, status board and metrics, as its loops do.
    pub fn on_daemon(mut self, tracker: TaskTracker, status: Arc<StatusBoard>, metrics: Metrics) -> Self {
        self.tracker = tracker;
        self.status = status;
        self.metrics = metrics;
        self
    }

    /// The status board runs are reported on (`/status`).
    pub fn status(&self) -> &Arc<StatusBoard> {
        &self.status
    }

    /// Waits until every run started so far has finished (tests).
    pub async fn idle(&self) {
        while !self.running.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
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
        .route("/v1/runs", get(reads::runs))
        .route("/v1/tables", get(reads::tables))
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

/// The role behind the request's bearer token. The header must be exactly `Bearer <token>`: no other
/// scheme spelling, no whitespace trimmed or tolerated, and exactly one header.
fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<AdminRole, Denied> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Denied("missing bearer token"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty() && !t.contains(|c: char| c.is_ascii_whitespace()))
        .ok_or(Denied("missing bearer token"))?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
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

/// Reads the run body: 415 for a non-JSON `Content-Type`, 413 over [`MAX_BODY_BYTES`] (from
/// `Content-Length` before reading, else as soon as the stream passes it), 400 for anything that is
/// not the JSON object. Only a body of zero bytes is the empty body.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<RunBody, Response> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let essence =
            ct.to_str().ok().and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase());
        let json = essence.as_deref().is_some_and(|e| {
            e == "application/json" || (e.starts_with("application/") && e.ends_with("+json"))
        });
        if !json {
            return Err(reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
    }
    let too_large =
        || reply(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is limited to {MAX_BODY_BYTES} bytes"));
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
            Some(n) if n > MAX_BODY_BYTES as u64 => return Err(too_large()),
            Some(_) => {}
            None => return Err(reply(StatusCode::BAD_REQUEST, "invalid Content-Length")),
        }
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| reply(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")))?;
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Ok(RunBody::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| reply(StatusCode::BAD_REQUEST, format!("invalid run body: {e}")))
}

/// What a run body selects: the tenant the token must cover (`None`: every tenant) and the filter.
/// Selectors that contradict each other are an error (400), never resolved by picking one.
fn selection(body: &RunBody) -> Result<(Option<String>, TableFilter), String> {
    for (key, value) in [("tenant", &body.tenant), ("dataset", &body.dataset), ("table", &body.table)] {
        if value.as_deref().is_some_and(str::is_empty) {
            return Err(format!("`{key}` must not be empty"));
        }
    }
    let Some(table) = body.table.as_deref() else {
        return Ok((body.tenant.clone(), TableFilter::scoped(body.tenant.clone(), body.dataset.clone())));
    };
    let qualified = if table.split('.').count() >= 3 {
        table.parse::<TableFilter>()?;
        table.to_string()
    } else {
        match (&body.tenant, &body.dataset) {
            (Some(tenant), Some(dataset)) => format!("{tenant}.{dataset}.{table}"),
            _ => {
                return Err("`table` needs TENANT.DATASET.TABLE, or `tenant` and `dataset` next to it".into());
            }
        }
    };
    let tenant = match &body.tenant {
        Some(t) if !qualified.starts_with(&format!("{t}.")) => {
            return Err(format!("`tenant` {t:?} and `table` {table:?} name different tenants"));
        }
        Some(t) => t.clone(),
        None => qualified.split('.').next().unwrap_or_default().to_string(),
    };
    if let Some(d) = &body.dataset
        && !qualified.starts_with(&format!("{tenant}.{d}."))
    {
        return Err(format!("`dataset` {d:?} and `table` {table:?} name different datasets"));
    }
    let filter = TableFilter::only([qualified]).within(body.tenant.clone(), body.dataset.clone());
    Ok((Some(tenant), filter))
}

/// The claim on (job, table) pairs of one run: taken before the run starts, released on drop, so no
/// path (an error, a panic, a client that hangs up) can leave it behind.
struct Claim {
    running: Running,
    entries: Vec<(JobKind, String)>,
}

impl Claim {
    /// Claims every name for `kind`, or answers the first that is busy.
    fn take(running: &Running, kind: JobKind, names: &[String]) -> Result<Claim, String> {
        let mut set = running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(busy) = names.iter().find(|n| set.contains(&(kind, (*n).clone()))) {
            return Err(busy.clone());
        }
        let entries: Vec<_> = names.iter().map(|n| (kind, n.clone())).collect();
        set.extend(entries.iter().cloned());
        Ok(Claim { running: running.clone(), entries })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for e in &self.entries {
            set.remove(e);
        }
    }
}

async fn run(
    kind: JobKind,
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let role = match authorize(&state, &headers) {
        Ok(role) => role,
        Err(denied) => return denied.into_response(),
    };
    let body = match read_body(&headers, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let (tenant, filter) = match selection(&body) {
        Ok(s) => s,
        Err(why) => return reply(StatusCode::BAD_REQUEST, why),
    };
    let forbidden =
        || reply(StatusCode::FORBIDDEN, "this token may not act on that tenant (name one of its tenants)");
    if !allowed(&role, tenant.as_deref()) {
        return forbidden();
    }
    let Some((job, enabled)) = state.jobs.iter().find(|(j, _)| j.kind() == kind).cloned() else {
        return reply(StatusCode::NOT_FOUND, format!("job {kind} is not part of this build"));
    };
    let dry_run_asked = body.dry_run == Some(true);
    if !enabled && !dry_run_asked {
        return reply(
            StatusCode::CONFLICT,
            format!(
                "job disabled by configuration ({} = false); only a dry run (\"dry_run\": true) is allowed",
                kind.enabled_key()
            ),
        );
    }
    let targets: Vec<TableRef> = match state.catalog.discover().await {
        Ok(all) => all.into_iter().filter(|t| filter.matches(t)).collect(),
        Err(e) => return reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    if targets.is_empty() {
        return reply(StatusCode::NOT_FOUND, "no table matches");
    }
    // The selectors were checked as written; the tables they reach are checked as they are.
    if targets.iter().any(|t| !allowed(&role, Some(&t.tenant))) {
        return forbidden();
    }
    let names: Vec<String> = targets.iter().map(|t| t.qualified()).collect();
    let mode = job.mode().and(Mode::from_dry_run(dry_run_asked));
    let claim = match Claim::take(&state.running, kind, &names) {
        Ok(claim) => claim,
        Err(busy) => return reply(StatusCode::CONFLICT, format!("{kind} is already running on {busy}")),
    };
    let run_id = uuid::Uuid::now_v7().to_string();
    let request = PassRequest { filter, ..PassRequest::all(mode) };
    info!(run_id, job = %kind, tables = names.len(), dry_run = mode.is_dry_run(), "admin run requested");
    let span = info_span!("pass", job = %kind, mode = ?mode, run_id = %run_id, requested_by = "admin");
    let pass = {
        let state = state.clone();
        state.tracker.clone().spawn(
            async move {
                let _claim = claim;
                super::run_pass(job.as_ref(), &request, &state.cancel, &state.status, &state.metrics).await
            }
            .instrument(span),
        )
    };
    if !mode.is_dry_run() {
        let accepted = RunAccepted { run_id, job: kind, dry_run: false, tables: names, plan: None };
        return (StatusCode::ACCEPTED, Json(accepted)).into_response();
    }
    match pass.await {
        Ok(Ok(plan)) => {
            let accepted = RunAccepted { run_id, job: kind, dry_run: true, tables: names, plan: Some(plan) };
            (StatusCode::OK, Json(accepted)).into_response()
        }
        Ok(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("the dry run did not finish: {e}")),
    }
}
