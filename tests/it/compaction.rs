//! Compaction acceptance on real components: SQLite catalog files, local Parquet files, Iceberg
//! metadata, the binary itself for crash and dry-run checks, and PyIceberg as the independent reader.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use iceberg::spec::Operation;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::generate::{GenerateOptions, generate};
use signaldb_compactor::job::{Job, PartitionStatus, PassReport, PassRequest, TableStatus};
use signaldb_compactor::service::Context;
use signaldb_compactor::table::{
    Change, CommitTarget, Inventory, RetryPolicy, SnapshotChange, Unleased, commit_with_retry,
};
use tokio_util::sync::CancellationToken;

use crate::support::{
    connect, context, files_per_partition, fixed_end, pyiceberg, run_bin, snapshot_bytes, write_config,
};

/// 1 tenant × 1 dataset × 3 tables, hours 07–10 ending 10:30, `files` files per hour.
fn options(dir: &std::path::Path, files: usize) -> GenerateOptions {
    GenerateOptions {
        tenants: 1,
        hours: 4,
        files_per_hour: files,
        rows_per_file: 200,
        seed: 11,
        concurrency: 3,
        ..GenerateOptions::small(dir)
    }
}

/// 10:35: hours 07–09 are closed; hour 10 ends at 11:00 (+10 min lateness) and is open.
fn now() -> chrono::DateTime<chrono::Utc> {
    fixed_end() + TimeDelta::minutes(5)
}

async fn run(ctx: &Context, mode: Mode) -> PassReport {
    CompactionJob::new(ctx).run_once(&PassRequest::all(mode), &CancellationToken::new()).await.unwrap()
}

fn local(path: &str) -> &str {
    path.trim_start_matches("file://")
}

#[tokio::test]
async fn compaction_keeps_every_row_and_leaves_open_partitions_alone() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 10)).await.unwrap();
    let ctx = context(dir.path(), now(), |_| {}).await;
    let tables: Vec<String> = ctx.catalog.discover().await.unwrap().iter().map(|t| t.qualified()).collect();
    let before: Vec<_> = tables.iter().map(|t| pyiceberg(dir.path(), &["scan", "--table", t])).collect();

    let report = run(&ctx, Mode::Execute).await;
    assert_eq!(report.failed_tables(), 0, "{report:#?}");
    for (t, before) in tables.iter().zip(&before) {
        let after = pyiceberg(dir.path(), &["scan", "--table", t]);
        assert_eq!(after["rows"], before["rows"], "{t}: row count");
        assert_eq!(after["checksum"], before["checksum"], "{t}: row multiset");
        assert_eq!(after["operation"], "replace", "{t}");

        let files = files_per_partition(&ctx, t).await;
        for hour in ["07", "08", "09"] {
            assert_eq!(
                files[&format!("timestamp_hour=2026-11-21-{hour}")],
                1,
                "{t} hour {hour}: 10 files -> 1"
            );
        }
        assert_eq!(files["timestamp_hour=2026-11-21-10"], 10, "{t}: the open partition is untouched");

        let table_report = report.tables.iter().find(|r| r.table == *t).unwrap();
        assert_eq!(table_report.status, TableStatus::Succeeded);
        assert_eq!(table_report.partition_counts(), (0, 3, 1, 0));
        let skipped = table_report.partition_reports.iter().find(|p| p.partition.ends_with("-10")).unwrap();
        assert_eq!(skipped.status, PartitionStatus::Skipped { reason: "open_partition".into() });
    }

    // Summary totals agree with the manifests.
    for t in ctx.catalog.discover().await.unwrap() {
        let table = ctx.catalog.load(&t).await.unwrap();
        let inventory = Inventory::load(&table).await.unwrap();
        let summary = &table.metadata().current_snapshot().unwrap().summary().additional_properties;
        assert_eq!(summary["total-data-files"], inventory.data.len().to_string(), "{t}");
        let records: u64 = inventory.data.iter().map(|f| f.records()).sum();
        assert_eq!(summary["total-records"], records.to_string(), "{t}");
        let size: u64 = inventory.data.iter().map(|f| f.size()).sum();
        assert_eq!(summary["total-files-size"], size.to_string(), "{t}");
        assert_eq!(summary["added-records"], summary["deleted-records"], "{t}: a replace keeps rows");
    }

    // Metrics saw it.
    let metrics = ctx.metrics.render();
    assert!(
        metrics.contains(
            "compactor_files_compacted_total{dataset=\"production\",signal=\"traces\",tenant=\"acme\"} 30"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"open_partition\""));

    // Idempotent: a second pass right after commits nothing.
    let snapshots: Vec<_> = futures_snapshot_ids(&ctx).await;
    let again = run(&ctx, Mode::Execute).await;
    assert!(again.tables.iter().all(|t| t.status == TableStatus::Unchanged), "{again:#?}");
    assert_eq!(futures_snapshot_ids(&ctx).await, snapshots);
}

async fn futures_snapshot_ids(ctx: &Context) -> Vec<Option<i64>> {
    let mut ids = Vec::new();
    for t in ctx.catalog.discover().await.unwrap() {
        ids.push(ctx.catalog.load(&t).await.unwrap().metadata().current_snapshot_id());
    }
    ids
}

#[tokio::test]
async fn output_files_are_sorted_by_the_declared_sort_order_and_claim_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 6)).await.unwrap();
    // A tiny memory budget forces the spilling merge path.
    let ctx = context(dir.path(), now(), |c| c.compaction.memory_limit_bytes = 64 * 1024).await;
    run(&ctx, Mode::Execute).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    let inventory = Inventory::load(&table).await.unwrap();
    let mut checked = 0;
    for f in &inventory.data {
        if !f.path().contains("/compact-") {
            continue;
        }
        assert_eq!(f.entry.data_file().sort_order_id(), Some(1), "{} claims the sort order", f.path());
        let keys = sort_keys(f.path());
        if let Some(i) = (1..keys.len()).find(|&i| keys[i - 1] > keys[i]) {
            panic!("{} not sorted at row {i}: {:?} > {:?}", f.path(), keys[i - 1], keys[i]);
        }
        let rows = keys.len() as u64;
        assert_eq!(rows, f.records(), "row count in {}", f.path());
        checked += 1;
    }
    assert_eq!(checked, 3, "one compacted file per closed hour");
}

