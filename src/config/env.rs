//! Environment overrides: `SIGNALDB_COMPACTOR_<SECTION>_<KEY>`, `SIGNALDB_SCHEMA_<KEY>`,
//! `SIGNALDB_STORAGE_<KEY>`, with single underscores throughout.
//!
//! Underscores separate words inside key names too (`ORPHAN_CLEANUP_GRACE_PERIOD_HOURS`), so a variable
//! name is never split by guessing: the remainder after the prefix is matched against the known key set
//! of each section, read off the raw config structs themselves. An unknown `SIGNALDB_COMPACTOR_*`
//! variable is a config error (a typo must not silently leave a safety setting at its default);
//! unknown `SIGNALDB_SCHEMA_*`/`SIGNALDB_STORAGE_*` variables belong to other SignalDB components and
//! are ignored.

use std::collections::BTreeSet;

use figment::value::Value;
use serde::Serialize;

use super::ConfigError;
use super::raw::{RawCompactor, RawHttp, RawOrphanCleanup, RawRetention, RawSchema, RawStorage, RawVerify};

/// Keys whose values are strings even when they look like numbers or booleans.
const STRING_KEYS: &[&str] = &[
    "catalog_uri",
    "catalog_name",
    "dsn",
    "endpoint",
    "region",
    "access_key_id",
    "secret_access_key",
    "timezone",
    "log_format",
    "listen",
    "unreadable_neighbours",
];

/// One environment variable mapped onto a config key.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvOverride {
    pub var: String,
    /// Dotted key path, e.g. `compactor.retention.enabled`.
    pub key: String,
    pub value: Value,
}

