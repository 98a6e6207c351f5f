//! The HTTP server on `[compactor.http] listen`: `/metrics`, `/health`, `/ready`, `/status`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::status::{LoopStatus, StatusBoard};
use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::storage::Warehouse;

pub struct HttpState {
    pub metrics: Metrics,
    pub status: Arc<StatusBoard>,
    pub catalog: Catalog,
    pub warehouse: Warehouse,
    pub dry_run: bool,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .with_state(state)
}

/// Serves `app` until `cancel` fires; in-flight requests finish first.
pub async fn serve(listener: TcpListener, app: Router, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
        .into_response()
}

async fn health() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    catalog: String,
    storage: String,
}

/// How long `/ready` waits for each backend: a database that is down may otherwise hold a pooled
/// connection attempt for the pool's whole acquire timeout, far beyond a probe's timeout.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready only when the catalog database and the object store answer right now.
async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    let bounded = |what: &'static str| move |_| format!("{what} did not answer within {READY_TIMEOUT:?}");
    let (catalog, storage) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, state.catalog.ping()),
        tokio::time::timeout(READY_TIMEOUT, state.warehouse.ping())
    );
    let catalog = catalog.map_err(bounded("the catalog database")).and_then(|r| r.map_err(|e| e.to_string()));
    let storage = storage.map_err(bounded("the object store")).and_then(|r| r.map_err(|e| e.to_string()));
    let describe = |r: Result<(), String>| r.err().unwrap_or_else(|| "ok".to_string());
    let body = Readiness {
        ready: catalog.is_ok() && storage.is_ok(),
        catalog: describe(catalog),
        storage: describe(storage),
    };
    let code = if body.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

#[derive(Serialize)]
struct Status {
    version: &'static str,
    dry_run: bool,
    loops: Vec<LoopStatus>,
}

async fn status(State(state): State<Arc<HttpState>>) -> Json<impl Serialize> {
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        dry_run: state.dry_run,
        loops: state.status.snapshot(),
    })
}
