//! Orphan cleanup acceptance: only unreferenced, old files inside the table's own location are deleted;
//! everything any snapshot, tag, metadata-log entry or statistics file references survives.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{TimeDelta, Utc};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::generate::{GenerateOptions, generate};
use signaldb_compactor::job::{BeforeCommitHook, Job, PassRequest, TableFilter, TableStatus};
use signaldb_compactor::orphans::OrphanJob;
use signaldb_compactor::table::reachability::reachable;
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, pyiceberg, run_bin, snapshot_bytes, write_config};

fn options(dir: &Path, tables: &[&str]) -> GenerateOptions {
    GenerateOptions {
        tenants: 1,
        hours: 2,
        files_per_hour: 6,
        rows_per_file: 40,
        seed: 3,
        tables: tables.iter().map(|t| t.to_string()).collect(),
        ..GenerateOptions::small(dir)
    }
}

/// Makes every file under `dir` three days old.
fn age_all(dir: &Path) {
    let status = std::process::Command::new("find")
        .arg(dir)
        .args(["-type", "f", "-exec", "touch", "-d", "3 days ago", "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn plant(path: &Path, old: bool) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"not referenced by anything").unwrap();
    if old {
        assert!(
            std::process::Command::new("touch")
                .args(["-d", "3 days ago"])
                .arg(path)
                .status()
                .unwrap()
                .success()
        );
    }
    path.to_path_buf()
}

fn table_dir(dir: &Path, table: &str) -> PathBuf {
    dir.join("warehouse/acme/production").join(table)
}

async fn run(job: &OrphanJob, filter: TableFilter) -> signaldb_compactor::job::PassReport {
    let request = PassRequest { filter, ..PassRequest::all(Mode::Execute) };
    job.run_once(&request, &CancellationToken::new()).await.unwrap()
}

fn enable(c: &mut signaldb_compactor::config::Config) {
    c.orphans.enabled = true;
    c.orphans.mode = Mode::Execute;
}

/// All live files exist afterwards (the reachable set of every table, checked on disk).
async fn assert_all_live_exist(ctx: &signaldb_compactor::service::Context) {
    for t in ctx.catalog.discover().await.unwrap() {
        let table = ctx.catalog.load(&t).await.unwrap();
        let live = reachable(&table).await.unwrap();
        for path in live.minus(&Default::default()) {
            assert!(Path::new(path.trim_start_matches("file://")).exists(), "live file deleted: {path}");
        }
    }
}

#[tokio::test]
async fn planted_old_orphans_go_young_ones_and_every_live_file_stay() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces", "logs"])).await.unwrap();
    // History that must stay alive: a tag on the pre-compaction snapshot, compaction (replaced files
    // remain referenced by older snapshots and the tag), and a statistics file.
    pyiceberg(dir.path(), &["tag", "--table", "acme.production.traces"]);
    let ctx = context(dir.path(), Utc::now(), enable).await;
    let compaction = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |_| {}).await;
    CompactionJob::new(&compaction)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let table = ctx.catalog.load(&traces).await.unwrap();
    let stats_path =
        format!("{}/metadata/stats-{}.puffin", table.metadata().location(), uuid::Uuid::now_v7());
    table
        .file_io()
        .new_output(&stats_path)
        .unwrap()
        .write(bytes::Bytes::from_static(b"PFA1puffin"))
        .await
        .unwrap();
    let statistics = iceberg::spec::StatisticsFile {
        snapshot_id: table.metadata().current_snapshot_id().unwrap(),
        statistics_path: stats_path.clone(),
        file_size_in_bytes: 10,
        file_footer_size_in_bytes: 4,
        key_metadata: None,
        blob_metadata: vec![],
    };
    let tx = Transaction::new(&table);
    let tx = tx.update_statistics().set_statistics(statistics).apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);

    age_all(&dir.path().join("warehouse"));
    let t = table_dir(dir.path(), "traces");
    let old_data = plant(&t.join("data/timestamp_hour=493474/orphan-old.parquet"), true);
    let old_meta = plant(&t.join("metadata/orphan-old.avro"), true);
    let young = plant(&t.join("data/orphan-young.parquet"), false);
    let other_table_old = plant(&table_dir(dir.path(), "logs").join("data/orphan-old.parquet"), true);

    let report = run(&OrphanJob::new(&ctx), TableFilter::only(["acme.production.traces".to_string()])).await;
    assert_eq!(report.tables[0].status, TableStatus::Succeeded, "{:#?}", report.tables[0]);
    assert!(!old_data.exists() && !old_meta.exists(), "old orphans deleted");
    assert!(young.exists(), "younger than the grace period: kept");
    assert!(other_table_old.exists(), "another table's orphan is not this pass's business");
    assert!(Path::new(stats_path.trim_start_matches("file://")).exists(), "statistics file kept");
    assert_all_live_exist(&ctx).await;
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["checksum"],
        before["checksum"]
    );
    assert!(ctx.metrics.render().contains(
        "compactor_files_deleted_total{dataset=\"production\",table=\"traces\",tenant=\"acme\"} 2"
    ));

    // Idempotent: nothing left to delete.
    let again = run(&OrphanJob::new(&ctx), TableFilter::only(["acme.production.traces".to_string()])).await;
    assert_eq!(again.tables[0].files_after, 0);
}

