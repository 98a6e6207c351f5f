//! Opt-ins are honoured: a job its configuration disables never changes a byte, whichever entry point
//! asks (`once <job>`, `once all`; the admin API is covered in `admin.rs`). A dry run is still allowed.

use crate::support::{context, generate_small, run_bin, snapshot_bytes, write_config};

/// Rows per table, read through the catalog.
async fn rows(dir: &std::path::Path) -> Vec<(String, u64)> {
    let ctx = context(dir, chrono::Utc::now(), |_| {}).await;
    let mut out = Vec::new();
    for t in ctx.catalog.discover().await.unwrap() {
        let table = ctx.catalog.load(&t).await.unwrap();
        out.push((t.qualified(), signaldb_compactor::stats::TableStats::of(&table).rows));
    }
    out
}

#[tokio::test]
async fn once_on_a_disabled_destructive_job_exits_2_naming_the_key_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Generated days ago: the default policy (logs 3 days) would drop every hour of logs, and the
    // defaults leave retention and orphan cleanup disabled.
    generate_small(dir.path()).await;
    write_config(dir.path(), "[compactor.orphan_cleanup]\ndry_run = false\n");
    let before = snapshot_bytes(dir.path());
    for (job, key) in
        [("retention", "compactor.retention.enabled"), ("orphans", "compactor.orphan_cleanup.enabled")]
    {
        for args in [
            &["once", job][..],
            &["once", job, "--json"][..],
            &["once", job, "--table", "acme.production.logs"][..],
        ] {
            let out = run_bin(dir.path(), args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(key) && stderr.contains("disabled"), "{args:?}: {stderr}");
            assert!(out.stdout.is_empty());
        }
        // A dry run of a disabled job is allowed, and changes nothing either.
        let out = run_bin(dir.path(), &["once", job, "--dry-run", "--json"], &[]);
        assert_eq!(out.status.code(), Some(0), "{job}: {}", String::from_utf8_lossy(&out.stderr));
        let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reports[0]["mode"], "dry_run");
        // The same through the environment: the opt-in is the only way to a real run.
        let out = run_bin(dir.path(), &["once", job], &[("SIGNALDB_COMPACTOR_DRY_RUN", "true")]);
        assert_eq!(out.status.code(), Some(2), "{job}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(snapshot_bytes(dir.path()) == before, "a disabled job changed bytes");
}

#[tokio::test]
async fn once_all_runs_the_enabled_jobs_only() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    write_config(dir.path(), "[compactor]\nmin_input_files = 2\n");
    let rows_before = rows(dir.path()).await;
    let out = run_bin(dir.path(), &["once", "all", "--json"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["compaction"]);
    assert!(
        stderr.contains("retention not run: disabled by configuration (compactor.retention.enabled"),
        "{stderr}"
    );
    assert!(stderr.contains("compactor.orphan_cleanup.enabled"), "{stderr}");
    assert_eq!(rows(dir.path()).await, rows_before, "retention dropped rows although disabled");
    // Opted in, the same command runs retention too.
    let out =
        run_bin(dir.path(), &["once", "all", "--json"], &[("SIGNALDB_COMPACTOR_RETENTION_ENABLED", "true")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs: Vec<&str> = reports.as_array().unwrap().iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["compaction", "retention"]);
    assert_ne!(rows(dir.path()).await, rows_before, "enabled retention drops the expired logs");
}
