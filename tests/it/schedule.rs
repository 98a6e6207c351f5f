//! Compaction lag as a service level (issue 17), on a real SQLite catalog and real Parquet files: a
//! partition is compacted by the first pass after it falls due, with its lag measured from the due
//! time; a loop's pass stops at its budget and the next pass resumes with what is left; an operator's
//! pass has no budget; the debt gauges and `/status` say what is left.

use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use signaldb_compactor::clock::{Clock, ManualClock};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{Job, PartitionStatus, PassReport, PassRequest, TableStatus};
use tokio_util::sync::CancellationToken;

/// (table, partition) pairs a pass compacted.
fn compacted(report: &PassReport) -> Vec<(String, String)> {
    report
        .tables
        .iter()
        .flat_map(|t| {
            t.partition_reports
                .iter()
                .filter(|p| p.status == PartitionStatus::Succeeded)
                .map(|p| (t.table.clone(), p.partition.clone()))
        })
        .collect()
}

fn lag_samples(ctx: &signaldb_compactor::service::Context) -> (u64, f64) {
    let h = ctx.metrics.compaction_lag_seconds.with_label_values(&["traces"]);
    (h.get_sample_count(), h.get_sample_sum())
}

/// A warehouse whose last hour is still open now (real time), so its files arrive before it falls due.
async fn generate_open(dir: &std::path::Path) -> DateTime<Utc> {
    let end = Utc::now();
    let mut opts = signaldb_compactor::generate::GenerateOptions::small(dir);
    opts.end = end;
    opts.tables = vec!["traces".into()];
    signaldb_compactor::generate::generate(&opts).await.unwrap();
    // The hour holding `end` closes at the next full hour; due 10 minutes later.
    end.duration_trunc(TimeDelta::hours(1)).unwrap() + TimeDelta::minutes(70)
}

#[tokio::test]
async fn a_partition_is_compacted_by_the_first_pass_after_it_falls_due_and_its_lag_counts_from_then() {
    let dir = tempfile::tempdir().unwrap();
    let due = generate_open(dir.path()).await;
    let clock = ManualClock::new(due - TimeDelta::seconds(1));
    let ctx = crate::support::context(dir.path(), due, |c| c.compaction.min_input_files = 2)
        .await
        .with_clock(Arc::new(clock.clone()));
    let job = CompactionJob::new(&ctx);
    let cancel = CancellationToken::new();
    let poll = PassRequest::scheduled(Mode::Execute);

    // A second before: the earlier (closed) hours are compacted, the last one is still open.
    let before = job.run_once(&poll, &cancel).await.unwrap();
    let open_label = (due - TimeDelta::minutes(70)).format("timestamp_hour=%Y-%m-%d-%H").to_string();
    let done = compacted(&before);
    assert_eq!(done.len(), 2 * 2, "two tenants × two closed hours: {done:?}");
    assert!(done.iter().all(|(_, p)| *p != open_label), "{done:?}");
    let (count, _) = lag_samples(&ctx);
    assert_eq!(count, 4);
    assert!(ctx.metrics.debt_files.with_label_values(&["acme", "traces"]).get() == 0);

    // Seven seconds after it fell due, the next poll compacts it: lag 7 s per table, from the due time
    // (its files arrived before it closed).
    let (_, sum_before) = lag_samples(&ctx);
    clock.set(due + TimeDelta::seconds(7));
    let after = job.run_once(&poll, &cancel).await.unwrap();
    let done = compacted(&after);
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done.iter().all(|(_, p)| *p == open_label), "{done:?}");
    let (count, sum) = lag_samples(&ctx);
    assert_eq!(count, 6);
    assert!((sum - sum_before - 2.0 * 7.0).abs() < 1e-6, "lag sum grew by {}", sum - sum_before);

    // Nothing owed any more: the next poll reads nothing and the gauges say so.
    let idle = job.run_once(&poll, &cancel).await.unwrap();
    assert!(idle.tables.iter().all(|t| t.status == TableStatus::Unchanged), "{idle:#?}");
    assert_eq!(ctx.metrics.oldest_uncompacted_partition_age_seconds.get(), 0);
    let status = job.status_detail().unwrap();
    assert_eq!(status["debt"]["files"], 0, "{status}");
    assert_eq!(status["lag_last_hour"]["compacted_partitions"], 6, "{status}");
}

