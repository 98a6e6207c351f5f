//! Hostile tests of the file merge (compaction/merge.rs, file_runs.rs): groups whose inputs all claim
//! the sort order, merged straight from their readers.

use chrono::TimeDelta;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::generate::{
    FileLayout, GenerateOptions, append_file_as, batch::FileSpec, generate, schema::columns,
};
use signaldb_compactor::job::{Job, PassRequest};
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, pyiceberg};

fn paths(dir: &std::path::Path, table: &str) -> std::collections::BTreeSet<String> {
    pyiceberg(dir, &["files", "--table", table])["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// A warehouse of one `traces` table whose only generated hour (10, open) leaves hour 09 to the test:
/// the context (at 10:35, groups of two files and more) and the start of hour 09.
async fn hour_nine(
    dir: &std::path::Path,
) -> (signaldb_compactor::service::Context, signaldb_compactor::model::TableRef, chrono::DateTime<chrono::Utc>)
{
    let opts = GenerateOptions {
        tenants: 1,
        hours: 1, // only hour 10 (open): hour 09 holds the appended files alone
        files_per_hour: 1,
        rows_per_file: 50,
        seed: 11,
        tables: vec!["traces".into()],
        ..GenerateOptions::small(dir)
    };
    generate(&opts).await.unwrap();
    let now = fixed_end() + TimeDelta::minutes(5);
    let ctx = context(dir, now, |c| c.compaction.min_input_files = 2).await;
    let t = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let start =
        chrono::DurationRound::duration_trunc(fixed_end() - TimeDelta::minutes(90), TimeDelta::hours(1))
            .unwrap();
    (ctx, t, start)
}

/// Three sorted files covering successive 20 minutes of a closed hour; position deletes remove every
/// row of the last one (its manifest bounds still say it starts at :40). The merge reaches that file
/// only after every other run is exhausted: the rows gathered since the last output batch must still
/// be written, and the group compacted.
#[tokio::test]
async fn a_last_file_whose_rows_are_all_deleted_loses_no_rows_and_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, t, start) = hour_nine(dir.path()).await;
    let name = t.qualified();
    let mut table = ctx.catalog.load(&t).await.unwrap();
    let mut last = String::new();
    for i in 0..3 {
        let before = paths(dir.path(), &name);
        let from = start + TimeDelta::minutes(20 * i);
        let spec =
            FileSpec { seed: 900 + i as u64, rows: 300, start: from, end: from + TimeDelta::minutes(20) };
        append_file_as(&ctx.catalog, &mut table, &columns("traces"), &spec, FileLayout::Sorted)
            .await
            .unwrap();
        last = paths(dir.path(), &name).difference(&before).next().unwrap().clone();
    }
    let deleted =
        pyiceberg(dir.path(), &["posdelete", "--table", &name, "--targets", &last, "--count", "300"]);
    assert_eq!(deleted["deleted"], 300, "{deleted}");
    let before = pyiceberg(dir.path(), &["scan", "--table", &name]);

    let report = CompactionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.failed_tables(), 0, "{report:#?}");
    let after = pyiceberg(dir.path(), &["scan", "--table", &name]);
    assert_eq!((&after["rows"], &after["checksum"]), (&before["rows"], &before["checksum"]));
    assert_eq!(after["operation"], "replace", "{report:#?}");
}

/// Three files of successive 20 minutes, the last one lying (claims the order, rows descending). The
/// inputs are zstd, the output uncompressed and the target just above the inputs' total: the merge
/// rolls output files before it reaches the liar. Every partial output (rolled or open) is deleted,
/// the group is sorted instead, and the rows are the same; an honest group rolls the same way.
#[tokio::test]
async fn a_false_claim_found_after_output_files_rolled_deletes_every_partial_output() {
    use signaldb_compactor::table::Inventory;
    for lying in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, t, start) = hour_nine(dir.path()).await;
        let name = t.qualified();
        let mut table = ctx.catalog.load(&t).await.unwrap();
        let mut bytes = 0;
        for i in 0..3 {
            let from = start + TimeDelta::minutes(20 * i);
            let layout = if lying && i == 2 { FileLayout::Misclaimed } else { FileLayout::Sorted };
            let spec = FileSpec {
                seed: 700 + i as u64,
                rows: 6000,
                start: from,
                end: from + TimeDelta::minutes(20),
            };
            bytes +=
                append_file_as(&ctx.catalog, &mut table, &columns("traces"), &spec, layout).await.unwrap().1;
        }
        let target = format!("signaldb.compactor.target-file-size-bytes={}", (bytes + 1).max(64 * 1024));
        pyiceberg(
            dir.path(),
            &[
                "props",
                "--table",
                &name,
                "--set",
                &target,
                "--set",
                "write.parquet.compression-codec=uncompressed",
            ],
        );
        let before = pyiceberg(dir.path(), &["scan", "--table", &name]);

        let report = CompactionJob::new(&ctx)
            .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.failed_tables(), 0, "lying {lying}: {report:#?}");
        let after = pyiceberg(dir.path(), &["scan", "--table", &name]);
        assert_eq!(
            (&after["rows"], &after["checksum"]),
            (&before["rows"], &before["checksum"]),
            "lying {lying}"
        );
        let table = ctx.catalog.load(&t).await.unwrap();
        let inventory = Inventory::load(&table).await.unwrap();
        let live: std::collections::HashSet<String> =
            inventory.data.iter().map(|f| f.path().trim_start_matches("file://").to_string()).collect();
        let compacted: Vec<_> = inventory.data.iter().filter(|f| f.path().contains("/compact-")).collect();
        // The first output file ends before minute 40 (12,000 rows): the merge had rolled a file by
        // the time it opened the third input.
        let first = compacted.iter().map(|f| f.records()).min().unwrap();
        assert!(
            compacted.len() >= 2 && first < 12_000,
            "lying {lying}: rolled {} files, first {first}",
            compacted.len()
        );
        for f in &compacted {
            assert_eq!(f.entry.data_file().sort_order_id(), Some(1), "{}", f.path());
        }
        let mut on_disk = 0;
        for (path, _) in crate::support::snapshot_bytes(&dir.path().join("warehouse")) {
            let path = path.to_string_lossy().to_string();
            if path.contains("/compact-") {
                on_disk += 1;
                assert!(live.contains(&path), "lying {lying}: {path} left behind");
            }
        }
        assert_eq!(on_disk, compacted.len());
    }
}
