//! `verify`: the integrity check. For every table, every manifest list and manifest of every retained
//! snapshot must be readable, and every file live in any retained snapshot must exist with the size its
//! manifest records; with `deep`, every Parquet data file's footer must parse and its row count match
//! the manifest. Problems are reported per table and exported as `compactor_integrity_problems`.

use std::collections::HashMap;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::catalog::TableRef;
use crate::runtime::Context;
use crate::table::manifests::{OnUnreadable, Visit, Walk};

/// Files checked concurrently (manifests are read by the one walk, `table::manifests::Walk`).
const CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    Unreadable { path: String, error: String },
    Missing { path: String },
    SizeMismatch { path: String, expected: u64, actual: u64 },
    Corrupt { path: String, error: String },
    RowCountMismatch { path: String, expected: u64, actual: u64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct TableVerification {
    pub table: String,
    pub snapshots: usize,
    pub files_checked: usize,
    pub problems: Vec<Problem>,
}

/// Verifies the selected tables (`filter` empty: all).
pub async fn verify(
    ctx: &Context,
    filter: &crate::job::TableFilter,
    deep: bool,
) -> anyhow::Result<Vec<TableVerification>> {
    let mut out = Vec::new();
    for t in ctx.catalog.discover().await?.iter().filter(|t| filter.matches(t)) {
        let v = verify_table(ctx, t, deep).await;
        ctx.metrics
            .integrity_problems
            .with_label_values(&[&t.tenant, &t.dataset, &t.table])
            .set(v.problems.len() as i64);
        out.push(v);
    }
    Ok(out)
}

/// (recorded size, record count, is a data file) per live path.
type Expected = HashMap<String, (u64, u64, bool)>;

async fn verify_table(ctx: &Context, t: &TableRef, deep: bool) -> TableVerification {
    let mut v =
        TableVerification { table: t.qualified(), snapshots: 0, files_checked: 0, problems: Vec::new() };
    let table = match ctx.catalog.load(t).await {
        Ok(table) => table,
        Err(e) => {
            v.problems.push(Problem::Unreadable { path: "metadata".into(), error: e.to_string() });
            return v;
        }
    };
    v.snapshots = table.metadata().snapshots().count();
    let mut expected: Expected = HashMap::new();
    let walk = Walk::all_snapshots(&table, OnUnreadable::Report).run(|visit| match visit {
        Visit::Manifest(_, manifest) => {
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let is_data = e.content_type() == iceberg::spec::DataContentType::Data;
                expected
                    .insert(e.file_path().to_string(), (e.file_size_in_bytes(), e.record_count(), is_data));
            }
        }
        Visit::Unreadable { path, error } => {
            v.problems.push(Problem::Unreadable { path: path.to_string(), error: error.to_string() })
        }
        Visit::List(_) | Visit::Known(_) => {}
    });
    if let Err(e) = walk.await {
        // A reporting walk hands every unreadable file to the visitor; this is never expected.
        v.problems.push(Problem::Unreadable { path: "manifests".into(), error: e.to_string() });
    }
    v.files_checked = expected.len();
    let mut files: Vec<(String, (u64, u64, bool))> = expected.into_iter().collect();
    files.sort();
    let problems: Vec<Option<Problem>> = futures::stream::iter(0..files.len())
        .map(|i| {
            let (path, (size, rows, is_data)) = &files[i];
            check_file(ctx, path, *size, *rows, deep && *is_data)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    v.problems.extend(problems.into_iter().flatten());
    v
}

async fn check_file(ctx: &Context, path: &str, size: u64, rows: u64, deep: bool) -> Option<Problem> {
    let object = match ctx.warehouse.object_path(path) {
        Ok(p) => p,
        Err(e) => return Some(Problem::Unreadable { path: path.into(), error: e.to_string() }),
    };
    let meta = match ctx.warehouse.store().head(&object).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Some(Problem::Missing { path: path.into() }),
        Err(e) => return Some(Problem::Unreadable { path: path.into(), error: e.to_string() }),
    };
    if meta.size != size {
        return Some(Problem::SizeMismatch { path: path.into(), expected: size, actual: meta.size });
    }
    if !deep {
        return None;
    }
    let bytes: Bytes = match ctx.warehouse.store().get(&object).await {
        Ok(got) => match got.bytes().await {
            Ok(b) => b,
            Err(e) => return Some(Problem::Unreadable { path: path.into(), error: e.to_string() }),
        },
        Err(e) => return Some(Problem::Unreadable { path: path.into(), error: e.to_string() }),
    };
    match parquet::file::reader::SerializedFileReader::new(bytes) {
        Ok(reader) => {
            let actual =
                parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows() as u64;
            (actual != rows).then(|| Problem::RowCountMismatch { path: path.into(), expected: rows, actual })
        }
        Err(e) => Some(Problem::Corrupt { path: path.into(), error: e.to_string() }),
    }
}

/// `verify` as an optional loop (`[compactor.verify] enabled`): read-only, reports problems as failed
/// tables so `compactor_pass_failures_total{job="verify"}` and `/status` show them.
pub struct VerifyJob {
    ctx: Context,
}

impl VerifyJob {
    pub fn new(ctx: &Context) -> Self {
        VerifyJob { ctx: ctx.clone() }
    }
}

#[async_trait::async_trait]
impl crate::job::Job for VerifyJob {
    fn kind(&self) -> crate::job::JobKind {
        crate::job::JobKind::Verify
    }

    fn interval(&self) -> std::time::Duration {
        self.ctx.config.verify.interval
    }

    fn mode(&self) -> crate::config::Mode {
        crate::config::Mode::DryRun // reads only
    }

    async fn run_once(
        &self,
        request: &crate::job::PassRequest,
        _cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<crate::job::PassReport, crate::job::JobError> {
        use crate::job::{TableReport, TableStatus};
        let started_at = self.ctx.clock.now();
        let results = verify(&self.ctx, &request.filter, self.ctx.config.verify.deep)
            .await
            .map_err(|e| crate::job::JobError::Other(e.to_string()))?;
        let tables = results
            .into_iter()
            .map(|v| {
                let status = if v.problems.is_empty() {
                    TableStatus::Succeeded
                } else {
                    TableStatus::Failed { error: format!("{} integrity problem(s)", v.problems.len()) }
                };
                let mut report = TableReport::new_named(&v.table, status);
                report.files_before = v.files_checked as u64;
                report.details =
                    v.problems.iter().map(|p| serde_json::to_string(p).unwrap_or_default()).collect();
                report
            })
            .collect();
        Ok(crate::job::PassReport {
            job: crate::job::JobKind::Verify,
            mode: crate::config::Mode::DryRun,
            started_at,
            finished_at: self.ctx.clock.now(),
            tables,
        })
    }
}
