//! Retention acceptance: partition drops as `delete` snapshots, snapshot expiry that respects tags,
//! deletion of exactly the files expiry made unreachable, races with appends and compaction, dry-run.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{Config, Mode, RetentionValue};
use signaldb_compactor::generate::{GenerateOptions, generate};
use signaldb_compactor::job::{
    BeforeCommitHook, Job, PartitionStatus, PassRequest, TableFilter, TableStatus,
};
use signaldb_compactor::retention::RetentionJob;
use signaldb_compactor::table::reachability::reachable;
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, pyiceberg, run_bin, snapshot_bytes, write_config};

fn traces_only(dir: &std::path::Path, hours: u32, files: usize, rows: usize) -> GenerateOptions {
    GenerateOptions {
        tenants: 1,
        hours,
        files_per_hour: files,
        rows_per_file: rows,
        seed: 5,
        tables: vec!["traces".into()],
        concurrency: 1,
        ..GenerateOptions::small(dir)
    }
}

fn days(n: u64) -> RetentionValue {
    RetentionValue::For(Duration::from_secs(n * 86_400))
}

fn enable(c: &mut Config, traces: RetentionValue) {
    c.retention.enabled = true;
    c.retention.mode = Mode::Execute;
    c.retention.policy.global.traces = Some(traces);
}

async fn run_retention(job: &RetentionJob) -> signaldb_compactor::job::PassReport {
    job.run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new()).await.unwrap()
}

/// Ten days of hourly traces, seven days kept: 2026-11-21 10:35 − 7 d − 1 h = 2026-11-14 09:35, so
/// hours up to 08:00–09:00 go and the 09:00–10:00 hour straddling the cutoff stays whole.
#[tokio::test]
async fn ten_days_of_traces_with_seven_days_retention() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 240, 1, 20)).await.unwrap();
    let now = fixed_end() + TimeDelta::minutes(5);
    let kept_since = "2026-11-14T09:00:00";
    let kept_before =
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces", "--since", kept_since]);
    assert_eq!(kept_before["rows"], 170 * 20);

    // Dry-run first: it plans the 70 drops and changes no byte.
    let bytes = snapshot_bytes(dir.path());
    // Opened as a dry-run-only process opens: read-only.
    let dry_ctx = crate::support::context_with_access(
        dir.path(),
        now,
        signaldb_compactor::catalog::Access::ReadOnly,
        |c| {
            enable(c, days(7));
            c.retention.mode = Mode::DryRun;
        },
    )
    .await;
    let dry = RetentionJob::new(&dry_ctx)
        .run_once(&PassRequest::all(Mode::DryRun), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(dry.tables[0].partition_counts().0, 70, "{:#?}", dry.tables[0]);
    drop(dry_ctx);
    assert!(snapshot_bytes(dir.path()) == bytes, "dry-run changed bytes");

    let ctx = context(dir.path(), now, |c| enable(c, days(7))).await;
    let job = RetentionJob::new(&ctx);
    let report = run_retention(&job).await;
    let t = &report.tables[0];
    assert_eq!(t.status, TableStatus::Succeeded, "{t:#?}");
    assert_eq!(t.partition_counts().1, 70, "70 whole hours dropped");
    assert_eq!(t.partition_reports.first().unwrap().partition, "timestamp_hour=2026-11-11-11");
    assert_eq!(t.partition_reports.last().unwrap().partition, "timestamp_hour=2026-11-14-08");

    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!(after["rows"], 170 * 20, "every row of the kept partitions, none of the dropped");
    assert_eq!(after["checksum"], kept_before["checksum"], "kept rows unchanged");
    assert_eq!(after["operation"], "delete");
    assert!(after["min_timestamp"].as_str().unwrap() >= kept_since, "{after}");
    let metrics = ctx.metrics.render();
    assert!(metrics.contains(
        "compactor_partitions_dropped_total{dataset=\"production\",signal=\"traces\",tenant=\"acme\"} 70"
    ));
    assert!(metrics.contains("compactor_retention_cutoffs_computed_total{dataset=\"production\",signal=\"traces\",tenant=\"acme\"} 1"));

    // Idempotent: nothing is left to drop.
    let snapshot = ctx
        .catalog
        .load(&ctx.catalog.discover().await.unwrap()[0])
        .await
        .unwrap()
        .metadata()
        .current_snapshot_id();
    let again = run_retention(&job).await;
    assert_eq!(again.tables[0].partition_counts(), (0, 0, 0, 0));
    let table = ctx.catalog.load(&ctx.catalog.discover().await.unwrap()[0]).await.unwrap();
    assert_eq!(table.metadata().current_snapshot_id(), snapshot);
}

