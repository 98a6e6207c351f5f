//! Replicas sharing one catalog: table leases (acquire, renew, steal only after expiry, release), the
//! commit fence of a holder that lost its lease, audit recovery next to a live replica, and three
//! daemon processes dividing 30 tables on one PostgreSQL catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use signaldb_compactor::catalog::TableRef;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{
    BeforeCommitHook, Job, PartitionStatus, PassRequest, TableFilter, TableStatus,
};
use signaldb_compactor::service::leases::{Acquired, Leases};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::support::{Postgres, SIGNALDB, context, fixed_end, group, small_options};

/// Generates the small warehouse into `dir`, its catalog in `uri` (None: `dir/catalog.db`).
async fn generate(dir: &Path, uri: Option<&str>) {
    signaldb_compactor::generate::generate_into(&small_options(dir), uri, None).await.unwrap();
}

async fn ctx_on(dir: &Path, uri: Option<&str>) -> signaldb_compactor::service::Context {
    let uri = uri.map(str::to_string);
    context(dir, fixed_end() + TimeDelta::minutes(5), move |c| {
        if let Some(uri) = uri {
            c.catalog.uri = uri;
        }
        c.compaction.min_input_files = 2;
    })
    .await
}

fn holder(acquired: &Acquired) -> &str {
    match acquired {
        Acquired::Busy { holder } => holder,
        Acquired::Held(_) => "(held)",
    }
}

/// Acquire, busy for others, renewed past its ttl, released; a dead holder's lease is stolen only
/// after it expires.
async fn leases_renew_and_steal(uri: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), uri).await;
    let ctx = ctx_on(dir.path(), uri).await;
    let pool = ctx.catalog.pool().clone();
    let postgres = ctx.catalog.is_postgres();
    // 3 s, not less: a lease counts as lost locally once its last renewal is two thirds of a ttl old,
    // so a shorter ttl leaves a loaded machine too little slack between renewals (every ttl/3).
    let ttl = Duration::from_secs(3);
    let a = Leases::new(pool.clone(), postgres, "replica-a".into(), ttl);
    let b = Leases::new(pool.clone(), postgres, "replica-b".into(), ttl);
    let tables = ctx.catalog.discover().await.unwrap();
    let (t, u): (&TableRef, &TableRef) = (&tables[0], &tables[1]);

    let Some(Acquired::Held(lease)) = a.acquire(t).await.unwrap() else { panic!("a free table is leased") };
    let busy = b.acquire(t).await.unwrap().unwrap();
    assert_eq!(holder(&busy), "replica-a", "a held lease is not taken");
    // Renewed every ttl/3: well past the ttl the holder still has it.
    tokio::time::sleep(ttl * 3).await;
    assert!(!lease.is_lost());
    assert_eq!(holder(&b.acquire(t).await.unwrap().unwrap()), "replica-a", "renewed, so not stolen");
    lease.release().await;
    let Some(Acquired::Held(by_b)) = b.acquire(t).await.unwrap() else { panic!("released lease is free") };
    by_b.release().await;

    // A holder that dies (no release, no renewals) keeps its table until the lease expires.
    let Some(Acquired::Held(dead)) = a.acquire(u).await.unwrap() else { panic!("a free table is leased") };
    drop(dead);
    assert_eq!(holder(&b.acquire(u).await.unwrap().unwrap()), "replica-a", "not stolen before expiry");
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let Some(Acquired::Held(stolen)) = b.acquire(u).await.unwrap() else { panic!("expired lease is stolen") };
    let row = sqlx::query("SELECT holder_id, expires_at - acquired_at FROM compactor_leases WHERE table_name = $1 AND tenant_id = $2")
        .bind(&u.table)
        .bind(&u.tenant)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "replica-b");
    assert_eq!(row.get::<i64, _>(1), 3000, "expires one ttl after acquisition, in database milliseconds");
    stolen.release().await;
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM compactor_leases").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0, "released leases leave no rows");
}

#[tokio::test]
async fn leases_renew_and_steal_on_sqlite() {
    leases_renew_and_steal(None).await;
}

