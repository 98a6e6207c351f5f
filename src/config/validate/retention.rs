//! `[compactor.retention]`: interval, grace, expiry bounds, and the retention policy (global per
//! signal, tenant and dataset overrides, table policies), each value within the same bounds.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::*;

pub(super) fn retention(raw: &RawRetention, global_mode: Mode, cwd: &Path) -> Result<RetentionConfig> {
    const P: &str = "compactor.retention";
    let interval = TwoForms {
        int_key: "compactor.retention.retention_check_interval_secs",
        int_value: raw.retention_check_interval_secs,
        unit_secs: 1,
        text_key: "compactor.retention.retention_check_interval",
        text_value: raw.retention_check_interval,
        max: MAX_INTERVAL,
    }
    .positive(secs(HOUR))?;
    let (grace_key, grace_period) = TwoForms {
        int_key: "compactor.retention.grace_period_hours",
        int_value: raw.grace_period_hours,
        unit_secs: HOUR,
        text_key: "compactor.retention.grace_period",
        text_value: raw.grace_period,
        max: MAX_INTERVAL,
    }
    .resolve(secs(HOUR))?;
    let allow_short_grace = raw.allow_short_grace_period.unwrap_or(false);
    if grace_period < RETENTION_GRACE_FLOOR && !allow_short_grace {
        return Err(ConfigError::new(
            grace_key,
            human(grace_period),
            "below the 1h safety floor: data written late into an hour could be dropped with it; set \
             compactor.retention.allow_short_grace_period = true to allow it",
        ));
    }
    let tz_text = raw.timezone.clone().unwrap_or_else(|| "UTC".to_string());
    let timezone: chrono_tz::Tz = tz_text.parse().map_err(|_| {
        ConfigError::new(
            "compactor.retention.timezone",
            format!("{tz_text:?}"),
            "unknown IANA timezone (e.g. \"UTC\", \"Europe/Berlin\")",
        )
    })?;
    let allow_zero = raw.allow_zero_retention.unwrap_or(false);
    let rules = RetentionRules { grace_period, allow_zero };

    let defaults = SignalRetention {
        traces: Some(days(7)),
        logs: Some(days(3)),
        metrics: Some(days(30)),
        profiles: Some(days(7)),
    };
    let global = signal_retention(P, signal_fields!(raw), &rules)?;
    let global = SignalRetention {
        traces: global.traces.or(defaults.traces),
        logs: global.logs.or(defaults.logs),
        metrics: global.metrics.or(defaults.metrics),
        profiles: global.profiles.or(defaults.profiles),
    };
    let tenant_overrides = tenant_overrides(raw, &rules)?;
    let table_policies = table_policies(raw, &rules)?;
    Ok(RetentionConfig {
        enabled: raw.enabled.unwrap_or(false),
        mode: Mode::from_dry_run(raw.dry_run.unwrap_or(false)).and(global_mode),
        interval,
        grace_period,
        timezone,
        snapshots_to_keep: within(
            "compactor.retention.snapshots_to_keep",
            raw.snapshots_to_keep,
            5,
            1,
            MAX_COUNT,
        )? as u32,
        max_snapshot_age: positive_duration(
            "compactor.retention.max_snapshot_age",
            raw.max_snapshot_age,
            secs(5 * DAY),
            MAX_RETENTION,
        )?,
        allow_zero_retention: allow_zero,
        allow_short_grace_period: allow_short_grace,
        window: None,
        archive: raw
            .archive_dsn
            .as_deref()
            .map(|text| {
                Dsn::parse(text, cwd).map_err(|why| {
                    ConfigError::new("compactor.retention.archive_dsn", format!("{text:?}"), why)
                })
            })
            .transpose()?,
        policy: RetentionPolicy { global, tenant_overrides, table_policies },
    })
}

fn days(n: u64) -> RetentionValue {
    RetentionValue::For(secs(n * DAY))
}

struct RetentionRules {
    grace_period: Duration,
    allow_zero: bool,
}

impl RetentionRules {
    fn check(&self, key: &str, value: RetentionValue) -> Result<RetentionValue> {
        let RetentionValue::For(d) = value else {
            return Ok(value);
        };
        if d > MAX_RETENTION {
            return Err(ConfigError::new(
                key,
                human(d),
                format!("must be at most {} (use \"forever\" to keep data)", human(MAX_RETENTION)),
            ));
        }
        if d.is_zero() {
            if !self.allow_zero {
                return Err(ConfigError::new(
                    key,
                    "0",
                    "zero retention deletes data as soon as it is written; set \
                     compactor.retention.allow_zero_retention = true if that is really meant",
                ));
            }
            return Ok(value);
        }
        if d < Duration::from_secs(DAY) {
            return Err(ConfigError::new(
                key,
                humantime::format_duration(d),
                "must be at least 1 day (`m` is minutes, `M` months); 0 with \
                 compactor.retention.allow_zero_retention = true deletes data as soon as it is written",
            ));
        }
        if d < self.grace_period {
            return Err(ConfigError::new(
                key,
                humantime::format_duration(d),
                format!(
                    "retention is shorter than compactor.retention.grace_period ({})",
                    humantime::format_duration(self.grace_period)
                ),
            ));
        }
        Ok(value)
    }
}

