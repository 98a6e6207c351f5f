//! Replicas dividing one table's due partitions (issue 17): partition leases against the whole
//! table's lease (sequentially, in races on SQLite and on PostgreSQL), and two replicas compacting a
//! table that owes more than a pass, each its own partitions, no row lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use signaldb_compactor::catalog::TableRef;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::generate::{GenerateOptions, generate};
use signaldb_compactor::job::{Job, PartitionStatus, PassRequest};
use signaldb_compactor::runtime::share::owner;
use signaldb_compactor::service::Context;
use signaldb_compactor::service::leases::{Acquired, Leases, partition_key};
use tokio_util::sync::CancellationToken;

use crate::support::{Postgres, SIGNALDB, context, fixed_end, group, pyiceberg, small_options};

/// One `traces` table with five closed hours of three small files each (and the open hour).
async fn one_table(dir: &Path) -> (Context, TableRef) {
    let opts = GenerateOptions {
        tenants: 1,
        datasets: 1,
        hours: 6,
        files_per_hour: 3,
        rows_per_file: 20,
        tables: vec!["traces".into()],
        end: fixed_end(),
        ..small_options(dir)
    };
    generate(&opts).await.expect("generate succeeds");
    let ctx = replica(dir, "setup", None).await;
    let t = ctx.discover().await.unwrap().into_iter().next().expect("one table");
    (ctx, t)
}

/// A replica whose leases name it `holder`; `max_bytes_per_pass` as given (validation's 1 MiB floor
/// is bypassed: the test's files are a few KB).
async fn replica(dir: &Path, holder: &str, max_bytes_per_pass: Option<u64>) -> Context {
    let mut ctx = context(dir, fixed_end() + TimeDelta::minutes(5), move |c| {
        c.compaction.min_input_files = 2;
        c.compaction.max_bytes_per_pass = max_bytes_per_pass;
    })
    .await;
    // An hour: a replica's row must outlive several passes however slowly they run (no beat renews it).
    ctx.leases = Leases::new(ctx.catalog.pool().clone(), false, holder.into(), Duration::from_secs(3600));
    ctx
}

fn held(a: Option<Acquired>) -> signaldb_compactor::service::leases::Lease {
    match a {
        Some(Acquired::Held(lease)) => lease,
        Some(Acquired::Busy { holder }) => panic!("busy: held by {holder}"),
        None => panic!("leases disabled"),
    }
}

fn busy(a: Option<Acquired>) -> String {
    match a {
        Some(Acquired::Busy { holder }) => holder,
        Some(Acquired::Held(_)) => panic!("held, expected busy"),
        None => panic!("leases disabled"),
    }
}

async fn lease_rows(ctx: &Context) -> Vec<(String, String)> {
    sqlx::query_as("SELECT partition_id, holder_id FROM compactor_leases ORDER BY partition_id, holder_id")
        .fetch_all(ctx.catalog.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn partition_leases_coexist_and_never_with_the_whole_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, t) = one_table(dir.path()).await;
    let pool = ctx.catalog.pool().clone();
    let lease = |holder: &str| Leases::new(pool.clone(), false, holder.into(), Duration::from_secs(60));
    let (a, b, c) = (lease("replica-a"), lease("replica-b"), lease("replica-c"));

    let a1 = held(a.acquire_partition(&t, "hour=1").await.unwrap());
    let b2 = held(b.acquire_partition(&t, "hour=2").await.unwrap());
    assert_eq!(
        busy(b.acquire_partition(&t, "hour=1").await.unwrap()),
        "replica-a",
        "one holder per partition"
    );
    assert_eq!(busy(c.acquire(&t).await.unwrap()), "replica-a", "the whole table while partitions are held");
    assert_eq!(lease_rows(&ctx).await.len(), 2, "the refused whole-table row was given back");
    a1.release().await;
    assert_eq!(busy(c.acquire(&t).await.unwrap()), "replica-b");
    b2.release().await;
    let whole = held(c.acquire(&t).await.unwrap());
    assert_eq!(
        busy(a.acquire_partition(&t, "hour=1").await.unwrap()),
        "replica-c",
        "a partition of a held table"
    );
    assert_eq!(lease_rows(&ctx).await, vec![("*".to_string(), "replica-c".to_string())]);
    whole.release().await;

    // A whole-table row its holder stopped renewing (stalled, past its expiry) is deleted by the
    // partition's taker, so that the stalled holder's fence fails rather than extends it.
    sqlx::query(
        "INSERT INTO compactor_leases (tenant_id, dataset_id, table_name, partition_id, holder_id, \
         acquired_at, expires_at, renewed_at) VALUES ($1, $2, $3, '*', 'stalled', 0, 1, 0)",
    )
    .bind(&t.tenant)
    .bind(&t.dataset)
    .bind(&t.table)
    .execute(&pool)
    .await
    .unwrap();
    let a1 = held(a.acquire_partition(&t, "hour=1").await.unwrap());
    assert_eq!(lease_rows(&ctx).await, vec![(partition_key("hour=1"), "replica-a".to_string())]);
    a1.release().await;
    assert!(lease_rows(&ctx).await.is_empty(), "released");

    // Labels too long for the column are keyed by their digest; distinct labels stay distinct.
    let long = |c: char| format!("service={}", c.to_string().repeat(300));
    assert!(partition_key(&long('x')).len() <= 255 && partition_key(&long('x')) != partition_key(&long('y')));
    let x = held(a.acquire_partition(&t, &long('x')).await.unwrap());
    let y = held(b.acquire_partition(&t, &long('y')).await.unwrap());
    assert_eq!(busy(c.acquire_partition(&t, &long('x')).await.unwrap()), "replica-a");
    x.release().await;
    y.release().await;
}

