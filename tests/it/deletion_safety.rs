//! Deletion safety under hostile layouts: one named test per case that deleted data before the one
//! definition of "deletable" (issue: "Deletion safety that fails closed"). Each builds the layout on a
//! real SQLite catalog and local files, ages everything past the grace period, runs orphan cleanup (and
//! snapshot expiry where it matters) for real, and checks on disk that nothing it must never touch went.

use std::path::{Path, PathBuf};

use chrono::{TimeDelta, Utc};
use iceberg::Catalog as _;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use object_store::ObjectStoreExt as _;
use signaldb_compactor::config::Mode;
use signaldb_compactor::generate::{GenerateOptions, generate};
use signaldb_compactor::job::{Job, PassReport, PassRequest, TableFilter, TableStatus};
use signaldb_compactor::orphans::OrphanJob;
use signaldb_compactor::service::Context;
use signaldb_compactor::storage::deletable::UnreadableNeighbours;
use signaldb_compactor::table::reachability::reachable;
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, pyiceberg};

fn options(dir: &Path) -> GenerateOptions {
    GenerateOptions {
        tenants: 1,
        hours: 1,
        files_per_hour: 3,
        rows_per_file: 20,
        seed: 11,
        tables: vec!["traces".into(), "logs".into()],
        ..GenerateOptions::small(dir)
    }
}

fn table_dir(dir: &Path, table: &str) -> PathBuf {
    dir.join("warehouse/acme/production").join(table)
}

/// Makes every regular file under `dir` three days old (links are not followed).
fn age_all(dir: &Path) {
    let status = std::process::Command::new("find")
        .arg(dir)
        .args(["-type", "f", "-exec", "touch", "-h", "-d", "3 days ago", "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn plant(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"precious bytes").unwrap();
    path.to_path_buf()
}

/// Every regular file and link under `dir` (links not followed), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

async fn setup(dir: &Path) -> Context {
    generate(&options(dir)).await.unwrap();
    context(dir, Utc::now(), |c| {
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
    })
    .await
}

/// Creates `acme.production.<name>` with traces' schema at `location` and appends one file.
async fn create_table(ctx: &Context, name: &str, location: &str) -> Table {
    let ns = iceberg::NamespaceIdent::from_vec(vec!["acme".into(), "production".into()]).unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let schema = signaldb_compactor::generate::schema::schema(&columns).unwrap();
    let creation = iceberg::TableCreation::builder()
        .name(name.to_string())
        .location(location.to_string())
        .schema(schema.clone())
        .partition_spec(signaldb_compactor::generate::schema::partition_spec(&schema).unwrap())
        .build();
    let mut table = ctx.catalog.iceberg().create_table(&ns, creation).await.unwrap();
    let spec = file_spec(1);
    signaldb_compactor::generate::append_file(&ctx.catalog, &mut table, &columns, &spec).await.unwrap();
    table
}

fn file_spec(seed: u64) -> signaldb_compactor::generate::batch::FileSpec {
    let start = fixed_end() - TimeDelta::hours(1);
    signaldb_compactor::generate::batch::FileSpec {
        seed,
        rows: 10,
        start,
        end: start + TimeDelta::minutes(30),
    }
}

async fn clean(ctx: &Context, tables: &[&str]) -> PassReport {
    let filter = TableFilter::only(tables.iter().map(|t| format!("acme.production.{t}")));
    let request = PassRequest { filter, ..PassRequest::all(Mode::Execute) };
    OrphanJob::new(ctx).run_once(&request, &CancellationToken::new()).await.unwrap()
}

fn status<'a>(report: &'a PassReport, table: &str) -> &'a TableStatus {
    &report.tables.iter().find(|t| t.table == format!("acme.production.{table}")).unwrap().status
}

fn skipped_for(report: &PassReport, table: &str, reason: &str) -> bool {
    matches!(status(report, table), TableStatus::Skipped { reason: r } if r.starts_with(reason))
}

/// Every file any catalog table references exists on disk.
async fn assert_all_live_exist(ctx: &Context) {
    for row in ctx.catalog.table_pointers().await.unwrap() {
        let (name, ident) = (row.display_name("signaldb"), row.ident.clone());
        let Some(pointer) = row.pointer.filter(|_| !row.view) else { continue };
        let Ok(table) = ctx.catalog.load_pointer(&ident, &pointer).await else { continue };
        let Ok(live) = reachable(&table).await else { continue };
        for path in live.iter() {
            let local = path.trim_start_matches("file://");
            assert!(Path::new(local).exists(), "{name}: live file deleted: {path}");
        }
    }
}