#[tokio::test]
async fn leases_renew_and_steal_on_postgresql() {
    let pg = Postgres::start();
    let uri = pg.database("signaldb").await;
    leases_renew_and_steal(Some(&uri)).await;
}

/// Every file under `dir` (names only).
fn files(dir: &Path) -> BTreeSet<String> {
    walkdir(dir).into_iter().collect()
}

fn walkdir(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// A replica whose lease is taken over between its rewrite and its commit abandons: nothing is
/// committed, its files are gone again, the table is skipped while the other holder's lease lives, and
/// compacted once it has expired.
async fn lost_lease_abandons_before_commit(uri: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), uri).await;
    let ctx = ctx_on(dir.path(), uri).await;
    let traces = "acme.production.traces";
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == traces).unwrap();
    let location_before = ctx.catalog.metadata_location(&t.ident).await.unwrap();
    let files_before = files(dir.path());

    // Between rewrite and commit, "another replica" takes the lease over (as if ours had expired).
    let pool = ctx.catalog.pool().clone();
    let hook: BeforeCommitHook = Arc::new(move |_partition| {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(
                "UPDATE compactor_leases SET holder_id = 'replica-thief' WHERE table_name = 'traces'",
            )
            .execute(&pool)
            .await
            .unwrap();
        }) as futures::future::BoxFuture<'static, ()>
    });
    let request =
        PassRequest { filter: TableFilter::only([traces.to_string()]), ..PassRequest::all(Mode::Execute) };
    let job = CompactionJob::new(&ctx).with_before_commit(hook);
    let report = job.run_once(&request, &CancellationToken::new()).await.unwrap();
    let partitions = &report.tables[0].partition_reports;
    let lost = |p: &&signaldb_compactor::job::PartitionReport| matches!(&p.status, PartitionStatus::Skipped { reason } if reason.contains("lease was lost"));
    assert_eq!(partitions.iter().filter(lost).count(), 2, "both closed hours abandoned: {partitions:#?}");
    assert!(partitions.iter().all(|p| p.status != PartitionStatus::Succeeded), "{partitions:#?}");
    assert_eq!(ctx.catalog.metadata_location(&t.ident).await.unwrap(), location_before, "nothing committed");
    assert_eq!(files(dir.path()), files_before, "rewritten files, manifests and metadata deleted again");
    assert!(ctx.metrics.render().contains("compactor_leases_lost_total{job=\"compaction\"} 1"));
    let thief: String =
        sqlx::query_scalar("SELECT holder_id FROM compactor_leases WHERE table_name = 'traces'")
            .fetch_one(ctx.catalog.pool())
            .await
            .unwrap();
    assert_eq!(thief, "replica-thief", "the lost lease is not released from under its new holder");

    // While the other holder's lease lives, the table is skipped, and no audit row claims it.
    let runs_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM compactor_runs")
        .fetch_one(ctx.catalog.pool())
        .await
        .unwrap();
    let plain = CompactionJob::new(&ctx);
    let report = plain.run_once(&request, &CancellationToken::new()).await.unwrap();
    assert_eq!(
        report.tables[0].status,
        TableStatus::Skipped { reason: "leased_elsewhere: held by replica-thief".into() }
    );
    let runs_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM compactor_runs")
        .fetch_one(ctx.catalog.pool())
        .await
        .unwrap();
    assert_eq!(runs_after, runs_before);
    assert!(
        ctx.metrics
            .render()
            .contains("compactor_tables_skipped_total{job=\"compaction\",reason=\"leased_elsewhere\"} 1")
    );

    // Once it has expired, the lease is taken over and the table compacted.
    sqlx::query("UPDATE compactor_leases SET expires_at = 0").execute(ctx.catalog.pool()).await.unwrap();
    let report = plain.run_once(&request, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.tables[0].status, TableStatus::Succeeded, "{:#?}", report.tables[0]);
    assert_ne!(ctx.catalog.metadata_location(&t.ident).await.unwrap(), location_before);
}

#[tokio::test]
async fn lost_lease_abandons_before_commit_on_sqlite() {
    lost_lease_abandons_before_commit(None).await;
}