/// Replicas racing for a table's whole lease and its partitions' leases: no instant has a whole-table
/// holder together with another holder. Counters change strictly inside the time a lease's row is held.
///
/// Every round starts all six at once from no lease held (a barrier), two of them after the whole
/// table and four after partitions, the roles rotating. Without the barrier, partition holders
/// overlapping one another can leave no free instant for a whole-table acquire in a whole race on a
/// slow machine (seen in CI: "partitions 23, whole 0"), and the race then proves nothing about
/// the whole-table side.
async fn race(pool: sqlx::AnyPool, postgres: bool, t: TableRef) {
    const REPLICAS: usize = 6;
    let whole = Arc::new(AtomicUsize::new(0));
    let parts = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let start = Arc::new(tokio::sync::Barrier::new(REPLICAS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REPLICAS {
        let leases = Leases::new(pool.clone(), postgres, format!("replica-{i}"), Duration::from_secs(60));
        let (whole, parts, taken, t, start) =
            (whole.clone(), parts.clone(), taken.clone(), t.clone(), start.clone());
        tasks.spawn(async move {
            for round in 0..25 {
                start.wait().await;
                let wants_whole = (i + round) % 3 == 0;
                let acquired = if wants_whole {
                    leases.acquire(&t).await.unwrap()
                } else {
                    leases.acquire_partition(&t, &format!("hour={}", (i + round) % 4)).await.unwrap()
                };
                let Some(Acquired::Held(lease)) = acquired else { continue };
                let (mine, other) = if wants_whole { (&whole, &parts) } else { (&parts, &whole) };
                let n = mine.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(
                    other.load(Ordering::SeqCst),
                    0,
                    "a whole-table and a partition lease held at once"
                );
                if wants_whole {
                    assert_eq!(n, 1, "two whole-table leases held at once");
                }
                taken[usize::from(wants_whole)].fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                mine.fetch_sub(1, Ordering::SeqCst);
                lease.release().await;
            }
        });
    }
    // In the order they end: a task that panicked ends first while the others wait at the barrier.
    while let Some(task) = tasks.join_next().await {
        task.expect("no task saw two kinds of lease held at once");
    }
    let (p, w) = (taken[0].load(Ordering::SeqCst), taken[1].load(Ordering::SeqCst));
    assert!(p > 0 && w > 0, "both kinds were taken during the race: partitions {p}, whole {w}");
}

#[tokio::test]
async fn partition_and_whole_table_leases_race_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, t) = one_table(dir.path()).await;
    race(ctx.catalog.pool().clone(), false, t).await;
}