/// `gc.enabled=false` (Iceberg's own switch, set by imports and snapshot tables that do not own the
/// files under their location): nothing under the table's location is deleted, as Java's orphan
/// action refuses; the other table is cleaned as usual.
#[tokio::test]
async fn a_table_with_gc_disabled_keeps_every_file() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces", "logs"])).await.unwrap();
    pyiceberg(dir.path(), &["props", "--table", "acme.production.traces", "--set", "gc.enabled=false"]);
    let ctx = context(dir.path(), Utc::now(), enable).await;
    age_all(&dir.path().join("warehouse"));
    let kept = plant(&table_dir(dir.path(), "traces").join("data/orphan-old.parquet"), true);
    let cleaned = plant(&table_dir(dir.path(), "logs").join("data/orphan-old.parquet"), true);

    let report = run(&OrphanJob::new(&ctx), TableFilter::all()).await;
    let status = |name: &str| report.tables.iter().find(|t| t.table == name).unwrap().status.clone();
    assert!(
        matches!(status("acme.production.traces"), TableStatus::Skipped { reason } if reason.contains("gc.enabled is not true")),
        "{report:#?}"
    );
    assert!(kept.exists(), "gc.enabled=false: nothing deleted");
    assert_eq!(status("acme.production.logs"), TableStatus::Succeeded);
    assert!(!cleaned.exists());
    assert!(ctx.metrics.render().contains("reason=\"gc_disabled\""));
}

#[tokio::test]
async fn sibling_nested_and_single_slash_locations_are_respected() {
    use iceberg::Catalog as _;
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces"])).await.unwrap();
    let ctx = context(dir.path(), Utc::now(), enable).await;
    let ns = iceberg::NamespaceIdent::from_vec(vec!["acme".into(), "production".into()]).unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let schema = signaldb_compactor::generate::schema::schema(&columns).unwrap();
    let traces_dir = table_dir(dir.path(), "traces");
    // traces_v2 is a sibling sharing the `traces` prefix; `inner` lives inside traces' directory; and
    // `slashy` records every location as `file:/x` while listings say `file:///x`.
    let locations = [
        ("traces_v2", format!("file://{}", table_dir(dir.path(), "traces_v2").display())),
        ("inner", format!("file://{}", traces_dir.join("nested/inner").display())),
        ("slashy", format!("file:{}", table_dir(dir.path(), "slashy").display())),
    ];
    for (name, location) in &locations {
        let creation = iceberg::TableCreation::builder()
            .name(name.to_string())
            .location(location.clone())
            .schema(schema.clone())
            .partition_spec(signaldb_compactor::generate::schema::partition_spec(&schema).unwrap())
            .build();
        let mut table = ctx.catalog.iceberg().create_table(&ns, creation).await.unwrap();
        let start = fixed_end() - TimeDelta::hours(1);
        let spec = signaldb_compactor::generate::batch::FileSpec {
            seed: 1,
            rows: 10,
            start,
            end: start + TimeDelta::minutes(30),
        };
        signaldb_compactor::generate::append_file(&ctx.catalog, &mut table, &columns, &spec).await.unwrap();
    }
    let slashy = ctx
        .catalog
        .load(&ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "slashy").unwrap())
        .await
        .unwrap();
    assert!(
        slashy.metadata_location().unwrap().starts_with("file:/")
            && !slashy.metadata_location().unwrap().starts_with("file://")
    );
    age_all(&dir.path().join("warehouse"));
    let sibling_orphan = plant(&table_dir(dir.path(), "traces_v2").join("data/orphan.parquet"), true);

    let report = run(
        &OrphanJob::new(&ctx),
        TableFilter::only(["acme.production.traces".to_string(), "acme.production.slashy".to_string()]),
    )
    .await;
    assert!(report.tables.iter().all(|t| !matches!(t.status, TableStatus::Failed { .. })), "{report:#?}");
    assert!(sibling_orphan.exists(), "cleaning traces never touches traces_v2");
    assert_eq!(report.tables.iter().map(|t| t.files_after).sum::<u64>(), 0, "{report:#?}");
    assert_all_live_exist(&ctx).await;
}

