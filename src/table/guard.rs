//! Tables this daemon must not commit to, decided before any work is done.
//!
//! Hazard (iceberg-rust 0.10.1): format-v1 metadata is read and written without `refs`: the reader keeps
//! only `main` (rebuilt from `current-snapshot-id`) and the writer has no `refs` field. Committing to a
//! v1 table that has tags or other branches would silently erase them, and with them the protection
//! of the snapshots they pin. Such tables are refused; the refs are read from the raw metadata JSON.

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
    if md.format_version() == FormatVersion::V1 {
        let location = table.metadata_location_result()?;
        if location.ends_with(".gz.metadata.json") {
            // Cannot check its refs without decompressing; refusing is the safe answer.
            return Ok(Some("v1_refs_unverifiable"));
        }
        let raw = table.file_io().new_input(location)?.read().await?;
        let json: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("metadata {location}: {e}"))
        })?;
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
