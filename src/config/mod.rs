//! Configuration: defaults → `signaldb.toml` (or `--config PATH`) → `SIGNALDB_*` environment, validated
//! once at startup into typed per-job sections. Nothing downstream re-parses a string.
//!
//! Hazard: every safety setting (dry-run, grace periods, retention) must either take the value the
//! operator meant or stop startup. So `[compactor*]` tables reject unknown keys, a key given in both its
//! forms is an error, and floors are enforced rather than silently raised.

mod dsn;
pub(crate) mod env;
pub(crate) mod raw;
pub mod redact;
pub mod retention;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::Serialize;

pub use env::{EnvOverride, utf8_vars};
use raw::RawConfig;
pub use retention::{RetentionPolicy, RetentionValue};

pub use crate::model::Mode;
pub use dsn::Dsn;

/// Default config file looked up in the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "signaldb.toml";

/// What a table whose references cannot be read completely (a corrupt manifest, metadata iceberg-rust
/// cannot parse) means for the other tables. Its own location is protected either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnreadableNeighbours {
    /// No table deletes anything while some table's references are unknown: any file could be one of
    /// them (the default; `unknown_neighbour`).
    #[default]
    Block,
    /// Other tables go on deleting; a file the unreadable table references outside its own location
    /// could then be deleted. For operators who know no table references another's files.
    ProtectLocation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// A config error: the dotted key (or environment variable), the offending value, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config error: {key} = {value}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.to_string(), reason: reason.into() }
    }

    /// The error with every password in its value and reason masked ([`redact::secrets`]).
    fn redacted(self) -> Self {
        Self { key: self.key, value: redact::secrets(&self.value), reason: redact::secrets(&self.reason) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub catalog: CatalogConfig,
    pub storage: StorageConfig,
    pub service: ServiceConfig,
    pub compaction: CompactionConfig,
    pub commit: CommitConfig,
    pub retention: RetentionConfig,
    pub orphans: OrphanConfig,
    pub http: HttpConfig,
    pub verify: VerifyConfig,
}

/// How every job retries a commit that lost the catalog compare-and-swap (`[compactor]
/// commit_max_attempts`, `commit_retry_backoff`): compaction, manifest rewrites, retention's drops.
#[derive(Debug, Clone, Serialize)]
pub struct CommitConfig {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
}

/// `[compactor.verify]`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub deep: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogConfig {
    /// Shown with its password masked (check-config, `--json`).
    #[serde(serialize_with = "redact_secrets")]
    pub uri: String,
    pub name: String,
    pub pool_max_connections: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorageConfig {
    pub dsn: Dsn,
    /// `[storage] extra_roots`: locations outside the warehouse root deletion may also happen in
    /// (canonical; same store as `dsn`).
    pub extra_roots: Vec<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    #[serde(serialize_with = "redact")]
    pub secret_access_key: Option<String>,
    pub allow_http: bool,
    pub path_style: bool,
}

fn redact_secrets<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact::secrets(v))
}

fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("<redacted>"),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceConfig {
    /// `[compactor] dry_run`: forces every job into dry-run.
    pub dry_run: bool,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `pass_deadline`: a pass of any job still running after this long is reported overdue.
    #[serde(with = "humantime_serde")]
    pub pass_deadline: Duration,
    pub log_format: LogFormat,
    /// `compactor_runs` rows older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub audit_retention: Duration,
    /// `lease_ttl_seconds`: a table lease not renewed for this long may be taken by another replica.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompactionConfig {
    pub enabled: bool,
    pub mode: Mode,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub target_file_size_bytes: u64,
    pub small_file_threshold_percent: u64,
    /// Files above this percentage of the target are split into target-size files.
    pub max_file_size_percent: u64,
    /// Rewrite the files of older partition specs under the current spec.
    pub rewrite_to_current_spec: bool,
    /// Rewrite a table's data manifests, clustered by partition, when its Iceberg thresholds say so
    /// (`commit.manifest.min-count-to-merge`, `commit.manifest.target-size-bytes`).
    pub rewrite_manifests: bool,
    pub min_input_files: usize,
    #[serde(with = "humantime_serde")]
    pub partition_lateness: Duration,
    pub compact_open_partitions: bool,
    pub max_concurrent_rewrites: usize,
    /// Tables a compaction pass works on at once (each with up to `max_concurrent_rewrites` groups).
    pub max_concurrent_tables: usize,
    pub memory_limit_bytes: u64,
    /// Poll the catalog this often between passes and compact what moved or fell due (`None`: only
    /// every `interval`).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    /// A loop's pass starts no group past these (`None`: unbounded); operator-requested passes have none.
    pub max_bytes_per_pass: Option<u64>,
    #[serde(with = "humantime_serde")]
    pub max_pass_duration: Option<Duration>,
    /// The promised compaction lag (`compactor_compaction_lag_target_seconds`).
    #[serde(with = "humantime_serde")]
    pub lag_target: Duration,
    /// Export `compactor_table_health` (per-table series).
    pub table_metrics: bool,
    #[serde(serialize_with = "serialize_window")]
    pub window: Option<crate::window::Window>,
}