#[tokio::test]
async fn a_file_committed_between_listing_and_deletion_survives() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces"])).await.unwrap();
    let ctx = context(dir.path(), Utc::now(), enable).await;
    let traces = ctx.catalog.discover().await.unwrap().remove(0);
    let mut table = ctx.catalog.load(&traces).await.unwrap();
    // A data file written (by a slow writer) but not yet committed: an orphan candidate when listed.
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let start = fixed_end() - TimeDelta::hours(1);
    let spec = signaldb_compactor::generate::batch::FileSpec {
        seed: 8,
        rows: 25,
        start,
        end: start + TimeDelta::minutes(10),
    };
    let pending = signaldb_compactor::generate::write_file(&table, &columns, &spec).await.unwrap();
    let pending_path = PathBuf::from(pending[0].file_path().trim_start_matches("file://"));
    age_all(&dir.path().join("warehouse"));
    let fired = Arc::new(AtomicBool::new(false));
    let hook: BeforeCommitHook = {
        let (catalog, fired, pending) = (ctx.catalog.clone(), fired.clone(), pending.clone());
        Arc::new(move |_| {
            let (catalog, fired, pending) = (catalog.clone(), fired.clone(), pending.clone());
            Box::pin(async move {
                if fired.swap(true, Ordering::SeqCst) {
                    return;
                }
                let t = catalog.discover().await.unwrap().remove(0);
                let table = catalog.load(&t).await.unwrap();
                let tx = Transaction::new(&table);
                let tx = tx.fast_append().add_data_files(pending).apply(tx).unwrap();
                tx.commit(catalog.iceberg()).await.unwrap();
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let report = run(&OrphanJob::new(&ctx).with_before_batch(hook), TableFilter::all()).await;
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(report.tables[0].files_after, 0, "{report:#?}");
    assert!(pending_path.exists(), "the file committed after listing was revalidated as live");
    table = ctx.catalog.load(&traces).await.unwrap();
    assert!(reachable(&table).await.unwrap().contains(pending[0].file_path()));
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["rows"],
        2 * 6 * 40 + 25
    );
}

#[tokio::test]
async fn a_table_with_a_corrupt_manifest_is_skipped_and_others_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces", "logs"])).await.unwrap();
    // The default (`block`) would stop traces too: a table whose references are unknown could
    // reference any file (tests/it/deletion_safety.rs); this operator chose to protect its location only.
    let ctx = context(dir.path(), Utc::now(), |c| {
        enable(c);
        c.orphans.unreadable_neighbours =
            signaldb_compactor::storage::deletable::UnreadableNeighbours::ProtectLocation;
    })
    .await;
    let logs = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "logs").unwrap();
    let table = ctx.catalog.load(&logs).await.unwrap();
    let list = table.manifest_list_reader(table.metadata().current_snapshot().unwrap()).load().await.unwrap();
    let manifest = PathBuf::from(list.entries()[0].manifest_path.trim_start_matches("file://"));
    std::fs::write(&manifest, b"garbage, not avro").unwrap();
    age_all(&dir.path().join("warehouse"));
    let logs_orphan = plant(&table_dir(dir.path(), "logs").join("data/orphan.parquet"), true);
    let traces_orphan = plant(&table_dir(dir.path(), "traces").join("data/orphan.parquet"), true);
    let logs_files_before: Vec<_> =
        snapshot_bytes(&table_dir(dir.path(), "logs")).into_iter().map(|(p, _)| p).collect();

    let report = run(&OrphanJob::new(&ctx), TableFilter::all()).await;
    let status = |name: &str| report.tables.iter().find(|t| t.table == name).unwrap().status.clone();
    assert!(
        matches!(status("acme.production.logs"), TableStatus::Skipped { reason } if reason.starts_with("unreadable_metadata"))
    );
    assert_eq!(status("acme.production.traces"), TableStatus::Succeeded);
    assert!(logs_orphan.exists(), "nothing deleted in the skipped table");
    let logs_files_after: Vec<_> =
        snapshot_bytes(&table_dir(dir.path(), "logs")).into_iter().map(|(p, _)| p).collect();
    assert_eq!(logs_files_after, logs_files_before);
    assert!(!traces_orphan.exists());
    assert!(
        ctx.metrics
            .render()
            .contains("compactor_tables_skipped_total{job=\"orphans\",reason=\"unreadable_metadata\"} 1")
    );
}

#[tokio::test]
async fn killed_mid_deletion_resumes_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces"])).await.unwrap();
    write_config(dir.path(), "[compactor.orphan_cleanup]\nenabled = true\ndry_run = false\nbatch_size = 2\n");
    age_all(&dir.path().join("warehouse"));
    let t = table_dir(dir.path(), "traces");
    let orphans: Vec<PathBuf> =
        (0..5).map(|i| plant(&t.join(format!("data/orphan-{i}.parquet")), true)).collect();
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);

    let killed = run_bin(dir.path(), &["once", "orphans"], &[("SIGNALDB_FAILPOINT", "orphans-after-batch")]);
    assert_eq!(killed.status.signal(), Some(9), "{killed:?}");
    assert_eq!(orphans.iter().filter(|p| !p.exists()).count(), 2, "exactly the first batch was deleted");
    assert!(!orphans[0].exists() && !orphans[1].exists(), "in path order");

    let rerun = run_bin(dir.path(), &["once", "orphans"], &[]);
    assert_eq!(rerun.status.code(), Some(0), "{}", String::from_utf8_lossy(&rerun.stderr));
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("resuming an interrupted cleanup"));
    assert!(orphans.iter().all(|p| !p.exists()), "the rerun finished the job");
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["checksum"],
        before["checksum"]
    );
    let ctx = context(dir.path(), Utc::now(), |_| {}).await;
    assert_all_live_exist(&ctx).await;
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status, files_deleted FROM cleanup_progress")
        .fetch_all(
            &sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("catalog.db").display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rows, vec![("completed".to_string(), 5)], "one run, resumed, completed");
}