#[tokio::test]
async fn case1_a_table_located_outside_the_warehouse_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    // The directory that holds catalog.db and signaldb.toml, registered as a table's location.
    let config = plant(&dir.path().join("signaldb.toml"));
    let unrelated = plant(&dir.path().join("notes/unrelated.txt"));
    create_table(&ctx, "escapee", &format!("file://{}", dir.path().display())).await;
    age_all(dir.path());
    let before = files(dir.path());

    let report = clean(&ctx, &["escapee"]).await;
    assert!(skipped_for(&report, "escapee", "location_outside_warehouse"), "{report:#?}");
    assert!(config.exists() && unrelated.exists());
    assert_eq!(files(dir.path()), before, "not one file deleted");
    assert!(
        ctx.metrics.render().contains(
            "compactor_tables_skipped_total{job=\"orphans\",reason=\"location_outside_warehouse\"} 1"
        )
    );
}

#[tokio::test]
async fn case1_extra_roots_are_honoured_only_when_listed() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path())).await.unwrap();
    let other_root = dir.path().join("archive-lake");
    let ctx = context(dir.path(), Utc::now(), |c| {
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
        c.storage.extra_roots = vec![format!("file://{}", other_root.display())];
    })
    .await;
    let t = other_root.join("acme/old_traces");
    create_table(&ctx, "old_traces", &format!("file://{}", t.display())).await;
    let orphan = plant(&t.join("data/orphan.parquet"));
    age_all(dir.path());
    let report = clean(&ctx, &["old_traces"]).await;
    assert_eq!(*status(&report, "old_traces"), TableStatus::Succeeded, "{report:#?}");
    assert!(!orphan.exists(), "an explicitly listed root is cleaned");
    assert_all_live_exist(&ctx).await;
}

#[tokio::test]
async fn case2_a_nested_table_with_unreadable_metadata_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let traces = table_dir(dir.path(), "traces");
    let inner_dir = traces.join("nested/inner");
    let inner = create_table(&ctx, "inner", &format!("file://{}", inner_dir.display())).await;
    // Its current metadata file goes missing (moved, or a transient storage error).
    let pointer = inner.metadata_location().unwrap().trim_start_matches("file://").to_string();
    std::fs::rename(&pointer, format!("{pointer}.moved")).unwrap();
    let traces_orphan = plant(&traces.join("data/orphan.parquet"));
    age_all(dir.path());
    let inner_before = files(&inner_dir);
    assert!(inner_before.len() >= 3, "data, manifest, manifest list, metadata");

    // By default a neighbour whose references are unknown stops every table's deletions.
    let report = clean(&ctx, &["traces"]).await;
    assert!(skipped_for(&report, "traces", "unknown_neighbour"), "{report:#?}");
    assert!(traces_orphan.exists());
    assert_eq!(files(&inner_dir), inner_before);

    // With `protect_location`, traces is cleaned around the nested table's implied location.
    let ctx = context(dir.path(), Utc::now(), |c| {
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
        c.orphans.unreadable_neighbours = UnreadableNeighbours::ProtectLocation;
    })
    .await;
    let report = clean(&ctx, &["traces"]).await;
    assert_eq!(*status(&report, "traces"), TableStatus::Succeeded, "{report:#?}");
    assert!(!traces_orphan.exists(), "traces' own orphan goes");
    assert_eq!(files(&inner_dir), inner_before, "the nested table's files all stay");
}

