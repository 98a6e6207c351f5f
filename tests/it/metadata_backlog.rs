//! The metadata backlog: after each of our commits, metadata files that fell out of the metadata log are
//! deleted when the table sets `write.metadata.delete-after-commit.enabled` (SignalDB does), through the
//! deletion gate, and never while another catalog entry shares the table's location.

use std::path::Path;

use chrono::TimeDelta;
use iceberg::Catalog as _;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::generate::{GenerateOptions, generate};
use signaldb_compactor::job::{Job, PassRequest, TableStatus};
use signaldb_compactor::service::Context;
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, pyiceberg};

fn options(dir: &Path) -> GenerateOptions {
    GenerateOptions {
        tenants: 1,
        hours: 4,
        files_per_hour: 6,
        rows_per_file: 20,
        seed: 5,
        tables: vec!["traces".into()],
        ..GenerateOptions::small(dir)
    }
}

fn metadata_files(dir: &Path) -> Vec<String> {
    let meta = dir.join("warehouse/acme/production/traces/metadata");
    let mut out: Vec<String> = std::fs::read_dir(meta)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".metadata.json"))
        .collect();
    out.sort();
    out
}

async fn set_properties(ctx: &Context, props: &[(&str, &str)]) {
    let t = ctx.catalog.discover().await.unwrap().remove(0);
    let table = ctx.catalog.load(&t).await.unwrap();
    let tx = Transaction::new(&table);
    let mut action = tx.update_table_properties();
    for (k, v) in props {
        action = action.set(k.to_string(), v.to_string());
    }
    let tx = action.apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
}

async fn compact(ctx: &Context) {
    let report = CompactionJob::new(ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.tables[0].status, TableStatus::Succeeded, "{report:#?}");
}

#[tokio::test]
async fn superseded_metadata_files_are_deleted_after_our_commits() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path())).await.unwrap();
    let ctx = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |_| {}).await;
    set_properties(&ctx, &[("write.metadata.previous-versions-max", "2")]).await;
    let before = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    let piled_up = metadata_files(dir.path()).len();
    assert!(piled_up > 10, "every append left a metadata file: {piled_up}");

    let t = ctx.catalog.discover().await.unwrap().remove(0);
    let listed = |table: &iceberg::table::Table| -> Vec<String> {
        let md = table.metadata();
        let mut v: Vec<String> = md
            .metadata_log()
            .iter()
            .map(|e| e.metadata_file.clone())
            .chain(table.metadata_location().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let listed_before = listed(&ctx.catalog.load(&t).await.unwrap());
    compact(&ctx).await;
    let table = ctx.catalog.load(&t).await.unwrap();
    let listed_after = listed(&table);
    let log = table.metadata().metadata_log().len();
    assert!(log <= 2, "the log keeps previous-versions-max entries: {log}");
    let exists = |l: &String| Path::new(l.trim_start_matches("file://")).exists();
    let superseded: Vec<&String> = listed_before.iter().filter(|l| !listed_after.contains(l)).collect();
    assert!(!superseded.is_empty(), "our commits pushed files out of the log");
    assert!(
        superseded.iter().all(|l| !exists(l)),
        "every file our commits pushed out is deleted: {superseded:?}"
    );
    assert!(listed_after.iter().all(exists), "every file the log lists stays");
    assert_eq!(metadata_files(dir.path()).len(), piled_up, "each commit added one file and removed one");
    let after = pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"]);
    assert_eq!(after["checksum"], before["checksum"]);
    assert_eq!(after["rows"], before["rows"]);
}

#[tokio::test]
async fn nothing_is_deleted_without_the_property_or_while_a_backup_shares_the_location() {
    let dir = tempfile::tempdir().unwrap();
    generate(&options(dir.path())).await.unwrap();
    let ctx = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |_| {}).await;
    set_properties(
        &ctx,
        &[
            ("write.metadata.previous-versions-max", "2"),
            ("write.metadata.delete-after-commit.enabled", "false"),
        ],
    )
    .await;
    let piled_up = metadata_files(dir.path()).len();
    compact(&ctx).await;
    assert!(metadata_files(dir.path()).len() > piled_up, "the table did not ask for deletion");

    // Asking for it, but a backup registered from an older metadata file shares the location.
    set_properties(&ctx, &[("write.metadata.delete-after-commit.enabled", "true")]).await;
    let t = ctx.catalog.discover().await.unwrap().remove(0);
    let oldest = ctx.catalog.load(&t).await.unwrap().metadata_location().unwrap().to_string();
    let backup = iceberg::TableIdent::new(t.ident.namespace().clone(), "traces_backup".into());
    ctx.catalog.iceberg().register_table(&backup, oldest.clone()).await.unwrap();
    let mut table = ctx.catalog.load(&t).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let start = fixed_end() - TimeDelta::hours(3);
    for seed in 0..6 {
        let spec = signaldb_compactor::generate::batch::FileSpec {
            seed,
            rows: 5,
            start,
            end: start + TimeDelta::minutes(10),
        };
        signaldb_compactor::generate::append_file(&ctx.catalog, &mut table, &columns, &spec).await.unwrap();
    }
    let files = metadata_files(dir.path()).len();
    compact(&ctx).await;
    assert!(metadata_files(dir.path()).len() > files, "shared location: nothing deleted");
    assert!(Path::new(oldest.trim_start_matches("file://")).exists(), "the backup's metadata stays");
    assert_eq!(
        pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces_backup"])["rows"],
        4 * 6 * 20,
        "the backup reads every row it had"
    );
}
