//! Loading tests: file + environment layering, both forms of a key, and the error line's key.

use std::io::Write;
use std::time::Duration;

use super::*;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_in(tempfile::tempdir().unwrap().path(), toml, env)
}

fn load_in(dir: &std::path::Path, toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let path = dir.join("signaldb.toml");
    std::fs::File::create(&path).unwrap().write_all(toml.as_bytes()).unwrap();
    let vars = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load(Some(&path), vars, dir).map(|(c, _)| c)
}

#[test]
fn defaults_are_safe() {
    let c = load("", &[]).unwrap();
    assert!(c.compaction.enabled);
    assert_eq!(c.compaction.mode, Mode::Execute);
    assert!(!c.retention.enabled);
    assert!(!c.orphans.enabled);
    assert_eq!(c.orphans.mode, Mode::DryRun, "orphan cleanup defaults to dry-run");
    assert_eq!(c.orphans.grace_period, Duration::from_secs(24 * 3600));
    assert_eq!(c.compaction.target_file_size_bytes, 128 * 1024 * 1024);
    assert_eq!(c.compaction.max_file_size_percent, 180, "Iceberg Java's default");
    assert!(!c.compaction.rewrite_to_current_spec, "moving files between specs is opt-in");
    assert!(c.compaction.rewrite_manifests, "manifest rewrites change no data file: on by default");
    assert_eq!(c.compaction.partition_lateness, Duration::from_secs(600));
    assert_eq!(c.http.listen.to_string(), "0.0.0.0:9091");
    assert_eq!(c.service.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.service.pass_deadline, Duration::from_secs(6 * 3600));
    assert_eq!(c.catalog.name, "signaldb");
}

#[test]
fn environment_overrides_the_file() {
    let c = load(
        "[compactor.retention]\nenabled = false\ntraces_retention_days = 7\n",
        &[
            ("SIGNALDB_COMPACTOR_RETENTION_ENABLED", "true"),
            ("SIGNALDB_COMPACTOR_RETENTION_TRACES_RETENTION_DAYS", "14"),
            ("SIGNALDB_COMPACTOR_RETENTION_DRY_RUN", "true"),
            ("SIGNALDB_COMPACTOR_ORPHAN_CLEANUP_GRACE_PERIOD_HOURS", "48"),
            ("SIGNALDB_SCHEMA_CATALOG_URI", "postgres://u@localhost/signaldb"),
            ("SIGNALDB_STORAGE_DSN", "file:///srv/warehouse"),
        ],
    )
    .unwrap();
    assert!(c.retention.enabled);
    assert_eq!(c.retention.mode, Mode::DryRun);
    assert_eq!(c.retention.policy.global.traces, Some(RetentionValue::For(Duration::from_secs(14 * 86_400))));
    assert_eq!(c.orphans.grace_period, Duration::from_secs(48 * 3600));
    assert_eq!(c.catalog.uri, "postgres://u@localhost/signaldb");
    assert_eq!(c.storage.dsn, Dsn::Local { root: "/srv/warehouse".into() });
}

#[test]
fn global_dry_run_forces_every_job() {
    let c = load("[compactor.orphan_cleanup]\ndry_run = false\n", &[("SIGNALDB_COMPACTOR_DRY_RUN", "true")])
        .unwrap();
    assert!(c.service.dry_run);
    assert_eq!(c.compaction.mode, Mode::DryRun);
    assert_eq!(c.retention.mode, Mode::DryRun);
    assert_eq!(c.orphans.mode, Mode::DryRun);
}

