//! Replicas of one survey group ([`super::share`]): their membership rows in `compactor_replicas`, and
//! the tables whose due compaction work they divide by partition (`compactor_divided`).
//!
//! Both only divide work (who reads and compacts what); what keeps two replicas from working on the
//! same table or partition at once is the lease ([`super::leases`]), and what keeps every commit
//! atomic is the catalog's compare-and-swap.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::leases::{Leases, Liveness, is_dead_local_process};
use crate::catalog::TableRef;

impl Leases {
    /// Writes (or renews) this replica's row in the survey group `group` ([`super::share`]) for one
    /// ttl, not busy. `Ok(false)`: leases are disabled (a read-only process is no member).
    pub async fn beat(&self, group: &str) -> Result<bool, sqlx::Error> {
        self.beat_as(group, None).await
    }

    /// [`beat`](Self::beat), saying how long the replica's running pass has run (`None`: no pass).
    pub async fn beat_as(&self, group: &str, busy_for: Option<Duration>) -> Result<bool, sqlx::Error> {
        let Some(inner) = self.inner() else { return Ok(false) };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let now = inner.now;
        // Two statements rather than a NULL parameter: PostgreSQL cannot type `$4 IS NULL`.
        let busy_since = match busy_for {
            Some(_) => format!("{now} - $4"),
            None => "NULL".to_string(),
        };
        let statement = format!(
            "INSERT INTO compactor_replicas (job, holder_id, seen_at, expires_at, busy_since) \
             VALUES ($1, $2, {now}, {now} + $3, {busy_since}) \
             ON CONFLICT (job, holder_id) DO UPDATE SET seen_at = excluded.seen_at, \
             expires_at = excluded.expires_at, busy_since = excluded.busy_since"
        );
        let query = sqlx::query(&statement).bind(group).bind(&inner.holder).bind(ms(inner.ttl));
        let query = match busy_for {
            Some(d) => query.bind(ms(d)),
            None => query,
        };
        query.execute(&inner.pool).await?;
        Ok(true)
    }

    /// `group`'s live members as this replica sees them, or `None` when it has no share (leases are
    /// disabled, or its own row is not live): then it surveys every table.
    pub async fn share(&self, group: &str) -> Result<Option<super::share::Share>, sqlx::Error> {
        self.share_within(group, None).await
    }

