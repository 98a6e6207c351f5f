//! Iceberg machinery shared by the jobs: the live-file inventory of a snapshot, the snapshot producer
//! (`replace`/`delete` snapshots built on iceberg's public API) and the one commit path.

pub mod backlog;
pub mod census;
pub mod commit;
pub mod fence;
pub mod guard;
pub mod inventory;
pub mod manifest_decode;
pub mod manifest_plan;
pub mod manifests;
pub mod partition;
pub mod producer;
pub mod properties;
pub mod reachability;

pub use commit::{Abandon, CommitError, CommitTarget, Committed, Leftover, RetryPolicy, commit_with_retry};
pub use fence::{Fence, Unleased};
pub use inventory::{Inventory, LiveFile};
pub use producer::{AddedFile, Change, ManifestRewrite, ProduceError, SnapshotChange, Staged};

use std::collections::BTreeMap;

use iceberg::spec::{SnapshotReference, TableMetadata};

/// The table's current metadata file as written (`None`: the table has no metadata location), for
/// what iceberg-rust drops when it parses it (v1 refs, a second statistics file of one snapshot).
/// Gzip metadata is recognized by its magic bytes, as iceberg-rust recognizes it.
pub async fn metadata_as_written(
    table: &iceberg::table::Table,
) -> iceberg::Result<Option<serde_json::Value>> {
    let unreadable = |location: &str, e: &dyn std::fmt::Display| {
        iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("metadata {location}: {e}"))
    };
    let Some(location) = table.metadata_location() else { return Ok(None) };
    let mut raw = table.file_io().new_input(location)?.read().await?.to_vec();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(raw.as_slice()), &mut plain)
            .map_err(|e| unreadable(location, &e))?;
        raw = plain;
    }
    serde_json::from_slice(&raw).map(Some).map_err(|e| unreadable(location, &e))
}

/// Every ref (branches and tags) of the table. iceberg 0.10.1 has no public accessor for them, so they
/// are read from the metadata's own serialized form; a v1 table (whose refs iceberg-rust drops) yields
/// `main` only, which is why `guard` refuses v1 tables with other refs.
pub fn refs(md: &TableMetadata) -> iceberg::Result<BTreeMap<String, SnapshotReference>> {
    let invalid = |e: serde_json::Error| {
        iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("table refs: {e}"))
    };
    let json = serde_json::to_value(md).map_err(invalid)?;
    match json.get("refs") {
        Some(refs) => serde_json::from_value(refs.clone()).map_err(invalid),
        None => Ok(md
            .current_snapshot_id()
            .map(|id| {
                let main =
                    SnapshotReference::new(id, iceberg::spec::SnapshotRetention::branch(None, None, None));
                BTreeMap::from([(iceberg::spec::MAIN_BRANCH.to_string(), main)])
            })
            .unwrap_or_default()),
    }
}