#[tokio::test]
async fn lost_lease_abandons_before_commit_on_postgresql() {
    let pg = Postgres::start();
    let uri = pg.database("signaldb").await;
    lost_lease_abandons_before_commit(Some(&uri)).await;
}

/// A starting replica marks a dead process's `running` audit rows failed, never a live replica's, and
/// takes over an exited local process's lease without waiting for it to expire.
#[tokio::test]
async fn startup_recovery_leaves_a_live_replicas_runs_alone() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), None).await;
    let live = ctx_on(dir.path(), None).await;
    let t = live.catalog.discover().await.unwrap().remove(0);
    let Some(Acquired::Held(lease)) = live.leases.acquire(&t).await.unwrap() else { panic!("leased") };
    let running = live.audit.start(signaldb_compactor::audit::RunType::Compaction, &t, fixed_end()).await;
    sqlx::query(
        "INSERT INTO compactor_runs (run_id, run_type, tenant_id, dataset_id, table_name, started_at, status, \
         created_at, holder_id) VALUES ('dead-run', 'compaction', 'acme', 'production', 'logs', $1, 'running', $1, \
         'replica-dead')",
    )
    .bind(signaldb_compactor::audit::stamp(fixed_end()))
    .execute(live.catalog.pool())
    .await
    .unwrap();

    // A process on this host that was killed while holding a live lease: its run is dead too.
    let host = signaldb_compactor::runtime::leases::local_host_key().unwrap();
    let killed = format!("{host}:999999999:0badcafe");
    sqlx::query(
        "INSERT INTO compactor_leases (tenant_id, dataset_id, table_name, partition_id, holder_id, acquired_at, \
         expires_at, renewed_at) VALUES ('acme', 'production', 'metrics_gauge', '*', $1, 0, 9999999999999, 0)",
    )
    .bind(&killed)
    .execute(live.catalog.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO compactor_runs (run_id, run_type, tenant_id, dataset_id, table_name, started_at, status, \
         created_at, holder_id) VALUES ('killed-run', 'compaction', 'acme', 'production', 'metrics_gauge', $1, \
         'running', $1, $2)",
    )
    .bind(signaldb_compactor::audit::stamp(fixed_end()))
    .bind(&killed)
    .execute(live.catalog.pool())
    .await
    .unwrap();

    let restarted = ctx_on(dir.path(), None).await; // Context::build runs the recovery
    let status = |id: String| {
        let pool = live.catalog.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM compactor_runs WHERE run_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(status(running.run_id().to_string()).await, "running", "a live replica's run is left alone");
    assert_eq!(status("dead-run".into()).await, "failed", "a dead process's run is marked failed");
    assert_eq!(status("killed-run".into()).await, "failed", "an exited local process's run is marked failed");
    // ... and its lease is taken over at once rather than after its expiry.
    let gauge = restarted
        .catalog
        .discover()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.qualified() == "acme.production.metrics_gauge")
        .unwrap();
    let Some(Acquired::Held(taken)) = restarted.leases.acquire(&gauge).await.unwrap() else {
        panic!("an exited process's lease is taken over")
    };
    taken.release().await;
    lease.release().await;
}

/// The audit rows of compaction runs that changed something: (table, holder, partitions).
async fn compacting_runs(uri: &str) -> Vec<(String, String, i64)> {
    let pool = sqlx::PgPool::connect(uri).await.unwrap();
    let rows = sqlx::query(
        "SELECT tenant_id || '.' || dataset_id || '.' || table_name, holder_id, partitions_affected \
         FROM compactor_runs WHERE run_type = 'compaction' AND status = 'completed' AND partitions_affected > 0",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// Runs `replicas` `once compaction` processes at the same time on one catalog; returns the wall time.
fn run_replicas(dir: &Path, replicas: usize) -> Duration {
    let started = Instant::now();
    let children: Vec<_> = (0..replicas)
        .map(|i| {
            let log = dir.join(format!("replica{i}.log"));
            let mut cmd = crate::support::bin();
            for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SIGNALDB_")) {
                cmd.env_remove(k);
            }
            let child = cmd
                .current_dir(dir)
                .args(["once", "compaction"])
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            (child, log)
        })
        .collect();
    for (mut child, log) in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "replica failed: {}", std::fs::read_to_string(log).unwrap());
    }
    started.elapsed()
}

