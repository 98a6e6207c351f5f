//! `check-config` through the real binary: environment forms round-trip into the effective config, and
//! every bad config exits 2 with one line naming the key.

use crate::support::run_bin;

/// `SIGNALDB_*` variables for one case.
type Env = &'static [(&'static str, &'static str)];

/// (signaldb.toml, environment, key the error line must name)
const BAD: &[(&str, Env, &str)] = &[
    ("[compactor]\nenabledd = true\n", &[], "compactor.enabledd"),
    (
        "[compactor.retention]\ntraces_retention_days = \"abc\"\n",
        &[],
        "compactor.retention.traces_retention_days",
    ),
    ("[compactor.retention]\ntraces_retention_days = -3\n", &[], "compactor.retention.traces_retention_days"),
    ("[compactor.retention]\ntimezone = \"Mars/Olympus\"\n", &[], "compactor.retention.timezone"),
    (
        "[compactor.orphan_cleanup]\ngrace_period_hours = 0\n",
        &[],
        "compactor.orphan_cleanup.grace_period_hours",
    ),
    ("[compactor.orphan_cleanup]\ngrace_period = \"10m\"\n", &[], "compactor.orphan_cleanup.grace_period"),
    ("[compactor]\ncompaction_interval_secs = 0\n", &[], "compactor.compaction_interval_secs"),
    ("[compactor]\ninterval = \"soon\"\n", &[], "compactor.interval"),
    (
        "[compactor]\ninterval = \"1h\"\ncompaction_interval_secs = 60\n",
        &[],
        "compactor.compaction_interval_secs",
    ),
    (
        "[compactor.retention]\ntraces = \"7d\"\ntraces_retention_days = 7\n",
        &[],
        "compactor.retention.traces_retention_days",
    ),
    ("[compactor.retention]\nlogs_retention_days = 0\n", &[], "compactor.retention.logs_retention_days"),
    (
        "[compactor.retention]\ngrace_period_hours = 48\nlogs_retention_days = 1\n",
        &[],
        "compactor.retention.logs_retention_days",
    ),
    (
        "[[compactor.retention.tenant_overrides]]\ntenant_id = \"acme\"\n[[compactor.retention.tenant_overrides]]\ntenant_id = \"acme\"\n",
        &[],
        "compactor.retention.tenant_overrides[1].tenant_id",
    ),
    (
        "[[compactor.retention.tenant_overrides]]\ntenant_id = \"acme\"\n[[compactor.retention.tenant_overrides.dataset_overrides]]\ndataset_id = \"p\"\n[[compactor.retention.tenant_overrides.dataset_overrides]]\ndataset_id = \"p\"\n",
        &[],
        "compactor.retention.tenant_overrides[0].dataset_overrides[1].dataset_id",
    ),
    ("[compactor.http]\nlisten = \"not-an-address\"\n", &[], "compactor.http.listen"),
    ("[schema]\ncatalog_uri = \"mysql://x\"\n", &[], "schema.catalog_uri"),
    ("[storage]\ndsn = \"ftp://host/x\"\n", &[], "storage.dsn"),
    ("[compactor]\nlog_format = \"xml\"\n", &[], "compactor.log_format"),
    ("[compactor]\nsmall_file_threshold_percent = 150\n", &[], "compactor.small_file_threshold_percent"),
    ("[compactor]\nmax_file_size_percent = 100\n", &[], "compactor.max_file_size_percent"),
    ("", &[("SIGNALDB_COMPACTOR_MAX_FILE_SIZE_PERCENT", "5000")], "compactor.max_file_size_percent"),
    ("[compactor]\nrewrite_to_current_spec = \"yes\"\n", &[], "compactor.rewrite_to_current_spec"),
    ("[compactor]\nshutdown_timeout = \"0s\"\n", &[], "compactor.shutdown_timeout"),
    ("[compactor.orphan_cleanup]\nbatch_size = 0\n", &[], "compactor.orphan_cleanup.batch_size"),
    ("[compactor]\nmax_concurrent_rewrites = 17\n", &[], "compactor.max_concurrent_rewrites"),
    ("", &[("SIGNALDB_COMPACTOR_RETENTION_ENABLED", "perhaps")], "compactor.retention.enabled"),
    (
        "",
        &[("SIGNALDB_COMPACTOR_ORPHAN_CLEANUP_GRACE_PERIOD_HOURS", "0")],
        "compactor.orphan_cleanup.grace_period_hours",
    ),
    ("", &[("SIGNALDB_COMPACTOR_RETENTION_TRACE_DAYS", "3")], "SIGNALDB_COMPACTOR_RETENTION_TRACE_DAYS"),
    ("[compactor\nbroken", &[], "signaldb.toml"),
    (
        "[[compactor.http.admin_tokens]]\nsha256 = \"nothex\"\nrole = \"ops_admin\"\n",
        &[],
        "compactor.http.admin_tokens[0].sha256",
    ),
    (
        "[[compactor.http.admin_tokens]]\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nrole = \"tenant_operator\"\n",
        &[],
        "compactor.http.admin_tokens[0].tenants",
    ),
    ("[compactor]\naudit_retention_days = 0\n", &[], "compactor.audit_retention_days"),
    // Second hostile review (2026-12-08): an empty tenant scope read every tenant's runs; a second
    // listing of one token; a table policy for a signal table never applied; retention under the
    // documented day (`90m` is minutes); two variables for one key.
    (
        "[[compactor.http.admin_tokens]]\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nrole = \"tenant_operator\"\ntenants = [\"\"]\n",
        &[],
        "compactor.http.admin_tokens[0].tenants[0]",
    ),
    (
        "[[compactor.http.admin_tokens]]\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nrole = \"ops_admin\"\n\n[[compactor.http.admin_tokens]]\nsha256 = \"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"\nrole = \"tenant_operator\"\ntenants = [\"acme\"]\n",
        &[],
        "compactor.http.admin_tokens[1].sha256",
    ),
    (
        "[[compactor.retention.table_policies]]\ntable = \"traces\"\ntenant_id = \"acme\"\nretention = \"forever\"\n",
        &[],
        "compactor.retention.table_policies[0].table",
    ),
    ("[compactor.retention]\ntraces = \"90m\"\n", &[], "compactor.retention.traces"),
    ("[compactor.retention]\nlogs = \"12h\"\n", &[], "compactor.retention.logs"),
    ("", &[("SIGNALDB_COMPACTOR_DRY_RUN", "true"), ("SIGNALDB_compactor_dry_run", "false")], "SIGNALDB_"),
    ("[compactor]\nwindow = \"later\"\n", &[], "compactor.window"),
    (
        "[compactor.orphan_cleanup]\nwindow = \"01:00-02:00\"\ntimezone = \"Moon/Base\"\n",
        &[],
        "compactor.orphan_cleanup.timezone",
    ),
];