#[tokio::test]
async fn dry_run_logs_the_documented_lines_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces"])).await.unwrap();
    write_config(dir.path(), "[compactor.orphan_cleanup]\nenabled = true\n");
    age_all(&dir.path().join("warehouse"));
    let orphan = plant(&table_dir(dir.path(), "traces").join("data/orphan.parquet"), true);
    let before = snapshot_bytes(dir.path());
    let out = run_bin(dir.path(), &["once", "orphans"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("[DRY-RUN] Identified 1 orphan files for tenant=acme dataset=production table=traces"),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "[DRY-RUN] Would delete orphan file: file://{} (age=3days)",
            orphan.display()
        )),
        "{logs}"
    );
    assert!(orphan.exists());
    assert!(snapshot_bytes(dir.path()) == before, "dry-run (the default) changed bytes");
}

/// Orphan cleanup and retention enabled in execute mode, one snapshot kept, ten days ahead.
async fn cleanup_with_expiry(dir: &Path) -> signaldb_compactor::service::Context {
    context(dir, Utc::now() + TimeDelta::days(10), |c| {
        enable(c);
        c.retention.enabled = true;
        c.retention.mode = Mode::Execute;
        c.retention.snapshots_to_keep = 1;
    })
    .await
}

#[tokio::test]
async fn with_retention_enabled_a_cleanup_cycle_expires_snapshots_first() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path(), &["traces"])).await.unwrap();
    let ctx = cleanup_with_expiry(dir.path()).await;
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    let report = run(&OrphanJob::new(&ctx), TableFilter::all()).await;
    assert!(!matches!(report.tables[0].status, TableStatus::Failed { .. }), "{report:#?}");
    let t = ctx.catalog.discover().await.unwrap().remove(0);
    let table = ctx.catalog.load(&t).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1, "expiry ran in the same cycle");
    assert!(ctx.metrics.render().contains(
        "compactor_snapshots_expired_total{dataset=\"production\",table=\"traces\",tenant=\"acme\"} 11"
    ));
    assert_all_live_exist(&ctx).await;
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["checksum"],
        before["checksum"]
    );
}

/// A table no retention policy names (not a signal, no `signaldb.compactor.retention`) keeps its
/// snapshots in a cleanup cycle, as in a retention pass, although it sets another switch of ours.
#[tokio::test]
async fn a_cleanup_cycle_expires_no_snapshot_of_a_table_no_policy_names() {
    let dir = tempfile::tempdir().unwrap();
    let t = "acme.prod.audit";
    pyiceberg(dir.path(), &["create", "--table", t, "--rows", "40", "--appends", "8"]);
    pyiceberg(
        dir.path(),
        &["props", "--table", t, "--set", "signaldb.compactor.target-file-size-bytes=1048576"],
    );
    let ctx = cleanup_with_expiry(dir.path()).await;
    let table_ref = ctx.catalog.discover().await.unwrap().remove(0);
    let snapshots = ctx.catalog.load(&table_ref).await.unwrap().metadata().snapshots().count();
    assert_eq!(snapshots, 8);
    let report = run(&OrphanJob::new(&ctx), TableFilter::all()).await;
    assert!(!matches!(report.tables[0].status, TableStatus::Failed { .. }), "{report:#?}");
    let table = ctx.catalog.load(&table_ref).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), snapshots, "no policy names it: nothing expires");
}
