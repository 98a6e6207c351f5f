//! Hostile tests of the replicas' division of the compaction survey (runtime::share): rows the
//! replicas disagree about, rows no live process renews, replicas of another catalog on the same
//! database, a busy replica, and the new statements on PostgreSQL.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{Job, PartitionStatus, PassReport, PassRequest};
use signaldb_compactor::runtime::share::{Share, owner};
use signaldb_compactor::service::Context;
use signaldb_compactor::service::leases::Leases;
use tokio_util::sync::CancellationToken;

use crate::support::generate_survey_catalog as generate;
use crate::support::{Postgres, SIGNALDB, context, fixed_end, group};

/// A replica on `dir`'s catalog named `catalog` whose leases and rows name it `holder`.
async fn replica(dir: &Path, holder: &str, catalog: Option<&str>) -> Context {
    let catalog = catalog.map(str::to_string);
    let mut ctx = context(dir, fixed_end() + TimeDelta::minutes(5), move |c| {
        if let Some(name) = catalog {
            c.catalog.name = name;
        }
        c.compaction.min_input_files = 2;
    })
    .await;
    // An hour: a replica's row must outlive several passes however slowly they run (no beat renews it).
    ctx.leases = Leases::new(ctx.catalog.pool().clone(), false, holder.into(), Duration::from_secs(3600));
    ctx
}

fn surveyed(report: &PassReport) -> BTreeSet<String> {
    report.tables.iter().map(|t| t.table.clone()).collect()
}

async fn all_tables(ctx: &Context) -> BTreeSet<String> {
    ctx.discover().await.unwrap().iter().map(|t| t.qualified()).collect()
}

async fn rows(ctx: &Context) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT holder_id FROM compactor_replicas WHERE job = 'compaction@signaldb' ORDER BY holder_id",
    )
    .fetch_all(ctx.catalog.pool())
    .await
    .unwrap()
}

fn host() -> String {
    signaldb_compactor::runtime::leases::local_host_key().unwrap()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A process on this host that exited without leaving (OOM-killed, a container restarted in its pod,
/// which keeps the pod's host name) leaves a row. A replica on this host drops it from its view at
/// once, but one on another host cannot tell and counts it until it expires: the tables the dead row
/// wins, whose runner-up is the remote replica, are surveyed by nobody for `lease_ttl` (the docs
/// promise "at once for an exited process on the same host").
#[tokio::test]
async fn a_dead_local_processs_share_is_taken_over_at_once_by_replicas_on_other_hosts() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path()).await;
    let a = replica(dir.path(), "replica-a", None).await;
    let all = all_tables(&a).await;
    let dead = format!("{}:999999999:0badcafe", host());
    // A remote holder id for which the dead row's share has a part nobody surveys without a fix.
    let remote = (0..1000)
        .map(|i| format!("remote{i}.example:4242:0badcafe"))
        .find(|r| {
            let full = ids(&["replica-a", &dead, r]);
            let local_view = ids(&["replica-a", r]);
            all.iter()
                .any(|t| owner(&full, t) == Some(dead.as_str()) && owner(&local_view, t) == Some(r.as_str()))
        })
        .unwrap();
    let pool = a.catalog.pool().clone();
    for holder in [&dead, &remote] {
        assert!(
            Leases::new(pool.clone(), false, holder.clone(), Duration::from_secs(60))
                .beat(&group(SIGNALDB))
                .await
                .unwrap()
        );
    }
    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap());

    let pass_a = CompactionJob::new(&a)
        .run_once(&PassRequest::scheduled(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    // The remote replica sees every unexpired row (no process of its host is dead).
    let remote_share = Share::of(&remote, rows(&a).await).unwrap();
    let covered: BTreeSet<String> =
        surveyed(&pass_a).into_iter().chain(all.iter().filter(|t| remote_share.owns(t)).cloned()).collect();
    let uncovered: Vec<&String> = all.difference(&covered).collect();
    assert!(uncovered.is_empty(), "surveyed by no live replica until the dead row expires: {uncovered:?}");
}

/// A row nobody renews any more, with an expiry far in the future (written by hand, or by a replica
/// with a longer `lease_ttl` that was killed): the replicas must not leave its share unsurveyed past
/// their own ttl. Renewed every ttl / 3, a live replica's `seen_at` is never older than the ttl.
#[tokio::test]
async fn a_row_not_renewed_for_a_ttl_keeps_no_share_whatever_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path()).await;
    let a = replica(dir.path(), "replica-a", None).await;
    let b = replica(dir.path(), "replica-b", None).await;
    let all = all_tables(&a).await;
    let ghost = (0..1000)
        .map(|i| format!("ghost-{i}"))
        .find(|g| all.iter().any(|t| owner(&ids(&["replica-a", "replica-b", g]), t) == Some(g.as_str())))
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query("INSERT INTO compactor_replicas (job, holder_id, seen_at, expires_at) VALUES ('compaction@signaldb', $1, $2, $3)")
        .bind(&ghost)
        .bind(now - 86_400_000)
        .bind(now + 10 * 365 * 86_400_000)
        .execute(a.catalog.pool())
        .await
        .unwrap();
    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap());
    assert!(b.leases.beat(&group(SIGNALDB)).await.unwrap());
    let (cancel, poll) = (CancellationToken::new(), PassRequest::scheduled(Mode::Execute));
    let pass_a = CompactionJob::new(&a).run_once(&poll, &cancel).await.unwrap();
    let pass_b = CompactionJob::new(&b).run_once(&poll, &cancel).await.unwrap();
    let covered: BTreeSet<String> = surveyed(&pass_a).union(&surveyed(&pass_b)).cloned().collect();
    let uncovered: Vec<&String> = all.difference(&covered).collect();
    assert!(uncovered.is_empty(), "left to a row last renewed a day ago: {uncovered:?}");
}

