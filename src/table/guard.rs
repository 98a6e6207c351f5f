//! Tables this daemon must not commit to, decided before any work is done.
//!
//! Hazard (iceberg-rust 0.10.1): format-v1 metadata is read and written without `refs`: the reader keeps
//! only `main` (rebuilt from `current-snapshot-id`) and the writer has no `refs` field. Committing to a
//! v1 table that has tags or other branches would silently erase them, and with them the protection
//! of the snapshots they pin. Such tables are refused; the refs are read from the raw metadata JSON.
//!
//! Hazard (iceberg-rust 0.10.1): a manifest's Avro schema names the partition record's fields after
//! the partition fields. iceberg-rust writes those names as they are and reads a file's partition
//! values by them, while other engines write names that are not Avro names sanitized (PyIceberg:
//! `http-status` as `http_x2Dstatus`). Such a partition value reads as null: a compaction would
//! rewrite the files under a null partition (a filter on it then finds no row) and write manifests
//! with a name no Avro reader accepts. Tables with a partition field name that is not an Avro name
//! are refused (found by attacking the Avro name checks of `avro_names.rs` with PyIceberg tables).

use iceberg::spec::FormatVersion;
use iceberg::table::Table;

/// Why a table must not be committed to, as a metric/report reason; `None` if it may be.
pub async fn commit_blocker(table: &Table) -> iceberg::Result<Option<&'static str>> {
    let md = table.metadata();
    if md.format_version() > FormatVersion::V2 {
        return Ok(Some("unsupported_format_version"));
    }
    if md.properties().contains_key("encryption.key-id") || md.encryption_keys_iter().len() > 0 {
        return Ok(Some("encrypted"));
    }
    // Every spec, not only the default: older manifests carry their own spec's partition record.
    let names_not_avro = md
        .partition_specs_iter()
        .any(|spec| spec.fields().iter().any(|f| !crate::avro_names::is_simple_name(&f.name)));
    if names_not_avro {
        return Ok(Some("partition_names_not_avro"));
    }
    if md.format_version() == FormatVersion::V1 {
        let location = table.metadata_location_result()?;
        if location.ends_with(".gz.metadata.json") {
            // Refused since before gzip metadata could be read as written; kept as it was.
            return Ok(Some("v1_refs_unverifiable"));
        }
        let Some(json) = super::metadata_as_written(table).await? else {
            return Ok(Some("v1_refs_unverifiable"));
        };
        let foreign_refs = json
            .get("refs")
            .and_then(|r| r.as_object())
            .is_some_and(|refs| refs.keys().any(|name| name != "main"));
        if foreign_refs {
            return Ok(Some("v1_refs_unsupported"));
        }
    }
    Ok(None)
}
