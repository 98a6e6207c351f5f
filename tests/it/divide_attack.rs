//! Hostile tests of issue 17's division of a table's due partitions between replicas (written to
//! break commit e731d5a; the first three failed on it and guard its fix): a table's due partitions. The exclusion
//! between a whole table's lease and its partitions' leases (rows expiring between an acquirer's
//! statements, the dead-process take-over path, sequential interleavings by proptest), fences over
//! several partition leases, a partition pass compacting only what it leased, dry-run and disabled
//! leases.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use signaldb_compactor::audit::RunType;
use signaldb_compactor::catalog::TableRef;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::generate::{GenerateOptions, generate};
use signaldb_compactor::job::{Job, PartitionStatus, PassRequest, TableReport, TableStatus};
use signaldb_compactor::runtime::TablePass;
use signaldb_compactor::runtime::share::owner;
use signaldb_compactor::service::Context;
use signaldb_compactor::service::leases::{Acquired, Lease, Leases, fence_all, partition_key};
use tokio_util::sync::CancellationToken;

use crate::support::{Postgres, SIGNALDB, context, fixed_end, group, small_options};

/// One `traces` table: `hours` hours of `files` small files each (the last hour still open).
async fn table_with(
    dir: &Path,
    hours: u32,
    files: usize,
    tweak: impl FnOnce(&mut signaldb_compactor::config::Config),
) -> (Context, TableRef) {
    let opts = GenerateOptions {
        tenants: 1,
        datasets: 1,
        hours,
        files_per_hour: files,
        rows_per_file: 10,
        tables: vec!["traces".into()],
        end: fixed_end(),
        ..small_options(dir)
    };
    generate(&opts).await.expect("generate succeeds");
    let ctx = context(dir, fixed_end() + TimeDelta::minutes(5), tweak).await;
    let t = ctx.discover().await.unwrap().into_iter().next().expect("one table");
    (ctx, t)
}

async fn one_table(dir: &Path) -> (Context, TableRef) {
    table_with(dir, 2, 2, |_| {}).await
}

fn leases(pool: &sqlx::AnyPool, postgres: bool, holder: &str) -> Leases {
    Leases::new(pool.clone(), postgres, holder.into(), Duration::from_secs(60))
}

fn held(a: Option<Acquired>) -> Lease {
    match a {
        Some(Acquired::Held(lease)) => lease,
        Some(Acquired::Busy { holder }) => panic!("busy: held by {holder}"),
        None => panic!("leases disabled"),
    }
}