#[test]
fn humantime_forms_are_accepted() {
    let c = load(
        "[compactor]\ninterval = \"15m\"\n[compactor.retention]\ntraces = \"10d\"\nlogs = \"forever\"\n\
         grace_period = \"2h\"\nretention_check_interval = \"30m\"\n[compactor.orphan_cleanup]\n\
         grace_period = \"3d\"\ncleanup_interval = \"6h\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.compaction.interval, Duration::from_secs(900));
    assert_eq!(c.retention.policy.global.traces, Some(RetentionValue::For(Duration::from_secs(10 * 86_400))));
    assert_eq!(c.retention.policy.global.logs, Some(RetentionValue::Forever));
    assert_eq!(c.retention.grace_period, Duration::from_secs(7200));
    assert_eq!(c.retention.interval, Duration::from_secs(1800));
    assert_eq!(c.orphans.grace_period, Duration::from_secs(3 * 86_400));
    assert_eq!(c.orphans.interval, Duration::from_secs(6 * 3600));
}

#[test]
fn overrides_build_the_hierarchy() {
    let c = load(
        r#"
[compactor.retention]
traces_retention_days = 7
[[compactor.retention.tenant_overrides]]
tenant_id = "acme"
traces_retention_days = 14
[[compactor.retention.tenant_overrides.dataset_overrides]]
dataset_id = "production"
traces_retention_days = 30
[[compactor.retention.tenant_overrides.dataset_overrides]]
dataset_id = "audit"
traces = "forever"
"#,
        &[],
    )
    .unwrap();
    let p = &c.retention.policy;
    let days = |n: u64| RetentionValue::For(Duration::from_secs(n * 86_400));
    use crate::model::Signal;
    assert_eq!(p.resolve("acme", "production", "traces", Signal::Traces).value, days(30));
    assert_eq!(p.resolve("acme", "staging", "traces", Signal::Traces).value, days(14));
    assert_eq!(p.resolve("acme", "audit", "traces", Signal::Traces).value, RetentionValue::Forever);
    assert_eq!(p.resolve("other", "production", "traces", Signal::Traces).value, days(7));
}

#[test]
fn schema_and_storage_tolerate_other_components_keys() {
    let c =
        load("[schema]\ndefault_schemas = \"x\"\n[storage]\ncache_dir = \"/tmp\"\n[flight]\nport = 1\n", &[]);
    assert!(c.is_ok(), "{c:?}");
}

#[test]
fn errors_name_the_dotted_key() {
    let err = load("[compactor.retention]\ntraces_retention_days = \"abc\"\n", &[]).unwrap_err();
    assert_eq!(err.key, "compactor.retention.traces_retention_days");
    let err = load("[compactor.orphan_cleanup]\ngrace_perod_hours = 1\n", &[]).unwrap_err();
    assert_eq!(err.key, "compactor.orphan_cleanup.grace_perod_hours");
    assert!(err.reason.contains("unknown key"));
    let err = load("", &[("SIGNALDB_COMPACTOR_RETENTION_GRACE_PERIOD_HOURS", "-1")]).unwrap_err();
    assert_eq!(err.key, "compactor.retention.grace_period_hours");
    assert!(err.reason.contains("SIGNALDB_COMPACTOR_RETENTION_GRACE_PERIOD_HOURS"), "{err}");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(Some(&dir.path().join("nope.toml")), std::iter::empty(), dir.path()).unwrap_err();
    assert_eq!(err.key, "--config");
}

#[test]
fn dist_file_loads_to_the_defaults_and_documents_every_key() {
    let dist = include_str!("../../signaldb.dist.toml");
    let dir = tempfile::tempdir().unwrap();
    let from_dist = load_in(dir.path(), dist, &[]).unwrap();
    let defaults = load_in(dir.path(), "", &[]).unwrap();
    assert_eq!(
        serde_json::to_value(&from_dist).unwrap(),
        serde_json::to_value(&defaults).unwrap(),
        "signaldb.dist.toml must state the defaults"
    );
    use super::raw::*;
    let keys = [
        env::scalar_keys::<RawSchema>(),
        env::scalar_keys::<RawStorage>(),
        env::scalar_keys::<RawCompactor>(),
        env::scalar_keys::<RawRetention>(),
        env::scalar_keys::<RawOrphanCleanup>(),
        env::scalar_keys::<RawHttp>(),
        env::scalar_keys::<RawVerify>(),
    ];
    for key in keys.iter().flatten() {
        assert!(dist.contains(&format!("{key} =")), "signaldb.dist.toml does not document {key}");
    }
}

#[test]
fn tenant_overrides_load_in_the_map_form_and_the_list_form_alike() {
    let list = "[compactor.retention]\ntraces_retention_days = 7\n\
        [[compactor.retention.tenant_overrides]]\ntenant_id = \"acme\"\ntraces = \"14d\"\n\
        [[compactor.retention.tenant_overrides.dataset_overrides]]\ndataset_id = \"production\"\nlogs = \"forever\"\n\
        [[compactor.retention.tenant_overrides]]\ntenant_id = \"globex\"\nmetrics_retention_days = 60\n";
    // The seed layout: tables keyed by tenant and dataset id.
    let map = "[compactor.retention]\ntraces_retention_days = 7\n\
        [compactor.retention.tenant_overrides.acme]\ntraces = \"14d\"\n\
        [compactor.retention.tenant_overrides.acme.dataset_overrides.production]\nlogs = \"forever\"\n\
        [compactor.retention.tenant_overrides.globex]\nmetrics_retention_days = 60\n";
    let (list, map) = (load(list, &[]).unwrap(), load(map, &[]).unwrap());
    assert_eq!(
        serde_json::to_value(&list.retention.policy).unwrap(),
        serde_json::to_value(&map.retention.policy).unwrap()
    );
    use crate::model::Signal;
    for c in [&list, &map] {
        let p = &c.retention.policy;
        let days = |n: u64| RetentionValue::For(Duration::from_secs(n * 86_400));
        assert_eq!(p.resolve("acme", "production", "traces", Signal::Traces).value, days(14));
        assert_eq!(p.resolve("acme", "production", "logs", Signal::Logs).value, RetentionValue::Forever);
        assert_eq!(p.resolve("acme", "staging", "logs", Signal::Logs).value, days(3));
        assert_eq!(p.resolve("globex", "production", "metrics_gauge", Signal::Metrics).value, days(60));
        assert_eq!(p.resolve("initech", "production", "traces", Signal::Traces).value, days(7));
    }
    // Errors inside the map form still name their key; a conflicting id is refused.
    let err = load("[compactor.retention.tenant_overrides.acme]\ntrace = \"1d\"\n", &[]).unwrap_err();
    assert!(err.key.ends_with(".trace") && err.reason.contains("unknown key"), "{err}");
    let err = load("[compactor.retention.tenant_overrides.acme]\ntenant_id = \"globex\"\n", &[]).unwrap_err();
    assert!(err.key.starts_with("compactor.retention.tenant_overrides"), "{err}");
    assert!(err.to_string().contains("another id"), "{err}");
    // Validation runs on the map form too.
    let err =
        load("[compactor.retention.tenant_overrides.acme]\ntraces_retention_days = 0\n", &[]).unwrap_err();
    assert!(err.key.ends_with("traces_retention_days"), "{err}");
}

#[test]
fn retention_grace_period_has_a_one_hour_floor() {
    for (toml, key) in [
        ("[compactor.retention]\ngrace_period_hours = 0\n", "compactor.retention.grace_period_hours"),
        ("[compactor.retention]\ngrace_period = \"59m\"\n", "compactor.retention.grace_period"),
    ] {
        let err = load(toml, &[]).unwrap_err();
        assert_eq!(err.key, key);
        assert!(err.reason.contains("allow_short_grace_period"), "{err}");
    }
    let c = load("[compactor.retention]\ngrace_period = \"10m\"\nallow_short_grace_period = true\n", &[])
        .unwrap();
    assert_eq!(c.retention.grace_period, Duration::from_secs(600));
    let c = load("[compactor.retention]\ngrace_period = \"1h\"\n", &[]).unwrap();
    assert_eq!(c.retention.grace_period, Duration::from_secs(3600));
}

#[test]
fn concurrent_tables_are_bounded_with_their_rewrites() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.compaction.max_concurrent_tables, 1, "one table at a time by default");
    let c = load("", &[("SIGNALDB_COMPACTOR_MAX_CONCURRENT_TABLES", "2")]).unwrap();
    assert_eq!(c.compaction.max_concurrent_tables, 2);
    for bad in ["0", "17"] {
        let err = load(&format!("[compactor]\nmax_concurrent_tables = {bad}\n"), &[]).unwrap_err();
        assert_eq!(err.key, "compactor.max_concurrent_tables", "{bad}: {err}");
    }
    // 4 tables × 8 rewrites: more rewrites in flight than the bound of one table's.
    let err = load("[compactor]\nmax_concurrent_rewrites = 8\nmax_concurrent_tables = 4\n", &[]).unwrap_err();
    assert_eq!(err.key, "compactor.max_concurrent_tables");
    assert!(err.reason.contains("must be at most 16"), "{err}");
    assert!(load("[compactor]\nmax_concurrent_rewrites = 8\nmax_concurrent_tables = 2\n", &[]).is_ok());
}