#[tokio::test]
async fn a_budget_stops_a_loop_pass_the_next_resumes_and_an_operator_pass_has_none() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::generate_small(dir.path()).await;
    // Every hour closed and due; 6 tables × 3 hours of 4 files.
    let now = crate::support::fixed_end() + TimeDelta::hours(2);
    let ctx = crate::support::context(dir.path(), now, |c| {
        c.compaction.min_input_files = 2;
        c.compaction.max_bytes_per_pass = Some(1);
    })
    .await;
    let job = CompactionJob::new(&ctx);
    let cancel = CancellationToken::new();
    let poll = PassRequest::scheduled(Mode::Execute);

    // One group per pass: the first group always runs, nothing after it.
    let first = job.run_once(&poll, &cancel).await.unwrap();
    let one = compacted(&first);
    assert_eq!(one.len(), 1, "{one:?}");
    let skipped: Vec<&str> = first
        .tables
        .iter()
        .filter(|t| matches!(&t.status, TableStatus::Skipped { reason } if reason == "pass_budget_bytes"))
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(skipped.len(), 5, "every other table owing work waits for the next pass: {first:#?}");
    let owner = first.tables.iter().find(|t| t.table == one[0].0).unwrap();
    let waiting: Vec<&str> = owner
        .partition_reports
        .iter()
        .filter(|p| matches!(&p.status, PartitionStatus::Skipped { reason } if reason == "pass_budget_bytes"))
        .map(|p| p.partition.as_str())
        .collect();
    assert_eq!(waiting.len(), 2, "its other hours wait too: {owner:#?}");
    // What is left is published: 17 partitions of 4 files.
    let owed: i64 = ["acme", "globex"]
        .iter()
        .flat_map(|tenant| ["traces", "logs", "metrics"].map(|s| (tenant.to_string(), s)))
        .map(|(tenant, signal)| ctx.metrics.debt_files.with_label_values(&[&tenant, signal]).get())
        .sum();
    assert_eq!(owed, 17 * 4);
    assert!(
        ctx.metrics.tables_skipped_total.with_label_values(&["compaction", "pass_budget_bytes"]).get() >= 5
    );

    // The next pass resumes with another partition; nothing is compacted twice.
    let second = job.run_once(&poll, &cancel).await.unwrap();
    let two = compacted(&second);
    assert_eq!(two.len(), 1, "{two:?}");
    assert_ne!(one, two);

    // An operator's pass is not budgeted: it compacts the remaining 16.
    let operator = job.run_once(&PassRequest::all(Mode::Execute), &cancel).await.unwrap();
    let rest = compacted(&operator);
    assert_eq!(rest.len(), 16, "{operator:#?}");
    assert!(!rest.contains(&one[0]) && !rest.contains(&two[0]));
    let again = job.run_once(&poll, &cancel).await.unwrap();
    assert!(again.tables.iter().all(|t| t.status == TableStatus::Unchanged), "{again:#?}");
    assert_eq!(ctx.metrics.debt_files.with_label_values(&["acme", "traces"]).get(), 0);
    // Rows unchanged by the budgeted passes: 3 hours × 4 files × 50 rows.
    assert_eq!(
        crate::support::pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["rows"],
        600
    );
}

/// Appends two small files to `hour` of `acme.production.traces`, as a late writer would.
async fn append_late(ctx: &signaldb_compactor::service::Context, hour: DateTime<Utc>, seed: u64) {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let traces = crate::support::table_ref(&ctx.catalog, "acme.production.traces").await;
    let table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let mut files = Vec::new();
    for seed in [seed, seed + 1] {
        let spec = signaldb_compactor::generate::batch::FileSpec {
            seed,
            rows: 20,
            start: hour,
            end: hour + TimeDelta::minutes(5),
        };
        files.extend(signaldb_compactor::generate::write_file(&table, &columns, &spec).await.unwrap());
    }
    let tx = Transaction::new(&table);
    let tx = tx.fast_append().add_data_files(files).apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
}

fn status_of(report: &PassReport, table: &str) -> TableStatus {
    report.tables.iter().find(|t| t.table == table).unwrap().status.clone()
}