fn signal_retention(
    prefix: &str,
    fields: SignalFields<'_>,
    rules: &RetentionRules,
) -> Result<SignalRetention> {
    let one = |name: &str, (days_value, text): (Option<u64>, &Option<RetentionValue>)| {
        let int_key = format!("{prefix}.{name}_retention_days");
        let text_key = format!("{prefix}.{name}");
        let value = match (days_value, text) {
            (Some(d), Some(t)) => {
                return Err(ConfigError::new(
                    &int_key,
                    d,
                    format!("both {int_key} and {text_key} (= \"{t}\") are set; use one"),
                ));
            }
            (Some(d), None) => {
                let value = RetentionValue::For(checked_units(&int_key, d, DAY, MAX_RETENTION)?);
                Some((int_key, value))
            }
            (None, Some(t)) => Some((text_key, *t)),
            (None, None) => None,
        };
        value.map(|(key, v)| rules.check(&key, v)).transpose()
    };
    Ok(SignalRetention {
        traces: one("traces", fields.traces)?,
        logs: one("logs", fields.logs)?,
        metrics: one("metrics", fields.metrics)?,
        profiles: one("profiles", fields.profiles)?,
    })
}

fn required_id(key: String, value: &Option<String>) -> Result<String> {
    match value.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(ConfigError::new(key, "(missing)", "an override needs a non-empty id")),
    }
}

fn tenant_overrides(raw: &RawRetention, rules: &RetentionRules) -> Result<Vec<TenantOverride>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.tenant_overrides.len());
    for (i, t) in raw.tenant_overrides.iter().enumerate() {
        let prefix = format!("compactor.retention.tenant_overrides[{i}]");
        let tenant_id = required_id(format!("{prefix}.tenant_id"), &t.tenant_id)?;
        if !seen.insert(tenant_id.clone()) {
            return Err(ConfigError::new(
                format!("{prefix}.tenant_id"),
                format!("{tenant_id:?}"),
                "duplicate tenant override",
            ));
        }
        let retention = signal_retention(&prefix, signal_fields!(t), rules)?;
        let mut datasets = BTreeSet::new();
        let mut dataset_overrides = Vec::with_capacity(t.dataset_overrides.len());
        for (j, d) in t.dataset_overrides.iter().enumerate() {
            let dprefix = format!("{prefix}.dataset_overrides[{j}]");
            let dataset_id = required_id(format!("{dprefix}.dataset_id"), &d.dataset_id)?;
            if !datasets.insert(dataset_id.clone()) {
                return Err(ConfigError::new(
                    format!("{dprefix}.dataset_id"),
                    format!("{dataset_id:?}"),
                    format!("duplicate dataset override for tenant {tenant_id:?}"),
                ));
            }
            let retention = signal_retention(&dprefix, signal_fields!(d), rules)?;
            dataset_overrides.push(DatasetOverride { dataset_id, retention });
        }
        out.push(TenantOverride { tenant_id, retention, dataset_overrides });
    }
    Ok(out)
}

fn table_policies(raw: &RawRetention, rules: &RetentionRules) -> Result<Vec<TablePolicy>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in raw.table_policies.iter().enumerate() {
        let prefix = format!("compactor.retention.table_policies[{i}]");
        let table = required_id(format!("{prefix}.table"), &p.table)?;
        // Signal tables take their retention from the signal keys (and their overrides): a table
        // policy for one would never apply.
        if crate::model::Signal::from_table_name(&table) != crate::model::Signal::Other {
            return Err(ConfigError::new(
                format!("{prefix}.table"),
                format!("{table:?}"),
                "is a signal table: set its retention with the signal's key (e.g. \
                 compactor.retention.traces, or a tenant/dataset override), not a table policy",
            ));
        }
        let scope = (table.clone(), p.tenant_id.clone(), p.dataset_id.clone());
        if !seen.insert(scope) {
            return Err(ConfigError::new(
                format!("{prefix}.table"),
                format!("{table:?}"),
                "duplicate table policy for the same tenant/dataset scope",
            ));
        }
        let (key, value) = match (p.retention_days, p.retention) {
            (Some(d), None) => {
                let key = format!("{prefix}.retention_days");
                let value = RetentionValue::For(checked_units(&key, d, DAY, MAX_RETENTION)?);
                (key, value)
            }
            (None, Some(v)) => (format!("{prefix}.retention"), v),
            (Some(d), Some(_)) => {
                return Err(ConfigError::new(
                    format!("{prefix}.retention_days"),
                    d,
                    "both retention_days and retention are set; use one",
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    format!("{prefix}.retention"),
                    "(missing)",
                    "a table policy needs retention_days or retention",
                ));
            }
        };
        out.push(TablePolicy {
            table,
            tenant_id: p.tenant_id.clone(),
            dataset_id: p.dataset_id.clone(),
            retention: rules.check(&key, value)?,
        });
    }
    Ok(out)
}
