//! Table properties the compactor reads, parsed in one typed place: the per-table switches
//! (`signaldb.compactor.*`, set by any Iceberg writer, e.g. PyIceberg's `set_properties` or Spark's
//! `ALTER TABLE … SET TBLPROPERTIES`) and Iceberg's own `write.target-file-size-bytes`.
//!
//! Fail closed: a `signaldb.compactor.*` property that does not parse, is out of bounds, or is unknown
//! (a typo such as `signaldb.compactor.enable=false` must not silently leave the table enabled) makes
//! every job that changes tables skip the table, with a reason naming the property and its value.
//!
//! Precedence: a table property is the most specific setting, above the configuration's
//! table policy / dataset / tenant / global chain (retention) and above `target_file_size_mb`
//! (compaction); `signaldb.compactor.target-file-size-bytes` wins over `write.target-file-size-bytes`.
//!
//! Iceberg's own properties the compactor honours ([`IcebergProperties`]: `gc.enabled`,
//! `history.expire.*`, `write.metadata.delete-after-commit.enabled`) are another writer's settings:
//! read here, in one place, with the leniency each has always had.

use std::collections::HashMap;
use std::time::Duration;

use iceberg::table::Table;

use crate::config::retention::RetentionValue;

/// Namespace of the compactor's own table properties.
pub const PREFIX: &str = "signaldb.compactor.";
/// `false` excludes the table from every job that changes it (compaction, retention, snapshot expiry,
/// orphan cleanup); `verify` still reads it.
pub const ENABLED: &str = "signaldb.compactor.enabled";
/// Target size of the files compaction writes, in bytes.
pub const TARGET_FILE_SIZE_BYTES: &str = "signaldb.compactor.target-file-size-bytes";
/// Retention of this table: a humantime duration (`"14d"`) or `"forever"`.
pub const RETENTION: &str = "signaldb.compactor.retention";
/// Iceberg's target file size (Java, PyIceberg and Spark writers honour it too).
pub const WRITE_TARGET_FILE_SIZE_BYTES: &str = "write.target-file-size-bytes";

const KNOWN: [&str; 3] = [ENABLED, TARGET_FILE_SIZE_BYTES, RETENTION];

/// Bounds of a target file size: 64 KiB … 16 GiB (the configuration's `target_file_size_mb` bound).
pub const MIN_TARGET_FILE_SIZE: u64 = 64 * 1024;
pub const MAX_TARGET_FILE_SIZE: u64 = 16 * 1024 * 1024 * 1024;
/// Bounds of a retention property: 1 day … 36,500 days, as the configuration's retention values.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);
const MAX_RETENTION: Duration = Duration::from_secs(36_500 * 24 * 3600);

/// The compactor's view of one table's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProperties {
    /// `signaldb.compactor.enabled` (default true).
    pub enabled: bool,
    /// `signaldb.compactor.target-file-size-bytes`, else a valid `write.target-file-size-bytes`.
    pub target_file_size: Option<TargetFileSize>,
    /// `signaldb.compactor.retention`.
    pub retention: Option<RetentionValue>,
    /// Iceberg's `commit.manifest.min-count-to-merge` and `commit.manifest.target-size-bytes` (other
    /// writers' settings: a value that does not parse falls back to Iceberg's default).
    pub manifests: super::manifest_plan::Thresholds,
}

/// A table's target file size and the property it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetFileSize {
    pub bytes: u64,
    pub key: &'static str,
}

impl Default for TableProperties {
    fn default() -> Self {
        TableProperties {
            enabled: true,
            target_file_size: None,
            retention: None,
            manifests: super::manifest_plan::Thresholds::default(),
        }
    }
}

/// A `signaldb.compactor.*` property that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table property {key} = {value:?}: {reason}")]
pub struct PropertyError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// Why a job leaves a table alone because of its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Excluded {
    /// `signaldb.compactor.enabled = false`.
    Disabled,
    /// A property that does not parse: fail closed.
    Invalid(PropertyError),
}