#[tokio::test]
async fn case2_a_neighbour_whose_location_is_unknown_stops_all_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let traces = table_dir(dir.path(), "traces");
    let inner =
        create_table(&ctx, "inner", &format!("file://{}", traces.join("nested/inner").display())).await;
    // The row's pointer names a file outside any `metadata/` directory that does not exist: neither the
    // metadata nor the pointer tells where the table lives.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("catalog.db").display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE iceberg_tables SET metadata_location = 'file:///nowhere.json' WHERE table_name = 'inner'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let traces_orphan = plant(&traces.join("data/orphan.parquet"));
    age_all(dir.path());
    let before = files(dir.path());

    let report = clean(&ctx, &["traces", "logs"]).await;
    assert!(skipped_for(&report, "traces", "unknown_neighbour"), "{report:#?}");
    assert!(skipped_for(&report, "logs", "unknown_neighbour"), "{report:#?}");
    let TableStatus::Skipped { reason } = status(&report, "traces") else { unreachable!() };
    assert!(reason.contains("acme.production.inner"), "the reason names the neighbour: {reason}");
    assert!(traces_orphan.exists());
    assert_eq!(files(dir.path()), before);
    drop(inner);
}

#[tokio::test]
async fn case2_the_warehouse_root_registered_as_a_table_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    create_table(&ctx, "everything", &format!("file://{}", dir.path().join("warehouse").display())).await;
    let orphan = plant(&table_dir(dir.path(), "traces").join("data/orphan.parquet"));
    age_all(dir.path());
    let before = files(dir.path());
    let report = clean(&ctx, &["everything"]).await;
    assert!(skipped_for(&report, "everything", "location_is_root"), "{report:#?}");
    assert_eq!(files(dir.path()), before);
    assert!(orphan.exists());
    assert_all_live_exist(&ctx).await;
}

#[tokio::test]
async fn case3_two_entries_sharing_a_location_delete_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let old_pointer = ctx.catalog.load(&traces).await.unwrap().metadata_location().unwrap().to_string();
    // More history on the live table, then a backup registered from the older metadata.json.
    let mut table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    signaldb_compactor::generate::append_file(&ctx.catalog, &mut table, &columns, &file_spec(5))
        .await
        .unwrap();
    let backup = iceberg::TableIdent::new(traces.ident.namespace().clone(), "traces_backup".into());
    ctx.catalog.iceberg().register_table(&backup, old_pointer).await.unwrap();
    let orphan = plant(&table_dir(dir.path(), "traces").join("data/orphan.parquet"));
    age_all(dir.path());
    let before = files(dir.path());
    let rows = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["rows"].clone();

    let report = clean(&ctx, &["traces_backup", "traces"]).await;
    assert!(skipped_for(&report, "traces_backup", "shared_location"), "{report:#?}");
    assert!(skipped_for(&report, "traces", "shared_location"), "{report:#?}");
    // The report (served to tenant-scoped admin tokens, kept in audit rows) names the other table
    // because it is the same tenant's; another tenant's would not be named
    // (`deletable::tests::reports_name_tables_of_the_same_tenant_only`).
    let TableStatus::Skipped { reason } = status(&report, "traces") else { unreachable!() };
    assert!(reason.contains("acme.production.traces_backup"), "{reason}");
    assert_eq!(files(dir.path()), before, "nothing deleted from the shared location");
    assert!(orphan.exists());
    assert_eq!(pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["rows"], rows);

    // Snapshot expiry on the live table keeps every file the backup still references.
    let expiry = context(dir.path(), Utc::now() + TimeDelta::days(30), |c| {
        c.retention.enabled = true;
        c.retention.mode = Mode::Execute;
        c.retention.snapshots_to_keep = 1;
    })
    .await;
    let job = signaldb_compactor::retention::RetentionJob::new(&expiry);
    let report = job.claim_and_expire_table(&traces, Mode::Execute, &CancellationToken::new()).await.unwrap();
    assert!(!matches!(report.status, TableStatus::Failed { .. }), "{report:#?}");
    assert_all_live_exist(&ctx).await;
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces_backup"])["rows"],
        20 * 3,
        "the backup still reads every row it had"
    );
}