fn serialize_window<S: serde::Serializer>(
    w: &Option<crate::window::Window>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match w {
        Some(w) => s.serialize_some(&w.to_string()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RetentionConfig {
    pub enabled: bool,
    pub mode: Mode,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: chrono_tz::Tz,
    pub snapshots_to_keep: u32,
    #[serde(with = "humantime_serde")]
    pub max_snapshot_age: Duration,
    pub allow_zero_retention: bool,
    /// Allows a `grace_period` below the 1 h floor.
    pub allow_short_grace_period: bool,
    /// Optional cold tier: expired data files are copied here (same relative paths) before a drop.
    pub archive: Option<Dsn>,
    #[serde(serialize_with = "serialize_window")]
    pub window: Option<crate::window::Window>,
    pub policy: RetentionPolicy,
}

fn serialize_tz<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

#[derive(Debug, Clone, Serialize)]
pub struct OrphanConfig {
    pub enabled: bool,
    pub mode: Mode,
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    pub allow_short_grace_period: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub batch_size: usize,
    pub revalidate_before_delete: bool,
    /// Accepted for compatibility with SignalDB's config; it never shrinks the live set.
    #[serde(with = "humantime_serde")]
    pub max_snapshot_age: Duration,
    #[serde(serialize_with = "serialize_window")]
    pub window: Option<crate::window::Window>,
    /// What a table whose references cannot be read completely means for every other table.
    pub unreadable_neighbours: UnreadableNeighbours,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Admin API tokens; none configured means the admin API is disabled (404).
    pub admin_tokens: Vec<AdminToken>,
}

/// Who an admin token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum AdminRole {
    /// Every tenant.
    OpsAdmin,
    /// Only these tenants.
    TenantOperator { tenants: Vec<String> },
}

/// An admin token: the lowercase hex SHA-256 of the bearer token, and its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminToken {
    #[serde(skip)]
    pub sha256: [u8; 32],
    pub role: AdminRole,
}

/// Where the configuration came from, for `check-config`.
#[derive(Debug, Clone, Serialize)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Vec<String>,
}

impl Config {
    /// Whether the configuration enables `kind` (its loop runs, and `once`/the admin API may run it for
    /// real; a disabled job runs only as an explicitly requested dry run).
    pub fn job_enabled(&self, kind: crate::model::JobKind) -> bool {
        use crate::model::JobKind;
        match kind {
            JobKind::Compaction => self.compaction.enabled,
            JobKind::Retention => self.retention.enabled,
            JobKind::Orphans => self.orphans.enabled,
            JobKind::Verify => self.verify.enabled,
        }
    }

    /// Loads and validates the configuration. `explicit` is `--config PATH` (must exist); otherwise
    /// `signaldb.toml` in `cwd` is read if present. `vars` is the process environment. An error never
    /// carries a password (see [`redact`]).
    pub fn load(
        explicit: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        cwd: &Path,
    ) -> Result<(Config, Sources), ConfigError> {
        Self::load_unredacted(explicit, vars, cwd).map_err(ConfigError::redacted)
    }

    fn load_unredacted(
        explicit: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        cwd: &Path,
    ) -> Result<(Config, Sources), ConfigError> {
        let file = match explicit {
            Some(p) if !p.is_file() => {
                return Err(ConfigError::new(
                    "--config",
                    p.display(),
                    "file not found or not a regular file",
                ));
            }
            Some(p) => Some(p.to_path_buf()),
            None => Some(cwd.join(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let overrides = env::overrides(vars)?;
        let mut figment = Figment::new();
        if let Some(f) = &file {
            figment = figment.merge(Toml::file_exact(f));
        }
        for o in &overrides {
            figment = figment.merge(Serialized::default(&o.key, &o.value));
        }
        let raw: RawConfig = figment.extract().map_err(|e| figment_error(&figment, &overrides, e))?;
        let config = validate::validate(raw, cwd).map_err(|e| with_env_source(e, &overrides))?;
        let sources = Sources { file, env: overrides.into_iter().map(|o| o.var).collect() };
        Ok((config, sources))
    }
}

/// Renders a figment error as a [`ConfigError`] naming the dotted key and the value found.
fn figment_error(figment: &Figment, overrides: &[EnvOverride], err: figment::Error) -> ConfigError {
    let err = err.into_iter().next().expect("figment error has at least one entry");
    let mut path = err.path.clone();
    let reason = match &err.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            format!("unknown key; expected one of: {}", expected.join(", "))
        }
        // TOML parse errors span several lines (source excerpt, caret); one line is the contract.
        kind => kind.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
    };
    let key = match (&err.metadata, path.is_empty()) {
        (Some(md), true) => md.source.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "<file>".into()),
        (None, true) => "<file>".to_string(),
        (_, false) => path.join("."),
    };
    let value = figment.find_value(&key).ok().map(|v| display_value(&v)).unwrap_or_else(|| "?".to_string());
    with_env_source(ConfigError { key, value, reason }, overrides)
}

fn display_value(v: &figment::value::Value) -> String {
    use figment::value::Value;
    match v {
        Value::String(_, s) => format!("{s:?}"),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_i128()
            .map(|i| i.to_string())
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        Value::Array(..) => "[...]".into(),
        Value::Dict(..) => "{...}".into(),
        other => format!("{other:?}"),
    }
}

/// Appends the environment variable that set `err.key`, if one did.
fn with_env_source(mut err: ConfigError, overrides: &[EnvOverride]) -> ConfigError {
    if let Some(o) = overrides.iter().find(|o| o.key == err.key) {
        err.reason = format!("{} (set by {})", err.reason, o.var);
    }
    err
}

#[cfg(test)]
mod tests;
