//! Leases that divide tables between replicas sharing one catalog database.
//!
//! Before a job works on a table it takes the table's row in `compactor_leases` with one statement,
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE expires_at < now` (or the row is already its own): a row
//! another live holder owns is never taken, an expired one is. While the work runs the lease is
//! renewed every `ttl / 3`; on completion it is released. Every time is the catalog database's clock
//! (milliseconds since the epoch), so replicas' clocks never decide whether a lease expired.
//!
//! A holder that loses its lease (another replica took it after it expired, or renewals failed for
//! two thirds of the ttl) abandons before committing: the commit path [`fence`]s inside the catalog
//! transaction that swaps the table's pointer, extending the lease only if the row still names this
//! holder, and rolls back otherwise; orphan cleanup checks it before each deletion batch. The lease
//! divides work; the catalog compare-and-swap alone already keeps every commit atomic.
//!
//! The lease reaches those paths as an explicit [`Fence`] ([`Lease::fence`], carried by the table's
//! `runtime::Claim`), so a path that commits or deletes without one does not compile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tracing::{debug, info, warn};

use crate::catalog::TableRef;
use crate::table::Fence;

/// The `partition_id` of a lease on a whole table.
pub const WHOLE_TABLE: &str = "*";

/// The replicas' lease table, or nothing (a read-only process writes no lease).
#[derive(Clone)]
pub struct Leases {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    pool: AnyPool,
    /// SQL for "now" in milliseconds on the database's clock.
    now: &'static str,
    holder: String,
    ttl: Duration,
}

/// Whether a table could be leased.
pub enum Acquired {
    Held(Lease),
    /// Another live holder has the table.
    Busy {
        holder: String,
    },
}

/// What a replica's loop is doing, as its membership row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Between passes.
    Idle,
    /// In a pass that has run this long.
    Busy(Duration),
    /// In a pass past the pass deadline: the row is not renewed.
    Overdue,
}

/// A held lease, renewed in the background until released or dropped.
pub struct Lease {
    state: Arc<LeaseState>,
    renewer: tokio::task::JoinHandle<()>,
}

struct LeaseState {
    inner: Arc<Inner>,
    tenant: String,
    dataset: String,
    table: String,
    /// Set once the lease is known lost; never cleared.
    lost: AtomicBool,
    /// When the last acquire or renewal succeeded (the local deadline runs from it).
    renewed: std::sync::Mutex<Instant>,
}

impl Leases {
    pub fn disabled() -> Leases {
        Leases { inner: None }
    }

    /// Leases on the catalog database. `postgres` selects that dialect's clock function.
    pub fn new(pool: AnyPool, postgres: bool, holder: String, ttl: Duration) -> Leases {
        Leases { inner: Some(Arc::new(Inner { pool, now: now_ms_sql(postgres), holder, ttl })) }
    }

    /// Writes (or renews) this replica's row in the survey group `group` ([`super::share`]) for one
    /// ttl, not busy. `Ok(false)`: leases are disabled (a read-only process is no member).
    pub async fn beat(&self, group: &str) -> Result<bool, sqlx::Error> {
        self.beat_as(group, None).await
    }

    /// [`beat`](Self::beat), saying how long the replica's running pass has run (`None`: no pass).
    pub async fn beat_as(&self, group: &str, busy_for: Option<Duration>) -> Result<bool, sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(false) };
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
        let Some(inner) = &self.inner else { return Ok(None) };
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
        let Some(inner) = &self.inner else { return Ok(()) };
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
        let Some(inner) = self.inner.clone() else { return };
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

    /// Takes the lease of a whole table, or reports who holds it. `None`: leases are disabled.
    pub async fn acquire(&self, t: &TableRef) -> Result<Option<Acquired>, sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(None) };
        let ttl_ms = i64::try_from(inner.ttl.as_millis()).unwrap_or(i64::MAX);
        let now = inner.now;
        let statement = format!(
            "INSERT INTO compactor_leases \
               (tenant_id, dataset_id, table_name, partition_id, holder_id, acquired_at, expires_at, renewed_at) \
             VALUES ($1, $2, $3, $4, $5, {now}, {now} + $6, {now}) \
             ON CONFLICT (tenant_id, dataset_id, table_name, partition_id) DO UPDATE SET \
               holder_id = excluded.holder_id, acquired_at = excluded.acquired_at, \
               expires_at = excluded.expires_at, renewed_at = excluded.renewed_at \
             WHERE compactor_leases.expires_at < excluded.acquired_at \
                OR compactor_leases.holder_id = excluded.holder_id"
        );
        let started = Instant::now();
        let taken = sqlx::query(&statement)
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(WHOLE_TABLE)
            .bind(&inner.holder)
            .bind(ttl_ms)
            .execute(&inner.pool)
            .await?
            .rows_affected();
        if taken == 0 {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT holder_id FROM compactor_leases \
                 WHERE tenant_id = $1 AND dataset_id = $2 AND table_name = $3 AND partition_id = $4",
            )
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(WHOLE_TABLE)
            .fetch_optional(&inner.pool)
            .await?;
            let holder = holder.unwrap_or_else(|| "unknown".into());
            if !is_dead_local_process(&holder) || !self.take_over(t, &holder).await? {
                return Ok(Some(Acquired::Busy { holder }));
            }
            info!(table = %t, dead_holder = holder, "took over the lease of a process on this host that has exited");
        }
        let state = Arc::new(LeaseState {
            inner: inner.clone(),
            tenant: t.tenant.clone(),
            dataset: t.dataset.clone(),
            table: t.table.clone(),
            lost: AtomicBool::new(false),
            renewed: std::sync::Mutex::new(started),
        });
        debug!(table = %t, holder = inner.holder, "lease acquired");
        let renewer = tokio::spawn(renew_until_lost(state.clone()));
        Ok(Some(Acquired::Held(Lease { state, renewer })))
    }
}

impl Leases {
    /// Takes the lease from `dead` (a holder known to have exited) if the row still names it.
    async fn take_over(&self, t: &TableRef, dead: &str) -> Result<bool, sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(false) };
        let now = inner.now;
        let ttl_ms = i64::try_from(inner.ttl.as_millis()).unwrap_or(i64::MAX);
        let statement = format!(
            "UPDATE compactor_leases SET holder_id = $1, acquired_at = {now}, expires_at = {now} + $2, \
             renewed_at = {now} WHERE tenant_id = $3 AND dataset_id = $4 AND table_name = $5 \
             AND partition_id = $6 AND holder_id = $7"
        );
        let updated = sqlx::query(&statement)
            .bind(&inner.holder)
            .bind(ttl_ms)
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(WHOLE_TABLE)
            .bind(dead)
            .execute(&inner.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }
}

impl Lease {
    /// The fence the table's commits and deletion batches go through while this lease is held.
    pub fn fence(&self) -> Arc<dyn Fence> {
        self.state.clone()
    }

    /// Whether the lease was lost while held.
    pub fn is_lost(&self) -> bool {
        self.state.is_lost()
    }

    /// Stops renewing and deletes the row if it is still ours. A failed release only delays the next
    /// holder until the lease expires.
    pub async fn release(self) {
        self.renewer.abort();
        let s = &self.state;
        let released = sqlx::query(
            "DELETE FROM compactor_leases WHERE tenant_id = $1 AND dataset_id = $2 AND table_name = $3 \
             AND partition_id = $4 AND holder_id = $5",
        )
        .bind(&s.tenant)
        .bind(&s.dataset)
        .bind(&s.table)
        .bind(WHOLE_TABLE)
        .bind(&s.inner.holder)
        .execute(&s.inner.pool)
        .await;
        if let Err(e) = released {
            warn!(table = s.table, error = %e, "could not release the table's lease; it expires by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl LeaseState {
    fn is_lost(&self) -> bool {
        if self.lost.load(Ordering::SeqCst) {
            return true;
        }
        // Renewals may be failing (or starved): past two thirds of the ttl the row may expire soon.
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        renewed.elapsed() >= self.inner.ttl * 2 / 3
    }

    fn mark_lost(&self, why: &str) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            warn!(
                tenant = self.tenant,
                dataset = self.dataset,
                table = self.table,
                holder = self.inner.holder,
                why,
                "table lease lost; the work on this table abandons before committing"
            );
        }
    }

    fn touched(&self, at: Instant) {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Extends the lease if the row still names this holder: `Ok(false)` when another holder has it.
    async fn extend<'c, E>(&self, executor: E) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let now = self.inner.now;
        let ttl_ms = i64::try_from(self.inner.ttl.as_millis()).unwrap_or(i64::MAX);
        let statement = format!(
            "UPDATE compactor_leases SET expires_at = {now} + $1, renewed_at = {now} \
             WHERE tenant_id = $2 AND dataset_id = $3 AND table_name = $4 AND partition_id = $5 \
             AND holder_id = $6"
        );
        let updated = sqlx::query(&statement)
            .bind(ttl_ms)
            .bind(&self.tenant)
            .bind(&self.dataset)
            .bind(&self.table)
            .bind(WHOLE_TABLE)
            .bind(&self.inner.holder)
            .execute(executor)
            .await?;
        Ok(updated.rows_affected() > 0)
    }
}

async fn renew_until_lost(state: Arc<LeaseState>) {
    let every = (state.inner.ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let started = Instant::now();
        match state.extend(&state.inner.pool).await {
            Ok(true) => state.touched(started),
            Ok(false) => {
                state.mark_lost("another holder took the lease over");
                return;
            }
            Err(e) => {
                warn!(table = state.table, error = %e, "could not renew the table's lease; retrying");
                if state.is_lost() {
                    state.mark_lost("renewals failed for two thirds of the lease ttl");
                    return;
                }
            }
        }
    }
}

/// Whether `holder` may still be working: it holds an unexpired lease and is not an exited process on
/// this host. (Every real table pass holds its table's lease, so a holder without one is gone.)
pub async fn holder_is_live(pool: &AnyPool, postgres: bool, holder: &str) -> Result<bool, sqlx::Error> {
    if is_dead_local_process(holder) {
        return Ok(false);
    }
    let statement = format!(
        "SELECT COUNT(*) FROM compactor_leases WHERE holder_id = $1 AND expires_at > {}",
        now_ms_sql(postgres)
    );
    let live: i64 = sqlx::query_scalar(&statement).bind(holder).fetch_one(pool).await?;
    Ok(live > 0)
}

/// SQL for the database clock's "now" in milliseconds since the epoch.
pub fn now_ms_sql(postgres: bool) -> &'static str {
    if postgres {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    } else {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    }
}

#[async_trait::async_trait]
impl Fence for LeaseState {
    async fn fence(&self, conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let started = Instant::now();
        let held = self.extend(conn).await?;
        if held {
            self.touched(started);
        } else {
            self.mark_lost("another holder took the lease over");
        }
        Ok(held)
    }

    fn is_lost(&self) -> bool {
        LeaseState::is_lost(self)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// This process's holder id: `host:pid:random` (the suffix keeps it unique across restarts).
pub fn holder_id() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let id =
        OWN_HOLDER.get_or_init(|| format!("{}:{}:{}", host_name(), std::process::id(), &suffix[..8])).clone();
    info!(holder = id, "replica holder id");
    id
}

/// Whether `holder` names a process on this host that no longer exists (killed, crashed): its leases
/// need not wait for their expiry, and its `running` audit rows are dead. Conservative: another host,
/// an unparsable id, or any process with that pid (even a reused one) counts as alive.
pub fn is_dead_local_process(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(_suffix), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    if host != host_name() || holder == own_holder() {
        return false;
    }
    // Our own pid under another suffix is an earlier incarnation (a restarted container is pid 1 again).
    pid == std::process::id() || !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// This process's holder id once [`holder_id`] made it.
static OWN_HOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn own_holder() -> &'static str {
    OWN_HOLDER.get().map(String::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exited_processes_on_this_host_are_dead() {
        let me = holder_id();
        assert!(!is_dead_local_process(&me), "this process");
        let host = host_name();
        assert!(is_dead_local_process(&format!("{host}:999999999:0badcafe")), "no such pid here");
        assert!(
            is_dead_local_process(&format!("{host}:{}:0badcafe", std::process::id())),
            "an earlier incarnation with this pid"
        );
        assert!(!is_dead_local_process(&format!("{host}:1:0badcafe")), "a live pid");
        assert!(!is_dead_local_process("elsewhere.example:999999999:0badcafe"), "another host");
        assert!(!is_dead_local_process("replica-b"), "not a holder id this binary makes");
        assert!(!is_dead_local_process(&format!("{host}:x:0badcafe")));
    }
}