impl Excluded {
    /// The `reason` label of `compactor_tables_skipped_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Excluded::Disabled => "disabled_by_table_property",
            Excluded::Invalid(_) => "invalid_table_property",
        }
    }
}

impl std::fmt::Display for Excluded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Excluded::Disabled => write!(f, "disabled_by_table_property: {ENABLED} = false"),
            Excluded::Invalid(e) => write!(f, "invalid_table_property: {e}"),
        }
    }
}

impl TableProperties {
    /// Parses the properties of a table (see the module docs for what fails).
    pub fn parse(props: &HashMap<String, String>) -> Result<TableProperties, PropertyError> {
        let error = |key: &str, value: &str, reason: String| PropertyError {
            key: key.to_string(),
            value: value.chars().take(80).collect(),
            reason,
        };
        // Sorted, so that the error named is the same on every pass.
        let mut ours: Vec<(&String, &String)> = props.iter().filter(|(k, _)| k.starts_with(PREFIX)).collect();
        ours.sort();
        if let Some((key, value)) = ours.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err(error(key, value, format!("unknown property (known: {})", KNOWN.join(", "))));
        }
        let mut out = TableProperties {
            manifests: super::manifest_plan::thresholds(props),
            ..TableProperties::default()
        };
        if let Some(v) = props.get(ENABLED) {
            out.enabled = match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(error(ENABLED, v, "expected true or false".into())),
            };
        }
        if let Some(v) = props.get(TARGET_FILE_SIZE_BYTES) {
            let bytes = parse_target(v).map_err(|reason| error(TARGET_FILE_SIZE_BYTES, v, reason))?;
            out.target_file_size = Some(TargetFileSize { bytes, key: TARGET_FILE_SIZE_BYTES });
        } else if let Some(bytes) = props.get(WRITE_TARGET_FILE_SIZE_BYTES).and_then(|v| parse_target(v).ok())
        {
            // Another writer's setting: honoured when valid, otherwise the configuration's target
            // applies (it is not ours to refuse).
            out.target_file_size = Some(TargetFileSize { bytes, key: WRITE_TARGET_FILE_SIZE_BYTES });
        }
        if let Some(v) = props.get(RETENTION) {
            let value: RetentionValue = v.parse().map_err(|reason| error(RETENTION, v, reason))?;
            if let RetentionValue::For(d) = value
                && !(MIN_RETENTION..=MAX_RETENTION).contains(&d)
            {
                return Err(error(
                    RETENTION,
                    v,
                    "must be between 1 day and 36500 days, or \"forever\"".into(),
                ));
            }
            out.retention = Some(value);
        }
        Ok(out)
    }

    pub fn of(table: &Table) -> Result<TableProperties, PropertyError> {
        Self::parse(table.metadata().properties())
    }

    /// The table's properties if a job may change it, else why not.
    pub fn admit(table: &Table) -> Result<TableProperties, Excluded> {
        Self::admit_props(table.metadata().properties())
    }

    /// [`Self::admit`] on a property map.
    pub fn admit_props(props: &HashMap<String, String>) -> Result<TableProperties, Excluded> {
        match Self::parse(props) {
            Ok(p) if p.enabled => Ok(p),
            Ok(_) => Err(Excluded::Disabled),
            Err(e) => Err(Excluded::Invalid(e)),
        }
    }

    /// The target file size: the table's, else the configuration's.
    pub fn target_file_size_or(&self, configured: u64) -> u64 {
        self.target_file_size.map_or(configured, |t| t.bytes)
    }
}

/// `false` (any case): snapshot expiry must not remove anything from the table.
pub const GC_ENABLED: &str = "gc.enabled";
/// Snapshots kept by expiry at least (overrides `snapshots_to_keep`).
pub const MIN_SNAPSHOTS_TO_KEEP: &str = "history.expire.min-snapshots-to-keep";
/// Snapshot age expiry keeps, in milliseconds (overrides `max_snapshot_age`).
pub const MAX_SNAPSHOT_AGE_MS: &str = "history.expire.max-snapshot-age-ms";
/// Age past which non-main refs are removed, in milliseconds.
pub const MAX_REF_AGE_MS: &str = "history.expire.max-ref-age-ms";
/// `true` (any case): metadata files that fall out of the metadata log are deleted after a commit.
pub const METADATA_DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

