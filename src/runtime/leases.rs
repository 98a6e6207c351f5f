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

/// The `partition_id` of a lease on one partition, from its label (`timestamp_hour=2026-11-21-10`):
/// `p:<label>`, or `h:<sha-256 of the label>` for a label too long for the column. Never
/// [`WHOLE_TABLE`]; the same on every replica.
pub fn partition_key(label: &str) -> String {
    if label.len() <= 240 {
        format!("p:{label}")
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(label.as_bytes());
        format!("h:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
}

/// A fence over several leases of one table's work (a table's partitions): a commit goes through
/// only while every one of them is still held.
pub fn fence_all(leases: &[Lease]) -> Arc<dyn Fence> {
    Arc::new(AllOf(leases.iter().map(|l| l.state.clone()).collect()))
}

struct AllOf(Vec<Arc<LeaseState>>);

#[async_trait::async_trait]
impl Fence for AllOf {
    async fn fence(&self, conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
        // Fail closed: holding nothing fences nothing.
        if self.0.is_empty() {
            return Ok(false);
        }
        for lease in &self.0 {
            if !Fence::fence(lease.as_ref(), conn).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn is_lost(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(|l| l.is_lost())
    }
}

/// The replicas' lease table, or nothing (a read-only process writes no lease).
#[derive(Clone)]
pub struct Leases {
    inner: Option<Arc<Inner>>,
}

pub(super) struct Inner {
    pub(super) pool: AnyPool,
    /// SQL for "now" in milliseconds on the database's clock.
    pub(super) now: &'static str,
    pub(super) holder: String,
    pub(super) ttl: Duration,
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
    /// The row's `partition_id`: [`WHOLE_TABLE`], or a partition's key ([`partition_key`]).
    partition: String,
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

    pub(super) fn inner(&self) -> Option<&Arc<Inner>> {
        self.inner.as_ref()
    }

    /// Takes the lease of a whole table, or reports who holds it (the table, or one of its
    /// partitions). `None`: leases are disabled.
    pub async fn acquire(&self, t: &TableRef) -> Result<Option<Acquired>, sqlx::Error> {
        self.acquire_key(t, WHOLE_TABLE).await
    }

    /// Takes the lease of one partition of a table (`partition`: its label), or reports who holds it
    /// (the partition, or the whole table). Partition leases of one table coexist with each other;
    /// none coexists with the whole table's. `None`: leases are disabled.
    pub async fn acquire_partition(
        &self,
        t: &TableRef,
        partition: &str,
    ) -> Result<Option<Acquired>, sqlx::Error> {
        self.acquire_key(t, &partition_key(partition)).await
    }

    /// Takes the row `(t, key)`, then makes sure no row of the other kind on the same table names
    /// another holder (a whole table's against any partition's, a partition's against the whole
    /// table's), giving its own row back if one does. Each side writes its row before it looks for
    /// the other's, and each statement commits on its own: of two that race, the later look sees the
    /// earlier row, so at most one kind is ever held (both may back off; the next pass retries).
    /// Expired rows of the other kind are deleted first, so that their stalled holder's fence fails
    /// rather than extends them; one that expires after that delete still counts as held.
    async fn acquire_key(&self, t: &TableRef, key: &str) -> Result<Option<Acquired>, sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(None) };
        let started = Instant::now();
        self.clear_expired_of_other_kind(t, key).await?;
        if !self.take(t, key).await? {
            let holder = self.holder_of(t, key).await?.unwrap_or_else(|| "unknown".into());
            if !is_dead_local_process(&holder) || !self.take_over(t, key, &holder).await? {
                return Ok(Some(Acquired::Busy { holder }));
            }
            info!(table = %t, partition = key, dead_holder = holder, "took over the lease of a process on this host that has exited");
        }
        let state = Arc::new(LeaseState {
            inner: inner.clone(),
            tenant: t.tenant.clone(),
            dataset: t.dataset.clone(),
            table: t.table.clone(),
            partition: key.to_string(),
            lost: AtomicBool::new(false),
            renewed: std::sync::Mutex::new(started),
        });
        if let Some(holder) = self.other_kind_holder(t, key).await? {
            debug!(table = %t, partition = key, holder, "the other kind of lease on this table is held; giving ours back");
            state.delete_row().await;
            return Ok(Some(Acquired::Busy { holder }));
        }
        debug!(table = %t, partition = key, holder = inner.holder, "lease acquired");
        let renewer = tokio::spawn(renew_until_lost(state.clone()));
        Ok(Some(Acquired::Held(Lease { state, renewer })))
    }

    /// The one statement that takes a free, expired or already own row.
    async fn take(&self, t: &TableRef, key: &str) -> Result<bool, sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(false) };
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
        let taken = sqlx::query(&statement)
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(key)
            .bind(&inner.holder)
            .bind(ttl_ms)
            .execute(&inner.pool)
            .await?
            .rows_affected();
        Ok(taken > 0)
    }

    async fn holder_of(&self, t: &TableRef, key: &str) -> Result<Option<String>, sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(None) };
        sqlx::query_scalar(
            "SELECT holder_id FROM compactor_leases \
             WHERE tenant_id = $1 AND dataset_id = $2 AND table_name = $3 AND partition_id = $4",
        )
        .bind(&t.tenant)
        .bind(&t.dataset)
        .bind(&t.table)
        .bind(key)
        .fetch_optional(&inner.pool)
        .await
    }

    /// SQL matching the rows of the other kind than `key` (`$4` is `'*'`).
    fn other_kind(key: &str) -> &'static str {
        if key == WHOLE_TABLE { "partition_id <> $4" } else { "partition_id = $4" }
    }

    async fn clear_expired_of_other_kind(&self, t: &TableRef, key: &str) -> Result<(), sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(()) };
        let statement = format!(
            "DELETE FROM compactor_leases WHERE tenant_id = $1 AND dataset_id = $2 AND table_name = $3 \
             AND {} AND expires_at < {} AND holder_id <> $5",
            Self::other_kind(key),
            inner.now
        );
        sqlx::query(&statement)
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(WHOLE_TABLE)
            .bind(&inner.holder)
            .execute(&inner.pool)
            .await?;
        Ok(())
    }

    /// Another holder of a lease of the other kind on `t` (an exited process on this host counts for
    /// none). Expired rows count too: the clear before the take deleted those expired then, so one
    /// still here expired since, and its stalled holder would revive it at its next renewal or fence
    /// (`extend` renews a row that still names it); the next acquire's clear removes it.
    async fn other_kind_holder(&self, t: &TableRef, key: &str) -> Result<Option<String>, sqlx::Error> {
        let Some(inner) = &self.inner else { return Ok(None) };
        let statement = format!(
            "SELECT holder_id FROM compactor_leases WHERE tenant_id = $1 AND dataset_id = $2 \
             AND table_name = $3 AND {} AND holder_id <> $5",
            Self::other_kind(key)
        );
        let holders: Vec<String> = sqlx::query_scalar(&statement)
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(WHOLE_TABLE)
            .bind(&inner.holder)
            .fetch_all(&inner.pool)
            .await?;
        Ok(holders.into_iter().find(|h| !is_dead_local_process(h)))
    }
}