/// Compacts the generated table five minutes after `fixed_end` (hour 09 closed, hour 10 open) and
/// returns it as committed.
async fn compact_the_closed_hour(
    dir: &std::path::Path,
) -> (signaldb_compactor::catalog::TableRef, iceberg::table::Table) {
    let compaction = context(dir, fixed_end() + TimeDelta::minutes(5), |_| {}).await;
    let compacted = CompactionJob::new(&compaction)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(compacted.tables[0].status, TableStatus::Succeeded);
    let t = compaction.catalog.discover().await.unwrap().remove(0);
    let table = compaction.catalog.load(&t).await.unwrap();
    (t, table)
}

#[tokio::test]
async fn snapshot_expiry_keeps_tags_and_deletes_only_what_became_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 2, 6, 50)).await.unwrap();
    // S1..S12 are the twelve appends; tag S12, then compaction adds S13 (hour 09 closed, hour 10 open).
    let tagged =
        pyiceberg(dir.path(), &["tag", "--table", "acme.production.traces"])["tagged"].as_i64().unwrap();
    let (t, table) = compact_the_closed_hour(dir.path()).await;
    let md = table.metadata();
    let head = md.current_snapshot_id().unwrap();
    let mut chain = Vec::new();
    let mut cursor = Some(head);
    while let Some(id) = cursor {
        chain.push(id);
        cursor = md.snapshot_by_id(id).unwrap().parent_snapshot_id();
    }
    assert_eq!(chain.len(), 13);
    assert_eq!(chain[1], tagged);
    let reachable_before = reachable(&table).await.unwrap();
    let rows_before = pyiceberg(dir.path(), &["scan", "--table", &t.qualified()]);

    // Ten days on: every snapshot is older than 5 days. Keep 1 per branch: main's head and the tag.
    let ctx = context(dir.path(), Utc::now() + TimeDelta::days(10), |c| {
        enable(c, RetentionValue::Forever);
        c.retention.snapshots_to_keep = 1;
    })
    .await;
    let report = run_retention(&RetentionJob::new(&ctx)).await;
    assert_eq!(report.tables[0].status, TableStatus::Succeeded, "{:#?}", report.tables[0]);

    let table = ctx.catalog.load(&t).await.unwrap();
    let remaining: HashSet<i64> = table.metadata().snapshots().map(|s| s.snapshot_id()).collect();
    assert_eq!(
        remaining,
        HashSet::from([head, tagged]),
        "exactly main's head and the tagged snapshot remain"
    );
    assert_eq!(table.metadata().snapshot_for_ref("audit").unwrap().snapshot_id(), tagged);

    // Every file still reachable exists; the tag keeps the pre-compaction data files alive.
    let reachable_after = reachable(&table).await.unwrap();
    let gone = reachable_before.minus(&reachable_after);
    assert!(!gone.is_empty());
    for path in &gone {
        assert!(
            !std::path::Path::new(path.trim_start_matches("file://")).exists(),
            "unreachable file not deleted: {path}"
        );
        assert!(path.contains("/metadata/"), "only metadata files became unreachable here: {path}");
    }
    let deleted_lists = gone.iter().filter(|p| p.contains("/snap-")).count();
    assert_eq!(deleted_lists, 11, "manifest lists of the eleven expired snapshots: {gone:#?}");
    for path in reachable_before.minus(&signaldb_compactor::table::reachability::Reachable::default()) {
        let exists = std::path::Path::new(path.trim_start_matches("file://")).exists();
        assert_eq!(exists, reachable_after.contains(&path), "{path}");
    }
    let inventory = signaldb_compactor::table::Inventory::load_snapshot(
        &table,
        table.metadata().snapshot_by_id(tagged).unwrap().clone(),
    )
    .await
    .unwrap();
    assert_eq!(inventory.data.len(), 12, "the tag's twelve original files");
    assert!(
        inventory.data.iter().all(|f| std::path::Path::new(f.path().trim_start_matches("file://")).exists())
    );
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", &t.qualified()])["checksum"],
        rows_before["checksum"]
    );
    assert!(ctx.metrics.render().contains(
        "compactor_snapshots_expired_total{dataset=\"production\",table=\"traces\",tenant=\"acme\"} 11"
    ));
}

