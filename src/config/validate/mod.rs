//! Raw → typed configuration: defaults, the two forms of a key, floors and cross-key rules.
//! `retention.rs`: the `[compactor.retention]` section and its per-signal, tenant, dataset and table
//! policies; `compaction.rs`: the compaction keys of `[compactor]`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::Dsn;
use super::UnreadableNeighbours;
use super::raw::{RawCompactor, RawConfig, RawOrphanCleanup, RawRetention, RawStorage};
use super::retention::{
    DatasetOverride, RetentionPolicy, RetentionValue, SignalRetention, TablePolicy, TenantOverride,
};
use super::{
    CatalogConfig, CompactionConfig, Config, ConfigError, HttpConfig, LogFormat, Mode, OrphanConfig,
    RetentionConfig, ServiceConfig, StorageConfig,
};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const MIB: u64 = 1024 * 1024;
/// The orphan grace period below which `allow_short_grace_period = true` is required.
pub const ORPHAN_GRACE_FLOOR: Duration = Duration::from_secs(HOUR);
/// The retention grace period below which `allow_short_grace_period = true` is required.
pub const RETENTION_GRACE_FLOOR: Duration = Duration::from_secs(HOUR);

// Upper bounds (docs/configuration.md). Far above any sensible setting, and low enough that every
// value converts to chrono and to bytes, and adds to a timestamp, without overflow: arithmetic on a
// config value is checked against these here and can never wrap later.
/// Loop intervals, grace periods, partition lateness: one year.
const MAX_INTERVAL: Duration = Duration::from_secs(365 * DAY);
/// Retention values and snapshot ages: 100 years (`"forever"` keeps data for longer).
const MAX_RETENTION_DAYS: u64 = 36_500;
const MAX_RETENTION: Duration = Duration::from_secs(MAX_RETENTION_DAYS * DAY);
/// `shutdown_timeout`, `commit_retry_backoff`: one hour.
const MAX_SHORT_WAIT: Duration = Duration::from_secs(HOUR);
/// `lease_ttl_seconds`: one day.
const MAX_LEASE_TTL_SECONDS: u64 = DAY;
/// `target_file_size_mb`: 16 GiB.
const MAX_TARGET_FILE_SIZE_MB: u64 = 16 * 1024;
/// `max_file_size_percent`: 120 … 1,000 % of the target.
const MIN_MAX_FILE_SIZE_PERCENT: u64 = 120;
const MAX_MAX_FILE_SIZE_PERCENT: u64 = 1000;
/// `memory_limit_mb`: 1 TiB.
const MAX_MEMORY_LIMIT_MB: u64 = 1024 * 1024;
/// Counts (`min_input_files`, `batch_size`, `snapshots_to_keep`): one million.
const MAX_COUNT: u64 = 1_000_000;
/// `commit_max_attempts`: 100.
const MAX_COMMIT_ATTEMPTS: u64 = 100;
/// `pool_max_connections`: 1,000.
const MAX_POOL_CONNECTIONS: u64 = 1_000;

type Result<T> = std::result::Result<T, ConfigError>;

