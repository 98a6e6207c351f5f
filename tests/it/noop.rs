//! A pass over tables with nothing to do costs little: whether a table has work is decided from its
//! manifests before any lease or audit row, and a table whose catalog pointer has not moved since the
//! last pass found it idle is not read again until an open partition falls due.

use chrono::TimeDelta;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use signaldb_compactor::config::Mode;
use signaldb_compactor::job::{Job, PassReport, PassRequest, TableStatus};

use crate::support::{fixed_end, generate_small};

async fn audit_rows(dir: &std::path::Path) -> i64 {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.join("catalog.db").display())).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM compactor_runs").fetch_one(&pool).await.unwrap()
}

fn statuses(report: &PassReport) -> Vec<(String, TableStatus)> {
    report.tables.iter().map(|t| (t.table.clone(), t.status.clone())).collect()
}

fn status_of(report: &PassReport, table: &str) -> TableStatus {
    report.tables.iter().find(|t| t.table == table).unwrap_or_else(|| panic!("{report:#?}")).status.clone()
}

#[tokio::test]
async fn idle_tables_take_no_lease_write_no_audit_row_and_are_not_reread_until_they_change_or_fall_due() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    // Hours 08:00, 09:00 and 10:00 (ending 11:00); at 10:31 with 10 min lateness hour 10 is still open.
    let clock = signaldb_compactor::clock::ManualClock::new(fixed_end() + TimeDelta::minutes(1));
    let ctx = crate::support::context(dir.path(), fixed_end(), |c| {
        c.compaction.min_input_files = 2;
        c.compaction.partition_lateness = std::time::Duration::from_secs(600);
    })
    .await;
    let ctx = ctx.with_clock(std::sync::Arc::new(clock.clone()));
    let job = signaldb_compactor::compaction::CompactionJob::new(&ctx);
    let cancel = tokio_util::sync::CancellationToken::new();
    let real = PassRequest::all(Mode::Execute);

    let first = job.run_once(&real, &cancel).await.unwrap();
    assert!(first.tables.iter().all(|t| t.status == TableStatus::Succeeded), "{:?}", statuses(&first));
    let rows = audit_rows(dir.path()).await;
    assert_eq!(rows, first.tables.len() as i64);

    // Nothing left to do: every table reported unchanged, and no audit row written.
    let second = job.run_once(&real, &cancel).await.unwrap();
    assert!(second.tables.iter().all(|t| t.status == TableStatus::Unchanged), "{:?}", statuses(&second));
    assert_eq!(audit_rows(dir.path()).await, rows);
    let c = second.tables.iter().find(|t| t.table == "acme.production.traces").unwrap();
    assert!(c.files_before > 0 && c.files_before == c.files_after, "{c:#?}");

    // The job does not read an idle table whose pointer has not moved: its metadata file made
    // unreadable goes unnoticed by it, while a job without that memory reads the table and fails it.
    let traces = crate::support::table_ref(&ctx.catalog, "acme.production.traces").await;
    let table = ctx.catalog.load(&traces).await.unwrap();
    let metadata = std::path::PathBuf::from(table.metadata_location().unwrap().trim_start_matches("file://"));
    let saved = std::fs::read(&metadata).unwrap();
    std::fs::write(&metadata, b"not json").unwrap();
    let third = job.run_once(&real, &cancel).await.unwrap();
    assert_eq!(status_of(&third, "acme.production.traces"), TableStatus::Unchanged);
    let fresh =
        signaldb_compactor::compaction::CompactionJob::new(&ctx).run_once(&real, &cancel).await.unwrap();
    assert!(matches!(status_of(&fresh, "acme.production.traces"), TableStatus::Failed { .. }), "{fresh:#?}");
    std::fs::write(&metadata, saved).unwrap();

    // Hour 10 falls due at 11:10: compacted by the next pass although no pointer moved.
    clock.set(fixed_end() + TimeDelta::minutes(41));
    let due = job.run_once(&real, &cancel).await.unwrap();
    assert!(due.tables.iter().all(|t| t.status == TableStatus::Succeeded), "{:?}", statuses(&due));
    let after_due = audit_rows(dir.path()).await;
    let idle = job.run_once(&real, &cancel).await.unwrap();
    assert!(idle.tables.iter().all(|t| t.status == TableStatus::Unchanged), "{:?}", statuses(&idle));

    // A writer appends two small files to hour 08 of traces: its pointer moved, so it is read again
    // and compacted; the other tables stay unread.
    let table = ctx.catalog.load(&traces).await.unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let start = fixed_end() - TimeDelta::minutes(150);
    let mut files = Vec::new();
    for seed in [41, 42] {
        let spec = signaldb_compactor::generate::batch::FileSpec {
            seed,
            rows: 20,
            start,
            end: start + TimeDelta::minutes(5),
        };
        files.extend(signaldb_compactor::generate::write_file(&table, &columns, &spec).await.unwrap());
    }
    let tx = Transaction::new(&table);
    let tx = tx.fast_append().add_data_files(files).apply(tx).unwrap();
    tx.commit(ctx.catalog.iceberg()).await.unwrap();
    let moved = job.run_once(&real, &cancel).await.unwrap();
    assert_eq!(status_of(&moved, "acme.production.traces"), TableStatus::Succeeded, "{moved:#?}");
    let others: Vec<_> = moved.tables.iter().filter(|t| t.table != "acme.production.traces").collect();
    assert!(others.iter().all(|t| t.status == TableStatus::Unchanged), "{others:#?}");
    assert_eq!(audit_rows(dir.path()).await, after_due + 1);
    assert_eq!(
        crate::support::pyiceberg(dir.path(), &["scan", "--table", "acme.production.traces"])["rows"],
        3 * 4 * 50 + 40
    );
}