#[tokio::test]
async fn pyiceberg_table_stays_readable_and_writable_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    // PyIceberg-created catalog in the V0 shape (no iceberg_type column), 6 appends over 3 hours.
    pyiceberg(
        dir.path(),
        &["create", "--table", "acme.prod.traces", "--rows", "120", "--appends", "6", "--legacy-schema"],
    );
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    let ctx = context(dir.path(), chrono::Utc::now(), |_| {}).await;
    let report = run(&ctx, Mode::Execute).await;
    assert_eq!(report.tables[0].status, TableStatus::Succeeded, "{report:#?}");
    assert_eq!(report.tables[0].partition_counts().1, 3, "three hours compacted");

    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    assert_eq!(after["checksum"], before["checksum"]);
    assert_eq!(after["operation"], "replace");
    pyiceberg(dir.path(), &["append", "--table", "acme.prod.traces", "--rows", "50", "--seed", "77"]);
    let union = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    assert_eq!(union["rows"], 720 + 50);
    assert_eq!(union["distinct_trace_ids"], 770);

    // We read around the missing iceberg_type column; the other engine's schema is untouched.
    let columns: Vec<String> =
        sqlx::query_scalar::<_, String>("SELECT name FROM pragma_table_info('iceberg_tables')")
            .fetch_all(
                &sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("catalog.db").display()))
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
    assert!(!columns.contains(&"iceberg_type".to_string()), "{columns:?}");
}

#[tokio::test]
async fn concurrent_appends_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions { files_per_hour: 8, ..options(dir.path(), 8) };
    let generated = generate(&opts).await.unwrap();
    let ctx = context(dir.path(), now(), |c| {
        c.commit.retry_backoff = Duration::from_millis(5);
        c.commit.max_attempts = 100;
    })
    .await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let per_table_rows = generated.rows / 3;

    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (catalog, traces, stop, appended) =
            (ctx.catalog.clone(), traces.clone(), stop.clone(), appended.clone());
        tokio::spawn(async move {
            let columns = signaldb_compactor::generate::schema::columns("traces");
            let mut i = 0u64;
            // At least 10 appends, and at most 40: a machine slow enough that every commit attempt
            // spans an append would otherwise retry until `max_attempts` while the writer never stops.
            while i < 10 || (!stop.load(Ordering::SeqCst) && i < 40) {
                // Into a closed hour that compaction is rewriting right now.
                let start = fixed_end() - TimeDelta::minutes(150);
                let spec = signaldb_compactor::generate::batch::FileSpec {
                    seed: 1000 + i,
                    rows: 50,
                    start,
                    end: start + TimeDelta::minutes(30),
                };
                let mut table = catalog.load(&traces).await.unwrap();
                signaldb_compactor::generate::append_file(&catalog, &mut table, &columns, &spec)
                    .await
                    .unwrap();
                appended.fetch_add(50, Ordering::SeqCst);
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let report = run(&ctx, Mode::Execute).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    let table_report = report.tables.iter().find(|r| r.table == traces.qualified()).unwrap();
    assert_eq!(table_report.status, TableStatus::Succeeded, "{table_report:#?}");
    let scan = pyiceberg(dir.path(), &["scan", "--table", &traces.qualified()]);
    let expected = per_table_rows + appended.load(Ordering::SeqCst) as u64;
    assert_eq!(scan["rows"], expected, "every appended row present");
    assert_eq!(scan["distinct_trace_ids"], expected, "and present exactly once");
}

#[tokio::test]
async fn a_concurrent_commit_removing_an_input_makes_the_group_abandon() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 6)).await.unwrap();
    let ctx = context(dir.path(), now(), |c| c.commit.retry_backoff = Duration::from_millis(5)).await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let before = pyiceberg(dir.path(), &["scan", "--table", &traces.qualified()]);
    let target = "timestamp_hour=2026-11-21-08".to_string();
    let removed_rows = Arc::new(AtomicUsize::new(0));

    // Between the rewrite and its commit, another writer deletes one of the partition's files.
    let hook = {
        let (catalog, ident, target, removed_rows) =
            (ctx.catalog.clone(), traces.ident.clone(), target.clone(), removed_rows.clone());
        Arc::new(move |partition: String| {
            let (catalog, ident, target, removed_rows) =
                (catalog.clone(), ident.clone(), target.clone(), removed_rows.clone());
            Box::pin(async move {
                if partition != target || removed_rows.load(Ordering::SeqCst) > 0 {
                    return;
                }
                let table = catalog.iceberg_load(&ident).await.unwrap();
                let inventory = Inventory::load(&table).await.unwrap();
                let hour = (fixed_end() - TimeDelta::hours(2)).timestamp() / 3600;
                let victim = inventory
                    .data
                    .iter()
                    .find(|f| {
                        f.entry.data_file().partition().fields()[0]
                            == Some(iceberg::spec::Literal::int(hour as i32))
                    })
                    .unwrap();
                removed_rows.store(victim.records() as usize, Ordering::SeqCst);
                let path = victim.path().to_string();
                let policy = RetryPolicy { max_attempts: 3, base_backoff: Duration::from_millis(5) };
                let target = CommitTarget {
                    catalog: &catalog,
                    ident: &ident,
                    policy,
                    cancel: &CancellationToken::new(),
                    fence: &Unleased,
                };
                commit_with_retry(&target, table, inventory, |_, _| {
                    Ok(Change::Snapshot(SnapshotChange {
                        operation: Operation::Delete,
                        remove: [path.clone()].into(),
                        add: vec![],
                        added_data_sequence_number: None,
                        summary: Default::default(),
                    }))
                })
                .await
                .unwrap();
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let job = CompactionJob::new(&ctx).with_before_commit(hook);
    let request = PassRequest {
        filter: signaldb_compactor::job::TableFilter::only([traces.qualified()]),
        ..PassRequest::all(Mode::Execute)
    };
    let report = job.run_once(&request, &CancellationToken::new()).await.unwrap();

    let partitions = &report.tables[0].partition_reports;
    let abandoned = partitions.iter().find(|p| p.partition == target).unwrap();
    assert!(
        matches!(&abandoned.status, PartitionStatus::Skipped { reason } if reason.starts_with("abandoned") && reason.contains("no longer live")),
        "{abandoned:#?}"
    );
    assert_eq!(
        partitions.iter().filter(|p| p.status == PartitionStatus::Succeeded).count(),
        2,
        "other hours still compacted"
    );
    let after = pyiceberg(dir.path(), &["scan", "--table", &traces.qualified()]);
    let removed = removed_rows.load(Ordering::SeqCst) as u64;
    assert!(removed > 0);
    assert_eq!(
        after["rows"],
        before["rows"].as_u64().unwrap() - removed,
        "the removed file's rows never come back"
    );
}

#[tokio::test]
async fn killed_before_the_swap_leaves_the_table_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 6)).await.unwrap();
    write_config(dir.path(), "");
    let catalog = connect(dir.path()).await;
    let traces = catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let location_before = catalog.metadata_location(&traces.ident).await.unwrap();
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);

    let killed =
        run_bin(dir.path(), &["once", "compaction"], &[("SIGNALDB_FAILPOINT", "compaction-before-swap")]);
    assert_eq!(killed.status.signal(), Some(9), "process was SIGKILLed at the failpoint: {killed:?}");
    assert_eq!(catalog.metadata_location(&traces.ident).await.unwrap(), location_before, "no swap happened");
    let after_kill = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!(after_kill["checksum"], before["checksum"]);
    assert_eq!(after_kill["operation"], "append");

    let rerun = run_bin(dir.path(), &["once", "compaction"], &[]);
    assert_eq!(rerun.status.code(), Some(0), "{}", String::from_utf8_lossy(&rerun.stderr));
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!(after["checksum"], before["checksum"]);
    assert_eq!(after["operation"], "replace");
}