async fn rows(pool: &sqlx::AnyPool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT partition_id, holder_id FROM compactor_leases ORDER BY partition_id, holder_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// What a holder's renewal or commit does: extends its row if it still names the holder.
async fn fences(lease: &Lease, pool: &sqlx::AnyPool) -> bool {
    let mut conn = pool.acquire().await.unwrap();
    lease.fence().fence(&mut conn).await.unwrap()
}

fn host() -> String {
    signaldb_compactor::runtime::leases::local_host_key().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Claim 1: a whole-table lease and a partition lease never both held by different live holders.
// ---------------------------------------------------------------------------------------------

/// Replica W holds the whole table; its renewals stall (a paused process, a starved runtime) so its
/// row reaches its expiry *while* replica P acquires a partition: after P's clear of expired
/// whole-table rows (W's row still live, kept) and before P's look for one (W's row now expired,
/// ignored by a look that counted live rows only). P held the partition while W's row was still there,
/// so when W woke its renewal (or the fence in its commit transaction) extended it: both kinds held by
/// two live holders. The look now counts every row the clear left: P backs off.
/// A SQLite trigger moves W's expiry at P's write: the same as time passing between P's statements.
#[tokio::test]
async fn a_whole_row_expiring_between_clear_and_look_is_never_revived_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, t) = one_table(dir.path()).await;
    let pool = ctx.catalog.pool().clone();
    let (w, p) = (leases(&pool, false, "replica-w"), leases(&pool, false, "replica-p"));
    let whole = held(w.acquire(&t).await.unwrap());
    sqlx::query(
        "CREATE TRIGGER expire_whole BEFORE INSERT ON compactor_leases WHEN NEW.partition_id <> '*' \
         BEGIN UPDATE compactor_leases SET expires_at = 0 WHERE partition_id = '*'; END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let part = p.acquire_partition(&t, "hour=1").await.unwrap();
    sqlx::query("DROP TRIGGER expire_whole").execute(&pool).await.unwrap();
    let part_held = matches!(part, Some(Acquired::Held(_)));
    let whole_fences = fences(&whole, &pool).await;
    assert!(
        !(part_held && whole_fences),
        "replica-p holds a partition lease and replica-w's whole-table fence still succeeds: rows {:?}",
        rows(&pool).await
    );
}

/// The mirror: P's partition row reaches its expiry while W acquires the whole table.
#[tokio::test]
async fn a_partition_row_expiring_between_clear_and_look_is_never_revived_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, t) = one_table(dir.path()).await;
    let pool = ctx.catalog.pool().clone();
    let (w, p) = (leases(&pool, false, "replica-w"), leases(&pool, false, "replica-p"));
    let part = held(p.acquire_partition(&t, "hour=1").await.unwrap());
    sqlx::query(
        "CREATE TRIGGER expire_parts BEFORE INSERT ON compactor_leases WHEN NEW.partition_id = '*' \
         BEGIN UPDATE compactor_leases SET expires_at = 0 WHERE partition_id <> '*'; END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let whole = w.acquire(&t).await.unwrap();
    sqlx::query("DROP TRIGGER expire_parts").execute(&pool).await.unwrap();
    let whole_held = matches!(whole, Some(Acquired::Held(_)));
    let part_fences = fences(&part, &pool).await;
    assert!(
        !(whole_held && part_fences),
        "replica-w holds the whole table and replica-p's partition fence still succeeds: rows {:?}",
        rows(&pool).await
    );
}

/// The same on PostgreSQL with the real clock: W's row has 300 ms left (its renewals stalled), P's
/// write takes 600 ms (a slow statement: a trigger sleeps). No simulated time jump.
#[tokio::test]
async fn a_whole_row_expiring_during_a_slow_partition_acquire_on_postgresql() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::support::postgres_context(&pg, dir.path(), "divide_attack").await;
    let t = ctx.discover().await.unwrap().into_iter().next().unwrap();
    let pool = ctx.catalog.pool().clone();
    let (w, p) = (leases(&pool, true, "replica-w"), leases(&pool, true, "replica-p"));
    let whole = held(w.acquire(&t).await.unwrap());
    for statement in [
        "CREATE FUNCTION slow_insert() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.6); RETURN NEW; END $$ \
         LANGUAGE plpgsql",
        "CREATE TRIGGER slow_insert BEFORE INSERT ON compactor_leases FOR EACH ROW \
         WHEN (NEW.partition_id <> '*') EXECUTE FUNCTION slow_insert()",
        "UPDATE compactor_leases SET expires_at = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) + 300 \
         WHERE partition_id = '*'",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let part = p.acquire_partition(&t, "hour=1").await.unwrap();
    sqlx::query("DROP TRIGGER slow_insert ON compactor_leases").execute(&pool).await.unwrap();
    let part_held = matches!(part, Some(Acquired::Held(_)));
    let whole_fences = fences(&whole, &pool).await;
    assert!(
        !(part_held && whole_fences),
        "PostgreSQL: replica-p holds a partition and replica-w's whole-table fence still succeeds: rows {:?}",
        rows(&pool).await
    );
}

