//! Retention policy values and their resolution: dataset override > tenant override > global, per signal.
//!
//! Terms: a *level* is one of global, tenant or dataset. At each level a signal either has no setting
//! (fall through to the level above), keeps data for a duration, or keeps it forever. "Forever" is a real
//! setting, distinct from "no setting": it stops the fall-through. A table whose name is no known signal
//! is kept forever unless a `table_policies` entry names it (fail-safe: unknown means keep).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Signal;

/// One retention setting: keep for a duration, or keep forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionValue {
    Forever,
    For(Duration),
}

impl FromStr for RetentionValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("forever") {
            return Ok(Self::Forever);
        }
        humantime::parse_duration(s)
            .map(Self::For)
            .map_err(|e| format!("expected a duration like \"7d\" or \"forever\" ({e})"))
    }
}

impl fmt::Display for RetentionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forever => f.write_str("forever"),
            Self::For(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for RetentionValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for RetentionValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where a resolved retention came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    Global,
    Tenant,
    Dataset,
    Table,
    /// The table's own `signaldb.compactor.retention` property (most specific).
    TableProperty,
    /// No policy applies (unknown signal, nothing configured): the data is kept.
    Default,
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Global => "global",
            Self::Tenant => "tenant",
            Self::Dataset => "dataset",
            Self::Table => "table",
            Self::TableProperty => "table_property",
            Self::Default => "default",
        })
    }
}

/// The retention settings of one level, per signal; `None` means "not set at this level".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SignalRetention {
    pub traces: Option<RetentionValue>,
    pub logs: Option<RetentionValue>,
    pub metrics: Option<RetentionValue>,
    pub profiles: Option<RetentionValue>,
}

impl SignalRetention {
    pub fn get(&self, signal: Signal) -> Option<RetentionValue> {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.metrics,
            Signal::Profiles => self.profiles,
            Signal::Other => None,
        }
    }

    pub fn values(&self) -> impl Iterator<Item = (Signal, RetentionValue)> + '_ {
        Signal::KNOWN.into_iter().filter_map(|s| self.get(s).map(|v| (s, v)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetOverride {
    pub dataset_id: String,
    pub retention: SignalRetention,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantOverride {
    pub tenant_id: String,
    pub retention: SignalRetention,
    pub dataset_overrides: Vec<DatasetOverride>,
}

/// Retention for a table that is no known signal, optionally scoped to a tenant and dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePolicy {
    pub table: String,
    pub tenant_id: Option<String>,
    pub dataset_id: Option<String>,
    pub retention: RetentionValue,
}

/// The whole policy hierarchy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionPolicy {
    pub global: SignalRetention,
    pub tenant_overrides: Vec<TenantOverride>,
    pub table_policies: Vec<TablePolicy>,
}

/// The retention that applies to one table, and which level decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResolvedRetention {
    pub value: RetentionValue,
    pub source: PolicySource,
}

impl RetentionPolicy {
    /// Resolves the retention of `table` (a table name, whose signal is `signal`) in `tenant`/`dataset`.
    pub fn resolve(&self, tenant: &str, dataset: &str, table: &str, signal: Signal) -> ResolvedRetention {
        if signal == Signal::Other {
            return self.resolve_table_policy(tenant, dataset, table);
        }
        let tenant_override = self.tenant_overrides.iter().find(|t| t.tenant_id == tenant);
        let dataset_value = tenant_override
            .and_then(|t| t.dataset_overrides.iter().find(|d| d.dataset_id == dataset))
            .and_then(|d| d.retention.get(signal));
        let tenant_value = tenant_override.and_then(|t| t.retention.get(signal));
        let (value, source) = if let Some(v) = dataset_value {
            (v, PolicySource::Dataset)
        } else if let Some(v) = tenant_value {
            (v, PolicySource::Tenant)
        } else if let Some(v) = self.global.get(signal) {
            (v, PolicySource::Global)
        } else {
            (RetentionValue::Forever, PolicySource::Default)
        };
        ResolvedRetention { value, source }
    }

    /// Like [`Self::resolve`], with the table's `signaldb.compactor.retention` property (if set)
    /// above every configured level.
    pub fn resolve_with_property(
        &self,
        tenant: &str,
        dataset: &str,
        table: &str,
        signal: Signal,
        property: Option<RetentionValue>,
    ) -> ResolvedRetention {
        match property {
            Some(value) => ResolvedRetention { value, source: PolicySource::TableProperty },
            None => self.resolve(tenant, dataset, table, signal),
        }
    }

