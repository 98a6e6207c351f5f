//! The audit trail: a `compactor_runs` row per job pass per table, and crash recovery of `running` rows.

use chrono::TimeDelta;
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{Job, PassRequest};
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, generate_small, run_bin, write_config};

type Row = (String, String, String, String, i64, i64, Option<i64>, Option<String>);

async fn rows(dir: &std::path::Path) -> Vec<Row> {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.join("catalog.db").display())).await.unwrap();
    sqlx::query_as(
        "SELECT run_type, tenant_id || '.' || dataset_id || '.' || table_name, status, started_at, \
         partitions_affected, files_processed, snapshot_id, error_message FROM compactor_runs ORDER BY started_at, table_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_table_of_a_pass_gets_a_completed_row_with_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    // Hours 08 and 09 are closed at 10:35; four files each, compacted with min_input_files = 2.
    let ctx =
        context(dir.path(), fixed_end() + TimeDelta::minutes(5), |c| c.compaction.min_input_files = 2).await;
    let report = CompactionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    let rows = rows(dir.path()).await;
    assert_eq!(rows.len(), report.tables.len());
    assert_eq!(rows.len(), 6);
    for (run_type, table, status, _, partitions, files, snapshot_id, error) in &rows {
        let r = report.tables.iter().find(|t| t.table == *table).unwrap();
        assert_eq!((run_type.as_str(), status.as_str()), ("compaction", "completed"), "{table}");
        assert_eq!((*partitions, *files), (2, 8), "{table}: two hours of four files");
        assert_eq!(*snapshot_id, r.snapshot_id, "{table}");
        assert_eq!(*error, None);
    }
}

#[test]
fn a_run_killed_mid_table_is_marked_failed_at_the_next_startup() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(generate_small(dir.path()));
    write_config(dir.path(), "[compactor]\nmin_input_files = 2\n");
    let killed =
        run_bin(dir.path(), &["once", "compaction"], &[("SIGNALDB_FAILPOINT", "compaction-before-swap")]);
    assert!(!killed.status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let after_kill = rt.block_on(rows(dir.path()));
    assert_eq!(after_kill.len(), 1);
    assert_eq!(after_kill[0].2, "running", "the killed run's row is left running");

    let rerun = run_bin(dir.path(), &["once", "compaction"], &[]);
    assert_eq!(rerun.status.code(), Some(0), "{}", String::from_utf8_lossy(&rerun.stderr));
    let after = rt.block_on(rows(dir.path()));
    let crashed = after.iter().find(|r| r.3 == after_kill[0].3 && r.1 == after_kill[0].1).unwrap();
    assert_eq!(crashed.2, "failed");
    assert!(crashed.7.as_deref().unwrap().contains("stopped before this run finished"));
    assert_eq!(after.iter().filter(|r| r.2 == "completed").count(), 6, "{after:#?}");
}