/// The take-over of an exited local process's row is still followed by the look for the other kind,
/// both ways; the taken-over row is given back (deleted), nothing of the taker left behind.
#[tokio::test]
async fn take_over_of_a_dead_process_row_still_checks_the_other_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, t) = one_table(dir.path()).await;
    let pool = ctx.catalog.pool().clone();
    let dead = format!("{}:999999999:0badcafe", host());
    let insert = |key: String, holder: String| {
        let (pool, t) = (pool.clone(), t.clone());
        async move {
            sqlx::query(
                "INSERT INTO compactor_leases (tenant_id, dataset_id, table_name, partition_id, holder_id, \
                 acquired_at, expires_at, renewed_at) VALUES ($1, $2, $3, $4, $5, 0, 9000000000000, 0)",
            )
            .bind(&t.tenant)
            .bind(&t.dataset)
            .bind(&t.table)
            .bind(key)
            .bind(holder)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let (w, p) = (leases(&pool, false, "replica-w"), leases(&pool, false, "replica-p"));

    // A dead process's unexpired partition row; a live whole-table holder.
    let whole = held(w.acquire(&t).await.unwrap());
    insert(partition_key("hour=1"), dead.clone()).await;
    match p.acquire_partition(&t, "hour=1").await.unwrap() {
        Some(Acquired::Busy { holder }) => assert_eq!(holder, "replica-w"),
        Some(Acquired::Held(_)) => {
            panic!("took over a dead process's partition row while replica-w holds the table")
        }
        None => unreachable!(),
    }
    assert_eq!(rows(&pool).await, vec![("*".into(), "replica-w".into())]);
    whole.release().await;

    // A dead process's unexpired whole-table row; a live partition holder.
    let part = held(p.acquire_partition(&t, "hour=1").await.unwrap());
    insert("*".into(), dead.clone()).await;
    match w.acquire(&t).await.unwrap() {
        Some(Acquired::Busy { holder }) => assert_eq!(holder, "replica-p"),
        Some(Acquired::Held(_)) => {
            panic!("took over a dead process's table row while replica-p holds a partition")
        }
        None => unreachable!(),
    }
    assert_eq!(rows(&pool).await, vec![(partition_key("hour=1"), "replica-p".into())]);
    // A dead process's unexpired rows of the other kind do not block a live one.
    insert("*".into(), dead.clone()).await;
    let other = held(p.acquire_partition(&t, "hour=2").await.unwrap());
    assert!(fences(&part, &pool).await && fences(&other, &pool).await);
    part.release().await;
    other.release().await;
}

/// Sequential interleavings of three holders (two partition keys and the whole table), with rows
/// expiring between operations (a stalled holder) and holders renewing/fencing: after every step, no
/// two holders whose fences succeed hold different kinds, and two holders never hold the same key.
mod sequential {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Acquire(usize, usize),
        Release(usize, usize),
        Expire(usize, usize),
        Fence(usize, usize),
    }

    const KEYS: [&str; 3] = ["*", "hour=1", "hour=2"];

    fn op() -> impl Strategy<Value = Op> {
        (0..4usize, 0..3usize, 0..3usize).prop_map(|(k, h, key)| match k {
            0 => Op::Acquire(h, key),
            1 => Op::Release(h, key),
            2 => Op::Expire(h, key),
            _ => Op::Fence(h, key),
        })
    }

    async fn run(pool: sqlx::AnyPool, t: TableRef, ops: Vec<Op>) -> Result<(), String> {
        sqlx::query("DELETE FROM compactor_leases").execute(&pool).await.unwrap();
        let holders: Vec<Leases> = (0..3).map(|i| leases(&pool, false, &format!("replica-{i}"))).collect();
        let mut held: std::collections::BTreeMap<(usize, usize), Lease> = Default::default();
        for op in ops {
            match op {
                Op::Acquire(h, k) => {
                    if held.contains_key(&(h, k)) {
                        continue; // one task per holder and table (the in-process lock)
                    }
                    let a = if k == 0 {
                        holders[h].acquire(&t).await
                    } else {
                        holders[h].acquire_partition(&t, KEYS[k]).await
                    };
                    if let Some(Acquired::Held(l)) = a.unwrap() {
                        held.insert((h, k), l);
                    }
                }
                Op::Release(h, k) => {
                    if let Some(l) = held.remove(&(h, k)) {
                        l.release().await;
                    }
                }
                Op::Expire(h, k) => {
                    let key = if k == 0 { "*".to_string() } else { partition_key(KEYS[k]) };
                    sqlx::query("UPDATE compactor_leases SET expires_at = 0 WHERE partition_id = $1 AND holder_id = $2")
                        .bind(key)
                        .bind(format!("replica-{h}"))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                Op::Fence(h, k) => {
                    if let Some(l) = held.get(&(h, k))
                        && !fences(l, &pool).await
                    {
                        held.remove(&(h, k));
                    }
                }
            }
            // Every lease still believed held, fenced now (what its renewal would do): those that
            // fence are held.
            let mut live = Vec::new();
            for (&(h, k), l) in &held {
                if fences(l, &pool).await {
                    live.push((h, k));
                }
            }
            for &(h1, k1) in &live {
                for &(h2, k2) in &live {
                    if h1 != h2 && ((k1 == 0) != (k2 == 0) || k1 == k2) {
                        return Err(format!(
                            "{h1}:{} and {h2}:{} both held; rows {:?}",
                            KEYS[k1],
                            KEYS[k2],
                            rows(&pool).await
                        ));
                    }
                }
            }
            held.retain(|hk, _| live.contains(hk));
        }
        for (_, l) in held {
            l.release().await;
        }
        Ok(())
    }

    #[test]
    fn sequential_interleavings_never_hold_both_kinds() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (ctx, t) = rt.block_on(one_table(dir.path()));
        let pool = ctx.catalog.pool().clone();
        let config = ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() };
        proptest!(config, |(ops in proptest::collection::vec(op(), 1..30))| {
            let result = rt.block_on(run(pool.clone(), t.clone(), ops));
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Claim 2: commits under partition leases are fenced by all of them; empty fails closed.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fence_all_fails_closed_and_on_any_lost_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, t) = one_table(dir.path()).await;
    let pool = ctx.catalog.pool().clone();
    let mut conn = pool.acquire().await.unwrap();
    let empty = fence_all(&[]);
    assert!(empty.is_lost(), "an empty set is lost");
    assert!(!empty.fence(&mut conn).await.unwrap(), "an empty set fences nothing");

    let p = leases(&pool, false, "replica-p");
    let (a, b) = (
        held(p.acquire_partition(&t, "hour=1").await.unwrap()),
        held(p.acquire_partition(&t, "hour=2").await.unwrap()),
    );
    let both = fence_all(&[a, b]);
    assert!(!both.is_lost() && both.fence(&mut conn).await.unwrap());
    // The second partition's row taken over by another holder (after it expired).
    sqlx::query("UPDATE compactor_leases SET holder_id = 'replica-q' WHERE partition_id = $1")
        .bind(partition_key("hour=2"))
        .execute(&pool)
        .await
        .unwrap();
    assert!(!both.fence(&mut conn).await.unwrap(), "one partition lost: the commit must not land");
    assert!(both.is_lost());
    // The first partition's row deleted (as expired, by a whole-table taker): lost too.
    let c = held(p.acquire_partition(&t, "hour=3").await.unwrap());
    let one = fence_all(std::slice::from_ref(&c));
    sqlx::query("DELETE FROM compactor_leases WHERE partition_id = $1")
        .bind(partition_key("hour=3"))
        .execute(&pool)
        .await
        .unwrap();
    assert!(!one.fence(&mut conn).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Claim 3: a partition pass compacts only the partitions it leased.
// ---------------------------------------------------------------------------------------------

/// Two members; the table is divided. One due partition falling to replica-a is leased by a third
/// holder: replica-a's pass compacts its other partitions, never that one nor any of replica-b's,
/// and leaves no lease row behind.
#[tokio::test]
async fn a_partition_pass_compacts_only_what_it_leased() {
    let dir = tempfile::tempdir().unwrap();
    let (setup, t) = table_with(dir.path(), 6, 3, |_| {}).await;
    let name = t.qualified();
    let before = crate::support::files_per_partition(&setup, &name).await;
    let mut a = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |c| {
        c.compaction.min_input_files = 2;
        c.compaction.max_bytes_per_pass = Some(u64::MAX / 2);
    })
    .await;
    let pool = a.catalog.pool().clone();
    a.leases = leases(&pool, false, "replica-a");
    let b = leases(&pool, false, "replica-b");
    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap() && b.beat(&group(SIGNALDB)).await.unwrap());
    assert!(b.mark_divided(&group(SIGNALDB), &t, Duration::from_secs(600)).await.unwrap());
    let members = vec!["replica-a".to_string(), "replica-b".to_string()];
    let closed: Vec<String> = before.keys().take(before.len() - 1).cloned().collect();
    let mine: Vec<&String> =
        closed.iter().filter(|l| owner(&members, &format!("{name}/{l}")) == Some("replica-a")).collect();
    assert!(mine.len() >= 2, "the fixture gives replica-a two partitions: {mine:?} of {closed:?}");
    let blocked = mine[0].clone();
    let z = leases(&pool, false, "replica-z");
    let zl = held(z.acquire_partition(&t, &blocked).await.unwrap());

    let job = CompactionJob::new(&a);
    let pass = job.run_once(&PassRequest::scheduled(Mode::Execute), &CancellationToken::new()).await.unwrap();
    let after = crate::support::files_per_partition(&a, &name).await;
    let done: Vec<&String> = pass
        .tables
        .iter()
        .flat_map(|r| r.partition_reports.iter())
        .filter(|p| p.status == PartitionStatus::Succeeded)
        .map(|p| &p.partition)
        .collect();
    assert_eq!(after[&blocked], before[&blocked], "the partition leased elsewhere is untouched");
    for l in &closed {
        let expected = if mine.contains(&l) && *l != blocked { 1 } else { before[l] };
        assert_eq!(after[l], expected, "partition {l}: {done:?}");
    }
    assert_eq!(
        rows(&pool).await,
        vec![(partition_key(&blocked), "replica-z".into())],
        "only replica-z's row left"
    );
    zl.release().await;
}

// ---------------------------------------------------------------------------------------------
// Claim 4: dry-run writes no lease and no mark; disabled leases behave as before.
// ---------------------------------------------------------------------------------------------

/// A log of every row written to compactor_leases / compactor_divided (SQLite triggers).
async fn log_writes(pool: &sqlx::AnyPool) {
    for s in [
        "CREATE TABLE write_log (what TEXT, key TEXT, holder TEXT)",
        "CREATE TRIGGER log_lease AFTER INSERT ON compactor_leases BEGIN \
         INSERT INTO write_log VALUES ('lease', NEW.partition_id, NEW.holder_id); END",
        "CREATE TRIGGER log_lease_u AFTER UPDATE ON compactor_leases BEGIN \
         INSERT INTO write_log VALUES ('lease-update', NEW.partition_id, NEW.holder_id); END",
        "CREATE TRIGGER log_mark AFTER INSERT ON compactor_divided BEGIN \
         INSERT INTO write_log VALUES ('mark', NEW.table_name, NEW.marked_by); END",
        "CREATE TRIGGER log_mark_u AFTER UPDATE ON compactor_divided BEGIN \
         INSERT INTO write_log VALUES ('mark-update', NEW.table_name, NEW.marked_by); END",
    ] {
        sqlx::query(s).execute(pool).await.unwrap();
    }
}

async fn writes(pool: &sqlx::AnyPool) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT what, key, holder FROM write_log").fetch_all(pool).await.unwrap()
}

