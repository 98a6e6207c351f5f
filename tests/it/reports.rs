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