#[tokio::test]
async fn case4_symlinks_inside_a_table_are_never_followed_to_a_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let traces = table_dir(dir.path(), "traces");
    let logs = table_dir(dir.path(), "logs");
    let outside = dir.path().join("outside");
    let outside_files: Vec<PathBuf> =
        (0..3).map(|i| plant(&outside.join(format!("keep-{i}.parquet")))).collect();
    std::os::unix::fs::symlink(&outside, traces.join("data/link-out")).unwrap();
    std::os::unix::fs::symlink(logs.join("data"), traces.join("data/link-logs")).unwrap();
    std::os::unix::fs::symlink(&outside_files[0], traces.join("data/link-file.parquet")).unwrap();
    let traces_orphan = plant(&traces.join("data/orphan.parquet"));
    age_all(dir.path());
    let logs_before = files(&logs);
    let outside_before = files(&outside);

    let physically_inside = files(&traces).len() as u64;
    let report = clean(&ctx, &["traces"]).await;
    assert_eq!(*status(&report, "traces"), TableStatus::Succeeded, "{report:#?}");
    assert_eq!(report.tables[0].files_before, physically_inside, "the listing never walks behind a link");
    assert!(!traces_orphan.exists(), "the real orphan goes");
    assert_eq!(files(&logs), logs_before, "nothing of logs deleted through the link");
    assert_eq!(files(&outside), outside_before, "nothing outside deleted through the link");
    for link in ["data/link-out", "data/link-logs", "data/link-file.parquet"] {
        assert!(std::fs::symlink_metadata(traces.join(link)).is_ok(), "the link itself stays: {link}");
    }
    assert_all_live_exist(&ctx).await;
}

/// A copy of `file` whose recorded path is `path` (every other field kept).
fn with_path(file: &iceberg::spec::DataFile, path: String) -> iceberg::spec::DataFile {
    iceberg::spec::DataFileBuilder::default()
        .content(file.content_type())
        .file_path(path)
        .file_format(file.file_format())
        .partition(file.partition().clone())
        .partition_spec_id(0)
        .record_count(file.record_count())
        .file_size_in_bytes(file.file_size_in_bytes())
        .build()
        .unwrap()
}

#[tokio::test]
async fn case5_live_files_referenced_through_non_canonical_paths_stay() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let a =
        signaldb_compactor::generate::write_file(&table, &columns, &file_spec(21)).await.unwrap().remove(0);
    let b =
        signaldb_compactor::generate::write_file(&table, &columns, &file_spec(22)).await.unwrap().remove(0);
    let (dir_a, name_a) = a.file_path().rsplit_once('/').unwrap();
    let (dir_b, name_b) = b.file_path().rsplit_once('/').unwrap();
    let dotted = format!("{dir_a}/./{name_a}");
    let climbing = format!("{dir_b}/../{}/{name_b}", dir_b.rsplit_once('/').unwrap().1);
    let tx = Transaction::new(&table);
    let tx = tx
        .fast_append()
        .add_data_files(vec![with_path(&a, dotted.clone()), with_path(&b, climbing.clone())])
        .apply(tx)
        .unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
    let orphan = plant(&table_dir(dir.path(), "traces").join("data/orphan.parquet"));
    age_all(dir.path());

    let report = clean(&ctx, &["traces"]).await;
    assert_eq!(*status(&report, "traces"), TableStatus::Succeeded, "{report:#?}");
    assert!(!orphan.exists());
    for path in [a.file_path(), b.file_path()] {
        assert!(Path::new(path.trim_start_matches("file://")).exists(), "live file deleted: {path}");
    }
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["rows"],
        3 * 20 + 2 * 10
    );
}

/// A table references a file through a symlinked directory of its own location that leads into
/// another table's location (`traces/data/shared -> logs/data`, a way to share files without a
/// copy). Readers follow the link; `logs`' cleanup lists the file under its real path, which no
/// reference spells: it must still count as referenced.
#[tokio::test]
async fn case5b_a_file_referenced_through_a_symlinked_directory_stays_where_it_really_is() {
    let dir = tempfile::tempdir().unwrap();
    linked_files_stay(dir.path()).await;
    // The same with the whole warehouse reached through a link (`/data/wh -> /mnt/wh`): real paths
    // are then spelled from the root as configured, which is what the listing names.
    let real = tempfile::tempdir().unwrap();
    let link = tempfile::tempdir().unwrap();
    let aliased = link.path().join("alias");
    std::os::unix::fs::symlink(real.path(), &aliased).unwrap();
    linked_files_stay(&aliased).await;
}

