//! Failure injection: an object store that fails writes, deletes or listings makes a pass fail cleanly
//! (nothing half-committed, no row changed), and the next pass succeeds; leftovers are only unreferenced
//! files that orphan cleanup removes.

use std::sync::Arc;

use chrono::TimeDelta;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use signaldb_compactor::catalog::Access;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{Job, PassRequest, TableStatus};
use signaldb_compactor::orphans::OrphanJob;
use signaldb_compactor::service::Context;
use signaldb_compactor::storage::faults::FaultyStore;
use tokio_util::sync::CancellationToken;

use crate::support::{context_builder, fixed_end, generate_small};

/// Every table's row timestamps, sorted (a row multiset fingerprint that fits every signal).
async fn fingerprint(ctx: &Context) -> Vec<(String, Vec<i64>)> {
    let mut out = Vec::new();
    for t in ctx.catalog.discover().await.unwrap() {
        let table = ctx.catalog.load(&t).await.unwrap();
        let batches: Vec<arrow_array::RecordBatch> =
            table.scan().select_all().build().unwrap().to_arrow().await.unwrap().try_collect().await.unwrap();
        let mut ts: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let col = b.column_by_name("timestamp").unwrap();
                let col = col.as_any().downcast_ref::<arrow_array::TimestampMicrosecondArray>().unwrap();
                col.values().to_vec()
            })
            .collect();
        ts.sort_unstable();
        out.push((t.qualified(), ts));
    }
    out
}

async fn assert_consistent(ctx: &Context, rows: &[(String, Vec<i64>)], step: &str) {
    let problems = signaldb_compactor::verify::verify(ctx, &Default::default(), false).await.unwrap();
    assert!(problems.iter().all(|t| t.problems.is_empty()), "{step}: {problems:#?}");
    assert_eq!(&fingerprint(ctx).await, rows, "{step}: rows changed");
}

#[tokio::test]
async fn failing_store_operations_fail_passes_cleanly_and_the_next_pass_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let faulty = Arc::new(FaultyStore::new(Arc::new(object_store::local::LocalFileSystem::new()), 11));
    let ctx = context_builder(dir.path(), Access::ReadWrite, |c| {
        c.compaction.min_input_files = 2;
        c.commit.retry_backoff = std::time::Duration::from_millis(5);
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
    })
    .with_store(faulty.clone())
    .build()
    .await
    .unwrap()
    .with_clock(Arc::new(signaldb_compactor::clock::FixedClock(fixed_end() + TimeDelta::minutes(5))));
    let rows = fingerprint(&ctx).await;
    let run = |ctx: &Context| {
        let job = CompactionJob::new(ctx);
        async move { job.run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new()).await.unwrap() }
    };
    let locations = |ctx: &Context| {
        let catalog = ctx.catalog.clone();
        async move {
            let mut out = Vec::new();
            for t in catalog.discover().await.unwrap() {
                out.push(catalog.metadata_location(&t.ident).await.unwrap());
            }
            out
        }
    };

    // Every write fails: every table's compaction fails, nothing is committed.
    let before = locations(&ctx).await;
    faulty.faults.set(1000, 0, 0, 0);
    let report = run(&ctx).await;
    faulty.faults.set(0, 0, 0, 0);
    assert_eq!(report.failed_tables(), 6, "{report:#?}");
    assert_eq!(locations(&ctx).await, before, "no catalog pointer moved");
    assert_consistent(&ctx, &rows, "all writes failing").await;

    // Half the writes fail: some groups commit, others fail; every state is consistent.
    faulty.faults.set(500, 0, 0, 0);
    let partial = run(&ctx).await;
    faulty.faults.set(0, 0, 0, 0);
    assert_consistent(&ctx, &rows, "half the writes failing").await;
    assert!(partial.failed_tables() > 0, "the fault rate must really bite: {partial:#?}");

    // The next pass without faults finishes the job.
    let report = run(&ctx).await;
    assert_eq!(report.failed_tables(), 0, "{report:#?}");
    assert!(
        report.tables.iter().all(|t| t.partition_reports.iter().all(|p| !p.partition.ends_with("-10")
            || p.status != signaldb_compactor::job::PartitionStatus::Succeeded)),
        "the open hour stays untouched"
    );
    assert_consistent(&ctx, &rows, "after recovery").await;

    // Orphan cleanup ten days later: a planted orphan (and any leftovers of failed writes).
    let ctx = ctx.with_clock(Arc::new(signaldb_compactor::clock::FixedClock(
        chrono::Utc::now() + TimeDelta::days(10),
    )));
    let traces = crate::support::table_ref(&ctx.catalog, "acme.production.traces").await;
    let location = format!(
        "{}/data/planted-orphan.parquet",
        ctx.catalog.load(&traces).await.unwrap().metadata().location()
    );
    let planted = ctx.warehouse.object_path(&location).unwrap();
    ctx.warehouse.store().put(&planted, object_store::PutPayload::from_static(b"x")).await.unwrap();
    let cleanup = |ctx: &Context| {
        let job = OrphanJob::new(ctx);
        async move { job.run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new()).await.unwrap() }
    };

    // Deletes fail: counted, retried next pass, nothing else harmed.
    faulty.faults.set(0, 0, 0, 1000);
    cleanup(&ctx).await;
    faulty.faults.set(0, 0, 0, 0);
    assert!(ctx.warehouse.store().head(&planted).await.is_ok(), "the failed delete left the orphan");
    let failures: u64 = ctx
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("compactor_deletion_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(failures >= 1, "deletion failures counted");
    assert_consistent(&ctx, &rows, "deletes failing").await;

    // Listing fails: the table's cleanup fails, nothing is deleted.
    faulty.faults.set(0, 0, 1000, 0);
    let listing = cleanup(&ctx).await;
    faulty.faults.set(0, 0, 0, 0);
    assert!(listing.tables.iter().all(|t| matches!(t.status, TableStatus::Failed { .. })), "{listing:#?}");
    assert!(ctx.warehouse.store().head(&planted).await.is_ok());

    // No faults: the orphan (and any leftover of the failed writes) goes; every live file stays.
    let done = cleanup(&ctx).await;
    assert!(done.tables.iter().all(|t| !matches!(t.status, TableStatus::Failed { .. })), "{done:#?}");
    assert!(ctx.warehouse.store().head(&planted).await.is_err(), "the orphan was collected");
    assert_consistent(&ctx, &rows, "after cleanup").await;
    let deleted: u64 = done.tables.iter().map(|t| t.files_processed).sum();
    println!(
        "faults: {} injected failures; all writes failing: 6/6 tables failed, 0 commits; half failing: \
         {}/6 tables failed; fault-free pass: 0 failed; cleanup deleted {deleted} orphans (planted + \
         leftovers of failed writes); rows and live files intact after every step",
        faulty.faults.injected.load(std::sync::atomic::Ordering::SeqCst),
        partial.failed_tables(),
    );
}