/// A scheduled dry-run pass of a replica among two, on a table that owes more than a pass and is
/// already marked divided: no lease row, no mark written, nothing compacted.
#[tokio::test]
async fn a_dry_run_pass_writes_no_lease_and_no_mark() {
    let dir = tempfile::tempdir().unwrap();
    let (_setup, t) = table_with(dir.path(), 4, 3, |_| {}).await;
    let mut a = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |c| {
        c.compaction.min_input_files = 2;
        c.compaction.max_bytes_per_pass = Some(1);
    })
    .await;
    let pool = a.catalog.pool().clone();
    a.leases = leases(&pool, false, "replica-a");
    let b = leases(&pool, false, "replica-b");
    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap() && b.beat(&group(SIGNALDB)).await.unwrap());
    log_writes(&pool).await;
    let job = CompactionJob::new(&a);
    let cancel = CancellationToken::new();
    job.run_once(&PassRequest::scheduled(Mode::DryRun), &cancel).await.unwrap();
    assert!(b.mark_divided(&group(SIGNALDB), &t, Duration::from_secs(600)).await.unwrap());
    sqlx::query("DELETE FROM write_log").execute(&pool).await.unwrap();
    let pass = job.run_once(&PassRequest::scheduled(Mode::DryRun), &cancel).await.unwrap();
    assert!(pass.tables.iter().all(|r| !matches!(r.status, TableStatus::Failed { .. })), "{:?}", pass.tables);
    assert_eq!(writes(&pool).await, vec![], "a dry-run pass wrote lease or mark rows");
}