async fn linked_files_stay(dir: &Path) {
    let ctx = setup(dir).await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let written =
        signaldb_compactor::generate::write_file(&table, &columns, &file_spec(41)).await.unwrap().remove(0);
    let name = written.file_path().rsplit_once('/').unwrap().1.to_string();
    let real = table_dir(dir, "logs").join("data").join(&name);
    std::fs::rename(written.file_path().trim_start_matches("file://"), &real).unwrap();
    let link = table_dir(dir, "traces").join("data/shared");
    std::os::unix::fs::symlink(table_dir(dir, "logs").join("data"), &link).unwrap();
    let through_link = format!("file://{}/{name}", link.display());
    // And a file that is itself a link into logs' location.
    let second =
        signaldb_compactor::generate::write_file(&table, &columns, &file_spec(42)).await.unwrap().remove(0);
    let real_second = table_dir(dir, "logs").join("data/g.parquet");
    std::fs::rename(second.file_path().trim_start_matches("file://"), &real_second).unwrap();
    let file_link = table_dir(dir, "traces").join("data/link-file.parquet");
    std::os::unix::fs::symlink(&real_second, &file_link).unwrap();
    let tx = Transaction::new(&table);
    let added = vec![
        with_path(&written, through_link),
        with_path(&second, format!("file://{}", file_link.display())),
    ];
    let tx = tx.fast_append().add_data_files(added).apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
    let rows = pyiceberg(dir, &["scan", "--table", "acme.production.traces"])["rows"].clone();
    assert_eq!(rows, 3 * 20 + 2 * 10, "readers follow the links");
    let orphan = plant(&table_dir(dir, "logs").join("data/orphan.parquet"));
    age_all(&dir.canonicalize().unwrap()); // `find` does not enter a link it starts from

    let report = clean(&ctx, &["logs", "traces"]).await;
    assert_eq!(*status(&report, "logs"), TableStatus::Succeeded, "{report:#?}");
    assert!(!orphan.exists(), "the real orphan goes");
    assert!(real.exists(), "the file traces references through the linked directory stays");
    assert!(real_second.exists(), "the file a link traces references points to stays");
    assert_eq!(pyiceberg(dir, &["scan", "--table", "acme.production.traces"])["rows"], rows);
    assert_all_live_exist(&ctx).await;
}

/// Metadata listing two statistics files for one snapshot (Java keeps the list; iceberg-rust parses
/// it into a map by snapshot id and shows one): both are referenced, neither is an orphan.
#[tokio::test]
async fn case5c_every_statistics_file_the_metadata_lists_stays() {
    for gzip in [false, true] {
        every_statistics_file_the_metadata_lists_stays(gzip).await;
    }
}

async fn every_statistics_file_the_metadata_lists_stays(gzip: bool) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let pointer = ctx.catalog.metadata_location(&traces.ident).await.unwrap().unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pointer.trim_start_matches("file://")).unwrap()).unwrap();
    let snapshot = json["current-snapshot-id"].clone();
    let metadata_dir = table_dir(dir.path(), "traces").join("metadata");
    let stats: Vec<PathBuf> =
        ["stats-a.puffin", "stats-b.puffin"].iter().map(|n| plant(&metadata_dir.join(n))).collect();
    json["statistics"] = serde_json::json!(
        stats
            .iter()
            .map(|p| serde_json::json!({
                "snapshot-id": snapshot,
                "statistics-path": format!("file://{}", p.display()),
                "file-size-in-bytes": 14,
                "file-footer-size-in-bytes": 4,
                "blob-metadata": [],
            }))
            .collect::<Vec<_>>()
    );
    let suffix = if gzip { "gz.metadata.json" } else { "metadata.json" };
    let next = metadata_dir.join(format!("00099-{}.{suffix}", uuid::Uuid::now_v7()));
    let bytes = serde_json::to_vec(&json).unwrap();
    let bytes = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &bytes).unwrap();
        encoder.finish().unwrap()
    } else {
        bytes
    };
    std::fs::write(&next, bytes).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("catalog.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE iceberg_tables SET metadata_location = ? WHERE table_name = 'traces'")
        .bind(format!("file://{}", next.display()))
        .execute(&pool)
        .await
        .unwrap();
    let table = ctx.catalog.load(&traces).await.unwrap();
    assert_eq!(table.metadata().statistics_iter().count(), 1, "iceberg-rust shows one of the two");
    let orphan = plant(&table_dir(dir.path(), "traces").join("data/orphan.parquet"));
    age_all(dir.path());

    let report = clean(&ctx, &["traces"]).await;
    assert_eq!(*status(&report, "traces"), TableStatus::Succeeded, "gzip {gzip}: {report:#?}");
    assert!(!orphan.exists());
    for s in &stats {
        assert!(s.exists(), "gzip {gzip}: a listed statistics file was deleted: {}", s.display());
    }
}