#[tokio::test]
async fn dry_run_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 6)).await.unwrap();
    write_config(dir.path(), "");
    let before = snapshot_bytes(dir.path());
    for args in [&["once", "compaction", "--dry-run", "--json"][..], &["plan", "--json"][..]] {
        let out = run_bin(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let planned = reports[0]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["partition_reports"].as_array().unwrap().iter())
            .filter(|p| p["status"] == "planned")
            .count();
        // The binary runs on the wall clock: all four generated hours are long closed.
        assert_eq!(planned, 12, "{args:?}: three tables × four closed hours planned");
        assert!(String::from_utf8_lossy(&out.stderr).contains("[DRY-RUN] Would compact partition: tenant=acme dataset=production table=traces partition=timestamp_hour=2026-11-21-07 files=6 -> 1"));
    }
    let env_dry = run_bin(dir.path(), &["once", "compaction"], &[("SIGNALDB_COMPACTOR_DRY_RUN", "true")]);
    assert_eq!(env_dry.status.code(), Some(0));
    assert!(snapshot_bytes(dir.path()) == before, "dry-run changed bytes under the warehouse or the catalog");
}

#[tokio::test]
async fn explicit_partition_and_full_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 6)).await.unwrap();
    let ctx = context(dir.path(), now(), |_| {}).await;
    run(&ctx, Mode::Execute).await;
    // Already compacted: a normal pass leaves the hour alone, --full rewrites just that partition.
    let request = PassRequest {
        filter: signaldb_compactor::job::TableFilter::only(["acme.production.logs".to_string()]),
        partitions: vec!["timestamp_hour=2026-11-21-08".into()],
        full: true,
        ..PassRequest::all(Mode::Execute)
    };
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.logs"]);
    let report = CompactionJob::new(&ctx).run_once(&request, &CancellationToken::new()).await.unwrap();
    let parts = &report.tables[0].partition_reports;
    assert_eq!(parts.len(), 1, "{parts:#?}");
    assert_eq!(parts[0].partition, "timestamp_hour=2026-11-21-08");
    assert_eq!(parts[0].status, PartitionStatus::Succeeded);
    assert_eq!((parts[0].files_before, parts[0].files_after), (1, 1));
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.logs"])["checksum"],
        before["checksum"]
    );
}

#[tokio::test]
async fn unknown_table_filter_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 2)).await.unwrap();
    write_config(dir.path(), "");
    let out = run_bin(dir.path(), &["once", "compaction", "--table", "acme.production.nope"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("table not found"));
}