/// The manifest paths `snapshot`'s manifest list names.
async fn manifest_paths(
    table: &iceberg::table::Table,
    snapshot: &iceberg::spec::SnapshotRef,
) -> HashSet<String> {
    let list = table.manifest_list_reader(snapshot).load().await.unwrap();
    list.entries().iter().map(|m| m.manifest_path.clone()).collect()
}

/// A manifest only old snapshots reference cannot be read: the reachable set cannot be computed, so
/// snapshot expiry expires and deletes nothing, and orphan cleanup deletes nothing in the table, not
/// even a planted orphan. Deletion never acts on a partial walk of the manifests.
#[tokio::test]
async fn an_unreadable_manifest_of_an_old_snapshot_makes_expiry_and_orphan_cleanup_delete_nothing() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 2, 6, 50)).await.unwrap();
    // Compaction replaces hour 09's files: the appends' manifests of that hour are now referenced only
    // by the older snapshots.
    let (t, table) = compact_the_closed_hour(dir.path()).await;
    let md = table.metadata();
    let head = manifest_paths(&table, md.current_snapshot().unwrap()).await;
    let mut old_only = HashSet::new();
    for snapshot in md.snapshots() {
        old_only.extend(manifest_paths(&table, snapshot).await.difference(&head).cloned());
    }
    let corrupted = old_only.iter().min().expect("a manifest only older snapshots reference").clone();
    std::fs::write(corrupted.trim_start_matches("file://"), b"garbage, not avro").unwrap();
    assert!(reachable(&table).await.is_err(), "the walk fails on an unreadable manifest");
    let snapshots_before = md.snapshots().count();

    let warehouse = dir.path().join("warehouse");
    let orphan = warehouse.join("acme/production/traces/data/orphan.parquet");
    std::fs::write(&orphan, b"not referenced by anything").unwrap();
    let aged = std::process::Command::new("find")
        .arg(&warehouse)
        .args(["-type", "f", "-exec", "touch", "-d", "3 days ago", "{}", "+"])
        .status()
        .unwrap();
    assert!(aged.success());
    let bytes_before = snapshot_bytes(&warehouse);

    // Ten days on, every snapshot but main's head would expire.
    let ctx = context(dir.path(), Utc::now() + TimeDelta::days(10), |c| {
        enable(c, RetentionValue::Forever);
        c.retention.snapshots_to_keep = 1;
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
    })
    .await;
    let report = run_retention(&RetentionJob::new(&ctx)).await;
    assert!(matches!(&report.tables[0].status, TableStatus::Failed { .. }), "{:#?}", report.tables[0]);
    let table = ctx.catalog.load(&t).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), snapshots_before, "nothing expired");

    let orphans = signaldb_compactor::orphans::OrphanJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(&orphans.tables[0].status, TableStatus::Skipped { reason } if reason.starts_with("unreadable_metadata")),
        "{:#?}",
        orphans.tables[0]
    );
    assert!(orphan.exists(), "the planted orphan is kept");
    assert!(snapshot_bytes(&warehouse) == bytes_before, "no file of the warehouse deleted or changed");
}