#[tokio::test]
async fn case6_a_file_another_table_references_stays_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let borrower = create_table(
        &ctx,
        "borrower",
        &format!("file://{}", dir.path().join("warehouse/acme/production/borrower").display()),
    )
    .await;
    // A file written under traces' directory but committed only to `borrower` (an import).
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let traces_table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let lent =
        signaldb_compactor::generate::write_file(&traces_table, &columns, &file_spec(31)).await.unwrap();
    let lent_path = PathBuf::from(lent[0].file_path().trim_start_matches("file://"));
    assert!(lent_path.starts_with(table_dir(dir.path(), "traces")));
    let tx = Transaction::new(&borrower);
    let tx = tx.fast_append().add_data_files(lent).apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
    let orphan = plant(&table_dir(dir.path(), "traces").join("data/orphan.parquet"));
    age_all(dir.path());

    let report = clean(&ctx, &["traces"]).await;
    assert_eq!(*status(&report, "traces"), TableStatus::Succeeded, "{report:#?}");
    assert!(!orphan.exists());
    assert!(lent_path.exists(), "the file borrower references stays");
    assert_all_live_exist(&ctx).await;
    assert_eq!(pyiceberg(dir.path(), &["scan", "--table", "acme.production.borrower"])["rows"], 20);
}

/// Every object key in the S3 store, sorted.
async fn objects(ctx: &Context) -> Vec<String> {
    use futures::TryStreamExt;
    let mut out: Vec<String> =
        ctx.warehouse.store().list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    out.sort();
    out
}

async fn put(ctx: &Context, location: &str) {
    let path = ctx.warehouse.object_path(location).unwrap();
    ctx.warehouse.store().put(&path, object_store::PutPayload::from_static(b"precious")).await.unwrap();
}