/// Benchmark (run by hand, prints numbers): deleting orphans on a real S3-compatible server through the
/// deletion gate's batch delete, against one DELETE request per object at the gate's concurrency.
/// `cargo test --release --test it s3_batch_delete_benchmark -- --ignored --nocapture` (N=2000 default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run by hand"]
async fn s3_batch_delete_benchmark() {
    use futures::StreamExt;
    use object_store::ObjectStoreExt;
    use signaldb_compactor::storage::gate::DeletionGate;

    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let s3 = crate::support::S3Server::start();
    let storage = s3.bucket("bench", "w");
    let w = signaldb_compactor::storage::Warehouse::open(
        &storage,
        signaldb_compactor::catalog::Access::ReadWrite,
    )
    .unwrap();
    let table = format!("{}/acme.prod/traces", w.root().trim_end_matches('/'));
    let put_all = |prefix: &'static str| {
        let (w, table) = (w.clone(), table.clone());
        async move {
            let files: Vec<String> =
                (0..n).map(|i| format!("{table}/{prefix}/orphan-{i:06}.parquet")).collect();
            futures::stream::iter(files.clone())
                .for_each_concurrent(32, |f| {
                    let w = w.clone();
                    async move {
                        let p = w.object_path(&f).unwrap();
                        w.store().put(&p, object_store::PutPayload::from_static(b"x")).await.unwrap();
                    }
                })
                .await;
            files
        }
    };
    let live = signaldb_compactor::table::reachability::Reachable::from_locations(std::iter::empty::<&str>());
    let later = chrono::Utc::now() + chrono::Duration::hours(2);

    let files = put_all("batch").await;
    let mut layout = signaldb_compactor::storage::deletable::Layout::new(w.roots());
    let index = layout.add_table("acme.prod.traces", Some(&table));
    layout.add_references(index, &live);
    let scope = layout.scope(index, &live).unwrap();
    let gate = DeletionGate {
        warehouse: &w,
        scope: &scope,
        grace: std::time::Duration::from_secs(3600),
        now: later,
        mode: signaldb_compactor::config::Mode::Execute,
    };
    let started = std::time::Instant::now();
    let outcome = gate.delete(&files).await;
    let batch = started.elapsed();
    assert_eq!(outcome.deleted.len(), n);

    // The peer: the same age check, then one DELETE per object, 16 at a time (the gate before batching).
    let files = put_all("single").await;
    let started = std::time::Instant::now();
    futures::stream::iter(files)
        .for_each_concurrent(16, |f| {
            let w = w.clone();
            async move {
                let p = w.object_path(&f).unwrap();
                w.store().head(&p).await.unwrap();
                w.store().delete(&p).await.unwrap();
            }
        })
        .await;
    let single = started.elapsed();
    println!(
        "s3 deletes (moto, {n} objects): batch gate {:.2}s ({:.0}/s), one request per object {:.2}s ({:.0}/s), speed-up {:.2}x",
        batch.as_secs_f64(),
        n as f64 / batch.as_secs_f64(),
        single.as_secs_f64(),
        n as f64 / single.as_secs_f64(),
        single.as_secs_f64() / batch.as_secs_f64()
    );
}