#[tokio::test]
async fn an_append_between_rewrite_and_commit_is_rebased_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 6)).await.unwrap();
    let ctx = context(dir.path(), now(), |c| c.commit.retry_backoff = Duration::from_millis(5)).await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let before = pyiceberg(dir.path(), &["scan", "--table", &traces.qualified()]);
    let fired = Arc::new(AtomicBool::new(false));
    let hook = {
        let (catalog, traces, fired) = (ctx.catalog.clone(), traces.clone(), fired.clone());
        Arc::new(move |partition: String| {
            let (catalog, traces, fired) = (catalog.clone(), traces.clone(), fired.clone());
            Box::pin(async move {
                if partition != "timestamp_hour=2026-11-21-08" || fired.swap(true, Ordering::SeqCst) {
                    return;
                }
                // The ingest writer lands a file in the very partition being compacted.
                let start = fixed_end() - TimeDelta::minutes(150);
                let spec = signaldb_compactor::generate::batch::FileSpec {
                    seed: 4242,
                    rows: 70,
                    start,
                    end: start + TimeDelta::minutes(10),
                };
                let mut table = catalog.load(&traces).await.unwrap();
                let columns = signaldb_compactor::generate::schema::columns("traces");
                signaldb_compactor::generate::append_file(&catalog, &mut table, &columns, &spec)
                    .await
                    .unwrap();
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let job = CompactionJob::new(&ctx).with_before_commit(hook);
    let request = PassRequest {
        filter: signaldb_compactor::job::TableFilter::only([traces.qualified()]),
        ..PassRequest::all(Mode::Execute)
    };
    let report = job.run_once(&request, &CancellationToken::new()).await.unwrap();
    let hour8 = report.tables[0]
        .partition_reports
        .iter()
        .find(|p| p.partition == "timestamp_hour=2026-11-21-08")
        .unwrap();
    assert_eq!(hour8.status, PartitionStatus::Succeeded, "{hour8:#?}");
    assert_eq!(hour8.attempts, Some(2), "one conflict, one rebased retry");
    assert!(ctx.metrics.render().contains(
        "compactor_commit_conflicts_total{dataset=\"production\",signal=\"traces\",tenant=\"acme\"} 1"
    ));
    let after = pyiceberg(dir.path(), &["scan", "--table", &traces.qualified()]);
    assert_eq!(after["rows"], before["rows"].as_u64().unwrap() + 70, "the concurrent append survives");
    assert_eq!(after["distinct_trace_ids"], after["rows"]);
    // The appended file is not an input of this group: it stays, next to the compacted file.
    assert_eq!(files_per_partition(&ctx, &traces.qualified()).await["timestamp_hour=2026-11-21-08"], 2);
}

#[tokio::test]
async fn format_v2_table_keeps_its_tag_and_properties() {
    let dir = tempfile::tempdir().unwrap();
    pyiceberg(dir.path(), &["create", "--table", "acme.prod.traces", "--rows", "60", "--appends", "6"]);
    let tagged = pyiceberg(dir.path(), &["tag", "--table", "acme.prod.traces"])["tagged"].as_i64().unwrap();
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    let ctx = context(dir.path(), chrono::Utc::now(), |_| {}).await;
    let t = ctx.catalog.discover().await.unwrap().remove(0);
    let properties_before = ctx.catalog.load(&t).await.unwrap().metadata().properties().clone();

    let report = run(&ctx, Mode::Execute).await;
    assert_eq!(report.tables[0].status, TableStatus::Succeeded, "{report:#?}");
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    assert_eq!(after["checksum"], before["checksum"]);
    assert_eq!(after["operation"], "replace");

    let table = ctx.catalog.load(&t).await.unwrap();
    let md = table.metadata();
    assert_eq!(md.format_version(), iceberg::spec::FormatVersion::V2);
    assert_eq!(md.properties(), &properties_before, "properties we do not own are untouched");
    assert_eq!(md.properties()["signaldb.wal.committed.writer-1"], "42");
    let tag = md.snapshot_for_ref("audit").expect("the tag survives");
    assert_eq!(tag.snapshot_id(), tagged, "and still points at its snapshot");
    assert_ne!(md.current_snapshot_id(), Some(tagged), "main moved on");
}

#[tokio::test]
async fn format_v3_tables_are_skipped_with_a_counted_reason() {
    use iceberg::Catalog as _;
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), 2)).await.unwrap();
    let ctx = context(dir.path(), now(), |_| {}).await;
    let columns = signaldb_compactor::generate::schema::columns("logs");
    let schema = signaldb_compactor::generate::schema::schema(&columns).unwrap();
    let creation = iceberg::TableCreation::builder()
        .name("logs_v3".to_string())
        .schema(schema)
        .format_version(iceberg::spec::FormatVersion::V3)
        .build();
    let ns = iceberg::NamespaceIdent::from_vec(vec!["acme".into(), "production".into()]).unwrap();
    ctx.catalog.iceberg().create_table(&ns, creation).await.unwrap();

    let report = run(&ctx, Mode::Execute).await;
    let v3 = report.tables.iter().find(|t| t.table == "acme.production.logs_v3").unwrap();
    assert_eq!(v3.status, TableStatus::Skipped { reason: "unsupported_format_version".into() });
    assert!(ctx.metrics.render().contains(
        "compactor_tables_skipped_total{job=\"compaction\",reason=\"unsupported_format_version\"} 1"
    ));
    assert_eq!(report.failed_tables(), 0, "a skipped table is not a failure");
}

#[tokio::test]
async fn format_v1_tables_are_compacted_unless_they_have_refs_iceberg_rust_would_drop() {
    let dir = tempfile::tempdir().unwrap();
    pyiceberg(
        dir.path(),
        &["create", "--table", "acme.prod.traces", "--rows", "60", "--appends", "6", "--format-version", "1"],
    );
    pyiceberg(
        dir.path(),
        &["create", "--table", "acme.prod.logs", "--rows", "60", "--appends", "6", "--format-version", "1"],
    );
    let tagged = pyiceberg(dir.path(), &["tag", "--table", "acme.prod.logs"])["tagged"].as_i64().unwrap();
    let traces_before = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    let ctx = context(dir.path(), chrono::Utc::now(), |_| {}).await;
    let logs = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "logs").unwrap();
    let logs_location = ctx.catalog.metadata_location(&logs.ident).await.unwrap();

    let report = run(&ctx, Mode::Execute).await;
    let status = |name: &str| report.tables.iter().find(|t| t.table == name).unwrap().status.clone();
    assert_eq!(status("acme.prod.traces"), TableStatus::Succeeded, "{report:#?}");
    let traces_after = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    assert_eq!(traces_after["checksum"], traces_before["checksum"]);
    assert_eq!(traces_after["operation"], "replace");
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    assert_eq!(
        ctx.catalog.load(&traces).await.unwrap().metadata().format_version(),
        iceberg::spec::FormatVersion::V1
    );

    // The tagged v1 table is refused whole: iceberg-rust would write its metadata without the tag.
    assert_eq!(status("acme.prod.logs"), TableStatus::Skipped { reason: "v1_refs_unsupported".into() });
    assert_eq!(ctx.catalog.metadata_location(&logs.ident).await.unwrap(), logs_location, "not committed to");
    let raw = std::fs::read(logs_location.unwrap().trim_start_matches("file://")).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(json["refs"]["audit"]["snapshot-id"], tagged);
}