/// `TablePass::run_partitions` in dry-run (latent: run_once never calls it for a dry run today):
/// `run` takes no lease in a dry run; `run_partitions` should not either.
#[tokio::test]
async fn run_partitions_takes_no_lease_in_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, t) = one_table(dir.path()).await;
    let pool = ctx.catalog.pool().clone();
    ctx.leases = leases(&pool, false, "replica-d");
    log_writes(&pool).await;
    let pass = TablePass::new(&ctx);
    let t2 = t.clone();
    pass.run(RunType::Compaction, Mode::DryRun, &t, |_| async move {
        TableReport::new(&t2, TableStatus::Unchanged)
    })
    .await
    .unwrap();
    assert_eq!(writes(&pool).await, vec![], "run: no lease in a dry run");
    let t2 = t.clone();
    pass.run_partitions(RunType::Compaction, Mode::DryRun, &t, &["hour=1".into()], |_, _| async move {
        TableReport::new(&t2, TableStatus::Unchanged)
    })
    .await
    .unwrap();
    assert_eq!(writes(&pool).await, vec![], "run_partitions: a lease row written in a dry run");
}

/// Disabled leases (read-only): no share, no marks, a partition run gets every partition unfenced.
#[tokio::test]
async fn disabled_leases_divide_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, t) = one_table(dir.path()).await;
    let pool = ctx.catalog.pool().clone();
    ctx.leases = Leases::disabled();
    assert!(ctx.leases.acquire_partition(&t, "hour=1").await.unwrap().is_none());
    assert!(!ctx.leases.mark_divided(&group(SIGNALDB), &t, Duration::from_secs(60)).await.unwrap());
    assert!(ctx.leases.divided(&group(SIGNALDB)).await.unwrap().is_empty());
    assert!(ctx.leases.share(&group(SIGNALDB)).await.unwrap().is_none());
    log_writes(&pool).await;
    let pass = TablePass::new(&ctx);
    let got = Arc::new(std::sync::Mutex::new(None));
    let (t2, got2) = (t.clone(), got.clone());
    let wanted = vec!["hour=1".to_string(), "hour=2".to_string()];
    pass.run_partitions(RunType::Compaction, Mode::Execute, &t, &wanted, |claim, labels| async move {
        let unleased = !claim.fence().is_lost();
        *got2.lock().unwrap() = Some((labels, unleased));
        TableReport::new(&t2, TableStatus::Unchanged)
    })
    .await
    .unwrap();
    assert_eq!(got.lock().unwrap().clone(), Some((wanted, true)));
    assert_eq!(writes(&pool).await, vec![]);
}