/// The eight per-signal fields of one policy level.
struct SignalFields<'a> {
    traces: (Option<u64>, &'a Option<RetentionValue>),
    logs: (Option<u64>, &'a Option<RetentionValue>),
    metrics: (Option<u64>, &'a Option<RetentionValue>),
    profiles: (Option<u64>, &'a Option<RetentionValue>),
}

macro_rules! signal_fields {
    ($raw:expr) => {
        SignalFields {
            traces: ($raw.traces_retention_days, &$raw.traces),
            logs: ($raw.logs_retention_days, &$raw.logs),
            metrics: ($raw.metrics_retention_days, &$raw.metrics),
            profiles: ($raw.profiles_retention_days, &$raw.profiles),
        }
    };
}

// After `signal_fields!`, which it uses (macros are scoped textually).
mod retention;

mod compaction;

/// A key given either as an integer count of `unit` (`grace_period_hours = 1`) or as a humantime
/// string (`grace_period = "1h"`); both at once is an error; neither gives `default`.
struct TwoForms<'a> {
    int_key: &'a str,
    int_value: Option<u64>,
    unit_secs: u64,
    text_key: &'a str,
    text_value: Option<Duration>,
    /// The largest value accepted.
    max: Duration,
}

impl TwoForms<'_> {
    fn resolve(self, default: Duration) -> Result<(String, Duration)> {
        match (self.int_value, self.text_value) {
            (Some(i), Some(t)) => Err(ConfigError::new(
                self.int_key,
                i,
                format!(
                    "both {} and {} (= {}) are set; use one",
                    self.int_key,
                    self.text_key,
                    humantime::format_duration(t)
                ),
            )),
            (Some(i), None) => match i.checked_mul(self.unit_secs).map(secs) {
                Some(d) if d <= self.max => Ok((self.int_key.to_string(), d)),
                _ => Err(ConfigError::new(
                    self.int_key,
                    i,
                    format!("must be at most {} ({})", self.max.as_secs() / self.unit_secs, human(self.max)),
                )),
            },
            (None, Some(t)) if t > self.max => {
                Err(ConfigError::new(self.text_key, human(t), format!("must be at most {}", human(self.max))))
            }
            (None, Some(t)) => Ok((self.text_key.to_string(), t)),
            (None, None) => Ok((self.int_key.to_string(), default)),
        }
    }

    /// Like [`resolve`](Self::resolve), and the result must be positive.
    fn positive(self, default: Duration) -> Result<Duration> {
        let (key, d) = self.resolve(default)?;
        if d.is_zero() {
            return Err(ConfigError::new(key, "0", "must be greater than zero"));
        }
        Ok(d)
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

/// An integer setting within `min..=max`.
fn within(key: &str, value: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64> {
    at_most(key, at_least(key, value, default, min)?, max)
}

/// `count` units of `unit_secs` as a duration of at most `max`, checked (never wraps).
fn checked_units(key: &str, count: u64, unit_secs: u64, max: Duration) -> Result<Duration> {
    match count.checked_mul(unit_secs).map(secs) {
        Some(d) if d <= max => Ok(d),
        _ => Err(ConfigError::new(
            key,
            count,
            format!("must be at most {} ({})", max.as_secs() / unit_secs, human(max)),
        )),
    }
}

fn at_least(key: &str, value: Option<u64>, default: u64, min: u64) -> Result<u64> {
    let v = value.unwrap_or(default);
    if v < min {
        return Err(ConfigError::new(key, v, format!("must be at least {min}")));
    }
    Ok(v)
}

/// A sorted rewrite's merge holds one of the runtime's blocking threads while it waits for its writer;
/// the runtime caps those at [`crate::cli::MAX_BLOCKING_THREADS`], so rewrites in flight stay well below.
const MAX_CONCURRENT_REWRITES: u64 = 16;

fn at_most(key: &str, value: u64, max: u64) -> Result<u64> {
    if value > max {
        return Err(ConfigError::new(key, value, format!("must be at most {max}")));
    }
    Ok(value)
}

fn positive_duration(
    key: &str,
    value: Option<Duration>,
    default: Duration,
    max: Duration,
) -> Result<Duration> {
    let d = bounded_duration(key, value, default, max)?;
    if d.is_zero() {
        return Err(ConfigError::new(key, "0s", "must be greater than zero"));
    }
    Ok(d)
}

fn bounded_duration(
    key: &str,
    value: Option<Duration>,
    default: Duration,
    max: Duration,
) -> Result<Duration> {
    let d = value.unwrap_or(default);
    if d > max {
        return Err(ConfigError::new(key, human(d), format!("must be at most {}", human(max))));
    }
    Ok(d)
}

/// Every job's commit retries (`[compactor] commit_max_attempts`, `commit_retry_backoff`).
fn commit(raw: &super::raw::RawCompactor) -> Result<super::CommitConfig> {
    Ok(super::CommitConfig {
        max_attempts: within(
            "compactor.commit_max_attempts",
            raw.commit_max_attempts,
            5,
            1,
            MAX_COMMIT_ATTEMPTS,
        )? as u32,
        retry_backoff: positive_duration(
            "compactor.commit_retry_backoff",
            raw.commit_retry_backoff,
            Duration::from_millis(200),
            MAX_SHORT_WAIT,
        )?,
    })
}

pub fn validate(raw: RawConfig, cwd: &Path) -> Result<Config> {
    let global_dry_run = raw.compactor.dry_run.unwrap_or(false);
    let global_mode = Mode::from_dry_run(global_dry_run);
    let mut config = Config {
        catalog: catalog(&raw)?,
        storage: storage(raw.storage, cwd)?,
        service: service(&raw.compactor, global_dry_run)?,
        compaction: compaction::compaction(&raw.compactor, global_mode)?,
        commit: commit(&raw.compactor)?,
        retention: retention::retention(&raw.compactor.retention, global_mode, cwd)?,
        orphans: orphans(&raw.compactor.orphan_cleanup, global_mode)?,
        http: HttpConfig {
            listen: listen(raw.compactor.http.listen.as_deref())?,
            admin_tokens: admin_tokens(&raw.compactor.http.admin_tokens)?,
        },
        verify: super::VerifyConfig {
            enabled: raw.compactor.verify.enabled.unwrap_or(false),
            interval: positive_duration(
                "compactor.verify.interval",
                raw.compactor.verify.interval,
                secs(DAY),
                MAX_INTERVAL,
            )?,
            deep: raw.compactor.verify.deep.unwrap_or(false),
        },
    };
    // Windows: each job's own timezone where it has one, else retention's.
    let tz = config.retention.timezone;
    config.compaction.window = window("compactor", &raw.compactor.window, &raw.compactor.timezone, tz)?;
    config.retention.window = window("compactor.retention", &raw.compactor.retention.window, &None, tz)?;
    config.orphans.window = window(
        "compactor.orphan_cleanup",
        &raw.compactor.orphan_cleanup.window,
        &raw.compactor.orphan_cleanup.timezone,
        tz,
    )?;
    Ok(config)
}

fn window(
    section: &str,
    text: &Option<String>,
    timezone: &Option<String>,
    default_tz: chrono_tz::Tz,
) -> Result<Option<crate::window::Window>> {
    let Some(text) = text else { return Ok(None) };
    let spec: crate::window::WindowSpec = text
        .parse()
        .map_err(|why: String| ConfigError::new(format!("{section}.window"), format!("{text:?}"), why))?;
    let tz = match timezone {
        Some(name) => name.parse().map_err(|_| {
            ConfigError::new(format!("{section}.timezone"), format!("{name:?}"), "unknown IANA timezone")
        })?,
        None => default_tz,
    };
    Ok(Some(crate::window::Window::new(spec, tz)))
}

fn catalog(raw: &RawConfig) -> Result<CatalogConfig> {
    let uri =
        raw.schema.catalog_uri.clone().unwrap_or_else(|| "sqlite:.data/catalog.db?mode=rwc".to_string());
    let supported = ["sqlite:", "postgres://", "postgresql://"];
    if !supported.iter().any(|p| uri.starts_with(p)) {
        return Err(ConfigError::new(
            "schema.catalog_uri",
            format!("{uri:?}"),
            "expected a sqlite:… or postgres://… URI",
        ));
    }
    let name = raw.schema.catalog_name.clone().unwrap_or_else(|| "signaldb".to_string());
    if name.trim().is_empty() {
        return Err(ConfigError::new("schema.catalog_name", "\"\"", "must not be empty"));
    }
    let pool = within(
        "schema.pool_max_connections",
        raw.schema.pool_max_connections.map(u64::from),
        10,
        1,
        MAX_POOL_CONNECTIONS,
    )?;
    Ok(CatalogConfig { uri, name, pool_max_connections: pool as u32 })
}

fn storage(raw: RawStorage, cwd: &Path) -> Result<StorageConfig> {
    let text = raw.dsn.unwrap_or_else(|| "file://.data/warehouse".to_string());
    let dsn =
        Dsn::parse(&text, cwd).map_err(|why| ConfigError::new("storage.dsn", format!("{text:?}"), why))?;
    if matches!(dsn, Dsn::Local { .. }) {
        for (key, set) in [
            ("storage.endpoint", raw.endpoint.is_some()),
            ("storage.access_key_id", raw.access_key_id.is_some()),
            ("storage.secret_access_key", raw.secret_access_key.is_some()),
        ] {
            if set {
                return Err(ConfigError::new(key, "…", "only valid with an s3:// storage.dsn"));
            }
        }
    }
    if raw.access_key_id.is_some() != raw.secret_access_key.is_some() {
        return Err(ConfigError::new(
            "storage.access_key_id",
            "…",
            "access_key_id and secret_access_key must be set together",
        ));
    }
    let mut extra_roots = Vec::new();
    for (i, text) in raw.extra_roots.unwrap_or_default().iter().enumerate() {
        let key = format!("storage.extra_roots[{i}]");
        let root = Dsn::parse(text, cwd).map_err(|why| ConfigError::new(&key, format!("{text:?}"), why))?;
        let same_store = match (&dsn, &root) {
            (Dsn::Local { .. }, Dsn::Local { root }) => root.parent().is_some(),
            (Dsn::S3 { bucket, .. }, Dsn::S3 { bucket: b, .. }) => bucket == b,
            _ => false,
        };
        if !same_store {
            return Err(ConfigError::new(
                &key,
                format!("{text:?}"),
                "must be a directory below / in the same store as storage.dsn (local path, or the same S3 bucket)",
            ));
        }
        extra_roots.push(root.root_location());
    }
    Ok(StorageConfig {
        dsn,
        extra_roots,
        endpoint: raw.endpoint,
        region: raw.region,
        access_key_id: raw.access_key_id,
        secret_access_key: raw.secret_access_key,
        allow_http: raw.allow_http.unwrap_or(false),
        path_style: raw.path_style.unwrap_or(false),
    })
}

fn service(raw: &RawCompactor, dry_run: bool) -> Result<ServiceConfig> {
    let log_format = match raw.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::new(
                "compactor.log_format",
                format!("{other:?}"),
                "expected \"text\" or \"json\"",
            ));
        }
    };
    Ok(ServiceConfig {
        dry_run,
        shutdown_timeout: positive_duration(
            "compactor.shutdown_timeout",
            raw.shutdown_timeout,
            secs(30),
            MAX_SHORT_WAIT,
        )?,
        pass_deadline: positive_duration(
            "compactor.pass_deadline",
            raw.pass_deadline,
            secs(6 * HOUR),
            MAX_INTERVAL,
        )?,
        log_format,
        audit_retention: checked_units(
            "compactor.audit_retention_days",
            at_least("compactor.audit_retention_days", raw.audit_retention_days, 30, 1)?,
            DAY,
            MAX_RETENTION,
        )?,
        // Renewed every ttl/3: below 3 s the renewals would hammer the catalog database.
        lease_ttl: secs(within(
            "compactor.lease_ttl_seconds",
            raw.lease_ttl_seconds,
            300,
            3,
            MAX_LEASE_TTL_SECONDS,
        )?),
    })
}

fn orphans(raw: &RawOrphanCleanup, global: Mode) -> Result<OrphanConfig> {
    let allow_short = raw.allow_short_grace_period.unwrap_or(false);
    let (grace_key, grace_period) = TwoForms {
        int_key: "compactor.orphan_cleanup.grace_period_hours",
        int_value: raw.grace_period_hours,
        unit_secs: HOUR,
        text_key: "compactor.orphan_cleanup.grace_period",
        text_value: raw.grace_period,
        max: MAX_INTERVAL,
    }
    .resolve(secs(DAY))?;
    if grace_period < ORPHAN_GRACE_FLOOR && !allow_short {
        return Err(ConfigError::new(
            grace_key,
            humantime::format_duration(grace_period),
            "below the 1h safety floor: files being written by a running commit could be deleted; \
             set compactor.orphan_cleanup.allow_short_grace_period = true to allow it",
        ));
    }
    let interval = TwoForms {
        int_key: "compactor.orphan_cleanup.cleanup_interval_hours",
        int_value: raw.cleanup_interval_hours,
        unit_secs: HOUR,
        text_key: "compactor.orphan_cleanup.cleanup_interval",
        text_value: raw.cleanup_interval,
        max: MAX_INTERVAL,
    }
    .positive(secs(DAY))?;
    const MAX_AGE_KEY: &str = "compactor.orphan_cleanup.max_snapshot_age_hours";
    let max_snapshot_age = checked_units(
        MAX_AGE_KEY,
        at_least(MAX_AGE_KEY, raw.max_snapshot_age_hours, 720, 1)?,
        HOUR,
        MAX_RETENTION,
    )?;
    Ok(OrphanConfig {
        enabled: raw.enabled.unwrap_or(false),
        // The safe default for the most dangerous job is dry-run.
        mode: Mode::from_dry_run(raw.dry_run.unwrap_or(true)).and(global),
        grace_period,
        allow_short_grace_period: allow_short,
        interval,
        batch_size: within("compactor.orphan_cleanup.batch_size", raw.batch_size, 1000, 1, MAX_COUNT)?
            as usize,
        revalidate_before_delete: raw.revalidate_before_delete.unwrap_or(true),
        max_snapshot_age,
        window: None,
        unreadable_neighbours: match raw.unreadable_neighbours.as_deref().unwrap_or("block") {
            "block" => UnreadableNeighbours::Block,
            "protect_location" => UnreadableNeighbours::ProtectLocation,
            other => {
                return Err(ConfigError::new(
                    "compactor.orphan_cleanup.unreadable_neighbours",
                    format!("{other:?}"),
                    "expected \"block\" (the default) or \"protect_location\"",
                ));
            }
        },
    })
}

fn admin_tokens(raw: &[super::raw::RawAdminToken]) -> Result<Vec<super::AdminToken>> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let key = |k: &str| format!("compactor.http.admin_tokens[{i}].{k}");
        let hex_text = t.sha256.as_deref().unwrap_or("").trim().to_ascii_lowercase();
        let mut sha256 = [0u8; 32];
        let valid = hex_text.len() == 64
            && hex_text.as_bytes().chunks(2).zip(sha256.iter_mut()).all(|(pair, byte)| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .map(|b| *byte = b)
                    .is_some()
            });
        if !valid {
            return Err(ConfigError::new(
                key("sha256"),
                "…",
                "expected the 64-hex-digit SHA-256 of the token (e.g. `printf %s TOKEN | sha256sum`)",
            ));
        }
        let role = match t.role.as_deref() {
            Some("ops_admin") if t.tenants.is_empty() => super::AdminRole::OpsAdmin,
            Some("ops_admin") => {
                return Err(ConfigError::new(
                    key("tenants"),
                    "[...]",
                    "ops_admin tokens act for every tenant; remove tenants",
                ));
            }
            Some("tenant_operator") if !t.tenants.is_empty() => {
                // A tenant is a catalog namespace's first level: never empty (an empty name
                // matched `?tenant=`, which reads as "every tenant"), never with a `.`.
                if let Some((j, bad)) = t.tenants.iter().enumerate().find(|(_, name)| {
                    name.trim().is_empty() || name.contains('.') || name.trim() != name.as_str()
                }) {
                    return Err(ConfigError::new(
                        key(&format!("tenants[{j}]")),
                        format!("{bad:?}"),
                        "a tenant name is non-empty, without surrounding spaces and without '.'",
                    ));
                }
                super::AdminRole::TenantOperator { tenants: t.tenants.clone() }
            }
            Some("tenant_operator") => {
                return Err(ConfigError::new(
                    key("tenants"),
                    "[]",
                    "a tenant_operator token needs at least one tenant",
                ));
            }
            other => {
                return Err(ConfigError::new(
                    key("role"),
                    format!("{other:?}"),
                    "expected \"ops_admin\" or \"tenant_operator\"",
                ));
            }
        };
        if out.iter().any(|earlier: &super::AdminToken| earlier.sha256 == sha256) {
            return Err(ConfigError::new(
                key("sha256"),
                "…",
                "the same token is listed twice; one token has one role and one scope",
            ));
        }
        out.push(super::AdminToken { sha256, role });
    }
    Ok(out)
}

fn listen(text: Option<&str>) -> Result<SocketAddr> {
    let text = text.unwrap_or("0.0.0.0:9091");
    text.parse().map_err(|e| {
        ConfigError::new("compactor.http.listen", format!("{text:?}"), format!("not a socket address: {e}"))
    })
}