/// A `before_commit` hook that appends one file to a recent hour, once.
fn append_once(
    ctx: &signaldb_compactor::service::Context,
    fired: Arc<AtomicBool>,
    rows: usize,
) -> BeforeCommitHook {
    let catalog = ctx.catalog.clone();
    Arc::new(move |_| {
        let (catalog, fired) = (catalog.clone(), fired.clone());
        Box::pin(async move {
            if fired.swap(true, Ordering::SeqCst) {
                return;
            }
            let t = catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
            let mut table = catalog.load(&t).await.unwrap();
            let start = fixed_end() - TimeDelta::minutes(20);
            let spec =
                signaldb_compactor::generate::batch::FileSpec { seed: 99, rows, start, end: fixed_end() };
            let columns = signaldb_compactor::generate::schema::columns("traces");
            signaldb_compactor::generate::append_file(&catalog, &mut table, &columns, &spec).await.unwrap();
        }) as futures::future::BoxFuture<'static, ()>
    })
}

#[tokio::test]
async fn an_append_landing_during_a_drop_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 48, 1, 20)).await.unwrap();
    let ctx = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |c| enable(c, days(1))).await;
    let fired = Arc::new(AtomicBool::new(false));
    let job = RetentionJob::new(&ctx).with_before_commit(append_once(&ctx, fired.clone(), 33));
    let report = run_retention(&job).await;
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(report.tables[0].status, TableStatus::Succeeded, "{:#?}", report.tables[0]);
    // 48 hours, 1 day + 1 h grace: cutoff 2026-11-20 09:35; hours up to 08:00 dropped, 26 kept.
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!(after["rows"], 26 * 20 + 33, "the appended rows survive the rebased drop");
    assert_eq!(after["operation"], "delete");
}

/// An operator puts the table on hold (`signaldb.compactor.retention=forever`) while a drop is
/// planned: the table's new metadata makes the drop's swap conflict, and the retry, planned on the
/// table as reloaded, must obey the hold instead of dropping with the old cutoff.
#[tokio::test]
async fn a_hold_set_while_a_drop_is_planned_is_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 48, 1, 20)).await.unwrap();
    let ctx = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |c| {
        enable(c, days(1));
        c.commit.retry_backoff = Duration::from_millis(5);
    })
    .await;
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    let hook: BeforeCommitHook = {
        let d = dir.path().to_path_buf();
        Arc::new(move |_table: String| {
            let d = d.clone();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || {
                    let set = "signaldb.compactor.retention=forever";
                    pyiceberg(&d, &["props", "--table", "acme.production.traces", "--set", set]);
                })
                .await
                .unwrap();
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let report = run_retention(&RetentionJob::new(&ctx).with_before_commit(hook)).await;
    let r = &report.tables[0];
    assert!(!matches!(r.status, TableStatus::Failed { .. }), "a hold is not a failure: {r:#?}");
    assert!(r.details.iter().any(|d| d.contains("retention changed meanwhile")), "{r:#?}");
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]));
    assert_ne!(after["operation"], "delete", "no drop landed");
}