#[tokio::test]
async fn a_v1_table_tagged_during_the_pass_keeps_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    pyiceberg(
        dir.path(),
        &["create", "--table", "acme.prod.traces", "--rows", "60", "--appends", "6", "--format-version", "1"],
    );
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    let ctx =
        context(dir.path(), chrono::Utc::now(), |c| c.commit.retry_backoff = Duration::from_millis(5)).await;
    let traces = ctx.catalog.discover().await.unwrap().remove(0);
    // Another engine tags the table between the rewrite and its commit: the swap conflicts, and the
    // table as reloaded has a ref iceberg-rust would drop from v1 metadata.
    let tagged = Arc::new(AtomicUsize::new(0));
    let hook = {
        let (dir, tagged) = (dir.path().to_path_buf(), tagged.clone());
        Arc::new(move |_partition: String| {
            let (dir, tagged) = (dir.clone(), tagged.clone());
            Box::pin(async move {
                if tagged.load(Ordering::SeqCst) == 0 {
                    let id =
                        pyiceberg(&dir, &["tag", "--table", "acme.prod.traces"])["tagged"].as_i64().unwrap();
                    tagged.store(id as usize, Ordering::SeqCst);
                }
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let report = CompactionJob::new(&ctx)
        .with_before_commit(hook)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    let partitions = &report.tables[0].partition_reports;
    assert!(!partitions.is_empty());
    for p in partitions {
        assert!(
            matches!(&p.status, PartitionStatus::Skipped { reason } if reason.contains("v1_refs_unsupported")),
            "{p:#?}"
        );
    }
    let location = ctx.catalog.metadata_location(&traces.ident).await.unwrap().unwrap();
    let raw = std::fs::read(local(&location)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        json["refs"]["audit"]["snapshot-id"],
        tagged.load(Ordering::SeqCst) as i64,
        "the tag survives"
    );
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    assert_eq!(after["checksum"], before["checksum"]);
    assert_eq!(after["operation"], "append", "nothing was committed");
}

#[tokio::test]
async fn a_stale_inventory_never_drops_what_was_committed_on_top() {
    let dir = tempfile::tempdir().unwrap();
    pyiceberg(dir.path(), &["create", "--table", "acme.prod.traces", "--rows", "60", "--appends", "6"]);
    let ctx = context(dir.path(), chrono::Utc::now(), |_| {}).await;
    let traces = ctx.catalog.discover().await.unwrap().remove(0);
    // The inventory of the snapshot our last commit made; then another writer commits on top (as it
    // can between our swap and the reload that confirms it).
    let old_table = ctx.catalog.iceberg_load(&traces.ident).await.unwrap();
    let stale = Inventory::load(&old_table).await.unwrap();
    pyiceberg(dir.path(), &["append", "--table", "acme.prod.traces", "--rows", "50", "--seed", "77"]);
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    let table = ctx.catalog.iceberg_load(&traces.ident).await.unwrap();
    assert_ne!(table.metadata().current_snapshot_id(), stale.snapshot_id());
    let victim = stale.data[0].clone();
    let change = Change::Snapshot(SnapshotChange {
        operation: Operation::Delete,
        remove: [victim.path().to_string()].into(),
        add: vec![],
        added_data_sequence_number: None,
        summary: Default::default(),
    });

    // Staged as it is, the pair would make the old snapshot the parent and drop the append.
    let refused = signaldb_compactor::table::producer::stage(&table, &stale, &change).await;
    assert!(
        matches!(refused, Err(signaldb_compactor::table::producer::ProduceError::StaleBase { .. })),
        "{:?}",
        refused.map(|s| s.snapshot_id)
    );
    // The commit path reads the current snapshot's inventory instead.
    let target = CommitTarget {
        catalog: &ctx.catalog,
        ident: &traces.ident,
        policy: RetryPolicy { max_attempts: 3, base_backoff: Duration::from_millis(5) },
        cancel: &CancellationToken::new(),
        fence: &Unleased,
    };
    let committed = commit_with_retry(&target, table, stale, |_, _| Ok(change.clone())).await.unwrap();
    assert_eq!(committed.inventory.snapshot_id(), Some(committed.snapshot_id));
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"]);
    assert_eq!(
        after["rows"],
        before["rows"].as_u64().unwrap() - victim.records(),
        "only the removed file's rows are gone; the append committed on top survives"
    );
}

/// A job that passes its passes through to `inner` and cancels the loop's token as pass `passes`
/// returns, so that a loop runs exactly that many passes however long each takes.
struct StopAfter<J> {
    inner: J,
    passes: usize,
    ran: AtomicUsize,
}

#[async_trait::async_trait]
impl<J: Job> Job for StopAfter<J> {
    fn kind(&self) -> signaldb_compactor::job::JobKind {
        self.inner.kind()
    }
    fn interval(&self) -> Duration {
        self.inner.interval()
    }
    fn mode(&self) -> Mode {
        self.inner.mode()
    }
    fn window(&self) -> Option<signaldb_compactor::window::Window> {
        self.inner.window()
    }
    fn poll_interval(&self) -> Option<Duration> {
        self.inner.poll_interval()
    }
    async fn run_once(
        &self,
        request: &PassRequest,
        cancel: &CancellationToken,
    ) -> Result<PassReport, signaldb_compactor::job::JobError> {
        let outcome = self.inner.run_once(request, cancel).await;
        if self.ran.fetch_add(1, Ordering::SeqCst) + 1 >= self.passes {
            cancel.cancel();
        }
        outcome
    }
}

#[tokio::test]
async fn a_panic_in_one_table_fails_that_table_only_and_the_next_tick_runs() {
    use signaldb_compactor::failpoint;
    use signaldb_compactor::service::{StatusBoard, run_periodic};
    let dir = tempfile::tempdir().unwrap();
    // Tenant names unique to this test: the panic point is armed for the whole test binary.
    let tables = ["apanicfirst.prod.traces", "panicky.prod.traces", "zpaniclast.prod.traces"];
    for t in tables {
        pyiceberg(dir.path(), &["create", "--table", t, "--rows", "60", "--appends", "6"]);
    }
    let before: Vec<_> = tables.iter().map(|t| pyiceberg(dir.path(), &["scan", "--table", t])).collect();
    failpoint::arm(failpoint::COMPACTION_PANIC, "panicky.prod.traces");
    let ctx =
        context(dir.path(), chrono::Utc::now(), |c| c.compaction.interval = Duration::from_secs(1)).await;

    let status = Arc::new(StatusBoard::new(&[(signaldb_compactor::job::JobKind::Compaction, true)]));
    let cancel = CancellationToken::new();
    // The loop is stopped as its second pass returns, not by polling the board: a second pass slower
    // than the 1 s interval would otherwise let a third start before the cancel (seen as a flake risk
    // on a loaded machine: a third failure, or a cancelled third pass clearing the last error).
    let job: Arc<dyn Job> =
        Arc::new(StopAfter { inner: CompactionJob::new(&ctx), passes: 2, ran: AtomicUsize::new(0) });
    let loop_task = tokio::spawn(run_periodic(
        job,
        cancel.clone(),
        status.clone(),
        ctx.metrics.clone(),
        ctx.clock.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(300), loop_task)
        .await
        .unwrap_or_else(|_| panic!("the second tick never ended: {:?}", status.snapshot()))
        .unwrap();

    let loop_status = &status.snapshot()[0];
    assert_eq!(loop_status.failures, 2, "{loop_status:?}");
    assert_eq!(loop_status.last_error.as_deref(), Some("1 table(s) failed: panicky.prod.traces"));
    assert!(ctx.metrics.render().contains("compactor_pass_failures_total{job=\"compaction\"} 2"));
    for (t, before) in tables.iter().zip(&before) {
        let after = pyiceberg(dir.path(), &["scan", "--table", t]);
        assert_eq!(after["checksum"], before["checksum"], "{t}");
        let expected = if *t == "panicky.prod.traces" { "append" } else { "replace" };
        assert_eq!(after["operation"], expected, "{t}: only the panicking table is left as it was");
    }
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("catalog.db").display()))
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT status, error_message FROM compactor_runs WHERE tenant_id = 'panicky' ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "one audit row per tick: {rows:?}");
    for (status, error) in rows {
        assert_eq!(status, "failed");
        assert!(error.unwrap().contains("panicked: failpoint compaction-panic"), "the panic is recorded");
    }
}

#[tokio::test]
async fn a_content_invariant_violation_commits_nothing_and_deletes_its_outputs() {
    use signaldb_compactor::failpoint;
    let dir = tempfile::tempdir().unwrap();
    // A unique tenant: the fault is armed for the whole test binary.
    let t = "swapped.prod.traces";
    pyiceberg(dir.path(), &["create", "--table", t, "--rows", "60", "--appends", "6"]);
    let before = pyiceberg(dir.path(), &["scan", "--table", t]);
    // The reader swaps trace_id and service_name (both required strings): same row count, wrong content.
    failpoint::arm(failpoint::COMPACTION_SWAP_COLUMNS, t);
    let ctx = context(dir.path(), chrono::Utc::now(), |_| {}).await;
    let table = ctx.catalog.discover().await.unwrap().remove(0);
    let location = ctx.catalog.metadata_location(&table.ident).await.unwrap();

    let report = run(&ctx, Mode::Execute).await;
    let r = &report.tables[0];
    assert!(matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
    assert_eq!(r.partition_reports.len(), 3, "{r:#?}");
    for p in &r.partition_reports {
        assert!(
            matches!(&p.status, PartitionStatus::Failed { error } if error.starts_with("content invariant violated")),
            "{p:#?}"
        );
    }
    assert_eq!(ctx.catalog.metadata_location(&table.ident).await.unwrap(), location, "nothing committed");
    let after = pyiceberg(dir.path(), &["scan", "--table", t]);
    assert_eq!(
        (&after["checksum"], &after["operation"]),
        (&before["checksum"], &serde_json::json!("append"))
    );
    let written = snapshot_bytes(&dir.path().join("warehouse"));
    assert!(written.iter().all(|(p, _)| !p.to_string_lossy().contains("/compact-")), "outputs deleted");
    assert!(ctx.metrics.render().contains(
        "compactor_invariant_violations_total{job=\"compaction\",table=\"swapped.prod.traces\"} 3"
    ));
}

/// A panic inside one group's rewrite (its own task) fails that group only: the table's other groups,
/// rewriting beside it, commit, and no row is lost or changed.
#[tokio::test]
async fn a_panic_in_one_groups_rewrite_fails_that_group_only() {
    use signaldb_compactor::failpoint;
    let dir = tempfile::tempdir().unwrap();
    // A unique tenant: the panic point is armed for the whole test binary.
    let t = "rewritepanic.prod.traces";
    pyiceberg(dir.path(), &["create", "--table", t, "--rows", "60", "--appends", "6"]);
    let before = pyiceberg(dir.path(), &["scan", "--table", t]);
    let ctx = context(dir.path(), chrono::Utc::now(), |c| c.compaction.max_concurrent_rewrites = 2).await;
    let labels: Vec<String> = files_per_partition(&ctx, t).await.into_keys().collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    failpoint::arm(failpoint::REWRITE_PANIC, &format!("{t}/{}", labels[1]));

    let report = run(&ctx, Mode::Execute).await;
    let r = &report.tables[0];
    let status =
        |label: &str| r.partition_reports.iter().find(|p| p.partition == label).map(|p| p.status.clone());
    assert_eq!(status(&labels[0]), Some(PartitionStatus::Succeeded), "{r:#?}");
    assert_eq!(status(&labels[2]), Some(PartitionStatus::Succeeded), "{r:#?}");
    assert!(
        matches!(status(&labels[1]), Some(PartitionStatus::Failed { error }) if error == "rewrite task panicked"),
        "{r:#?}"
    );
    let files = files_per_partition(&ctx, t).await;
    assert_eq!((files[&labels[0]], files[&labels[2]]), (1, 1), "{files:?}");
    assert!(files[&labels[1]] > 1, "the panicking group committed nothing: {files:?}");
    let after = pyiceberg(dir.path(), &["scan", "--table", t]);
    assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]));
}

