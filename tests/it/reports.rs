//! Reports are true: each job's figures are typed in its own terms (compaction: files and bytes
//! before -> after; retention: partitions dropped, files and bytes removed, snapshots expired;
//! orphans: scanned, identified, deleted, bytes freed) and drive the text report and the JSON alike.

use signaldb_compactor::generate::GenerateOptions;

use crate::support::{generate_small, run_bin, small_options, write_config};

fn line<'a>(text: &'a str, table: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(table))
        .unwrap_or_else(|| panic!("no {table} in:\n{text}"))
}

#[tokio::test]
async fn each_job_reports_its_own_figures_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    // The binary runs on the wall clock: the data ends five days before it (at half past, as
    // `fixed_end`), so logs (3 days + grace) are past retention and traces (7 days) are not, whatever
    // the date the suite runs on.
    let end = chrono::DurationRound::duration_trunc(
        chrono::Utc::now() - chrono::TimeDelta::days(5),
        chrono::TimeDelta::hours(1),
    )
    .unwrap()
        + chrono::TimeDelta::minutes(30);
    signaldb_compactor::generate::generate(&GenerateOptions { end, ..small_options(dir.path()) })
        .await
        .expect("generate succeeds");
    write_config(dir.path(), "[compactor]\nmin_input_files = 2\n");
    let out = run_bin(dir.path(), &["once", "retention", "--dry-run"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let traces = line(&text, "acme.production.traces");
    assert!(!traces.contains("-> 0"), "an unchanged table is not reported as emptied: {traces}");
    assert!(traces.contains("would drop 0 partition(s)"), "{traces}");
    assert!(line(&text, "acme.production.logs").contains("would drop 3 partition(s) (12 file(s)"), "{text}");
    let out = run_bin(dir.path(), &["once", "retention", "--dry-run", "--json"], &[]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = |name: &str| {
        json[0]["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap().clone()
    };
    let logs = table("acme.production.logs")["outcome"].clone();
    assert_eq!(logs["job"], "retention");
    assert_eq!(logs["partitions_dropped"], 3);
    assert_eq!(logs["files_removed"], 12);
    assert!(logs["bytes_removed"].as_u64().unwrap() > 0);
    assert_eq!(table("acme.production.traces")["outcome"]["partitions_dropped"], 0);

    // Orphans: files scanned and orphans identified, never "files before -> after".
    let orphan = dir.path().join("warehouse/acme/production/traces/data/orphan.parquet");
    std::fs::write(&orphan, vec![0u8; 1000]).unwrap();
    assert!(
        std::process::Command::new("touch")
            .args(["-d", "3 days ago"])
            .arg(&orphan)
            .status()
            .unwrap()
            .success()
    );
    let out = run_bin(dir.path(), &["once", "orphans", "--dry-run"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let traces = line(&text, "acme.production.traces");
    assert!(traces.contains("orphans identified 1 (1000 B), would delete 1"), "{traces}");
    assert!(traces.contains("scanned ") && !traces.contains("->"), "{traces}");
    let out = run_bin(dir.path(), &["once", "orphans", "--dry-run", "--json"], &[]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = &json[0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "acme.production.traces")
        .unwrap()["outcome"];
    assert_eq!(outcome["job"], "orphans");
    assert_eq!((outcome["identified"].as_u64(), outcome["deleted"].as_u64()), (Some(1), Some(0)));
    assert!(outcome["scanned"].as_u64().unwrap() > 1, "{outcome}");

    // Compaction: files and bytes before -> after.
    let out =
        run_bin(dir.path(), &["once", "compaction", "--json", "--table", "acme.production.traces"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = &json[0]["tables"][0]["outcome"];
    assert_eq!(outcome["job"], "compaction");
    assert_eq!((outcome["files_before"].as_u64(), outcome["files_after"].as_u64()), (Some(12), Some(3)));
}

/// The sum of a metric's series in a Prometheus text scrape.
fn metric_sum(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

#[tokio::test]
async fn the_typed_outcomes_agree_with_the_metrics_of_the_same_passes() {
    use signaldb_compactor::job::{Job, Outcome, PassRequest};
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let status = std::process::Command::new("find")
        .arg(dir.path().join("warehouse"))
        .args(["-type", "f", "-exec", "touch", "-d", "3 days ago", "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
    let orphan = dir.path().join("warehouse/acme/production/logs/data/orphan.parquet");
    std::fs::write(&orphan, vec![0u8; 500]).unwrap();
    assert!(
        std::process::Command::new("touch")
            .args(["-d", "3 days ago"])
            .arg(&orphan)
            .status()
            .unwrap()
            .success()
    );
    // Snapshots carry the wall-clock time of their commit (just now): the pass's clock is a day later,
    // and far past the generated data's retention, whatever the date the suite runs on.
    let ctx = crate::support::context(dir.path(), chrono::Utc::now() + chrono::TimeDelta::days(1), |c| {
        c.retention.enabled = true;
        c.retention.mode = signaldb_compactor::config::Mode::Execute;
        c.retention.snapshots_to_keep = 1;
        c.retention.max_snapshot_age = std::time::Duration::from_secs(1);
        c.orphans.enabled = true;
        c.orphans.mode = signaldb_compactor::config::Mode::Execute;
    })
    .await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let request = PassRequest::all(signaldb_compactor::config::Mode::Execute);
    let retention =
        signaldb_compactor::retention::RetentionJob::new(&ctx).run_once(&request, &cancel).await.unwrap();
    let (mut dropped, mut expired) = (0, 0);
    for t in &retention.tables {
        if let Some(Outcome::Retention(r)) = &t.outcome {
            dropped += r.partitions_dropped;
            expired += r.snapshots_expired;
        }
    }
    let scrape = ctx.metrics.render();
    assert!(dropped > 0 && expired > 0, "{retention:#?}");
    assert_eq!(metric_sum(&scrape, "compactor_partitions_dropped_total"), dropped);
    assert_eq!(metric_sum(&scrape, "compactor_snapshots_expired_total"), expired);
    let orphans =
        signaldb_compactor::orphans::OrphanJob::new(&ctx).run_once(&request, &cancel).await.unwrap();
    let (mut scanned, mut identified, mut deleted, mut freed) = (0, 0, 0, 0);
    for t in &orphans.tables {
        if let Some(Outcome::Orphans(o)) = &t.outcome {
            (scanned, identified, deleted, freed) =
                (scanned + o.scanned, identified + o.identified, deleted + o.deleted, freed + o.bytes_freed);
        }
    }
    let scrape = ctx.metrics.render();
    assert!(deleted >= 1 && freed >= 500, "{orphans:#?}");
    assert!(!orphan.exists());
    assert_eq!(metric_sum(&scrape, "compactor_files_scanned_total"), scanned);
    assert_eq!(metric_sum(&scrape, "compactor_orphans_identified_total"), identified);
    assert_eq!(metric_sum(&scrape, "compactor_files_deleted_total"), deleted);
    assert_eq!(metric_sum(&scrape, "compactor_bytes_freed_total"), freed);
}

/// Sums one figure of every table's typed outcome of a pass.
fn outcome_sum(report: &signaldb_compactor::job::PassReport, figure: &str) -> u64 {
    report
        .tables
        .iter()
        .filter_map(|t| t.outcome.as_ref())
        .map(|o| serde_json::to_value(o).unwrap()[figure].as_u64().unwrap_or(0))
        .sum()
}

/// Sets every file's mtime to three days before `now` (the test's clock, not the wall clock: a fixed
/// clock falls behind the wall clock day by day, and files aged from the wall clock would one day
/// be younger than the orphan grace period by the test's clock).
fn age(path: &std::path::Path, now: chrono::DateTime<chrono::Utc>) {
    let at = format!("@{}", (now - chrono::TimeDelta::days(3)).timestamp());
    let status = std::process::Command::new("find")
        .arg(path)
        .args(["-type", "f", "-exec", "touch", "-d", &at, "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Metrics come from the typed outcomes only: a dry run moves no action counter (only what it
/// observed), a real pass moves each counter by its outcome's figure, and a table that fails after it
/// deleted files still reports, counts and audits the files it deleted.
#[tokio::test]
async fn metrics_follow_the_outcomes_in_dry_runs_real_passes_and_failures_partway() {
    use signaldb_compactor::config::Mode;
    use signaldb_compactor::job::{Job, Outcome, PassRequest, TableStatus};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let data = dir.path().join("warehouse/acme/production/logs/data");
    for i in 0..3 {
        std::fs::write(data.join(format!("orphan-{i}.parquet")), vec![0u8; 100]).unwrap();
    }
    let now = crate::support::fixed_end() + chrono::TimeDelta::days(10);
    age(&dir.path().join("warehouse"), now);
    let ctx = crate::support::context(dir.path(), now, |c| {
        c.compaction.min_input_files = 2;
        c.retention.enabled = true;
        c.retention.snapshots_to_keep = 1;
        c.retention.max_snapshot_age = std::time::Duration::from_secs(1);
        c.orphans.enabled = true;
        c.orphans.batch_size = 1;
    })
    .await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let compaction = signaldb_compactor::compaction::CompactionJob::new(&ctx);
    let retention = signaldb_compactor::retention::RetentionJob::new(&ctx);
    let orphans = signaldb_compactor::orphans::OrphanJob::new(&ctx);
    let counter = |name: &str| metric_sum(&ctx.metrics.render(), name);
    let actions = [
        "compactor_compaction_runs_total",
        "compactor_files_compacted_total",
        "compactor_bytes_compacted_total",
        "compactor_partitions_dropped_total",
        "compactor_snapshots_expired_total",
        "compactor_bytes_reclaimed_total",
        "compactor_files_deleted_total",
        "compactor_bytes_freed_total",
    ];

    // Dry runs: every job plans work, no action counter moves, observations are counted.
    let dry = PassRequest::all(Mode::DryRun);
    let c = compaction.run_once(&dry, &cancel).await.unwrap();
    let r = retention.run_once(&dry, &cancel).await.unwrap();
    let o = orphans.run_once(&dry, &cancel).await.unwrap();
    assert!(outcome_sum(&r, "partitions_dropped") > 0, "{r:#?}");
    assert_eq!(outcome_sum(&o, "identified"), 3, "{o:#?}");
    assert!(c.tables.iter().any(|t| t.status == TableStatus::Succeeded), "{c:#?}");
    for name in actions {
        assert_eq!(counter(name), 0, "{name} moved in a dry run");
    }
    assert_eq!(counter("compactor_partitions_evaluated_total"), outcome_sum(&r, "partitions_evaluated"));
    assert_eq!(counter("compactor_files_scanned_total"), outcome_sum(&o, "scanned"));
    assert_eq!(counter("compactor_orphans_identified_total"), 3);

    // A real compaction: the counters are its outcome's figures.
    let real = PassRequest::all(Mode::Execute);
    let c = compaction.run_once(&real, &cancel).await.unwrap();
    assert!(outcome_sum(&c, "groups_committed") > 0, "{c:#?}");
    assert_eq!(counter("compactor_compaction_runs_total"), outcome_sum(&c, "groups_committed"));
    assert_eq!(counter("compactor_files_compacted_total"), outcome_sum(&c, "files_rewritten"));
    assert_eq!(counter("compactor_bytes_compacted_total"), outcome_sum(&c, "bytes_rewritten"));

    // Orphan cleanup that fails after its second batch (its checkpoint table vanishes): the two
    // files it deleted are in the report's outcome, the audit row and the metrics alike.
    let calls = Arc::new(AtomicUsize::new(0));
    let db = dir.path().join("catalog.db");
    let hook: signaldb_compactor::job::BeforeCommitHook = {
        let calls = calls.clone();
        Arc::new(move |_| {
            let (calls, db) = (calls.clone(), db.clone());
            Box::pin(async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display())).await.unwrap();
                    sqlx::query("DROP TABLE cleanup_progress").execute(&pool).await.unwrap();
                }
            }) as futures::future::BoxFuture<'static, ()>
        })
    };
    let filter = signaldb_compactor::job::TableFilter::only(["acme.production.logs".to_string()]);
    let request = PassRequest { filter, ..PassRequest::all(Mode::Execute) };
    let o = orphans.with_before_batch(hook).run_once(&request, &cancel).await.unwrap();
    let logs = o.tables.iter().find(|t| t.table == "acme.production.logs").unwrap();
    let gone = (0..3).filter(|i| !data.join(format!("orphan-{i}.parquet")).exists()).count() as u64;
    assert_eq!(gone, 2, "{o:#?}");
    assert!(matches!(logs.status, TableStatus::Failed { .. }), "{logs:#?}");
    let Some(Outcome::Orphans(outcome)) = &logs.outcome else { panic!("{logs:#?}") };
    assert_eq!((outcome.deleted, outcome.bytes_freed), (2, 200));
    assert_eq!(counter("compactor_files_deleted_total"), 2);
    assert_eq!(counter("compactor_bytes_freed_total"), 200);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("catalog.db").display()))
        .await
        .unwrap();
    let (files, bytes): (i64, i64) = sqlx::query_as(
        "SELECT files_processed, bytes_reclaimed FROM compactor_runs \
         WHERE run_type = 'orphans' AND table_name = 'logs' AND status = 'failed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((files, bytes), (2, 200));
}