impl Leases {
    /// Takes the lease from `dead` (a holder known to have exited) if the row still names it.
    async fn take_over(&self, t: &TableRef, key: &str, dead: &str) -> Result<bool, sqlx::Error> {
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
            .bind(key)
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
        self.state.delete_row().await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl LeaseState {
    /// Deletes the row if it is still ours.
    async fn delete_row(&self) {
        let released = sqlx::query(
            "DELETE FROM compactor_leases WHERE tenant_id = $1 AND dataset_id = $2 AND table_name = $3 \
             AND partition_id = $4 AND holder_id = $5",
        )
        .bind(&self.tenant)
        .bind(&self.dataset)
        .bind(&self.table)
        .bind(&self.partition)
        .bind(&self.inner.holder)
        .execute(&self.inner.pool)
        .await;
        if let Err(e) = released {
            warn!(table = self.table, partition = self.partition, error = %e, "could not release a lease; it expires by itself");
        }
    }

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
                partition = self.partition,
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
            .bind(&self.partition)
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

/// SQL for the database clock's "now" in milliseconds since the epoch, one value per statement.
///
/// PostgreSQL's `statement_timestamp()`, not `clock_timestamp()`: the latter is read again at each
/// call, so one statement's `acquired_at` and `expires_at` could be a millisecond further apart than
/// the ttl (seen in CI). A statement's own start also advances between the statements of one
/// transaction, which the fence inside the commit transaction needs (`now()` would not). SQLite's
/// `'now'` is already fixed for a statement.
pub fn now_ms_sql(postgres: bool) -> &'static str {
    if postgres {
        "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)"
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

/// The part of a holder id that says where its pid means something: the host name and this process's
/// pid namespace (`myhost@4026531836`). Two containers on one node with host networking share the host
/// name but not their pids: without the namespace each would take the other (pid 1 both) for an
/// exited earlier incarnation. `None` when the namespace cannot be read: then no holder is judged
/// exited (their leases expire instead).
pub fn local_host_key() -> Option<String> {
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let inode: String = ns.to_string_lossy().chars().filter(char::is_ascii_digit).collect();
    (!inode.is_empty()).then(|| format!("{}@{inode}", host_name()))
}

/// This process's holder id: `host@pid-namespace:pid:random` ([`local_host_key`]; the suffix keeps it
/// unique across restarts).
pub fn holder_id() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let id = OWN_HOLDER
        .get_or_init(|| {
            let host = local_host_key().unwrap_or_else(host_name);
            format!("{host}:{}:{}", std::process::id(), &suffix[..8])
        })
        .clone();
    info!(holder = id, "replica holder id");
    id
}

/// Whether `holder` names a process of this host and pid namespace that no longer exists (killed,
/// crashed): its leases need not wait for their expiry, and its `running` audit rows are dead.
/// Conservative: another host or pid namespace (another container, even on this node), an id of an
/// older version (no namespace), an unparsable id, or any process with that pid (even a reused one)
/// counts as alive.
pub fn is_dead_local_process(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(_suffix), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    if local_host_key().is_none_or(|local| host != local) || holder == own_holder() {
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
        let host = local_host_key().expect("this test runs where /proc/self/ns/pid is readable");
        let name = host_name();
        assert!(
            !is_dead_local_process(&format!("{name}@1:999999999:0badcafe")),
            "this host name in another pid namespace (another container on this node)"
        );
        assert!(!is_dead_local_process(&format!("{name}:999999999:0badcafe")), "an id without a namespace");
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
