//! `verify`: passes on a healthy warehouse, finds a deleted and a truncated data file, and with
//! `--deep` a file whose bytes were replaced.

use crate::support::{generate_small, run_bin, write_config};

#[tokio::test]
async fn verify_finds_missing_truncated_and_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    write_config(dir.path(), "");
    let healthy = run_bin(dir.path(), &["verify", "--deep", "--json"], &[]);
    assert_eq!(healthy.status.code(), Some(0), "{}", String::from_utf8_lossy(&healthy.stdout));
    let report: serde_json::Value = serde_json::from_slice(&healthy.stdout).unwrap();
    assert_eq!(report.as_array().unwrap().len(), 6);
    assert!(
        report
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["problems"].as_array().unwrap().is_empty() && t["files_checked"] == 12)
    );

    let data: Vec<std::path::PathBuf> =
        crate::support::snapshot_bytes(&dir.path().join("warehouse/acme/production/traces/data"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
    std::fs::remove_file(&data[0]).unwrap();
    let truncated = std::fs::read(&data[1]).unwrap();
    std::fs::write(&data[1], &truncated[..truncated.len() / 2]).unwrap();
    let mut scrambled = std::fs::read(&data[2]).unwrap();
    let middle = scrambled.len() - 20;
    scrambled[middle..].fill(0); // same size, footer destroyed
    std::fs::write(&data[2], &scrambled).unwrap();

    let shallow = run_bin(dir.path(), &["verify", "--table", "acme.production.traces", "--json"], &[]);
    assert_eq!(shallow.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&shallow.stdout).unwrap();
    let problems = report[0]["problems"].as_array().unwrap();
    let kinds: Vec<&str> = problems.iter().map(|p| p["problem"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2, "{problems:#?}");
    assert!(kinds.contains(&"missing") && kinds.contains(&"size_mismatch"), "{kinds:?}");

    let deep = run_bin(dir.path(), &["verify", "--table", "acme.production.traces", "--deep", "--json"], &[]);
    assert_eq!(deep.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&deep.stdout).unwrap();
    let kinds: Vec<String> = report[0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["problem"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds.contains(&"corrupt".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn the_verify_loop_reports_problems_as_failed_passes_and_a_gauge() {
    use signaldb_compactor::job::{Job, PassRequest};
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx =
        crate::support::context(dir.path(), crate::support::fixed_end(), |c| c.verify.enabled = true).await;
    let data = crate::support::snapshot_bytes(&dir.path().join("warehouse/globex/production/logs/data"));
    std::fs::remove_file(&data[0].0).unwrap();
    let job = signaldb_compactor::verify::VerifyJob::new(&ctx);
    let status =
        signaldb_compactor::service::StatusBoard::new(&[(signaldb_compactor::job::JobKind::Verify, true)]);
    let request = PassRequest::all(job.mode());
    signaldb_compactor::service::run_pass(
        &job,
        &request,
        &tokio_util::sync::CancellationToken::new(),
        &status,
        &ctx.metrics,
    )
    .await
    .expect("the pass runs; the missing file is a failed table, not a failed pass");
    let scrape = ctx.metrics.render();
    assert!(scrape.contains("compactor_pass_failures_total{job=\"verify\"} 1"), "{scrape}");
    assert!(
        scrape.contains(
            "compactor_integrity_problems{dataset=\"production\",table=\"logs\",tenant=\"globex\"} 1"
        )
    );
    assert!(
        scrape.contains(
            "compactor_integrity_problems{dataset=\"production\",table=\"traces\",tenant=\"acme\"} 0"
        )
    );
    assert_eq!(status.snapshot()[0].last_error.as_deref(), Some("1 table(s) failed: globex.production.logs"));
    // One vocabulary: /status says what the metric says for the same pass.
    assert_eq!(status.snapshot()[0].last_result.as_deref(), Some("partial"));
    assert!(scrape.contains("compactor_passes_total{job=\"verify\",result=\"partial\"} 1"), "{scrape}");
}