    /// The most specific matching `table_policies` entry wins; none means keep forever.
    fn resolve_table_policy(&self, tenant: &str, dataset: &str, table: &str) -> ResolvedRetention {
        let matches = |p: &&TablePolicy| {
            p.table == table
                && p.tenant_id.as_deref().is_none_or(|t| t == tenant)
                && p.dataset_id.as_deref().is_none_or(|d| d == dataset)
        };
        let specificity =
            |p: &TablePolicy| usize::from(p.tenant_id.is_some()) + usize::from(p.dataset_id.is_some());
        match self.table_policies.iter().filter(matches).max_by_key(|p| specificity(p)) {
            Some(p) => ResolvedRetention { value: p.retention, source: PolicySource::Table },
            None => ResolvedRetention { value: RetentionValue::Forever, source: PolicySource::Default },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> RetentionValue {
        RetentionValue::For(Duration::from_secs(n * 86_400))
    }

    /// The README's example: acme/production 30 d, acme/staging 14 d (tenant), everyone else 7 d.
    fn readme_policy() -> RetentionPolicy {
        RetentionPolicy {
            global: SignalRetention {
                traces: Some(days(7)),
                logs: Some(days(3)),
                metrics: Some(days(30)),
                profiles: None,
            },
            tenant_overrides: vec![TenantOverride {
                tenant_id: "acme".into(),
                retention: SignalRetention { traces: Some(days(14)), ..Default::default() },
                dataset_overrides: vec![
                    DatasetOverride {
                        dataset_id: "production".into(),
                        retention: SignalRetention { traces: Some(days(30)), ..Default::default() },
                    },
                    DatasetOverride {
                        dataset_id: "archive".into(),
                        retention: SignalRetention {
                            logs: Some(RetentionValue::Forever),
                            ..Default::default()
                        },
                    },
                ],
            }],
            table_policies: vec![
                TablePolicy { table: "audit".into(), tenant_id: None, dataset_id: None, retention: days(90) },
                TablePolicy {
                    table: "audit".into(),
                    tenant_id: Some("acme".into()),
                    dataset_id: None,
                    retention: days(365),
                },
            ],
        }
    }

    #[test]
    fn readme_example_resolves_per_level() {
        let p = readme_policy();
        let r = |t: &str, d: &str, s| p.resolve(t, d, "traces", s);
        assert_eq!(
            r("acme", "production", Signal::Traces),
            ResolvedRetention { value: days(30), source: PolicySource::Dataset }
        );
        assert_eq!(
            r("acme", "staging", Signal::Traces),
            ResolvedRetention { value: days(14), source: PolicySource::Tenant }
        );
        assert_eq!(
            r("other", "production", Signal::Traces),
            ResolvedRetention { value: days(7), source: PolicySource::Global }
        );
    }

    #[test]
    fn unset_signal_falls_through_each_level() {
        let p = readme_policy();
        // acme/production overrides traces only: logs come from global, not from the tenant.
        assert_eq!(
            p.resolve("acme", "production", "logs", Signal::Logs),
            ResolvedRetention { value: days(3), source: PolicySource::Global }
        );
        assert_eq!(p.resolve("acme", "production", "metrics_gauge", Signal::Metrics).value, days(30));
    }

    #[test]
    fn forever_override_stops_fall_through() {
        let p = readme_policy();
        assert_eq!(
            p.resolve("acme", "archive", "logs", Signal::Logs),
            ResolvedRetention { value: RetentionValue::Forever, source: PolicySource::Dataset }
        );
        // The same dataset id under another tenant is not overridden.
        assert_eq!(p.resolve("globex", "archive", "logs", Signal::Logs).value, days(3));
    }

    #[test]
    fn signal_without_any_setting_is_kept() {
        let p = readme_policy();
        assert_eq!(
            p.resolve("acme", "production", "profiles", Signal::Profiles),
            ResolvedRetention { value: RetentionValue::Forever, source: PolicySource::Default }
        );
    }

    #[test]
    fn unknown_table_uses_most_specific_table_policy_or_is_kept() {
        let p = readme_policy();
        assert_eq!(p.resolve("acme", "x", "audit", Signal::Other).value, days(365));
        assert_eq!(p.resolve("globex", "x", "audit", Signal::Other).value, days(90));
        assert_eq!(
            p.resolve("acme", "x", "other_table", Signal::Other),
            ResolvedRetention { value: RetentionValue::Forever, source: PolicySource::Default }
        );
    }

    #[test]
    fn retention_value_parses_both_forms() {
        assert_eq!("forever".parse::<RetentionValue>(), Ok(RetentionValue::Forever));
        assert_eq!("7d".parse::<RetentionValue>(), Ok(days(7)));
        assert!("seven".parse::<RetentionValue>().unwrap_err().contains("forever"));
    }
}