/// The (timestamp, trace_id) keys of a `traces` Parquet file, in file order.
fn sort_keys(path: &str) -> Vec<(i64, String)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(local(path)).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut keys = Vec::new();
    for batch in reader {
        keys.extend(crate::support::timestamp_and_trace_id(&batch.unwrap()));
    }
    keys
}

/// Every compacted (`compact-*`) file of `table`: claims sort order 1 and is sorted by
/// (timestamp, trace_id) with nulls first; returns the rows checked.
async fn assert_compacted_files_sorted(ctx: &Context, table: &str) -> u64 {
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.qualified() == table).unwrap();
    let table = ctx.catalog.load(&t).await.unwrap();
    let inventory = Inventory::load(&table).await.unwrap();
    let mut rows = 0u64;
    for f in inventory.data.iter().filter(|f| f.path().contains("/compact-")) {
        assert_eq!(f.entry.data_file().sort_order_id(), Some(1), "{} claims the sort order", f.path());
        let keys = sort_keys(f.path());
        if let Some(i) = (1..keys.len()).find(|&i| keys[i - 1] > keys[i]) {
            panic!("{} not sorted at row {}: {:?} > {:?}", f.path(), rows + i as u64, keys[i - 1], keys[i]);
        }
        rows += keys.len() as u64;
    }
    rows
}

