//! The configuration exactly as written: serde structs mirroring `signaldb.toml`.
//!
//! Every key is optional here so that defaults, the two accepted forms of a key (`grace_period_hours = 1`
//! vs `grace_period = "1h"`) and cross-key rules are decided in one place, `validate.rs`, which turns
//! this layer into the typed [`super::Config`]. `[schema]` and `[storage]` belong to the whole SignalDB
//! configuration file and tolerate keys other components use; every `[compactor*]` table rejects
//! unknown keys, because a misspelt safety setting must never be silently ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::retention::RetentionValue;

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawConfig {
    #[serde(default)]
    pub schema: RawSchema,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub compactor: RawCompactor,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawSchema {
    pub catalog_uri: Option<String>,
    pub catalog_name: Option<String>,
    pub pool_max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RawStorage {
    pub dsn: Option<String>,
    pub extra_roots: Option<Vec<String>>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
    pub path_style: Option<bool>,
}

/// `[compactor]`: process-wide keys and the compaction job's keys (SignalDB's historical layout).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompactor {
    pub enabled: Option<bool>,
    pub dry_run: Option<bool>,
    pub compaction_interval_secs: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    pub target_file_size_mb: Option<u64>,
    pub small_file_threshold_percent: Option<u64>,
    pub max_file_size_percent: Option<u64>,
    pub rewrite_to_current_spec: Option<bool>,
    pub rewrite_manifests: Option<bool>,
    pub min_input_files: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub partition_lateness: Option<Duration>,
    pub compact_open_partitions: Option<bool>,
    pub max_concurrent_rewrites: Option<u64>,
    pub max_concurrent_tables: Option<u64>,
    pub memory_limit_mb: Option<u64>,
    /// How often compaction polls the catalog for moved tables and partitions fallen due ("0s": off).
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    /// A loop's compaction pass starts no group once it has rewritten this many input bytes.
    pub max_bytes_per_pass: Option<u64>,
    /// A loop's compaction pass starts no group once it has run this long.
    #[serde(default, with = "humantime_serde")]
    pub max_pass_duration: Option<Duration>,
    /// The compaction lag the operator promises (due → compacted); exported for the alert rule.
    #[serde(default, with = "humantime_serde")]
    pub lag_target: Option<Duration>,
    /// Export per-table health gauges (`compactor_table_health`; one series per table and figure).
    pub table_metrics: Option<bool>,
    pub commit_max_attempts: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub commit_retry_backoff: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub shutdown_timeout: Option<Duration>,
    /// A pass still running after this long is reported overdue (`/status`, a metric).
    #[serde(default, with = "humantime_serde")]
    pub pass_deadline: Option<Duration>,
    pub log_format: Option<String>,
    pub audit_retention_days: Option<u64>,
    /// Replicas: how long a table lease lasts without renewal.
    pub lease_ttl_seconds: Option<u64>,
    /// Compaction's maintenance window, e.g. "01:00-05:00".
    pub window: Option<String>,
    /// Timezone of compaction's window (default: [compactor.retention] timezone).
    pub timezone: Option<String>,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub orphan_cleanup: RawOrphanCleanup,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub verify: RawVerify,
}

/// `[compactor.verify]`: the optional integrity-check loop.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub enabled: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    pub deep: Option<bool>,
}

/// Declares a struct holding the per-signal retention keys of one policy level plus `$extra` fields.
/// Each signal accepts `<signal>_retention_days = N` or `<signal> = "7d" | "forever"`.
macro_rules! signal_retention_struct {
    ($(#[$attr:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Default, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($extra)*
            pub traces_retention_days: Option<u64>,
            pub traces: Option<RetentionValue>,
            pub logs_retention_days: Option<u64>,
            pub logs: Option<RetentionValue>,
            pub metrics_retention_days: Option<u64>,
            pub metrics: Option<RetentionValue>,
            pub profiles_retention_days: Option<u64>,
            pub profiles: Option<RetentionValue>,
        }
    };
}

