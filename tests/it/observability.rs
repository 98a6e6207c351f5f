//! Every metric the Grafana dashboard and the Prometheus alert rules query exists in a real scrape taken
//! after real passes of every job; both files parse (JSON-style YAML).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::TimeDelta;
use signaldb_compactor::config::{Mode, RetentionValue};
use signaldb_compactor::job::{Job, PassRequest};
use signaldb_compactor::service::{StatusBoard, run_pass};
use tokio_util::sync::CancellationToken;

use crate::support::{context, fixed_end, generate_small};

fn read_json(relative: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let json: String =
        text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{relative} does not parse: {e}"))
}

/// `compactor_*` metric names in a PromQL expression, histogram suffixes removed.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("compactor_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &expr[start..end];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        into.insert(base.to_string());
        i = end;
    }
}

#[tokio::test]
async fn dashboard_and_alert_metrics_exist_in_a_real_scrape() {
    let dashboard = read_json("deploy/grafana/signaldb-compactor.json");
    let alerts = read_json("deploy/prometheus/alerts.yaml");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            metric_names(target["expr"].as_str().unwrap(), &mut names);
        }
    }
    let mut alert_names = BTreeSet::new();
    for rule in alerts["groups"][0]["rules"].as_array().unwrap() {
        assert!(rule["alert"].is_string() && rule["annotations"]["summary"].is_string());
        metric_names(rule["expr"].as_str().unwrap(), &mut alert_names);
    }
    assert_eq!(alert_names.len(), 8, "{alert_names:?}");
    names.extend(alert_names);

    // A real scenario: compaction (one hour still open), retention ten days later (drops and expiry),
    // orphan cleanup (one planted orphan), verify.
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end() + TimeDelta::minutes(5), |c| {
        c.compaction.min_input_files = 2;
        c.retention.enabled = true;
        c.retention.mode = Mode::Execute;
        c.retention.snapshots_to_keep = 1;
        c.retention.policy.global.traces = Some(RetentionValue::For(std::time::Duration::from_secs(86_400)));
        c.orphans.enabled = true;
        c.orphans.mode = Mode::Execute;
    })
    .await;
    ctx.discover().await.unwrap();
    let status = StatusBoard::new(&[]);
    let cancel = CancellationToken::new();
    let compaction: Arc<dyn Job> = Arc::new(signaldb_compactor::compaction::CompactionJob::new(&ctx));
    run_pass(compaction.as_ref(), &PassRequest::all(Mode::Execute), &cancel, &status, &ctx.metrics)
        .await
        .unwrap();
    let ctx = ctx.with_clock(Arc::new(signaldb_compactor::clock::FixedClock(
        chrono::Utc::now() + TimeDelta::days(10),
    )));
    let retention: Arc<dyn Job> = Arc::new(signaldb_compactor::retention::RetentionJob::new(&ctx));
    run_pass(retention.as_ref(), &PassRequest::all(Mode::Execute), &cancel, &status, &ctx.metrics)
        .await
        .unwrap();
    std::fs::write(dir.path().join("warehouse/acme/production/logs/data/orphan.parquet"), b"x").unwrap();
    let orphans: Arc<dyn Job> = Arc::new(signaldb_compactor::orphans::OrphanJob::new(&ctx));
    run_pass(orphans.as_ref(), &PassRequest::all(Mode::Execute), &cancel, &status, &ctx.metrics)
        .await
        .unwrap();
    signaldb_compactor::verify::verify(&ctx, &Default::default(), false).await.unwrap();

    let scrape = ctx.metrics.render();
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| ["_bucket", "_sum", "_count"].iter().find_map(|s| n.strip_suffix(s)).unwrap_or(n))
        .collect();
    let missing: Vec<&String> = names.iter().filter(|n| !exported.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}\n{scrape}");
    assert!(names.len() >= 20, "{names:?}");
}

#[tokio::test]
async fn json_logs_carry_the_dry_run_lines_verbatim_inside_a_table_span() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    crate::support::write_config(dir.path(), "[compactor]\nmin_input_files = 2\n");
    let out = crate::support::run_bin(
        dir.path(),
        &["once", "compaction", "--dry-run", "--table", "acme.production.traces"],
        &[("SIGNALDB_COMPACTOR_LOG_FORMAT", "json")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let dry: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("[DRY-RUN] Would compact partition: "))
        })
        .collect();
    assert_eq!(dry.len(), 3, "three closed hours of four files");
    let first = dry[0];
    let message = first["fields"]["message"].as_str().unwrap();
    let (prefix, bytes) = message.rsplit_once("bytes=").unwrap();
    assert_eq!(
        prefix,
        "[DRY-RUN] Would compact partition: tenant=acme dataset=production table=traces partition=timestamp_hour=2026-11-21-08 files=4 -> 1 "
    );
    assert!(bytes.parse::<u64>().unwrap() > 0, "{message}");
    let span = &first["span"];
    assert_eq!((span["name"].as_str(), span["job"].as_str()), (Some("table"), Some("compaction")));
    assert_eq!(
        (span["tenant"].as_str(), span["dataset"].as_str(), span["table"].as_str()),
        (Some("acme"), Some("production"), Some("traces"))
    );
    assert_eq!(span["run_id"].as_str().map(str::len), Some(36), "a uuid run id");
}

#[tokio::test]
async fn a_failed_partition_is_logged_with_its_table_partition_and_cause_and_audited_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    crate::support::write_config(dir.path(), "[compactor]\nmin_input_files = 2\n");
    // Corrupt one data file of acme.production.traces: its partition's rewrite fails, the others go on.
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut stack = vec![dir.path().join("warehouse/acme/production/traces")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    let victim = &files[0];
    let len = std::fs::metadata(victim).unwrap().len() as usize;
    std::fs::write(victim, vec![b'x'; len]).unwrap();
    let out = crate::support::run_bin(
        dir.path(),
        &["once", "compaction", "--table", "acme.production.traces"],
        &[("SIGNALDB_COMPACTOR_LOG_FORMAT", "json")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let with_message = |m: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["fields"]["message"] == m).collect()
    };
    let partition = with_message("partition failed");
    assert_eq!(partition.len(), 1, "{stderr}");
    let fields = &partition[0]["fields"];
    assert_eq!(partition[0]["level"], "WARN");
    assert_eq!(fields["table"], "acme.production.traces");
    let label = fields["partition"].as_str().unwrap();
    assert!(label.starts_with("timestamp_hour=2026-11-21-"), "{label}");
    let error = fields["error"].as_str().unwrap();
    // The whole chain: what failed, and why, down to the Parquet reader's complaint.
    assert!(error.starts_with("rewrite failed: ") && error.len() > "rewrite failed: ".len() + 20, "{error}");
    assert!(error.to_lowercase().contains("parquet"), "{error}");
    let table = with_message("table failed");
    assert_eq!(table.len(), 1, "{stderr}");
    assert_eq!(table[0]["level"], "ERROR");
    assert_eq!(table[0]["fields"]["table"], "acme.production.traces");
    // The audit row carries the first reason, not only a count.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", dir.path().join("catalog.db").display()))
        .await
        .unwrap();
    let (status, message): (String, String) = sqlx::query_as(
        "SELECT status, error_message FROM compactor_runs WHERE table_name = 'traces' AND run_type = 'compaction'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "failed");
    assert!(
        message.starts_with(&format!("1 partition(s) failed; first: {label}: rewrite failed: ")),
        "{message}"
    );
}