/// Two daemons on one catalog database with different `catalog_name`s (the census reads "every
/// `catalog_name`", so the layout is supported) are members of one `compactor_replicas` job: each
/// keeps to its share of *its own* catalog's tables, and the share the other catalog's replica wins
/// is never surveyed by anyone, for as long as both run.
#[tokio::test]
async fn replicas_of_another_catalog_on_the_same_database_take_no_share_of_this_one() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path()).await;
    let a = replica(dir.path(), "replica-a", None).await;
    let other = replica(dir.path(), "replica-of-other", Some("other")).await;
    let all = all_tables(&a).await;
    assert!(all_tables(&other).await.is_empty(), "the other catalog has no table of this one");
    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap());
    // As the daemon of the other catalog does: its group names its catalog.
    assert!(other.leases.beat(&group("other")).await.unwrap());
    let (cancel, poll) = (CancellationToken::new(), PassRequest::scheduled(Mode::Execute));
    let pass_a = CompactionJob::new(&a).run_once(&poll, &cancel).await.unwrap();
    let pass_other = CompactionJob::new(&other).run_once(&poll, &cancel).await.unwrap();
    let covered: BTreeSet<String> = surveyed(&pass_a).union(&surveyed(&pass_other)).cloned().collect();
    let uncovered: Vec<&String> = all.difference(&covered).collect();
    assert!(uncovered.is_empty(), "never surveyed while both run: {uncovered:?}");
}

/// The share divides more than reading: a replica busy in a long pass (under the 6 h default
/// `pass_deadline` it keeps renewing its row) would hold every due table of its share, and the idle
/// replicas, which before the change surveyed those tables and took their free leases, leave them.
/// Here A is stuck committing its first table. While its row says it has been busy for a short
/// while, B keeps to its own share; once A's row says it has been busy for more than half the lag
/// target (what A's membership task writes), B's next poll compacts A's other due tables.
#[tokio::test]
async fn a_busy_replica_does_not_keep_its_shares_due_tables_from_idle_replicas() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path()).await;
    let a = replica(dir.path(), "replica-a", None).await;
    let b = replica(dir.path(), "replica-b", None).await;
    let all = all_tables(&a).await;
    let members = ids(&["replica-a", "replica-b"]);
    let share_a: BTreeSet<String> =
        all.iter().filter(|t| owner(&members, t) == Some("replica-a")).cloned().collect();
    assert!(share_a.len() >= 2, "{share_a:?}");
    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap());
    assert!(b.leases.beat(&group(SIGNALDB)).await.unwrap());

    let (hook, entered, release) = crate::support::pause_at_first_commit();
    let job_a = Arc::new(CompactionJob::new(&a).with_before_commit(hook));
    let cancel = CancellationToken::new();
    let busy = tokio::spawn({
        let (job_a, cancel) = (job_a.clone(), cancel.clone());
        async move { job_a.run_once(&PassRequest::scheduled(Mode::Execute), &cancel).await.unwrap() }
    });
    tokio::time::timeout(Duration::from_secs(60), entered.notified())
        .await
        .expect("A reaches its first commit");

    let job_b = CompactionJob::new(&b);
    assert!(a.leases.beat_as(&group(SIGNALDB), Some(Duration::from_secs(10))).await.unwrap());
    let own = job_b.run_once(&PassRequest::scheduled(Mode::Execute), &cancel).await.unwrap();
    assert!(surveyed(&own).is_disjoint(&share_a), "A busy for 10 s keeps its share: {:?}", surveyed(&own));
    // Half the default lag target (10 min) is 5 min.
    assert!(a.leases.beat_as(&group(SIGNALDB), Some(Duration::from_secs(301))).await.unwrap());
    let pass_b = job_b.run_once(&PassRequest::scheduled(Mode::Execute), &cancel).await.unwrap();
    let compacted_by_b: BTreeSet<String> = pass_b
        .tables
        .iter()
        .filter(|t| t.partition_reports.iter().any(|p| p.status == PartitionStatus::Succeeded))
        .map(|t| t.table.clone())
        .collect();
    release.notify_one();
    let pass_a = tokio::time::timeout(Duration::from_secs(120), busy).await.unwrap().unwrap();
    assert!(!pass_a.tables.is_empty());
    let waiting: Vec<&String> = share_a.difference(&compacted_by_b).collect();
    // One table is A's (its lease is held); every other due table of A's share was free for B.
    assert!(waiting.len() <= 1, "due tables left waiting for the busy replica A: {waiting:?}");
}