/// The operator sets `gc.enabled=false` after the expiry was planned: the retry, planned on the table
/// as reloaded, expires nothing, and nothing is deleted.
#[tokio::test]
async fn gc_disabled_while_an_expiry_is_planned_is_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 12, 1, 20)).await.unwrap();
    let ctx = context(dir.path(), Utc::now() + TimeDelta::days(10), |c| {
        enable(c, RetentionValue::Forever);
        c.retention.snapshots_to_keep = 1;
        c.commit.retry_backoff = Duration::from_millis(5);
    })
    .await;
    let t = ctx.catalog.discover().await.unwrap().remove(0);
    let snapshots = ctx.catalog.load(&t).await.unwrap().metadata().snapshots().count();
    assert_eq!(snapshots, 12);
    let warehouse = dir.path().join("warehouse");
    let bytes_before = snapshot_bytes(&warehouse);
    let hook: BeforeCommitHook = {
        let d = dir.path().to_path_buf();
        Arc::new(move |label: String| {
            let d = d.clone();
            Box::pin(async move {
                if label.ends_with("#expiry") {
                    tokio::task::spawn_blocking(move || {
                        pyiceberg(
                            &d,
                            &["props", "--table", "acme.production.traces", "--set", "gc.enabled=false"],
                        );
                    })
                    .await
                    .unwrap();
                }
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let report = run_retention(&RetentionJob::new(&ctx).with_before_commit(hook)).await;
    let r = &report.tables[0];
    assert!(!matches!(r.status, TableStatus::Failed { .. }), "{r:#?}");
    let table = ctx.catalog.load(&t).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), snapshots, "nothing expired: {r:#?}");
    // Only the property change's metadata file was added; no file was deleted.
    let after: HashSet<_> = snapshot_bytes(&warehouse).into_iter().map(|(p, _)| p).collect();
    assert!(bytes_before.iter().all(|(p, _)| after.contains(p)), "a file was deleted");
}

/// A file is dropped by its `timestamp` upper bound only when none of its rows lacks a timestamp:
/// the bound covers non-null values only, and a row without a time is not known to be expired.
#[tokio::test]
async fn a_file_with_rows_without_a_timestamp_is_not_dropped_by_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let t = "acme.prod.events";
    pyiceberg(
        dir.path(),
        &["kind", "--kind", "nullable-timestamp", "--table", t, "--rows", "10", "--appends", "3"],
    );
    let ctx = context(dir.path(), Utc::now(), |c| enable(c, days(7))).await;
    let report = run_retention(&RetentionJob::new(&ctx)).await;
    assert!(!matches!(report.tables[0].status, TableStatus::Failed { .. }), "{report:#?}");
    let after = pyiceberg(dir.path(), &["scan", "--table", t]);
    assert_eq!(after["rows"], 10, "the first file (one row without a timestamp) is kept, the others dropped");
    assert_eq!(after["operation"], "delete");
}

#[tokio::test]
async fn a_drop_racing_a_compaction_of_the_same_partition_stays_consistent() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 4, 6, 50)).await.unwrap();
    let now = fixed_end() + TimeDelta::minutes(5);
    // traces kept 2 h, no grace: cutoff 08:35, so hour 07 expires while compaction rewrites it.
    let ctx = context(dir.path(), now, |c| {
        enable(c, RetentionValue::For(Duration::from_secs(7200)));
        c.retention.grace_period = Duration::ZERO;
        c.commit.retry_backoff = Duration::from_millis(5);
    })
    .await;
    // Retention runs as another writer would: its own context, so no in-process table lock is shared,
    // and outside the lease protocol (another engine, or a replica whose lease expired): the catalog
    // compare-and-swap alone must keep the table consistent.
    let replica = context(dir.path(), now, |c| {
        enable(c, RetentionValue::For(Duration::from_secs(7200)));
        c.retention.grace_period = Duration::ZERO;
    })
    .await;
    let replica = replica.without_leases();
    let retention = Arc::new(RetentionJob::new(&replica));
    let hook: BeforeCommitHook = {
        let retention = retention.clone();
        let fired = Arc::new(AtomicBool::new(false));
        Arc::new(move |partition: String| {
            let (retention, fired) = (retention.clone(), fired.clone());
            Box::pin(async move {
                if partition == "timestamp_hour=2026-11-21-07" && !fired.swap(true, Ordering::SeqCst) {
                    let report = retention
                        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
                        .await
                        .unwrap();
                    assert_eq!(
                        report.tables[0].partition_counts().1,
                        1,
                        "retention dropped hour 07 mid-compaction"
                    );
                }
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let compaction = CompactionJob::new(&ctx).with_before_commit(hook);
    let request = PassRequest {
        filter: TableFilter::only(["acme.production.traces".to_string()]),
        ..PassRequest::all(Mode::Execute)
    };
    let report = compaction.run_once(&request, &CancellationToken::new()).await.unwrap();
    let hour7 = report.tables[0].partition_reports.iter().find(|p| p.partition.ends_with("-07")).unwrap();
    assert!(
        matches!(&hour7.status, PartitionStatus::Skipped { reason } if reason.starts_with("abandoned")),
        "{hour7:#?}"
    );
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!(after["rows"], 3 * 6 * 50, "hour 07 is gone and stays gone; the rest intact");
    assert_eq!(after["distinct_trace_ids"], after["rows"]);
}

#[tokio::test]
async fn once_retention_dry_run_logs_the_documented_lines_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 30, 1, 10)).await.unwrap();
    write_config(
        dir.path(),
        "[compactor.retention]\nenabled = true\ntraces_retention_days = 1\nsnapshots_to_keep = 1\nmax_snapshot_age = \"1s\"\n",
    );
    let before = snapshot_bytes(dir.path());
    std::thread::sleep(Duration::from_millis(1100));
    let out = run_bin(dir.path(), &["once", "retention", "--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains(
            "[DRY-RUN] Would drop partition: tenant=acme dataset=production table=traces hour=2026-11-20-05"
        ),
        "{logs}"
    );
    assert!(logs.contains("[DRY-RUN] Would expire snapshot: snapshot_id="), "{logs}");
    assert!(
        logs.contains("computed retention cutoff tenant=acme dataset=production signal=traces cutoff="),
        "{logs}"
    );
    assert!(snapshot_bytes(dir.path()) == before, "dry-run changed bytes");
}

#[tokio::test]
async fn expired_files_are_archived_before_the_drop_and_a_failed_archive_aborts_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(&traces_only(dir.path(), 30, 1, 10)).await.unwrap();
    let now = fixed_end() + TimeDelta::minutes(5);
    let warehouse = dir.path().join("warehouse");

    // An archive location that cannot be written (a file where its directory would be) aborts the drop.
    let blocked = dir.path().join("blocked-archive");
    std::fs::write(&blocked, b"a file, not a directory").unwrap();
    let ctx = context(dir.path(), now, |c| {
        enable(c, days(1));
        c.retention.archive = Some(signaldb_compactor::storage::Dsn::Local { root: blocked.join("cold") });
    })
    .await;
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    let report = run_retention(&RetentionJob::new(&ctx)).await;
    assert!(
        matches!(&report.tables[0].status, TableStatus::Failed { error } if error.contains("archive")),
        "{report:#?}"
    );
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["checksum"],
        before["checksum"],
        "nothing dropped"
    );

    // A working archive: every dropped data file is there at the same relative path with the same size.
    let archive = dir.path().join("archive");
    let ctx = context(dir.path(), now, |c| {
        enable(c, days(1));
        c.retention.archive = Some(signaldb_compactor::storage::Dsn::Local { root: archive.clone() });
    })
    .await;
    let t = ctx.catalog.discover().await.unwrap().remove(0);
    let table = ctx.catalog.load(&t).await.unwrap();
    let inventory = signaldb_compactor::table::Inventory::load(&table).await.unwrap();
    let report = run_retention(&RetentionJob::new(&ctx)).await;
    // Cutoff 2026-11-20 09:35: hours 05, 06, 07 and 08 of the 20th have expired.
    assert_eq!(report.tables[0].partition_counts().1, 4, "{report:#?}");
    let table = ctx.catalog.load(&t).await.unwrap();
    let live: HashSet<String> = signaldb_compactor::table::Inventory::load(&table)
        .await
        .unwrap()
        .data
        .iter()
        .map(|f| f.path().to_string())
        .collect();
    let dropped: Vec<_> = inventory.data.iter().filter(|f| !live.contains(f.path())).collect();
    assert_eq!(dropped.len(), 4);
    for f in dropped {
        let source = std::path::PathBuf::from(f.path().trim_start_matches("file://"));
        let relative = source.strip_prefix(&warehouse).unwrap();
        let copy = archive.join(relative);
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), f.size(), "{}", copy.display());
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&source).unwrap(), "byte-identical copy");
    }
}