/// Iceberg's own properties of one table, as the compactor reads them.
#[derive(Debug, Clone, Copy)]
pub struct IcebergProperties<'a>(&'a HashMap<String, String>);

/// The table's `history.expire.*` settings (each `None` when unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryExpire {
    pub min_snapshots_to_keep: Option<i64>,
    pub max_snapshot_age_ms: Option<i64>,
    pub max_ref_age_ms: Option<i64>,
}

impl<'a> IcebergProperties<'a> {
    pub fn of(metadata: &'a iceberg::spec::TableMetadata) -> Self {
        IcebergProperties(metadata.properties())
    }

    pub fn from_map(props: &'a HashMap<String, String>) -> Self {
        IcebergProperties(props)
    }

    /// `gc.enabled`: absent, or `true` in any case, keeps garbage collection on; any other value
    /// turns it off, as Java's `Boolean.parseBoolean` reads it.
    pub fn gc_enabled(&self) -> bool {
        // Java reads it with `Boolean.parseBoolean`: anything but `true` (any case) turns GC off, so
        // `0`, `no` or ` true` mean off there and must here (off is the side that deletes nothing).
        self.0.get(GC_ENABLED).is_none_or(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `write.metadata.delete-after-commit.enabled`: only an explicit `true` (any case) turns it on.
    pub fn delete_metadata_after_commit(&self) -> bool {
        self.0.get(METADATA_DELETE_AFTER_COMMIT).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The `history.expire.*` settings. `Err(key)`: that property is set but not an integer.
    pub fn history_expire(&self) -> Result<HistoryExpire, &'static str> {
        let number = |key: &'static str| -> Result<Option<i64>, &'static str> {
            self.0.get(key).map(|v| v.parse::<i64>().map_err(|_| key)).transpose()
        };
        Ok(HistoryExpire {
            min_snapshots_to_keep: number(MIN_SNAPSHOTS_TO_KEEP)?,
            max_snapshot_age_ms: number(MAX_SNAPSHOT_AGE_MS)?,
            max_ref_age_ms: number(MAX_REF_AGE_MS)?,
        })
    }
}

fn parse_target(v: &str) -> Result<u64, String> {
    let bytes: u64 = v.trim().parse().map_err(|e| format!("expected a number of bytes ({e})"))?;
    if !(MIN_TARGET_FILE_SIZE..=MAX_TARGET_FILE_SIZE).contains(&bytes) {
        return Err(format!("must be between {MIN_TARGET_FILE_SIZE} and {MAX_TARGET_FILE_SIZE} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn err(pairs: &[(&str, &str)]) -> PropertyError {
        TableProperties::parse(&props(pairs)).unwrap_err()
    }

    #[test]
    fn gc_enabled_is_read_as_java_reads_it() {
        let gc = |v: Option<&str>| {
            let map = v.map(|v| props(&[("gc.enabled", v)])).unwrap_or_default();
            IcebergProperties::from_map(&map).gc_enabled()
        };
        assert!(gc(None));
        for on in ["true", "TRUE", "True"] {
            assert!(gc(Some(on)), "{on}");
        }
        for off in ["false", "0", "no", " true", "yes", ""] {
            assert!(!gc(Some(off)), "{off:?}");
        }
    }

    #[test]
    fn no_properties_mean_enabled_with_the_configured_values() {
        assert_eq!(TableProperties::parse(&props(&[])).unwrap(), TableProperties::default());
        assert_eq!(TableProperties::default().target_file_size_or(7), 7);
    }

    #[test]
    fn switches_parse() {
        let p = TableProperties::parse(&props(&[
            (ENABLED, "FALSE"),
            (TARGET_FILE_SIZE_BYTES, "1048576"),
            (RETENTION, "14d"),
            ("write.target-file-size-bytes", "999999"),
        ]))
        .unwrap();
        assert!(!p.enabled);
        assert_eq!(p.target_file_size, Some(TargetFileSize { bytes: 1 << 20, key: TARGET_FILE_SIZE_BYTES }));
        assert_eq!(p.retention, Some(RetentionValue::For(Duration::from_secs(14 * 86400))));
        let forever = TableProperties::parse(&props(&[(RETENTION, "forever")])).unwrap();
        assert_eq!(forever.retention, Some(RetentionValue::Forever));
    }

    #[test]
    fn write_target_file_size_applies_when_ours_is_absent_and_is_ignored_when_invalid() {
        let p = TableProperties::parse(&props(&[(WRITE_TARGET_FILE_SIZE_BYTES, "1048576")])).unwrap();
        assert_eq!(p.target_file_size_or(5), 1 << 20);
        for bad in ["0", "50", "-1", "lots", "99999999999999999999"] {
            let p = TableProperties::parse(&props(&[(WRITE_TARGET_FILE_SIZE_BYTES, bad)])).unwrap();
            assert_eq!(p.target_file_size_or(5), 5, "{bad}");
        }
    }

    #[test]
    fn unparseable_or_unknown_switches_fail_closed_naming_key_and_value() {
        for (key, value) in [
            (ENABLED, "no"),
            (ENABLED, ""),
            (ENABLED, "0"),
            (TARGET_FILE_SIZE_BYTES, "128MB"),
            (TARGET_FILE_SIZE_BYTES, "0"),
            (TARGET_FILE_SIZE_BYTES, "100"),
            (TARGET_FILE_SIZE_BYTES, "18446744073709551615"),
            (RETENTION, "two weeks"),
            (RETENTION, "0s"),
            (RETENTION, "1h"),
            (RETENTION, "200000d"),
            ("signaldb.compactor.enable", "false"),
        ] {
            let e = err(&[(key, value)]);
            assert_eq!((e.key.as_str(), e.value.as_str()), (key, value));
            assert!(e.to_string().contains(key), "{e}");
        }
        // A bad value excludes the table even when another property would disable it anyway.
        let e = TableProperties::admit_props(&props(&[(ENABLED, "false"), (RETENTION, "x")]));
        assert!(matches!(e, Err(Excluded::Invalid(_))));
        assert_eq!(TableProperties::admit_props(&props(&[(ENABLED, "false")])), Err(Excluded::Disabled));
        assert!(TableProperties::admit_props(&props(&[(ENABLED, "true")])).is_ok());
    }

    #[test]
    fn iceberg_properties_read_as_before() {
        let read = |pairs: &[(&str, &str)]| {
            let p = props(pairs);
            let i = IcebergProperties::from_map(&p);
            (i.gc_enabled(), i.delete_metadata_after_commit(), i.history_expire())
        };
        assert_eq!(read(&[]), (true, false, Ok(HistoryExpire::default())));
        assert!(!read(&[(GC_ENABLED, "FALSE"), (METADATA_DELETE_AFTER_COMMIT, "True")]).0);
        assert!(read(&[(METADATA_DELETE_AFTER_COMMIT, "True")]).1);
        // Since 2026-12-08 read as Java reads it (`Boolean.parseBoolean`): `no` turns gc off, the
        // side on which nothing is deleted (see gc_enabled_is_read_as_java_reads_it).
        assert!(!read(&[(GC_ENABLED, "no")]).0, "anything but true turns gc off, as in Java");
        assert_eq!(
            read(&[(MIN_SNAPSHOTS_TO_KEEP, "7"), (MAX_SNAPSHOT_AGE_MS, "1000")]).2,
            Ok(HistoryExpire {
                min_snapshots_to_keep: Some(7),
                max_snapshot_age_ms: Some(1000),
                max_ref_age_ms: None
            })
        );
        assert_eq!(read(&[(MAX_REF_AGE_MS, "soon")]).2, Err(MAX_REF_AGE_MS));
    }
}