/// The scalar keys of a raw section, read off its serialized default (arrays and tables are not
/// settable from the environment).
pub(super) fn scalar_keys<T: Serialize + Default>() -> BTreeSet<String> {
    let value = serde_json::to_value(T::default()).expect("raw config serializes");
    value
        .as_object()
        .map(|m| m.iter().filter(|(_, v)| !v.is_array() && !v.is_object()).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
}

struct Section {
    /// Variable prefix after `SIGNALDB_`, lowercased, e.g. `compactor_retention_`.
    var_prefix: &'static str,
    /// Dotted key prefix, e.g. `compactor.retention.`.
    key_prefix: &'static str,
    keys: BTreeSet<String>,
    strict: bool,
}

fn sections() -> Vec<Section> {
    // More specific prefixes first: `compactor_retention_` before `compactor_`.
    vec![
        Section {
            var_prefix: "compactor_retention_",
            key_prefix: "compactor.retention.",
            keys: scalar_keys::<RawRetention>(),
            strict: true,
        },
        Section {
            var_prefix: "compactor_orphan_cleanup_",
            key_prefix: "compactor.orphan_cleanup.",
            keys: scalar_keys::<RawOrphanCleanup>(),
            strict: true,
        },
        Section {
            var_prefix: "compactor_verify_",
            key_prefix: "compactor.verify.",
            keys: scalar_keys::<RawVerify>(),
            strict: true,
        },
        Section {
            var_prefix: "compactor_http_",
            key_prefix: "compactor.http.",
            keys: scalar_keys::<RawHttp>(),
            strict: true,
        },
        Section {
            var_prefix: "compactor_",
            key_prefix: "compactor.",
            keys: scalar_keys::<RawCompactor>(),
            strict: true,
        },
        Section {
            var_prefix: "schema_",
            key_prefix: "schema.",
            keys: scalar_keys::<RawSchema>(),
            strict: false,
        },
        Section {
            var_prefix: "storage_",
            key_prefix: "storage.",
            keys: scalar_keys::<RawStorage>(),
            strict: false,
        },
    ]
}

fn parse_value(key: &str, raw: &str) -> Value {
    if STRING_KEYS.contains(&key) {
        Value::from(raw.to_string())
    } else {
        raw.parse::<Value>().unwrap_or_else(|_| Value::from(raw.to_string()))
    }
}

/// The process environment as UTF-8 pairs. A variable that is not UTF-8 (name or value) is ignored
/// unless its name starts with `SIGNALDB_`: those are ours, and one we cannot read is a config error
/// naming it (never a panic, never silently skipped).
pub fn utf8_vars(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in vars {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            (Ok(name), Err(_)) if name.starts_with("SIGNALDB_") => {
                return Err(ConfigError::new(name, "(not UTF-8)", "the value is not valid UTF-8"));
            }
            (Err(name), _) if name.to_string_lossy().starts_with("SIGNALDB_") => {
                return Err(ConfigError::new(
                    name.to_string_lossy(),
                    "…",
                    "the variable's name is not valid UTF-8",
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Maps `SIGNALDB_*` variables onto config keys; errors name the variable and why.
pub fn overrides(vars: impl IntoIterator<Item = (String, String)>) -> Result<Vec<EnvOverride>, ConfigError> {
    let sections = sections();
    let mut out = Vec::new();
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix("SIGNALDB_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let mut matched = false;
        let mut claimed_by_strict = false;
        for section in &sections {
            let Some(key) = rest.strip_prefix(section.var_prefix) else {
                continue;
            };
            claimed_by_strict |= section.strict;
            if section.keys.contains(key) {
                out.push(EnvOverride {
                    var: var.clone(),
                    key: format!("{}{key}", section.key_prefix),
                    value: parse_value(key, &raw),
                });
                matched = true;
                break;
            }
        }
        if !matched && claimed_by_strict {
            return Err(ConfigError::new(
                var.clone(),
                raw.clone(),
                "unknown environment variable: no [compactor*] key has this name",
            ));
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    // Two variables for one key (names differ only in case: `SIGNALDB_COMPACTOR_DRY_RUN` and
    // `SIGNALDB_compactor_dry_run`): which one wins would be the environment's order.
    if let Some(pair) = out.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(ConfigError::new(
            pair[1].var.clone(),
            format!("(also set as {})", pair[0].var),
            format!("two environment variables set {}; keep one", pair[0].key),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn keys(pairs: &[(&str, &str)]) -> Vec<(String, Value)> {
        overrides(map(pairs)).unwrap().into_iter().map(|o| (o.key, o.value)).collect()
    }

    #[test]
    fn documented_forms_map_to_their_keys() {
        assert_eq!(
            keys(&[
                ("SIGNALDB_COMPACTOR_RETENTION_ENABLED", "true"),
                ("SIGNALDB_COMPACTOR_RETENTION_TRACES_RETENTION_DAYS", "14"),
                ("SIGNALDB_COMPACTOR_RETENTION_DRY_RUN", "true"),
                ("SIGNALDB_COMPACTOR_ORPHAN_CLEANUP_GRACE_PERIOD_HOURS", "48"),
                ("SIGNALDB_COMPACTOR_DRY_RUN", "true"),
                ("SIGNALDB_SCHEMA_CATALOG_URI", "sqlite:x.db"),
                ("SIGNALDB_STORAGE_DSN", "file:///w"),
                ("SIGNALDB_COMPACTOR_HTTP_LISTEN", "127.0.0.1:1"),
            ]),
            vec![
                ("compactor.dry_run".into(), Value::from(true)),
                ("compactor.http.listen".into(), Value::from("127.0.0.1:1".to_string())),
                ("compactor.orphan_cleanup.grace_period_hours".into(), Value::from(48u8)),
                ("compactor.retention.dry_run".into(), Value::from(true)),
                ("compactor.retention.enabled".into(), Value::from(true)),
                ("compactor.retention.traces_retention_days".into(), Value::from(14u8)),
                ("schema.catalog_uri".into(), Value::from("sqlite:x.db".to_string())),
                ("storage.dsn".into(), Value::from("file:///w".to_string())),
            ]
        );
    }

    #[test]
    fn two_variables_for_one_key_are_an_error_naming_them() {
        let err = overrides(map(&[
            ("SIGNALDB_COMPACTOR_DRY_RUN", "true"),
            ("SIGNALDB_compactor_dry_run", "false"),
        ]))
        .unwrap_err();
        assert!(err.key.eq_ignore_ascii_case("SIGNALDB_COMPACTOR_DRY_RUN"), "{err:?}");
        assert!(err.to_string().contains("compactor.dry_run"), "{err}");
    }

    #[test]
    fn string_keys_stay_strings() {
        assert_eq!(
            keys(&[("SIGNALDB_SCHEMA_CATALOG_NAME", "123")]),
            vec![("schema.catalog_name".into(), Value::from("123".to_string()))]
        );
    }

    #[test]
    fn unknown_compactor_variable_is_an_error_naming_it() {
        let err = overrides(map(&[("SIGNALDB_COMPACTOR_RETENTION_TRACE_DAYS", "3")])).unwrap_err();
        assert_eq!(err.key, "SIGNALDB_COMPACTOR_RETENTION_TRACE_DAYS");
        let err = overrides(map(&[("SIGNALDB_COMPACTOR_NOPE", "1")])).unwrap_err();
        assert_eq!(err.key, "SIGNALDB_COMPACTOR_NOPE");
    }

    #[test]
    fn non_utf8_variables_are_ignored_unless_they_are_ours() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'x', 0xff, 0xfe]);
        let ok = |s: &str| OsString::from(s);
        let vars = vec![
            (ok("LANG_JUNK"), bad()),
            (OsString::from_vec(b"OTHER_\xff".to_vec()), ok("1")),
            (ok("SIGNALDB_COMPACTOR_DRY_RUN"), ok("true")),
        ];
        assert_eq!(
            utf8_vars(vars).unwrap(),
            vec![("SIGNALDB_COMPACTOR_DRY_RUN".to_string(), "true".to_string())]
        );
        let err = utf8_vars(vec![(ok("SIGNALDB_SCHEMA_CATALOG_URI"), bad())]).unwrap_err();
        assert_eq!(err.key, "SIGNALDB_SCHEMA_CATALOG_URI");
        let err =
            utf8_vars(vec![(OsString::from_vec(b"SIGNALDB_COMPACTOR_\xff".to_vec()), ok("1"))]).unwrap_err();
        assert!(err.key.starts_with("SIGNALDB_COMPACTOR_"), "{err}");
    }

    #[test]
    fn other_components_variables_are_ignored() {
        assert!(keys(&[("SIGNALDB_SCHEMA_DEFAULT_SCHEMAS", "x"), ("PATH", "/bin")]).is_empty());
        assert!(keys(&[("SIGNALDB_FLIGHT_PORT", "1")]).is_empty());
    }
}
