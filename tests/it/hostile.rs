//! Hostile configuration: values that would wrap, overflow, leak or crash. Every one exits 2 with one
//! line naming the key (or variable), before anything is opened: not a byte changes. Secrets never
//! reach stdout or stderr.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::support::{bin, run_bin, snapshot_bytes};

type Env = &'static [(&'static str, &'static str)];

/// (signaldb.toml, environment, key the error line must name)
const HOSTILE: &[(&str, Env, &str)] = &[
    // Would wrap to 16h 59m 44s and drop 80 % of the rows.
    (
        "[compactor.retention]\ntraces_retention_days = 213503982334602\n",
        &[],
        "compactor.retention.traces_retention_days",
    ),
    ("[compactor.retention]\nlogs_retention_days = 36501\n", &[], "compactor.retention.logs_retention_days"),
    ("[compactor.retention]\nmetrics = \"200years\"\n", &[], "compactor.retention.metrics"),
    ("[compactor.retention]\nprofiles = \"99999999999999999999d\"\n", &[], "compactor.retention.profiles"),
    // 2^44 MiB would become 0 bytes.
    ("[compactor]\ntarget_file_size_mb = 17592186044416\n", &[], "compactor.target_file_size_mb"),
    ("[compactor]\nmemory_limit_mb = 17592186044416\n", &[], "compactor.memory_limit_mb"),
    ("[compactor]\naudit_retention_days = 213503982334602\n", &[], "compactor.audit_retention_days"),
    (
        "[compactor.orphan_cleanup]\nmax_snapshot_age_hours = 5124095576030432\n",
        &[],
        "compactor.orphan_cleanup.max_snapshot_age_hours",
    ),
    (
        "[compactor.orphan_cleanup]\ngrace_period_hours = 5124095576030432\n",
        &[],
        "compactor.orphan_cleanup.grace_period_hours",
    ),
    ("[compactor.orphan_cleanup]\ngrace_period = \"2years\"\n", &[], "compactor.orphan_cleanup.grace_period"),
    ("[compactor.retention]\ngrace_period_hours = 9999999\n", &[], "compactor.retention.grace_period_hours"),
    ("[compactor.retention]\ngrace_period = \"2years\"\n", &[], "compactor.retention.grace_period"),
    (
        "[compactor]\ncompaction_interval_secs = 9223372036854775807\n",
        &[],
        "compactor.compaction_interval_secs",
    ),
    ("[compactor]\ninterval = \"400days\"\n", &[], "compactor.interval"),
    (
        "[compactor.retention]\nretention_check_interval_secs = 9223372036854775807\n",
        &[],
        "compactor.retention.retention_check_interval_secs",
    ),
    (
        "[compactor.orphan_cleanup]\ncleanup_interval_hours = 9223372036854775807\n",
        &[],
        "compactor.orphan_cleanup.cleanup_interval_hours",
    ),
    (
        "[compactor.orphan_cleanup]\ncleanup_interval = \"2y\"\n",
        &[],
        "compactor.orphan_cleanup.cleanup_interval",
    ),
    ("[compactor.verify]\ninterval = \"5y\"\n", &[], "compactor.verify.interval"),
    ("[compactor]\nshutdown_timeout = \"2h\"\n", &[], "compactor.shutdown_timeout"),
    ("[compactor]\ncommit_retry_backoff = \"1day\"\n", &[], "compactor.commit_retry_backoff"),
    ("[compactor]\npartition_lateness = \"500days\"\n", &[], "compactor.partition_lateness"),
    ("[compactor]\nlease_ttl_seconds = 9223372036854775807\n", &[], "compactor.lease_ttl_seconds"),
    // Would truncate to 1 in a u32.
    ("[compactor]\ncommit_max_attempts = 4294967297\n", &[], "compactor.commit_max_attempts"),
    ("[compactor.retention]\nsnapshots_to_keep = 4294967297\n", &[], "compactor.retention.snapshots_to_keep"),
    ("[compactor.retention]\nmax_snapshot_age = \"101years\"\n", &[], "compactor.retention.max_snapshot_age"),
    (
        "[compactor.orphan_cleanup]\nbatch_size = 9223372036854775807\n",
        &[],
        "compactor.orphan_cleanup.batch_size",
    ),
    ("[compactor]\nmin_input_files = 9223372036854775807\n", &[], "compactor.min_input_files"),
    ("[schema]\npool_max_connections = 5000\n", &[], "schema.pool_max_connections"),
    (
        "[[compactor.retention.table_policies]]\ntable = \"audit\"\nretention_days = 213503982334602\n",
        &[],
        "compactor.retention.table_policies[0].retention_days",
    ),
    (
        "[[compactor.retention.tenant_overrides]]\ntenant_id = \"acme\"\ntraces_retention_days = 213503982334602\n",
        &[],
        "compactor.retention.tenant_overrides[0].traces_retention_days",
    ),
    (
        "[[compactor.retention.tenant_overrides]]\ntenant_id = \"acme\"\n[[compactor.retention.tenant_overrides.dataset_overrides]]\ndataset_id = \"p\"\nlogs_retention_days = 213503982334602\n",
        &[],
        "compactor.retention.tenant_overrides[0].dataset_overrides[0].logs_retention_days",
    ),
    ("[compactor]\nmax_concurrent_rewrites = 0\n", &[], "compactor.max_concurrent_rewrites"),
    ("[schema]\ncatalog_uri = \"mysql://root:toor@db/x\"\n", &[], "schema.catalog_uri"),
    // The same hazards through the environment.
    (
        "",
        &[("SIGNALDB_COMPACTOR_RETENTION_TRACES_RETENTION_DAYS", "213503982334602")],
        "compactor.retention.traces_retention_days",
    ),
    ("", &[("SIGNALDB_COMPACTOR_TARGET_FILE_SIZE_MB", "17592186044416")], "compactor.target_file_size_mb"),
    ("", &[("SIGNALDB_COMPACTOR_MEMORY_LIMIT_MB", "17592186044416")], "compactor.memory_limit_mb"),
    ("", &[("SIGNALDB_COMPACTOR_AUDIT_RETENTION_DAYS", "213503982334602")], "compactor.audit_retention_days"),
    (
        "",
        &[("SIGNALDB_COMPACTOR_ORPHAN_CLEANUP_MAX_SNAPSHOT_AGE_HOURS", "5124095576030432")],
        "compactor.orphan_cleanup.max_snapshot_age_hours",
    ),
    ("", &[("SIGNALDB_COMPACTOR_LEASE_TTL_SECONDS", "100000")], "compactor.lease_ttl_seconds"),
    (
        "",
        &[("SIGNALDB_COMPACTOR_RETENTION_GRACE_PERIOD_HOURS", "99999999")],
        "compactor.retention.grace_period_hours",
    ),
    ("", &[("SIGNALDB_COMPACTOR_INTERVAL", "400d")], "compactor.interval"),
    ("", &[("SIGNALDB_COMPACTOR_VERIFY_INTERVAL", "10y")], "compactor.verify.interval"),
    ("", &[("SIGNALDB_COMPACTOR_ORPHAN_CLEANUP_BATCH_SIZE", "0")], "compactor.orphan_cleanup.batch_size"),
    ("", &[("SIGNALDB_COMPACTOR_RETENTION_METRICS", "200y")], "compactor.retention.metrics"),
    ("", &[("SIGNALDB_SCHEMA_POOL_MAX_CONNECTIONS", "99999")], "schema.pool_max_connections"),
    ("", &[("SIGNALDB_COMPACTOR_ENABLED", "maybe")], "compactor.enabled"),
    ("", &[("SIGNALDB_SCHEMA_CATALOG_URI", "mysql://u:hunter2@h/x")], "schema.catalog_uri"),
    ("", &[("SIGNALDB_COMPACTOR_SHUTDOWN_TIMEOUT", "0s")], "compactor.shutdown_timeout"),
    ("", &[("SIGNALDB_COMPACTOR_COMMIT_MAX_ATTEMPTS", "4294967297")], "compactor.commit_max_attempts"),
];