#[test]
fn every_bad_config_exits_2_naming_the_key() {
    assert!(BAD.len() >= 15);
    for (toml, env, key) in BAD {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("signaldb.toml"), toml).unwrap();
        let out = run_bin(dir.path(), &["check-config"], env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "config {toml:?} {env:?} should exit 2; stderr: {stderr}");
        let line = stderr.lines().next().unwrap_or_default();
        assert!(
            line.starts_with("config error: ") && line.contains(key),
            "error line for {toml:?} {env:?} should name {key}: {line}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line, got: {stderr}");
        assert!(out.stdout.is_empty(), "nothing printed on stdout for a bad config");
    }
}

#[test]
fn missing_explicit_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_bin(dir.path(), &["--config", "missing.toml", "check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_bin(dir.path(), &["once", "nothing"], &[]).status.code(), Some(2));
    assert_eq!(run_bin(dir.path(), &["once", "compaction", "--table", "a.b"], &[]).status.code(), Some(2));
}

#[test]
fn environment_forms_round_trip_into_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("signaldb.toml"),
        "[compactor.retention]\nenabled = false\n[storage]\nsecret_access_key = \"hunter2\"\naccess_key_id = \"AK\"\ndsn = \"s3://lake-bucket/signaldb\"\n",
    )
    .unwrap();
    let env = [
        ("SIGNALDB_COMPACTOR_RETENTION_ENABLED", "true"),
        ("SIGNALDB_COMPACTOR_RETENTION_TRACES_RETENTION_DAYS", "14"),
        ("SIGNALDB_COMPACTOR_RETENTION_DRY_RUN", "true"),
        ("SIGNALDB_COMPACTOR_ORPHAN_CLEANUP_GRACE_PERIOD_HOURS", "48"),
        ("SIGNALDB_COMPACTOR_DRY_RUN", "true"),
        ("SIGNALDB_SCHEMA_CATALOG_URI", "sqlite:other.db?mode=ro"),
        ("SIGNALDB_COMPACTOR_HTTP_LISTEN", "127.0.0.1:19091"),
    ];
    let out = run_bin(dir.path(), &["check-config", "--json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["config"];
    assert_eq!(c["retention"]["enabled"], true);
    assert_eq!(c["retention"]["mode"], "dry_run");
    assert_eq!(c["retention"]["policy"]["global"]["traces"], "14days");
    assert_eq!(c["orphans"]["grace_period"], "2days");
    assert_eq!(c["service"]["dry_run"], true);
    assert_eq!(c["compaction"]["mode"], "dry_run");
    assert_eq!(c["catalog"]["uri"], "sqlite:other.db?mode=ro");
    assert_eq!(c["http"]["listen"], "127.0.0.1:19091");
    assert_eq!(c["storage"]["dsn"]["bucket"], "lake-bucket");
    assert_eq!(c["storage"]["secret_access_key"], "<redacted>");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"), "secrets never printed");
    let env_sources: Vec<&str> =
        v["sources"]["env"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(env_sources.len(), env.len());
}

#[tokio::test]
async fn check_config_prints_each_tables_resolved_retention_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = crate::support::small_options(dir.path());
    opts.tenants = 2;
    signaldb_compactor::generate::generate(&opts).await.unwrap();
    crate::support::write_config(
        dir.path(),
        "[compactor.retention]\ntraces_retention_days = 7\n[[compactor.retention.tenant_overrides]]\ntenant_id = \"acme\"\ntraces_retention_days = 14\n[[compactor.retention.tenant_overrides.dataset_overrides]]\ndataset_id = \"production\"\nlogs = \"forever\"\n",
    );
    let before = crate::support::snapshot_bytes(dir.path());
    let out = run_bin(dir.path(), &["check-config"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |tenant: &str, table: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().take(3).collect::<Vec<_>>() == [tenant, "production", table])
            .unwrap_or_else(|| panic!("no line for {tenant} {table} in:\n{stdout}"))
            .split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("acme", "traces"), ["traces", "14days", "tenant"]);
    assert_eq!(line("acme", "logs"), ["logs", "forever", "dataset"]);
    assert_eq!(line("globex", "traces"), ["traces", "7days", "global"]);
    assert_eq!(line("globex", "metrics_gauge"), ["metrics", "30days", "global"]);
    assert!(crate::support::snapshot_bytes(dir.path()) == before, "check-config changes nothing");
}

#[test]
fn the_kubernetes_configmap_carries_the_dist_config_verbatim() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dist = std::fs::read_to_string(format!("{root}/signaldb.dist.toml")).unwrap();
    let configmap = std::fs::read_to_string(format!("{root}/deploy/kubernetes/configmap.yaml")).unwrap();
    let (_, block) = configmap.split_once("signaldb.toml: |\n").unwrap();
    let embedded: String =
        block.lines().map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l))).collect();
    assert_eq!(embedded, dist, "regenerate deploy/kubernetes/configmap.yaml from signaldb.dist.toml");
}

