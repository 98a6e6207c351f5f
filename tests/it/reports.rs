//! Reports are true: each job's figures are typed in its own terms (compaction: files and bytes
//! before -> after; retention: partitions dropped, files and bytes removed, snapshots expired;
//! orphans: scanned, identified, deleted, bytes freed) and drive the text report and the JSON alike.

use crate::support::{generate_small, run_bin, write_config};

fn line<'a>(text: &'a str, table: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(table))
        .unwrap_or_else(|| panic!("no {table} in:\n{text}"))
}

#[tokio::test]
async fn each_job_reports_its_own_figures_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    write_config(dir.path(), "[compactor]\nmin_input_files = 2\n");
    // Generated days ago: logs (3 days) are past retention, traces (7 days) are not.
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
    let ctx =
        crate::support::context(dir.path(), crate::support::fixed_end() + chrono::TimeDelta::days(10), |c| {
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