#[tokio::test]
async fn partition_and_whole_table_leases_race_on_postgresql() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::support::postgres_context(&pg, dir.path(), "divide_race").await;
    let t = ctx.discover().await.unwrap().into_iter().next().unwrap();
    race(ctx.catalog.pool().clone(), true, t.clone()).await;
    // The marks of divided tables on PostgreSQL's clock.
    let leases = Leases::new(ctx.catalog.pool().clone(), true, "replica-a".into(), Duration::from_secs(60));
    assert!(leases.mark_divided(&group(SIGNALDB), &t, Duration::from_secs(60)).await.unwrap());
    assert_eq!(leases.divided(&group(SIGNALDB)).await.unwrap(), vec![t.qualified()]);
    assert!(leases.mark_divided(&group(SIGNALDB), &t, Duration::from_millis(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(leases.divided(&group(SIGNALDB)).await.unwrap().is_empty(), "an expired mark is ignored");
}

/// Two replicas, a table owing more than a pass's byte budget in five partitions: its owner marks it
/// divided, each replica compacts only the due partitions rendezvous hashing gives it (under
/// partition leases that keep the whole table's lease from anyone else meanwhile), together they
/// compact every partition exactly once, and every row is still there.
#[tokio::test]
async fn a_table_owing_more_than_a_pass_is_divided_by_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (setup, t) = one_table(dir.path()).await;
    let name = t.qualified();
    let before = pyiceberg(dir.path(), &["scan", "--table", &name]);
    let due_before = crate::support::files_per_partition(&setup, &name).await;
    // One byte: each pass starts one group (the first is always admitted) and the table owes more.
    let (a, b) =
        (replica(dir.path(), "replica-a", Some(1)).await, replica(dir.path(), "replica-b", Some(1)).await);
    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap());
    assert!(b.leases.beat(&group(SIGNALDB)).await.unwrap());
    let members = vec!["replica-a".to_string(), "replica-b".to_string()];
    // Five closed hours of three files each; the last hour (labels sort by time) is still open.
    let closed: Vec<&String> = due_before.keys().take(due_before.len().saturating_sub(1)).collect();
    assert!(closed.len() == 5 && closed.iter().all(|l| due_before[*l] == 3), "{due_before:?}");
    let expected: BTreeMap<String, &str> =
        closed.iter().map(|l| ((*l).clone(), owner(&members, &format!("{name}/{l}")).unwrap())).collect();
    assert!(
        expected.values().any(|h| *h == "replica-a") && expected.values().any(|h| *h == "replica-b"),
        "the fixture gives both replicas partitions: {expected:?}"
    );

    // The table's owner marks it and pauses at its first commit: meanwhile its partition lease keeps
    // the whole table from a third holder (retention, orphan cleanup, a whole-table compaction), and
    // the other replica, seeing the mark, compacts a partition of its own.
    let owner_of_table = owner(&members, &name).unwrap();
    let (o, n) = if owner_of_table == "replica-a" { (&a, &b) } else { (&b, &a) };
    let other = if owner_of_table == "replica-a" { "replica-b" } else { "replica-a" };
    let (hook, entered, release) = crate::support::pause_at_first_commit();
    let (job_o, job_n) = (Arc::new(CompactionJob::new(o).with_before_commit(hook)), CompactionJob::new(n));
    let cancel = CancellationToken::new();
    let poll = PassRequest::scheduled(Mode::Execute);
    let first_o = tokio::spawn({
        let (job_o, cancel, poll) = (job_o.clone(), cancel.clone(), poll.clone());
        async move { job_o.run_once(&poll, &cancel).await.unwrap() }
    });
    tokio::time::timeout(Duration::from_secs(60), entered.notified())
        .await
        .expect("the owner reaches a commit");
    let third = Leases::new(a.catalog.pool().clone(), false, "replica-c".into(), Duration::from_secs(60));
    assert_eq!(
        busy(third.acquire(&t).await.unwrap()),
        owner_of_table,
        "the whole table while a partition is held"
    );
    let marks: Vec<(String, String)> = sqlx::query_as("SELECT table_name, marked_by FROM compactor_divided")
        .fetch_all(a.catalog.pool())
        .await
        .unwrap();
    assert_eq!(marks, vec![(t.table.clone(), owner_of_table.to_string())], "the owner marked it");
    let pass_n = job_n.run_once(&poll, &cancel).await.unwrap();
    assert!(
        pass_n
            .tables
            .iter()
            .any(|r| r.partition_reports.iter().any(|p| p.status == PartitionStatus::Succeeded)),
        "the other replica compacted one of its partitions while the owner's pass ran: {:?}",
        pass_n.tables
    );
    release.notify_one();
    let pass_o = tokio::time::timeout(Duration::from_secs(120), first_o).await.unwrap().unwrap();
    let mut passes = vec![(owner_of_table, pass_o), (other, pass_n)];
    for _ in 0..6 {
        let (po, pn) = tokio::join!(job_o.run_once(&poll, &cancel), job_n.run_once(&poll, &cancel));
        passes.push((owner_of_table, po.unwrap()));
        passes.push((other, pn.unwrap()));
    }
    let mut done: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (holder, pass) in &passes {
        for report in &pass.tables {
            for p in report.partition_reports.iter().filter(|p| p.status == PartitionStatus::Succeeded) {
                done.entry(p.partition.clone()).or_default().push(holder);
            }
        }
    }
    let want: BTreeMap<String, Vec<&str>> = expected.iter().map(|(l, h)| (l.clone(), vec![*h])).collect();
    assert_eq!(done, want, "each due partition compacted once, by the replica it falls to");
    let after = crate::support::files_per_partition(&a, &name).await;
    assert!(closed.iter().all(|l| after[*l] == 1), "{after:?}");
    assert!(lease_rows(&a).await.is_empty(), "every partition lease released");
    let scanned = pyiceberg(dir.path(), &["scan", "--table", &name]);
    assert_eq!((&scanned["rows"], &scanned["checksum"]), (&before["rows"], &before["checksum"]));
}