/// A `traces` table of hours 09 (closed, 3 files) and 10 (open) under a context with `memory` bytes for
/// rewrites; the start of hour 09, where tests append files of their own.
async fn traces_with_closed_hour(
    dir: &std::path::Path,
    memory: u64,
) -> (Context, signaldb_compactor::model::TableRef, chrono::DateTime<chrono::Utc>) {
    let mut opts = options(dir, 3);
    opts.tables = vec!["traces".into()];
    opts.hours = 2;
    generate(&opts).await.unwrap();
    let ctx = context(dir, now(), |c| c.compaction.memory_limit_bytes = memory).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let hour = fixed_end() - TimeDelta::minutes(90); // 09:00, closed
    let start = chrono::DurationRound::duration_trunc(hour, TimeDelta::hours(1)).unwrap();
    (ctx, t, start)
}

/// Sorted runs are merged, and a claim is verified, not trusted: one closed hour holds files sorted and
/// claiming the order (SignalDB's writer), files claiming it while unsorted (a buggy writer), and files
/// claiming nothing. With an ample and a tiny (spilling) memory budget, the output is sorted, claims the
/// order, and both independent readers see the same rows as before.
#[tokio::test]
async fn claimed_sorted_runs_merge_and_false_claims_are_caught() {
    use signaldb_compactor::generate::{FileLayout, append_file_as, batch::FileSpec, schema::columns};
    for memory in [256 << 20, 48 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, t, start) = traces_with_closed_hour(dir.path(), memory).await;
        let mut table = ctx.catalog.load(&t).await.unwrap();
        for (i, layout) in
            [FileLayout::Misclaimed, FileLayout::Unsorted, FileLayout::Misclaimed, FileLayout::Sorted]
                .into_iter()
                .enumerate()
        {
            let spec = FileSpec { seed: 500 + i as u64, rows: 300, start, end: start + TimeDelta::hours(1) };
            append_file_as(&ctx.catalog, &mut table, &columns("traces"), &spec, layout).await.unwrap();
        }
        let name = t.qualified();
        let before = pyiceberg(dir.path(), &["scan", "--table", &name]);
        let before_duck = crate::support::duckdb(dir.path(), &["scan", "--table", &name]);
        assert_eq!(before["checksum"], before_duck["checksum"]);

        let report = run(&ctx, Mode::Execute).await;
        assert_eq!(report.failed_tables(), 0, "{report:#?}");
        let after = pyiceberg(dir.path(), &["scan", "--table", &name]);
        let after_duck = crate::support::duckdb(dir.path(), &["scan", "--table", &name]);
        assert_eq!(after["operation"], "replace");
        for after in [&after, &after_duck] {
            assert_eq!(after["rows"], before["rows"], "memory {memory}: row count");
            assert_eq!(after["checksum"], before["checksum"], "memory {memory}: row multiset");
        }
        let files = files_per_partition(&ctx, &name).await;
        assert_eq!(files["timestamp_hour=2026-11-21-09"], 1, "3 + 4 files -> 1");
        // Hours 09 (3 generated + 4 appended files of 200/300 rows) and 10 is open: 3*200 + 4*300.
        assert_eq!(assert_compacted_files_sorted(&ctx, &name).await, 3 * 200 + 4 * 300);
    }
}