/// 3 daemons on one PostgreSQL catalog with 30 tables: every table is compacted, each by exactly one
/// replica, no partition is rewritten twice (audit rows and the tables' snapshots agree), the work is
/// divided. Wall times are printed, not asserted (on a loaded 2-core CI machine other tests run beside
/// it); run alone it is the replica benchmark in docs/BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_divide_thirty_tables_on_postgresql() {
    let pg = Postgres::start();
    let mut timings = BTreeMap::new();
    for replicas in [1usize, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let uri = pg.database(&format!("replicas{replicas}")).await;
        let opts = signaldb_compactor::generate::GenerateOptions {
            tenants: 10,
            rows_per_file: 2_000,
            ..small_options(dir.path())
        };
        signaldb_compactor::generate::generate_into(&opts, Some(&uri), None).await.unwrap();
        std::fs::write(
            dir.path().join("signaldb.toml"),
            format!(
                "[schema]\ncatalog_uri = \"{uri}\"\n[storage]\ndsn = \"file://{d}/warehouse\"\n\
                 [compactor]\nmin_input_files = 2\nmax_concurrent_rewrites = 1\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let elapsed = run_replicas(dir.path(), replicas);
        timings.insert(replicas, elapsed);

        let runs = compacting_runs(&uri).await;
        let mut per_table: BTreeMap<&str, Vec<&(String, String, i64)>> = BTreeMap::new();
        for run in &runs {
            per_table.entry(run.0.as_str()).or_default().push(run);
        }
        assert_eq!(per_table.len(), 30, "every table compacted: {runs:#?}");
        assert!(
            per_table.values().all(|r| r.len() == 1),
            "each table compacted by one replica once: {runs:#?}"
        );
        let holders: BTreeSet<&str> = runs.iter().map(|r| r.1.as_str()).collect();
        // Each table's snapshots: one replace per partition the audit row counts, none more.
        let ctx = context(dir.path(), fixed_end(), |c| c.catalog.uri = uri.clone()).await;
        for t in ctx.catalog.discover().await.unwrap() {
            let table = ctx.catalog.load(&t).await.unwrap();
            let replaces = table
                .metadata()
                .snapshots()
                .filter(|s| s.summary().operation == iceberg::spec::Operation::Replace)
                .count() as i64;
            assert_eq!(replaces, per_table[t.qualified().as_str()][0].2, "{t}: partitions rewritten once");
        }
        let partitions: i64 = runs.iter().map(|r| r.2).sum();
        println!(
            "replicas={replicas} tables=30 partitions_compacted={partitions} holders={} wall={:.2}s",
            holders.len(),
            elapsed.as_secs_f64()
        );
        if replicas > 1 {
            assert!(holders.len() >= 2, "{replicas} replicas divided the tables: {holders:?}");
        }
    }
    println!(
        "wall time vs 1 replica: 2 replicas {:.2}x, 3 replicas {:.2}x",
        timings[&1].as_secs_f64() / timings[&2].as_secs_f64(),
        timings[&1].as_secs_f64() / timings[&3].as_secs_f64()
    );
}

/// The tables a pass surveyed (every report names one).
fn surveyed(report: &signaldb_compactor::job::PassReport) -> BTreeSet<String> {
    report.tables.iter().map(|t| t.table.clone()).collect()
}

/// Replicas divide a loop's survey (runtime::share): two members each survey and compact only their
/// share, together every table exactly once; a replica that leaves, or whose row expires, hands its
/// share to the other at its next pass; an operator's pass and a dry-run loop survey every table.
#[tokio::test]
async fn replicas_divide_the_survey_and_take_over_a_leaving_replicas_share() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::generate_survey_catalog(dir.path()).await;
    let replica = |holder: &'static str, ttl: Duration| {
        let dir = dir.path().to_path_buf();
        async move {
            let mut ctx = ctx_on(&dir, None).await;
            ctx.leases = Leases::new(ctx.catalog.pool().clone(), false, holder.into(), ttl);
            ctx
        }
    };
    // An hour: A and B leave by `leave`, never by expiry, however slowly the passes below run.
    let (a, b) = (
        replica("replica-a", Duration::from_secs(3600)).await,
        replica("replica-b", Duration::from_secs(3600)).await,
    );
    let all: BTreeSet<String> = a.discover().await.unwrap().iter().map(|t| t.qualified()).collect();
    assert!(all.len() >= 16, "{all:?}");
    let (job_a, job_b) = (CompactionJob::new(&a), CompactionJob::new(&b));
    let cancel = CancellationToken::new();
    let poll = PassRequest::scheduled(Mode::Execute);

    // Not yet a member: a replica surveys every table (unsure means more reading, never less).
    let dry = job_a.run_once(&PassRequest::scheduled(Mode::DryRun), &cancel).await.unwrap();
    assert_eq!(surveyed(&dry), all, "a replica without a row surveys every table");

    assert!(a.leases.beat(&group(SIGNALDB)).await.unwrap());
    assert!(b.leases.beat(&group(SIGNALDB)).await.unwrap());
    let pass_a = job_a.run_once(&poll, &cancel).await.unwrap();
    let pass_b = job_b.run_once(&poll, &cancel).await.unwrap();
    let (share_a, share_b) = (surveyed(&pass_a), surveyed(&pass_b));
    assert!(!share_a.is_empty() && !share_b.is_empty(), "{share_a:?} / {share_b:?}");
    assert!(share_a.is_disjoint(&share_b), "a table in two shares: {:?}", share_a.intersection(&share_b));
    assert_eq!(share_a.union(&share_b).cloned().collect::<BTreeSet<_>>(), all, "every table in one share");
    assert_eq!(a.metrics.survey_replicas.get(), 2);
    assert_eq!(a.metrics.survey_share_tables.get(), share_a.len() as i64);
    // Each replica compacted its own share's closed hours, and the pair compacted every table.
    for (pass, share) in [(&pass_a, &share_a), (&pass_b, &share_b)] {
        for t in &pass.tables {
            assert!(share.contains(&t.table));
            assert!(
                t.partition_reports.iter().any(|p| p.status == PartitionStatus::Succeeded),
                "{}: {:?} {:?}",
                t.table,
                t.status,
                t.details
            );
        }
    }
    // A dry-run loop pass and an operator's pass are not divided.
    let dry = job_a.run_once(&PassRequest::scheduled(Mode::DryRun), &cancel).await.unwrap();
    assert_eq!(surveyed(&dry), all, "a dry-run pass surveys every table");
    let operator = job_a.run_once(&PassRequest::all(Mode::Execute), &cancel).await.unwrap();
    assert_eq!(surveyed(&operator), all, "an operator's pass surveys every table");

    // B leaves: A's next loop pass surveys every table.
    b.leases.leave(&group(SIGNALDB)).await.unwrap();
    let alone = job_a.run_once(&poll, &cancel).await.unwrap();
    assert_eq!(surveyed(&alone), all, "the leaving replica's share passed to the other");
    assert_eq!(a.metrics.survey_replicas.get(), 1);
    assert_eq!(a.metrics.survey_share_tables.get(), all.len() as i64);

    // A replica whose row is no longer renewed keeps its share only until the row expires.
    // Its ttl leaves A's pass seconds to read the members while C's row is live.
    let c_ttl = Duration::from_secs(5);
    let c = replica("replica-c", c_ttl).await;
    assert!(c.leases.beat(&group(SIGNALDB)).await.unwrap());
    assert!(surveyed(&job_a.run_once(&poll, &cancel).await.unwrap()).len() < all.len(), "C's share is C's");
    tokio::time::sleep(c_ttl + Duration::from_millis(500)).await;
    assert_eq!(surveyed(&job_a.run_once(&poll, &cancel).await.unwrap()), all, "C's row expired");
}