/// Secrets some hostile configs carry; none may be printed.
const SECRETS: &[&str] = &["toor", "hunter2"];

fn assert_refused(dir: &Path, args: &[&str], toml: &str, env: &[(&str, &str)], key: &str) {
    let before = snapshot_bytes(dir);
    let out = run_bin(dir, args, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} {toml:?} {env:?} should exit 2; stderr: {stderr}");
    let line = stderr.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("config error: ") && line.contains(key),
        "{toml:?} {env:?} should name {key}: {line}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line, got: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!SECRETS.iter().any(|s| stderr.contains(s)), "a secret was printed: {stderr}");
    assert!(snapshot_bytes(dir) == before, "{toml:?} {env:?}: bytes changed");
}

#[test]
fn forty_hostile_configs_exit_2_naming_the_key_and_change_nothing() {
    assert!(HOSTILE.len() >= 40, "{}", HOSTILE.len());
    for (toml, env, key) in HOSTILE {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("signaldb.toml"), toml).unwrap();
        assert_refused(dir.path(), &["check-config"], toml, env, key);
        // A command that would write, refused before it opens anything.
        assert_refused(dir.path(), &["once", "compaction"], toml, env, key);
    }
}

#[test]
fn check_config_and_errors_never_print_a_catalog_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1: nothing listens; the retention listing fails and says so, without the password.
    let uri = "postgres://signaldb:hunter2@127.0.0.1:1/signaldb?sslmode=disable&password=hunter3";
    std::fs::write(dir.path().join("signaldb.toml"), format!("[schema]\ncatalog_uri = \"{uri}\"\n")).unwrap();
    let mut json = Vec::new();
    for args in [&["check-config"][..], &["check-config", "--json"][..]] {
        let out = run_bin(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let printed =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!printed.contains("hunter2") && !printed.contains("hunter3"), "{printed}");
        assert!(printed.contains("postgres://signaldb:***@127.0.0.1:1/signaldb"), "{printed}");
        json = out.stdout;
    }
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v["config"]["catalog"]["uri"],
        "postgres://signaldb:***@127.0.0.1:1/signaldb?sslmode=disable&password=***"
    );
    // The same URI from the environment, on a command that fails to connect: exit 1, no password.
    let out =
        run_bin(dir.path(), &["once", "compaction", "--dry-run"], &[("SIGNALDB_SCHEMA_CATALOG_URI", uri)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("hunter2") && !stderr.contains("hunter3"), "{stderr}");
}

#[test]
fn a_non_utf8_variable_is_ignored_unless_it_is_a_signaldb_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = OsStr::from_bytes(b"caf\xe9");
    let run = |name: &str| {
        let mut cmd = bin();
        cmd.current_dir(dir.path()).arg("check-config").env(name, bad);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SIGNALDB_")) {
            cmd.env_remove(k);
        }
        cmd.output().unwrap()
    };
    let out = run("SOME_OTHER_PROGRAMS_VARIABLE");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["SIGNALDB_COMPACTOR_DRY_RUN", "SIGNALDB_FLIGHT_SOMETHING"] {
        let out = run(name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.starts_with("config error: ") && stderr.contains(name), "{stderr}");
    }
    // A non-UTF-8 name that is not ours is ignored too.
    let out = bin()
        .current_dir(dir.path())
        .arg("check-config")
        .env(OsStr::from_bytes(b"X\xff"), "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