/// Cases 1–3 on an S3-compatible server (moto): a table outside the warehouse prefix, a nested table
/// whose metadata object is gone, and a backup sharing the live table's location.
#[tokio::test]
async fn s3_cases_1_to_3_fail_closed() {
    let backend = crate::matrix::Backend::new(false, true).await;
    let dir = backend.dir.path();
    let mut opts = options(dir);
    opts.tables = vec!["traces".into()];
    signaldb_compactor::generate::generate_into(&opts, Some(&backend.uri), backend.storage.clone())
        .await
        .unwrap();
    let storage = backend.storage.clone().unwrap();
    let later = Utc::now() + TimeDelta::days(3);
    let make = |policy: UnreadableNeighbours| {
        let storage = storage.clone();
        async move {
            context(dir, later, |c| {
                c.storage = storage;
                c.orphans.enabled = true;
                c.orphans.mode = Mode::Execute;
                c.orphans.unreadable_neighbours = policy;
            })
            .await
        }
    };
    let ctx = make(UnreadableNeighbours::Block).await;
    let traces = ctx.catalog.discover().await.unwrap().remove(0);
    let traces_location = ctx.catalog.load(&traces).await.unwrap().metadata().location().to_string();
    assert!(traces_location.starts_with("s3://lake/warehouse/"), "{traces_location}");

    // Case 1: a table in the same bucket, outside the warehouse prefix, with unrelated objects there.
    create_table(&ctx, "escapee", "s3://lake/elsewhere").await;
    put(&ctx, "s3://lake/elsewhere/backups/precious.bin").await;
    let before = objects(&ctx).await;
    let report = clean(&ctx, &["escapee"]).await;
    assert!(skipped_for(&report, "escapee", "location_outside_warehouse"), "{report:#?}");
    assert_eq!(objects(&ctx).await, before);

    // Case 2: a table nested in traces whose current metadata object is gone.
    let inner = create_table(&ctx, "inner", &format!("{traces_location}/nested/inner")).await;
    let pointer = ctx.warehouse.object_path(inner.metadata_location().unwrap()).unwrap();
    ctx.warehouse.store().delete(&pointer).await.unwrap();
    put(&ctx, &format!("{traces_location}/data/orphan.parquet")).await;
    let before = objects(&ctx).await;
    let inner_before: Vec<String> = before.iter().filter(|o| o.contains("/nested/inner/")).cloned().collect();
    assert!(inner_before.len() >= 3, "{inner_before:?}");
    let report = clean(&ctx, &["traces"]).await;
    assert!(skipped_for(&report, "traces", "unknown_neighbour"), "{report:#?}");
    assert_eq!(objects(&ctx).await, before, "default: nothing deleted while a neighbour is unreadable");
    let protect = make(UnreadableNeighbours::ProtectLocation).await;
    let report = clean(&protect, &["traces"]).await;
    assert_eq!(*status(&report, "traces"), TableStatus::Succeeded, "{report:#?}");
    let after = objects(&ctx).await;
    assert!(!after.iter().any(|o| o.ends_with("traces/data/orphan.parquet")), "traces' orphan goes");
    for o in &inner_before {
        assert!(after.contains(o), "the nested table's object stays: {o}");
    }
    // The unreadable neighbour is dropped from the catalog again for case 3.
    ctx.catalog.iceberg().drop_table(inner.identifier()).await.ok();
    let pool_uri = format!("sqlite:{}", dir.join("catalog.db").display());
    let pool = sqlx::SqlitePool::connect(&pool_uri).await.unwrap();
    sqlx::query("DELETE FROM iceberg_tables WHERE table_name IN ('inner', 'escapee')")
        .execute(&pool)
        .await
        .unwrap();

    // Case 3: a backup registered from an older metadata object of traces.
    let old_pointer = ctx.catalog.load(&traces).await.unwrap().metadata_location().unwrap().to_string();
    let mut table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    signaldb_compactor::generate::append_file(&ctx.catalog, &mut table, &columns, &file_spec(5))
        .await
        .unwrap();
    let backup = iceberg::TableIdent::new(traces.ident.namespace().clone(), "traces_backup".into());
    ctx.catalog.iceberg().register_table(&backup, old_pointer).await.unwrap();
    put(&ctx, &format!("{traces_location}/data/orphan-2.parquet")).await;
    let before = objects(&ctx).await;
    let report = clean(&ctx, &["traces", "traces_backup"]).await;
    assert!(skipped_for(&report, "traces", "shared_location"), "{report:#?}");
    assert!(skipped_for(&report, "traces_backup", "shared_location"), "{report:#?}");
    assert_eq!(objects(&ctx).await, before);
}

// ---- Attack tests (issue 11 review). Each fails on e83829d. ----

async fn sqlite(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.join("catalog.db").display())).await.unwrap()
}

/// A table of another catalog (`catalog_name`) in the same catalog database, nested inside traces'
/// location: the census reads only this catalog's rows, so traces' cleanup deletes all of its files.
#[tokio::test]
async fn attack_a_table_of_another_catalog_name_nested_inside_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let inner_dir = table_dir(dir.path(), "traces").join("nested/spark_inner");
    create_table(&ctx, "spark_inner", &format!("file://{}", inner_dir.display())).await;
    sqlx::query("UPDATE iceberg_tables SET catalog_name = 'spark' WHERE table_name = 'spark_inner'")
        .execute(&sqlite(dir.path()).await)
        .await
        .unwrap();
    age_all(dir.path());
    let inner_before = files(&inner_dir);
    assert!(inner_before.len() >= 3);
    let report = clean(&ctx, &["traces"]).await;
    assert_eq!(files(&inner_dir), inner_before, "another catalog's live table was deleted: {report:#?}");
}

/// A catalog row whose `iceberg_type` is `VIEW`, nested inside traces' location: its metadata files
/// are not in the census (the filter keeps only TABLE/NULL rows) and are deleted.
#[tokio::test]
async fn attack_a_view_row_nested_inside_keeps_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let inner_dir = table_dir(dir.path(), "traces").join("nested/a_view");
    let view = create_table(&ctx, "a_view", &format!("file://{}", inner_dir.display())).await;
    let pointer = PathBuf::from(view.metadata_location().unwrap().trim_start_matches("file://"));
    sqlx::query("UPDATE iceberg_tables SET iceberg_type = 'VIEW' WHERE table_name = 'a_view'")
        .execute(&sqlite(dir.path()).await)
        .await
        .unwrap();
    age_all(dir.path());
    let report = clean(&ctx, &["traces"]).await;
    assert!(pointer.exists(), "the view's current metadata file was deleted: {report:#?}");
}

