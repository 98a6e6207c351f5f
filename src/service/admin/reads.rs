//! The admin API's reads: `GET /v1/runs` (audit rows, newest first, within the token's tenants) and
//! `GET /v1/tables` (per table figures, last runs and a health verdict).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{AdminState, allowed, authorize, reply};
use crate::catalog::{Catalog, TableRef};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsQuery {
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

pub(super) async fn runs(
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
    /// Data manifests of the current snapshot.
    manifests: u64,
    /// Size of the current metadata file (`null` when it could not be read).
    metadata_bytes: Option<u64>,
    last_runs: Vec<(String, String, String)>,
    health: &'static str,
}

pub(super) async fn tables(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
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
        let small = state.small_files.limit(&table);
        let (small_files, manifests) = match crate::table::Inventory::load(&table).await {
            Ok(inv) => (
                inv.data.iter().filter(|f| f.size() < small).count() as u64,
                crate::compaction::manifests::data_manifests(&inv),
            ),
            Err(_) => (0, 0),
        };
        let metadata_bytes = match table.metadata_location().map(|l| table.file_io().new_input(l)) {
            Some(Ok(input)) => input.metadata().await.ok().map(|m| m.size),
            _ => None,
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
            manifests,
            metadata_bytes,
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