signal_retention_struct!(
    /// `[compactor.retention]`.
    RawRetention {
        pub enabled: Option<bool>,
        pub dry_run: Option<bool>,
        pub retention_check_interval_secs: Option<u64>,
        #[serde(default, with = "humantime_serde")]
        pub retention_check_interval: Option<Duration>,
        pub grace_period_hours: Option<u64>,
        #[serde(default, with = "humantime_serde")]
        pub grace_period: Option<Duration>,
        pub timezone: Option<String>,
        pub snapshots_to_keep: Option<u64>,
        #[serde(default, with = "humantime_serde")]
        pub max_snapshot_age: Option<Duration>,
        pub allow_zero_retention: Option<bool>,
        /// A grace period below 1 h is refused unless this is true.
        pub allow_short_grace_period: Option<bool>,
        pub archive_dsn: Option<String>,
        pub window: Option<String>,
        /// `[[compactor.retention.tenant_overrides]]` entries, or `[compactor.retention.tenant_overrides.ID]`
        /// tables (the seed layout's map form).
        #[serde(default, deserialize_with = "list_or_table")]
        pub tenant_overrides: Vec<RawTenantOverride>,
        #[serde(default)]
        pub table_policies: Vec<RawTablePolicy>,
    }
);

signal_retention_struct!(
    /// `[[compactor.retention.tenant_overrides]]`.
    RawTenantOverride {
        pub tenant_id: Option<String>,
        /// A list of entries, or tables keyed by dataset id.
        #[serde(default, deserialize_with = "list_or_table")]
        pub dataset_overrides: Vec<RawDatasetOverride>,
    }
);

signal_retention_struct!(
    /// `[[compactor.retention.tenant_overrides.dataset_overrides]]`.
    RawDatasetOverride {
        pub dataset_id: Option<String>,
    }
);

/// An override that may be written as a table keyed by its id instead of an entry naming it.
pub trait Keyed {
    /// The id field, filled from the table key in the map form.
    fn id_mut(&mut self) -> &mut Option<String>;
}

impl Keyed for RawTenantOverride {
    fn id_mut(&mut self) -> &mut Option<String> {
        &mut self.tenant_id
    }
}

impl Keyed for RawDatasetOverride {
    fn id_mut(&mut self) -> &mut Option<String> {
        &mut self.dataset_id
    }
}

/// Accepts both forms of an override list: an array of entries each naming its id
/// (`[[…tenant_overrides]]` + `tenant_id = "acme"`), or a table of tables keyed by id
/// (`[…tenant_overrides.acme]`). Both resolve to the same entries; in the map form an id field, if
/// present, must equal its key. Element errors keep their own message (unknown key, wrong type).
fn list_or_table<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Keyed,
{
    struct Visitor<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Keyed> serde::de::Visitor<'de> for Visitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of overrides, or a table of overrides keyed by id")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = seq.next_element()? {
                out.push(entry);
            }
            Ok(out)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some((key, mut entry)) = map.next_entry::<String, T>()? {
                match entry.id_mut() {
                    Some(id) if *id != key => {
                        return Err(serde::de::Error::custom(format!(
                            "the override keyed {key:?} names another id ({id:?})"
                        )));
                    }
                    id => *id = Some(key),
                }
                out.push(entry);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_any(Visitor(std::marker::PhantomData))
}

/// `[[compactor.retention.table_policies]]`: retention for a table whose name is no known signal.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTablePolicy {
    pub table: Option<String>,
    pub tenant_id: Option<String>,
    pub dataset_id: Option<String>,
    pub retention_days: Option<u64>,
    pub retention: Option<RetentionValue>,
}

/// `[compactor.orphan_cleanup]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrphanCleanup {
    pub enabled: Option<bool>,
    pub dry_run: Option<bool>,
    pub grace_period_hours: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub grace_period: Option<Duration>,
    pub allow_short_grace_period: Option<bool>,
    pub cleanup_interval_hours: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub cleanup_interval: Option<Duration>,
    pub batch_size: Option<u64>,
    pub revalidate_before_delete: Option<bool>,
    pub max_snapshot_age_hours: Option<u64>,
    pub window: Option<String>,
    pub timezone: Option<String>,
    pub unreadable_neighbours: Option<String>,
}

/// `[compactor.http]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    #[serde(default)]
    pub admin_tokens: Vec<RawAdminToken>,
}

/// `[[compactor.http.admin_tokens]]`: a bearer token, stored as its SHA-256.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminToken {
    pub sha256: Option<String>,
    pub role: Option<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
}