    /// [`share`](Self::share), leaving out the other members whose running pass has run longer than
    /// `busy_limit`: their shares' due tables go to the replicas that are free, rather than waiting
    /// for the busy one's pass to end (their leases still keep the busy one's own table its own).
    pub async fn share_within(
        &self,
        group: &str,
        busy_limit: Option<Duration>,
    ) -> Result<Option<super::share::Share>, sqlx::Error> {
        let job = group;
        let Some(inner) = self.inner() else { return Ok(None) };
        let ttl_ms = i64::try_from(inner.ttl.as_millis()).unwrap_or(i64::MAX);
        // A live replica renews its row every ttl / 3: one not renewed for a whole ttl is gone whatever
        // its expiry says (written by hand, or by a killed replica with a longer ttl). Dropping a member
        // only enlarges the others' shares (more reading), never leaves a table to nobody.
        let statement = format!(
            "SELECT holder_id, busy_since, {now} FROM compactor_replicas \
             WHERE job = $1 AND expires_at > {now} AND seen_at > {now} - $2",
            now = inner.now
        );
        let rows: Vec<(String, Option<i64>, i64)> =
            sqlx::query_as(&statement).bind(job).bind(ttl_ms).fetch_all(&inner.pool).await?;
        let limit_ms = busy_limit.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (live, busy): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(holder, busy_since, now)| {
            *holder == inner.holder
                || !matches!((busy_since, limit_ms), (Some(since), Some(limit)) if now - since > limit)
        });
        if !busy.is_empty() {
            let holders: Vec<&str> = busy.iter().map(|(holder, ..)| holder.as_str()).collect();
            info!(job, busy = ?holders, "dividing the shares of replicas in a long pass among the others");
        }
        let live: Vec<String> = live.into_iter().map(|(holder, ..)| holder).collect();
        // A replica on this host that exited without leaving does not keep its share until expiry:
        // its row is removed, since replicas on other hosts cannot tell it exited and would count it.
        let (dead, live): (Vec<String>, Vec<String>) =
            live.into_iter().partition(|h| is_dead_local_process(h));
        for holder in dead {
            let removed = sqlx::query("DELETE FROM compactor_replicas WHERE job = $1 AND holder_id = $2")
                .bind(job)
                .bind(&holder)
                .execute(&inner.pool)
                .await;
            match removed {
                Ok(_) => info!(job, holder, "removed the replica row of an exited process on this host"),
                Err(e) => debug!(job, holder, error = %e, "could not remove an exited process's replica row"),
            }
        }
        Ok(super::share::Share::of(&inner.holder, live))
    }

    /// Removes this replica's row: its share passes to the others at their next poll.
    pub async fn leave(&self, job: &str) -> Result<(), sqlx::Error> {
        let Some(inner) = self.inner() else { return Ok(()) };
        sqlx::query("DELETE FROM compactor_replicas WHERE job = $1 AND holder_id = $2")
            .bind(job)
            .bind(&inner.holder)
            .execute(&inner.pool)
            .await?;
        Ok(())
    }

    /// Keeps this replica in the survey group `group` until `cancel` fires, then leaves: a row written
    /// every `ttl / 3` saying whether a pass is running and since when, so that others take over the
    /// share of a replica long busy ([`share_within`](Self::share_within)); a replica whose pass hangs
    /// (past the pass deadline) stops renewing and loses its row at expiry.
    pub async fn membership(
        self,
        group: String,
        liveness: impl Fn() -> Liveness + Send,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let Some(inner) = self.inner().cloned() else { return };
        let job = group.as_str();
        let mut failing = false;
        loop {
            let beat = match liveness() {
                Liveness::Idle => self.beat_as(job, None).await.map_err(|e| e.to_string()),
                Liveness::Busy(d) => self.beat_as(job, Some(d)).await.map_err(|e| e.to_string()),
                Liveness::Overdue => Err("its pass is past the pass deadline".to_string()),
            };
            match beat {
                Ok(_) if failing => {
                    info!(job, holder = inner.holder, "replica membership renewed again");
                    failing = false;
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    warn!(
                        job,
                        holder = inner.holder,
                        error,
                        "not renewing this replica's membership; others take its share when it expires"
                    );
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(inner.ttl / 3) => {}
            }
        }
        if let Err(e) = self.leave(job).await {
            warn!(job, holder = inner.holder, error = %e, "could not leave the replicas; the row expires by itself");
        }
    }

    /// Marks `t` as divided by partition between the replicas of `group` for `period` (renewed by
    /// marking again). `Ok(false)`: leases are disabled.
    pub async fn mark_divided(
        &self,
        group: &str,
        t: &TableRef,
        period: Duration,
    ) -> Result<bool, sqlx::Error> {
        let Some(inner) = self.inner() else { return Ok(false) };
        let now = inner.now;
        let statement = format!(
            "INSERT INTO compactor_divided (job, tenant_id, dataset_id, table_name, marked_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, {now} + $6) \
             ON CONFLICT (job, tenant_id, dataset_id, table_name) DO UPDATE SET \
             marked_by = excluded.marked_by, expires_at = excluded.expires_at"
        );
        sqlx::query(&statement)
            .bind(group)
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(&inner.holder)
            .bind(i64::try_from(period.as_millis()).unwrap_or(i64::MAX))
            .execute(&inner.pool)
            .await?;
        Ok(true)
    }

    /// The tables of `group` marked divided and not yet expired, as `tenant.dataset.table`.
    pub async fn divided(&self, group: &str) -> Result<Vec<String>, sqlx::Error> {
        let Some(inner) = self.inner() else { return Ok(Vec::new()) };
        let statement = format!(
            "SELECT tenant_id, dataset_id, table_name FROM compactor_divided WHERE job = $1 AND expires_at > {}",
            inner.now
        );
        let rows: Vec<(String, String, String)> =
            sqlx::query_as(&statement).bind(group).fetch_all(&inner.pool).await?;
        Ok(rows.into_iter().map(|(tenant, dataset, table)| format!("{tenant}.{dataset}.{table}")).collect())
    }
}
