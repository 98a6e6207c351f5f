//! `cleanup_progress` checkpoints: a run's last processed path per table, so a killed run resumes after
//! it (candidates are processed in path order) instead of starting over. A resumed run still
//! revalidates every batch.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::catalog::{Catalog, TableRef};

pub struct Checkpoint {
    run_id: String,
    tenant: String,
    dataset: String,
    table: String,
    last_path: Option<String>,
    resumed: bool,
}

impl Checkpoint {
    /// The table's interrupted run if there is one, else a new run.
    pub async fn resume(
        catalog: &Catalog,
        t: &TableRef,
        now: DateTime<Utc>,
    ) -> Result<Checkpoint, sqlx::Error> {
        let row = sqlx::query(
            "SELECT run_id, last_path FROM cleanup_progress \
             WHERE tenant_id = $1 AND dataset_id = $2 AND table_name = $3 AND status = 'running' \
             ORDER BY started_at DESC LIMIT 1",
        )
        .bind(&t.tenant)
        .bind(&t.dataset)
        .bind(&t.table)
        .fetch_optional(catalog.pool())
        .await?;
        let base = |run_id: String, last_path: Option<String>, resumed| Checkpoint {
            run_id,
            tenant: t.tenant.clone(),
            dataset: t.dataset.clone(),
            table: t.table.clone(),
            last_path,
            resumed,
        };
        if let Some(row) = row {
            return Ok(base(row.try_get(0)?, row.try_get::<Option<String>, _>(1)?, true));
        }
        let run_id = uuid::Uuid::now_v7().to_string();
        let stamp = now.to_rfc3339();
        sqlx::query(
            "INSERT INTO cleanup_progress (run_id, tenant_id, dataset_id, table_name, status, last_path, \
             files_deleted, bytes_freed, started_at, updated_at) VALUES ($1, $2, $3, $4, 'running', NULL, 0, 0, $5, $6)",
        )
        .bind(&run_id)
        .bind(&t.tenant)
        .bind(&t.dataset)
        .bind(&t.table)
        .bind(&stamp)
        .bind(&stamp)
        .execute(catalog.pool())
        .await?;
        Ok(base(run_id, None, false))
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn last_path(&self) -> Option<&str> {
        self.last_path.as_deref()
    }

    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Records a finished batch at `now` (the pass's clock).
    pub async fn advance(
        &mut self,
        catalog: &Catalog,
        last: &str,
        files: u64,
        bytes: u64,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE cleanup_progress SET last_path = $1, files_deleted = files_deleted + $2, \
             bytes_freed = bytes_freed + $3, updated_at = $4 \
             WHERE run_id = $5 AND tenant_id = $6 AND dataset_id = $7 AND table_name = $8",
        )
        .bind(last)
        .bind(files as i64)
        .bind(bytes as i64)
        .bind(now.to_rfc3339())
        .bind(&self.run_id)
        .bind(&self.tenant)
        .bind(&self.dataset)
        .bind(&self.table)
        .execute(catalog.pool())
        .await?;
        self.last_path = Some(last.to_string());
        Ok(())
    }

    /// Marks the run completed at `now` (the pass's clock).
    pub async fn complete(self, catalog: &Catalog, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE cleanup_progress SET status = 'completed', updated_at = $1 \
             WHERE run_id = $2 AND tenant_id = $3 AND dataset_id = $4 AND table_name = $5",
        )
        .bind(now.to_rfc3339())
        .bind(&self.run_id)
        .bind(&self.tenant)
        .bind(&self.dataset)
        .bind(&self.table)
        .execute(catalog.pool())
        .await?;
        Ok(())
    }
}