/// The new statements (upsert with the database clock, the live rows, leaving) on PostgreSQL.
#[tokio::test]
async fn replicas_rows_on_postgresql() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::support::postgres_context(&pg, dir.path(), "replicas_rows").await;
    let pool = ctx.catalog.pool().clone();
    let a = Leases::new(pool.clone(), true, "replica-a".into(), Duration::from_secs(60));
    // Seconds: b's row must stay live through its beat and two share queries on a loaded machine.
    let b_ttl = Duration::from_secs(5);
    let b = Leases::new(pool.clone(), true, "replica-b".into(), b_ttl);
    assert_eq!(a.share(&group(SIGNALDB)).await.unwrap(), None, "not yet a member");
    assert!(a.beat(&group(SIGNALDB)).await.unwrap());
    assert!(a.beat(&group(SIGNALDB)).await.unwrap(), "renewed");
    assert!(b.beat(&group(SIGNALDB)).await.unwrap());
    assert_eq!(a.share(&group(SIGNALDB)).await.unwrap().unwrap().members(), 2);
    assert_eq!(b.share(&group(SIGNALDB)).await.unwrap().unwrap().members(), 2);
    tokio::time::sleep(b_ttl + Duration::from_millis(500)).await;
    assert_eq!(a.share(&group(SIGNALDB)).await.unwrap().unwrap().members(), 1, "b's row expired");
    assert_eq!(b.share(&group(SIGNALDB)).await.unwrap(), None, "b's own row expired");
    // An exited process of this host: dropped from the view and its row removed for other hosts.
    let dead =
        Leases::new(pool.clone(), true, format!("{}:999999999:0badcafe", host()), Duration::from_secs(60));
    assert!(dead.beat(&group(SIGNALDB)).await.unwrap());
    assert_eq!(a.share(&group(SIGNALDB)).await.unwrap().unwrap().members(), 1);
    assert_eq!(
        rows(&ctx).await,
        vec!["replica-a".to_string(), "replica-b".to_string()],
        "b's expired row stays"
    );
    // A busy member's row (the `busy_since` arithmetic on PostgreSQL's clock): counted while its
    // pass is younger than the limit, not once it is older.
    let c = Leases::new(pool.clone(), true, "replica-c".into(), Duration::from_secs(60));
    assert!(c.beat_as(&group(SIGNALDB), Some(Duration::from_secs(10))).await.unwrap());
    let limit = Some(Duration::from_secs(300));
    assert_eq!(a.share_within(&group(SIGNALDB), limit).await.unwrap().unwrap().members(), 2, "busy 10 s");
    assert!(c.beat_as(&group(SIGNALDB), Some(Duration::from_secs(301))).await.unwrap());
    assert_eq!(a.share_within(&group(SIGNALDB), limit).await.unwrap().unwrap().members(), 1, "busy 301 s");
    assert_eq!(a.share(&group(SIGNALDB)).await.unwrap().unwrap().members(), 2, "no limit: still a member");
    assert!(c.beat(&group(SIGNALDB)).await.unwrap());
    assert_eq!(a.share_within(&group(SIGNALDB), limit).await.unwrap().unwrap().members(), 2, "idle again");
    c.leave(&group(SIGNALDB)).await.unwrap();
    a.leave(&group(SIGNALDB)).await.unwrap();
    assert_eq!(a.share(&group(SIGNALDB)).await.unwrap(), None, "a left");
}