#[tokio::test]
async fn selectors_that_match_nothing_fail_instead_of_passing_silently() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::generate_small(dir.path()).await;
    crate::support::write_config(dir.path(), "");
    let before = crate::support::snapshot_bytes(&dir.path().join("warehouse"));
    for (args, names) in [
        (&["once", "compaction", "--partition", "bogus=1"][..], "\"bogus\""),
        (&["once", "compaction", "--partition", "timestamp_hour=bogus"][..], "timestamp_hour"),
        (&["once", "compaction", "--partition", "timestamp_hour=2026-11-21"][..], "YYYY-MM-DD-HH"),
        (&["once", "compaction", "--table", "acme.production.traces", "--partition", "x"][..], "FIELD=VALUE"),
        (
            &["once", "retention", "--dry-run", "--partition", "timestamp_hour=2026-11-21-09"][..],
            "compaction` only",
        ),
    ] {
        let out = run_bin(dir.path(), args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?} should name {names}: {stderr}");
    }
    assert!(crate::support::snapshot_bytes(&dir.path().join("warehouse")) == before);
    // A well-formed selector still works.
    let out = run_bin(
        dir.path(),
        &["once", "compaction", "--dry-run", "--partition", "timestamp_hour=2026-11-21-08"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // verify of a table that does not exist fails like `once` does.
    let out = run_bin(dir.path(), &["verify", "--table", "nope.nope.nope"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nope.nope.nope") && stderr.contains("not found"), "{stderr}");
    let out = run_bin(dir.path(), &["verify", "--table", "acme.production.traces"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
