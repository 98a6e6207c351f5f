//! The audit trail: a `compactor_runs` row for every job pass over every table, inserted as `running`
//! when the table's work starts and finished with its outcome and figures.
//!
//! Written only by a process with write access: a process whose every job is in dry-run opens the
//! catalog database read-only and records nothing, because dry-run changes no byte. Dry-run passes of a
//! writing process (e.g. retention in dry-run next to executing compaction) are recorded as `dry_run`.
//! Rows left `running` by a process that died are marked `failed` at the next startup.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::AnyPool;
use tracing::warn;

use crate::catalog::TableRef;
use crate::config::Mode;
use crate::job::{TableReport, TableStatus};

/// Fixed-width UTC timestamps, so that stored values order correctly as strings.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Kinds of audited work (`run_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunType {
    Compaction,
    Retention,
    Orphans,
    Expiry,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Compaction => "compaction",
            RunType::Retention => "retention",
            RunType::Orphans => "orphans",
            RunType::Expiry => "expiry",
        }
    }
}

/// Records audit rows; a no-op when the process has no write access.
#[derive(Debug, Clone)]
pub struct Audit {
    pool: Option<AnyPool>,
    /// This process's lease holder id, written into every row.
    holder: String,
    /// Whether the catalog database is PostgreSQL (its clock function differs).
    postgres: bool,
}

/// A started run: its id (used in log spans whether or not it is persisted) and whether a row exists.
#[derive(Debug)]
pub struct RunRecord {
    run_id: String,
    persisted: bool,
}

impl RunRecord {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

impl Audit {
    pub fn new(pool: Option<AnyPool>, holder: String, postgres: bool) -> Audit {
        Audit { pool, holder, postgres }
    }

    pub fn disabled() -> Audit {
        Audit { pool: None, holder: String::new(), postgres: false }
    }

    /// Whether rows are written (and so can be read back).
    pub fn is_enabled(&self) -> bool {
        self.pool.is_some()
    }

    /// Starts a run: inserts a `running` row when enabled. Audit failures are logged, never fail the
    /// work itself.
    pub async fn start(&self, run_type: RunType, t: &TableRef, now: DateTime<Utc>) -> RunRecord {
        let run_id = uuid::Uuid::now_v7().to_string();
        let Some(pool) = self.pool.as_ref() else { return RunRecord { run_id, persisted: false } };
        let stamp = stamp(now);
        let inserted = sqlx::query(
            "INSERT INTO compactor_runs (run_id, run_type, tenant_id, dataset_id, table_name, started_at, status, \
             created_at, holder_id) VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8)",
        )
        .bind(&run_id)
        .bind(run_type.as_str())
        .bind(&t.tenant)
        .bind(&t.dataset)
        .bind(&t.table)
        .bind(&stamp)
        .bind(&stamp)
        .bind(&self.holder)
        .execute(pool)
        .await;
        let persisted = match inserted {
            Ok(_) => true,
            Err(e) => {
                warn!(table = %t, error = %e, "could not write the audit row");
                false
            }
        };
        RunRecord { run_id, persisted }
    }

    /// Completes a started row from the table's report.
    pub async fn finish(&self, record: RunRecord, mode: Mode, report: &TableReport, now: DateTime<Utc>) {
        let Some(pool) = self.pool.as_ref().filter(|_| record.persisted) else { return };
        let (status, error) = match &report.status {
            TableStatus::Failed { error } => ("failed", Some(crate::config::redact::secrets(error))),
            _ if mode.is_dry_run() => ("dry_run", None),
            _ => ("completed", None),
        };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (partitions, files, bytes) = report.audit_figures();
        let updated = sqlx::query(
            "UPDATE compactor_runs SET completed_at = $1, status = $2, partitions_affected = $3, files_processed = $4, \
             bytes_reclaimed = $5, snapshot_id = $6, error_message = $7 WHERE run_id = $8",
        )
        .bind(stamp(now))
        .bind(status)
        .bind(clamp(partitions))
        .bind(clamp(files))
        .bind(clamp(bytes))
        .bind(report.snapshot_id)
        .bind(error)
        .bind(&record.run_id)
        .execute(pool)
        .await;
        if let Err(e) = updated {
            warn!(run_id = record.run_id, error = %e, "could not complete the audit row");
        }
    }

    /// At startup: rows a dead process left `running` become `failed`; rows older than `keep` go. A
    /// row another replica is still writing is left alone: a real pass holds its table's lease, so a
    /// `running` row whose holder has a live lease belongs to a live process (unless that holder is a
    /// process on this host that has exited).
    pub async fn recover(&self, now: DateTime<Utc>, keep: std::time::Duration) -> Result<u64, sqlx::Error> {
        let Some(pool) = self.pool.as_ref() else { return Ok(0) };
        // Holders of `running` rows that are gone (see `leases::holder_is_live`).
        let holders: Vec<Option<String>> =
            sqlx::query_scalar("SELECT DISTINCT holder_id FROM compactor_runs WHERE status = 'running'")
                .fetch_all(pool)
                .await?;
        let mut marked = 0;
        for holder in holders {
            let dead = match &holder {
                None => true,
                Some(h) => !crate::runtime::leases::holder_is_live(pool, self.postgres, h).await?,
            };
            if !dead {
                continue;
            }
            // Rows written before holders were recorded have none: '' stands for it.
            let done = sqlx::query(
                "UPDATE compactor_runs SET status = 'failed', completed_at = $1, \
                 error_message = 'the process stopped before this run finished' \
                 WHERE status = 'running' AND COALESCE(holder_id, '') = $2",
            )
            .bind(stamp(now))
            .bind(holder.unwrap_or_default())
            .execute(pool)
            .await?;
            marked += done.rows_affected();
        }
        self.prune(now, keep).await?;
        Ok(marked)
    }

    /// Deletes audit rows that started before `now - keep`.
    pub async fn prune(&self, now: DateTime<Utc>, keep: std::time::Duration) -> Result<(), sqlx::Error> {
        let Some(pool) = self.pool.as_ref() else { return Ok(()) };
        let cutoff = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        sqlx::query("DELETE FROM compactor_runs WHERE started_at < $1")
            .bind(stamp(cutoff))
            .execute(pool)
            .await?;
        Ok(())
    }
}

/// The span every job's work on one table runs in: run id, job, tenant, dataset, table.
pub fn table_span(job: &'static str, run_id: &str, t: &TableRef) -> tracing::Span {
    tracing::info_span!("table", run_id = %run_id, job, tenant = %t.tenant, dataset = %t.dataset, table = %t.table)
}