/// Every input claims the order, so the group is merged straight from its files (opened as the merge
/// reaches them: three files covering successive 20 minutes). Where the last one lies (claims the
/// order, rows descending) the merge finds it after more than one output batch was written, the
/// output written so far is deleted and the group is sorted instead. Either way, with an ample budget
/// (merged) and a tiny one (sorted, spilling): sorted output claiming the order, the same rows for
/// both independent readers, and no compacted file left on disk that the table does not reference.
#[tokio::test]
async fn inputs_all_claiming_the_order_are_merged_and_a_false_claim_falls_back_to_the_sort() {
    use signaldb_compactor::generate::{FileLayout, append_file_as, batch::FileSpec, schema::columns};
    let honest = [FileLayout::Sorted, FileLayout::Sorted, FileLayout::Sorted];
    let lying = [FileLayout::Sorted, FileLayout::Sorted, FileLayout::Misclaimed];
    for (layouts, memory) in
        [(honest, 256 << 20), (honest, 48 * 1024), (lying, 256 << 20), (lying, 48 * 1024)]
    {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, t, start) = traces_with_closed_hour(dir.path(), memory).await;
        let mut table = ctx.catalog.load(&t).await.unwrap();
        for (i, layout) in layouts.into_iter().enumerate() {
            let from = start + TimeDelta::minutes(20 * i as i64);
            let spec = FileSpec {
                seed: 700 + i as u64,
                rows: 6000,
                start: from,
                end: from + TimeDelta::minutes(20),
            };
            append_file_as(&ctx.catalog, &mut table, &columns("traces"), &spec, layout).await.unwrap();
        }
        let name = t.qualified();
        let before = pyiceberg(dir.path(), &["scan", "--table", &name]);

        let report = run(&ctx, Mode::Execute).await;
        let case = format!("{layouts:?} at {memory} bytes");
        assert_eq!(report.failed_tables(), 0, "{case}: {report:#?}");
        let after = pyiceberg(dir.path(), &["scan", "--table", &name]);
        let after_duck = crate::support::duckdb(dir.path(), &["scan", "--table", &name]);
        assert_eq!(after["operation"], "replace", "{case}");
        for after in [&after, &after_duck] {
            assert_eq!(
                (&after["rows"], &after["checksum"]),
                (&before["rows"], &before["checksum"]),
                "{case}"
            );
        }
        assert_eq!(files_per_partition(&ctx, &name).await["timestamp_hour=2026-11-21-09"], 1, "{case}");
        assert_eq!(assert_compacted_files_sorted(&ctx, &name).await, 3 * 200 + 3 * 6000, "{case}");
        let table = ctx.catalog.load(&t).await.unwrap();
        let live: std::collections::HashSet<String> =
            Inventory::load(&table).await.unwrap().data.iter().map(|f| local(f.path()).to_string()).collect();
        for (path, _) in snapshot_bytes(&dir.path().join("warehouse")) {
            let path = path.to_string_lossy().to_string();
            assert!(!path.contains("/compact-") || live.contains(&path), "{case}: {path} left behind");
        }
    }
}

/// The inventory of a generated `traces` table: one hour (10:00–10:30) of `files` files, `options`
/// changed by `change`.
async fn generated_traces(
    dir: &std::path::Path,
    files: usize,
    change: impl FnOnce(&mut GenerateOptions),
) -> Inventory {
    let mut opts = options(dir, files);
    opts.tables = vec!["traces".into()];
    opts.hours = 1;
    change(&mut opts);
    generate(&opts).await.unwrap();
    let ctx = context(dir, now(), |_| {}).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().next().unwrap();
    Inventory::load(&ctx.catalog.load(&t).await.unwrap()).await.unwrap()
}

/// `generate` writes files as SignalDB's writer does: sorted by the declared order and claiming it;
/// `unsorted_files` writes them in generation order, claiming nothing.
#[tokio::test]
async fn generated_files_claim_the_sort_order_unless_asked_not_to() {
    for unsorted_files in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let inventory = generated_traces(dir.path(), 2, |o| o.unsorted_files = unsorted_files).await;
        assert_eq!(inventory.data.len(), 2);
        for f in &inventory.data {
            let want = (!unsorted_files).then_some(1);
            assert_eq!(f.entry.data_file().sort_order_id(), want, "{}", f.path());
            let keys = sort_keys(f.path());
            if !unsorted_files {
                assert!(
                    keys.windows(2).all(|w| w[0] <= w[1]),
                    "{} claims the order but is not sorted",
                    f.path()
                );
            }
        }
    }
}

/// `windowed_files`: file i of n in an hour holds timestamps only in stretches i and i + 1 of the
/// hour's n stretches (as an ingest writer's successive flushes do), read back from the files
/// themselves; without it every file spreads over the hour.
#[tokio::test]
async fn windowed_files_cover_successive_stretches_of_their_hour() {
    for windowed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let inventory = generated_traces(dir.path(), 6, |o| {
            o.rows_per_file = 300;
            o.windowed_files = windowed;
        })
        .await;
        let mut spans: Vec<(i64, i64)> = Vec::new();
        for f in &inventory.data {
            let ts: Vec<i64> = sort_keys(f.path()).into_iter().map(|(ts, _)| ts).collect();
            spans.push((*ts.iter().min().unwrap(), *ts.iter().max().unwrap()));
        }
        spans.sort();
        assert_eq!(spans.len(), 6);
        // The one hour generated is the one holding the end (10:30): 10:00–10:30, six 5-minute stretches.
        let end = fixed_end().timestamp_micros();
        let hour = end - end % 3_600_000_000;
        let stretch = (end - hour) / 6;
        for (i, &(lo, hi)) in spans.iter().enumerate() {
            if windowed {
                let from = hour + stretch * i as i64;
                assert!(
                    lo >= from && hi < from + 2 * stretch,
                    "file {i}: {lo}..{hi} outside its two stretches"
                );
            } else {
                assert!(hi - lo > 4 * stretch, "file {i} spreads over the range: {lo}..{hi}");
            }
        }
    }
}