/// The census is taken once at the start of the pass; only the cleaned table's own pointer is
/// revalidated before each batch. A table registered (restored from its metadata, nested inside
/// traces) while the pass runs loses every file.
#[tokio::test]
async fn attack_a_table_registered_mid_pass_keeps_its_files() {
    use futures::FutureExt as _;
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let inner_dir = table_dir(dir.path(), "traces").join("nested/restored");
    let inner = create_table(&ctx, "restored", &format!("file://{}", inner_dir.display())).await;
    let pointer = inner.metadata_location().unwrap().to_string();
    let ident = inner.identifier().clone();
    // Dropped without purge (its files stay, as after `DROP TABLE` in most engines)…
    sqlx::query("DELETE FROM iceberg_tables WHERE table_name = 'restored'")
        .execute(&sqlite(dir.path()).await)
        .await
        .unwrap();
    age_all(dir.path());
    let inner_before = files(&inner_dir);
    // …and registered again while traces' cleanup is between listing and deleting.
    let catalog = ctx.catalog.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook: signaldb_compactor::job::BeforeCommitHook = std::sync::Arc::new(move |_t: String| {
        let (catalog, ident, pointer, done) = (catalog.clone(), ident.clone(), pointer.clone(), done.clone());
        async move {
            if !done.swap(true, std::sync::atomic::Ordering::SeqCst) {
                catalog.iceberg().register_table(&ident, pointer).await.unwrap();
            }
        }
        .boxed()
    });
    let filter = TableFilter::only(["acme.production.traces".to_string()]);
    let request = PassRequest { filter, ..PassRequest::all(Mode::Execute) };
    let report = OrphanJob::new(&ctx)
        .with_before_batch(hook)
        .run_once(&request, &CancellationToken::new())
        .await
        .unwrap();
    assert!(ctx.catalog.table_pointers().await.unwrap().iter().any(|r| r.name.ends_with("restored")));
    assert_eq!(files(&inner_dir), inner_before, "a registered table's files were deleted: {report:#?}");
}

/// End to end: a live data file recorded as `FILE:///…` (PyIceberg's urlparse lowercases the scheme
/// and reads it as the plain path) is deleted as an orphan, because normalize maps it to
/// `file:///FILE:/…`.
#[tokio::test]
async fn attack_a_live_file_referenced_with_an_uppercase_scheme_stays() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let a =
        signaldb_compactor::generate::write_file(&table, &columns, &file_spec(41)).await.unwrap().remove(0);
    let upper = a.file_path().replacen("file://", "FILE://", 1);
    let tx = Transaction::new(&table);
    let tx = tx.fast_append().add_data_files(vec![with_path(&a, upper)]).apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
    age_all(dir.path());
    let report = clean(&ctx, &["traces"]).await;
    let live = PathBuf::from(a.file_path().trim_start_matches("file://"));
    assert!(live.exists(), "live file deleted: {report:#?}");
}

/// End to end: a neighbour records a file under traces' directory with a spelling normalize cannot
/// canonicalize (`file:///../<abs path>`, which the OS reads as `<abs path>`). The neighbour is skipped,
/// but traces deletes the file it references.
#[tokio::test]
async fn attack_a_file_a_neighbour_references_uncanonically_stays() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path()).await;
    let borrower = create_table(
        &ctx,
        "borrower",
        &format!("file://{}", dir.path().join("warehouse/acme/production/borrower").display()),
    )
    .await;
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let traces_table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let lent = signaldb_compactor::generate::write_file(&traces_table, &columns, &file_spec(42))
        .await
        .unwrap()
        .remove(0);
    let lent_path = PathBuf::from(lent.file_path().trim_start_matches("file://"));
    let climbing = format!("file:///..{}", lent_path.display());
    assert!(Path::new(climbing.trim_start_matches("file://")).exists(), "the OS reads it as the file");
    let tx = Transaction::new(&borrower);
    let tx = tx.fast_append().add_data_files(vec![with_path(&lent, climbing)]).apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
    age_all(dir.path());
    let report = clean(&ctx, &["traces"]).await;
    assert!(lent_path.exists(), "the file borrower references was deleted: {report:#?}");
}