#[tokio::test]
async fn late_files_in_a_closed_hour_wait_at_most_half_the_lag_target_in_a_loop_and_not_for_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let due = generate_open(dir.path()).await;
    let clock = ManualClock::new(due + TimeDelta::minutes(1));
    let ctx = crate::support::context(dir.path(), due, |c| c.compaction.min_input_files = 2)
        .await
        .with_clock(Arc::new(clock.clone()));
    let job = CompactionJob::new(&ctx);
    let cancel = CancellationToken::new();
    let poll = PassRequest::scheduled(Mode::Execute);
    let traces = "acme.production.traces";

    // Every hour is closed and due: the first poll compacts them all, the next finds nothing.
    let first = job.run_once(&poll, &cancel).await.unwrap();
    assert_eq!(compacted(&first).len(), 2 * 3, "{:?}", compacted(&first));
    let idle = job.run_once(&poll, &cancel).await.unwrap();
    assert!(idle.tables.iter().all(|t| t.status == TableStatus::Unchanged), "{idle:#?}");
    let looked = clock.now();

    // Late files land in a closed hour: the table's pointer moved, but a loop's poll keeps its last
    // look (taken a minute ago, well within half the 10 min lag target) and does not read it.
    let closed = due - TimeDelta::minutes(130);
    append_late(&ctx, closed, 51).await;
    clock.set(looked + TimeDelta::minutes(1));
    let deferred = job.run_once(&poll, &cancel).await.unwrap();
    assert_eq!(status_of(&deferred, traces), TableStatus::Unchanged, "{deferred:#?}");
    // An operator's pass is not deferred: it reads the moved table and compacts the late files.
    let operator = job.run_once(&PassRequest::all(Mode::Execute), &cancel).await.unwrap();
    assert_eq!(status_of(&operator, traces), TableStatus::Succeeded, "{operator:#?}");
    assert_eq!(compacted(&operator).len(), 1, "{:?}", compacted(&operator));

    // Again, then the loop alone: deferred until half the lag target after its last look, compacted
    // by the first poll past it.
    let looked = clock.now();
    let idle = job.run_once(&poll, &cancel).await.unwrap();
    assert!(idle.tables.iter().all(|t| t.status == TableStatus::Unchanged), "{idle:#?}");
    append_late(&ctx, closed, 61).await;
    clock.set(looked + TimeDelta::minutes(5) - TimeDelta::seconds(1));
    let deferred = job.run_once(&poll, &cancel).await.unwrap();
    assert_eq!(status_of(&deferred, traces), TableStatus::Unchanged, "{deferred:#?}");
    clock.set(looked + TimeDelta::minutes(5));
    let found = job.run_once(&poll, &cancel).await.unwrap();
    assert_eq!(status_of(&found, traces), TableStatus::Succeeded, "{found:#?}");
    let others: Vec<_> = found.tables.iter().filter(|t| t.table != traces).collect();
    assert!(others.iter().all(|t| t.status == TableStatus::Unchanged), "{others:#?}");
    let rows = crate::support::pyiceberg(dir.path(), &["scan", "--table", traces])["rows"].clone();
    assert_eq!(rows, 3 * 4 * 50 + 4 * 20, "no row lost or duplicated");
}

/// `max_concurrent_tables = 2`: two tables' groups are in flight at once (each holding its own lease),
/// every table is compacted once, no row is lost; a catalog database that fails mid-pass still ends
/// the pass as a failure (tested with one table at a time in leases.rs and faults.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tables_at_a_time_overlap_and_lose_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    crate::support::generate_survey_catalog(dir.path()).await;
    let ctx = crate::support::context(dir.path(), crate::support::fixed_end() + TimeDelta::minutes(5), |c| {
        c.compaction.min_input_files = 2;
        c.compaction.max_concurrent_tables = 2;
    })
    .await;
    let tables = ctx.discover().await.unwrap().len();
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // Each group waits at its commit until another table's group is in flight too (or 60 s pass: the
    // wait ends as soon as they overlap, so only a slow machine waits long).
    let hook: signaldb_compactor::job::BeforeCommitHook = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        Arc::new(move |_| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let waited = std::time::Instant::now();
                while most.load(Ordering::SeqCst) < 2 && waited.elapsed() < std::time::Duration::from_secs(60)
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
            })
        })
    };
    let job = CompactionJob::new(&ctx).with_before_commit(hook);
    let report = job.run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new()).await.unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 2, "two tables' groups were in flight at once");
    assert_eq!(report.tables.len(), tables);
    let done = compacted(&report);
    // The catalog's hour 09 is closed (hour 10 still open at 10:35): one partition per table.
    assert_eq!(done.len(), tables, "every table's closed hour, once each: {done:?}");
    let unique: std::collections::BTreeSet<_> = done.iter().collect();
    assert_eq!(unique.len(), done.len(), "no partition compacted twice");
    // 2 hours × 2 files × 20 rows in each table, as PyIceberg reads it after the concurrent commits.
    for t in ["acme.production.traces", "acme.production.logs"] {
        assert_eq!(crate::support::pyiceberg(dir.path(), &["scan", "--table", t])["rows"], 80, "{t}");
    }
}
