//! The snapshot producer: builds a `replace` or `delete` snapshot from outside iceberg-rust, which has
//! no such action (ICEBERG_RUST_NOTES §2).
//!
//! Given the inventory of the snapshot a change was planned on, it rewrites the entries of every
//! manifest holding a removed file into one new manifest per spec and content type (removed entries
//! become DELETED with their original sequence numbers and snapshot id; the others EXISTING), reuses
//! untouched manifests as they are, adds one manifest per partition spec for new files, writes the manifest list, and stages the next table metadata with the snapshot set as
//! `main` (main's retention settings kept). Nothing here touches the catalog; `commit.rs` does.
//!
//! Hazards: a DELETED entry in one manifest does not mask an ADDED entry in another (scans check each
//! entry), so removal always rewrites the manifest that holds the file. Old entries must keep both
//! sequence numbers or equality deletes would apply to the wrong files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{
    DataFile, FormatVersion, MAIN_BRANCH, ManifestContentType, ManifestEntry, ManifestEntryRef, ManifestFile,
    ManifestListWriter, ManifestStatus, ManifestWriter, ManifestWriterBuilder, Operation, Snapshot,
    SnapshotSummaryCollector, Summary, TableMetadata, UNASSIGNED_SEQUENCE_NUMBER,
};
use iceberg::table::Table;
use rand::Rng;

use super::inventory::{Inventory, LiveFile};
use super::manifest_plan::{self, ManifestInput, Thresholds};

/// A new data file and the partition spec it was written with.
#[derive(Debug, Clone)]
pub struct AddedFile {
    pub file: DataFile,
    pub spec_id: i32,
}

/// What one commit changes.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new snapshot on `main` (`replace` for compaction, `delete` for retention drops).
    Snapshot(SnapshotChange),
    /// Metadata only: remove these snapshots (and their statistics) and these refs.
    ExpireSnapshots { snapshot_ids: Vec<i64>, refs: Vec<String> },
    /// A `replace` snapshot that changes no file: the data manifests rewritten, clustered by partition
    /// (planned on the snapshot staged on, so a rebase after a conflict recomputes it).
    RewriteManifests(ManifestRewrite),
}

/// A rewrite of the data manifests (see `manifest_plan`).
#[derive(Debug, Clone)]
pub struct ManifestRewrite {
    pub thresholds: Thresholds,
    /// Extra snapshot summary properties (e.g. who committed).
    pub summary: HashMap<String, String>,
}

/// A new snapshot: files removed and added.
#[derive(Debug, Clone)]
pub struct SnapshotChange {
    pub operation: Operation,
    /// Paths of live files (data or delete) to remove.
    pub remove: HashSet<String>,
    pub add: Vec<AddedFile>,
    /// Data sequence number for added files; a rewrite passes the sequence number of the snapshot it
    /// started from, so equality deletes committed meanwhile still apply to the rewritten rows.
    pub added_data_sequence_number: Option<i64>,
    /// Extra snapshot summary properties (e.g. who committed).
    pub summary: HashMap<String, String>,
}

/// A change ready to commit: the next metadata and the files written for it.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The new snapshot, or (for an expiry) the unchanged current one.
    pub snapshot_id: i64,
    /// For an expiry: the snapshots that must be gone once committed.
    pub expired: Vec<i64>,
    pub metadata: TableMetadata,
    /// Manifests and the manifest list this staging wrote (deleted again if the commit fails).
    pub written: Vec<String>,
    pub summary: HashMap<String, String>,
    /// The new snapshot's inventory, derived without reading anything back: the base for the next
    /// change if this one lands and nobody else commits in between.
    pub inventory: Inventory,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("file to remove is not live in the snapshot planned on: {0}")]
    NotLive(String),
    #[error("partition spec {0} is not in the table metadata")]
    UnknownSpec(i32),
    #[error("format version {0} is not supported for external commits")]
    UnsupportedFormat(String),
    /// The inventory is not of the table's current snapshot: a snapshot built on it would drop
    /// whatever was committed since (its parent and its manifests would be the inventory's).
    #[error("inventory of snapshot {inventory:?} staged on a table whose current snapshot is {current:?}")]
    StaleBase { inventory: Option<i64>, current: Option<i64> },
    #[error(transparent)]
    Iceberg(#[from] iceberg::Error),
}

fn unique_snapshot_id(metadata: &TableMetadata) -> i64 {
    let mut rng = rand::rng();
    loop {
        let id = rng.random_range(1..i64::MAX);
        if metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

struct Writers<'a> {
    table: &'a Table,
    metadata: &'a TableMetadata,
    snapshot_id: i64,
    commit_uuid: uuid::Uuid,
    written: Vec<String>,
}

impl Writers<'_> {
    fn new_manifest(
        &mut self,
        spec_id: i32,
        schema: iceberg::spec::SchemaRef,
        content: ManifestContentType,
    ) -> Result<ManifestWriter, ProduceError> {
        let spec = self
            .metadata
            .partition_spec_by_id(spec_id)
            .ok_or(ProduceError::UnknownSpec(spec_id))?
            .as_ref()
            .clone();
        let path = format!(
            "{}/metadata/{}-m{}.avro",
            self.metadata.location(),
            self.commit_uuid,
            self.written.len()
        );
        let output = self.table.file_io().new_output(&path)?;
        self.written.push(path);
        let builder = ManifestWriterBuilder::new(output, Some(self.snapshot_id), schema, spec);
        Ok(match (self.metadata.format_version(), content) {
            (FormatVersion::V1, _) => builder.build_v1(),
            (_, ManifestContentType::Data) => builder.build_v2_data(),
            (_, ManifestContentType::Deletes) => builder.build_v2_deletes(),
        })
    }
}

/// Stages `change` on top of the snapshot `base` was read from.
pub async fn stage(table: &Table, base: &Inventory, change: &Change) -> Result<Staged, ProduceError> {
    let current = table.metadata().current_snapshot_id();
    if base.snapshot_id() != current {
        return Err(ProduceError::StaleBase { inventory: base.snapshot_id(), current });
    }
    match change {
        Change::Snapshot(c) => stage_snapshot(table, base, c).await,
        Change::ExpireSnapshots { snapshot_ids, refs } => stage_expiry(table, base, snapshot_ids, refs),
        Change::RewriteManifests(r) => stage_manifest_rewrite(table, base, r).await,
    }
}

/// Removes snapshots, their statistics entries and the given refs; writes no file but the metadata.
fn stage_expiry(
    table: &Table,
    base: &Inventory,
    snapshot_ids: &[i64],
    refs: &[String],
) -> Result<Staged, ProduceError> {
    let metadata = table.metadata();
    let current = metadata.current_snapshot_id();
    if let Some(id) = snapshot_ids.iter().find(|id| Some(**id) == current) {
        return Err(ProduceError::Iceberg(iceberg::Error::new(
            iceberg::ErrorKind::DataInvalid,
            format!("refusing to expire the current snapshot {id}"),
        )));
    }
    let mut builder = metadata.clone().into_builder(Some(table.metadata_location_result()?.to_string()));
    for name in refs.iter().filter(|r| r.as_str() != MAIN_BRANCH) {
        builder = builder.remove_ref(name);
    }
    for id in snapshot_ids {
        builder = builder.remove_statistics(*id).remove_partition_statistics(*id);
    }
    let next = builder.remove_snapshots(snapshot_ids).build()?.metadata;
    Ok(Staged {
        snapshot_id: current.unwrap_or_default(),
        expired: snapshot_ids.to_vec(),
        metadata: next,
        written: Vec::new(),
        summary: HashMap::new(),
        inventory: base.clone(),
    })
}

async fn stage_snapshot(
    table: &Table,
    base: &Inventory,
    change: &SnapshotChange,
) -> Result<Staged, ProduceError> {
    let metadata = table.metadata();
    if metadata.format_version() > FormatVersion::V2 {
        return Err(ProduceError::UnsupportedFormat(metadata.format_version().to_string()));
    }
    let found: HashSet<&str> = base
        .data
        .iter()
        .chain(&base.deletes)
        .map(|f| f.path())
        .filter(|p| change.remove.contains(*p))
        .collect();
    if let Some(missing) = change.remove.iter().find(|p| !found.contains(p.as_str())) {
        return Err(ProduceError::NotLive(missing.clone()));
    }
    let snapshot_id = unique_snapshot_id(metadata);
    let sequence_number = metadata.next_sequence_number();
    let mut w =
        Writers { table, metadata, snapshot_id, commit_uuid: uuid::Uuid::now_v7(), written: Vec::new() };
    let mut summary = SnapshotSummaryCollector::default();
    let mut out = Listed {
        manifests: Vec::with_capacity(base.manifests.len() + 1),
        entries: Vec::with_capacity(base.manifests.len() + 1),
    };
    carry_and_rewrite(&mut w, base, change, &mut summary, &mut out).await?;
    write_added(&mut w, change, sequence_number, &mut summary, &mut out).await?;

    let mut properties = summary.build();
    add_totals(base.snapshot.as_ref().map(|s| &s.summary().additional_properties), &mut properties);
    properties.extend(change.summary.clone());
    let new = NewSnapshot { snapshot_id, sequence_number, operation: change.operation.clone(), properties };
    finish(table, base, w, new, out.manifests, out.entries).await
}

/// The new snapshot's manifests and, in the same order, their live entries.
struct Listed {
    manifests: Vec<ManifestFile>,
    entries: Vec<Vec<ManifestEntryRef>>,
}

/// The base's manifests into `out`: carried as they are when the change removes none of their files,
/// otherwise rewritten (removed files as DELETED, the others EXISTING with their snapshot id and
/// sequence numbers).
async fn carry_and_rewrite(
    w: &mut Writers<'_>,
    base: &Inventory,
    change: &SnapshotChange,
    summary: &mut SnapshotSummaryCollector,
    out: &mut Listed,
) -> Result<(), ProduceError> {
    // All rewritten entries of one spec and content type go into one new manifest: inputs committed by
    // thousands of fast-appends sit in thousands of one-entry manifests, which must not each be rewritten.
    let mut rewrites: BTreeMap<(i32, bool, Option<i32>), Rewrite> = BTreeMap::new();
    for (manifest, live) in base.manifests.iter().zip(&base.entries) {
        if live.is_empty() {
            // Only DELETED entries: informational for the snapshot that wrote them; not carried.
            continue;
        }
        if !live.iter().any(|e| change.remove.contains(e.file_path())) {
            out.manifests.push(manifest.clone());
            out.entries.push(live.clone());
            continue;
        }
        let (schema, spec) = writer_schema(w.table, manifest, live).await?;
        // Entries typed by an older schema (a promoted partition source) stay with that schema.
        let own_schema = (schema.schema_id() != w.metadata.current_schema_id()).then(|| schema.schema_id());
        let key = (manifest.partition_spec_id, manifest.content == ManifestContentType::Deletes, own_schema);
        let r = match rewrites.entry(key) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let writer = w.new_manifest(manifest.partition_spec_id, schema.clone(), manifest.content)?;
                v.insert(Rewrite { writer, schema, spec, kept: Vec::new() })
            }
        };
        for entry in live {
            let data_seq = entry.sequence_number().unwrap_or(0);
            let file_seq = entry.file_sequence_number.or(Some(data_seq));
            if change.remove.contains(entry.file_path()) {
                summary.remove_file(entry.data_file(), r.schema.clone(), r.spec.clone());
                r.writer.add_delete_file(entry.data_file().clone(), data_seq, file_seq)?;
            } else {
                let added_by = entry.snapshot_id().unwrap_or(w.snapshot_id);
                r.writer.add_existing_file(entry.data_file().clone(), added_by, data_seq, file_seq)?;
                r.kept.push(Arc::clone(entry));
            }
        }
    }
    for (_, r) in rewrites {
        out.manifests.push(r.writer.write_manifest_file().await?);
        out.entries.push(r.kept);
    }
    Ok(())
}

/// The change's new files into `out`: one ADDED manifest per spec, entries carrying the change's data
/// sequence number when it has one (a rewrite's starting one), else the new snapshot's.
async fn write_added(
    w: &mut Writers<'_>,
    change: &SnapshotChange,
    sequence_number: i64,
    summary: &mut SnapshotSummaryCollector,
    out: &mut Listed,
) -> Result<(), ProduceError> {
    let mut by_spec: BTreeMap<i32, Vec<&AddedFile>> = BTreeMap::new();
    for added in &change.add {
        by_spec.entry(added.spec_id).or_default().push(added);
    }
    let schema = w.metadata.current_schema().clone();
    for (spec_id, files) in by_spec {
        let spec =
            w.metadata.partition_spec_by_id(spec_id).ok_or(ProduceError::UnknownSpec(spec_id))?.clone();
        let mut writer = w.new_manifest(spec_id, schema.clone(), ManifestContentType::Data)?;
        let seq = change.added_data_sequence_number.unwrap_or(-1);
        let mut added_entries = Vec::with_capacity(files.len());
        for added in files {
            summary.add_file(&added.file, schema.clone(), spec.clone());
            writer.add_file(added.file.clone(), seq)?;
            added_entries.push(Arc::new(ManifestEntry {
                status: ManifestStatus::Added,
                snapshot_id: Some(w.snapshot_id),
                sequence_number: Some(if seq >= 0 { seq } else { sequence_number }),
                file_sequence_number: Some(sequence_number),
                data_file: added.file.clone(),
            }));
        }
        out.manifests.push(writer.write_manifest_file().await?);
        out.entries.push(added_entries);
    }
    Ok(())
}

/// The snapshot a staging writes, with its summary.
struct NewSnapshot {
    snapshot_id: i64,
    sequence_number: i64,
    operation: Operation,
    properties: HashMap<String, String>,
}

/// Writes the manifest list of `manifests` and stages the next metadata with the new snapshot as
/// `main` (main's retention settings kept).
async fn finish(
    table: &Table,
    base: &Inventory,
    mut w: Writers<'_>,
    new: NewSnapshot,
    manifests: Vec<ManifestFile>,
    entries: Vec<Vec<ManifestEntryRef>>,
) -> Result<Staged, ProduceError> {
    let metadata = table.metadata();
    let NewSnapshot { snapshot_id, sequence_number, operation, properties } = new;
    let list_path = format!("{}/metadata/snap-{snapshot_id}-1-{}.avro", metadata.location(), w.commit_uuid);
    let parent = base.snapshot_id();
    let out = table.file_io().new_output(&list_path)?;
    w.written.push(list_path.clone());
    let mut list = match metadata.format_version() {
        FormatVersion::V1 => ManifestListWriter::v1(out.writer().await?, snapshot_id, parent),
        _ => ManifestListWriter::v2(out.writer().await?, snapshot_id, parent, sequence_number),
    };
    list.add_manifests(manifests.iter().cloned())?;
    list.close().await?;

    // Wall-clock time on purpose, not the injected `Clock`: snapshot timestamps are ordered against
    // every other writer's, and a simulated clock (tests run days ahead) would break that order.
    let now_ms = chrono::Utc::now().timestamp_millis().max(metadata.last_updated_ms());
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent)
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(now_ms)
        .with_manifest_list(list_path)
        .with_summary(Summary { operation, additional_properties: properties.clone() })
        .with_schema_id(metadata.current_schema_id())
        .build();
    let current_location = table.metadata_location_result()?.to_string();
    let next = metadata
        .clone()
        .into_builder(Some(current_location))
        .set_branch_snapshot(snapshot, MAIN_BRANCH)?
        .build()?
        .metadata;
    let new_snapshot = next.snapshot_by_id(snapshot_id).cloned();
    let inventory = derived_inventory(new_snapshot, manifests, entries, snapshot_id, sequence_number);
    Ok(Staged {
        snapshot_id,
        expired: Vec::new(),
        metadata: next,
        written: w.written,
        summary: properties,
        inventory,
    })
}

/// The data manifests of `base` as the manifest planner sees them, and the index of each in
/// `base.manifests`. A partition's key is its label (time-ordered for time transforms) followed by
/// its typed value, so two partitions that print alike never share a key.
pub async fn manifest_inputs(
    table: &Table,
    base: &Inventory,
) -> Result<(Vec<usize>, Vec<ManifestInput>), ProduceError> {
    let metadata = table.metadata();
    let schema = metadata.current_schema();
    let (mut index, mut inputs) = (Vec::new(), Vec::new());
    for (i, (manifest, live)) in base.manifests.iter().zip(&base.entries).enumerate() {
        if manifest.content != ManifestContentType::Data {
            continue;
        }
        let spec_id = manifest.partition_spec_id;
        let spec = metadata.partition_spec_by_id(spec_id).ok_or(ProduceError::UnknownSpec(spec_id))?;
        // Entries typed by an older schema (a promoted partition source) stay with that schema.
        let own_schema = if live.is_empty() {
            None
        } else {
            let (written, _) = writer_schema(table, manifest, live).await?;
            (written.schema_id() != metadata.current_schema_id()).then(|| written.schema_id())
        };
        let partitions = live
            .iter()
            .map(|e| {
                let value = super::partition::coerce(spec, schema, e.data_file().partition());
                format!("{}\u{0}{value:?}", super::partition::label(spec, schema, &value))
            })
            .collect();
        index.push(i);
        inputs.push(ManifestInput {
            group: (spec_id, own_schema),
            length: u64::try_from(manifest.manifest_length).unwrap_or(0),
            partitions,
        });
    }
    Ok((index, inputs))
}

/// Stages a `replace` snapshot whose data manifests are `base`'s live data entries, clustered by
/// partition into new manifests as EXISTING entries keeping their snapshot id and both sequence
/// numbers; delete manifests are kept as they are. No file is added or removed: the summary's totals
/// are the parent's.
async fn stage_manifest_rewrite(
    table: &Table,
    base: &Inventory,
    rewrite: &ManifestRewrite,
) -> Result<Staged, ProduceError> {
    let metadata = table.metadata();
    if metadata.format_version() > FormatVersion::V2 {
        return Err(ProduceError::UnsupportedFormat(metadata.format_version().to_string()));
    }
    let (index, inputs) = manifest_inputs(table, base).await?;
    let plan = manifest_plan::plan(&inputs, rewrite.thresholds);
    let snapshot_id = unique_snapshot_id(metadata);
    let sequence_number = metadata.next_sequence_number();
    let mut w =
        Writers { table, metadata, snapshot_id, commit_uuid: uuid::Uuid::now_v7(), written: Vec::new() };
    let v1 = metadata.format_version() == FormatVersion::V1;
    let (mut manifests, mut entries) = (Vec::new(), Vec::new());
    let mut processed = 0;
    for planned in &plan.planned {
        let first = index[planned.entries[0].0];
        let (schema, _) = writer_schema(table, &base.manifests[first], &base.entries[first]).await?;
        let mut writer = w.new_manifest(planned.group.0, schema, ManifestContentType::Data)?;
        let mut kept = Vec::with_capacity(planned.entries.len());
        for &(i, e) in &planned.entries {
            let existing = existing_entry(&base.entries[index[i]][e], v1)?;
            let (data_seq, file_seq) = (existing.sequence_number.unwrap_or(0), existing.file_sequence_number);
            let added_by = existing.snapshot_id.unwrap_or_default();
            writer.add_existing_file(existing.data_file.clone(), added_by, data_seq, file_seq)?;
            kept.push(Arc::new(existing));
        }
        processed += kept.len();
        manifests.push(writer.write_manifest_file().await?);
        entries.push(kept);
    }
    // Delete manifests stay as they are: every delete entry keeps its manifest, status and numbers.
    let mut delete_manifests = 0;
    for (manifest, live) in base.manifests.iter().zip(&base.entries) {
        if manifest.content == ManifestContentType::Deletes {
            delete_manifests += 1;
            manifests.push(manifest.clone());
            entries.push(live.clone());
        }
    }
    let mut properties = HashMap::new();
    add_totals(base.snapshot.as_ref().map(|s| &s.summary().additional_properties), &mut properties);
    // Iceberg Java's RewriteManifests summary keys.
    for (key, value) in [
        ("manifests-created", plan.planned.len()),
        ("manifests-replaced", plan.manifests_before),
        ("manifests-kept", delete_manifests),
        ("entries-processed", processed),
    ] {
        properties.insert(key.to_string(), value.to_string());
    }
    properties.extend(rewrite.summary.clone());
    let new = NewSnapshot { snapshot_id, sequence_number, operation: Operation::Replace, properties };
    finish(table, base, w, new, manifests, entries).await
}

/// `entry` as an EXISTING entry with its snapshot id and both sequence numbers (v1 entries have none
/// and read as 0; an old v2 entry without a file sequence number takes its data sequence number, the
/// writer requiring one). An entry missing what it must carry is an error, never a guess.
fn existing_entry(entry: &ManifestEntry, v1: bool) -> Result<ManifestEntry, ProduceError> {
    let missing = |what: &str| {
        ProduceError::Iceberg(iceberg::Error::new(
            iceberg::ErrorKind::DataInvalid,
            format!("manifest entry of {} has no {what}", entry.file_path()),
        ))
    };
    let snapshot_id = entry.snapshot_id().ok_or_else(|| missing("snapshot id"))?;
    let data_seq = match entry.sequence_number() {
        Some(seq) => seq,
        None if v1 => 0,
        None => return Err(missing("data sequence number")),
    };
    Ok(ManifestEntry {
        status: ManifestStatus::Existing,
        snapshot_id: Some(snapshot_id),
        sequence_number: Some(data_seq),
        file_sequence_number: Some(entry.file_sequence_number.unwrap_or(data_seq)),
        data_file: entry.data_file().clone(),
    })
}

/// The inventory of the staged snapshot, with the sequence numbers the manifest-list writer assigns to
/// new manifests (0 in format v1, which has none).
fn derived_inventory(
    snapshot: Option<iceberg::spec::SnapshotRef>,
    mut manifests: Vec<ManifestFile>,
    entries: Vec<Vec<ManifestEntryRef>>,
    snapshot_id: i64,
    sequence_number: i64,
) -> Inventory {
    let mut inventory = Inventory { snapshot, ..Default::default() };
    for (index, (manifest, live)) in manifests.iter_mut().zip(&entries).enumerate() {
        if manifest.added_snapshot_id == snapshot_id {
            if manifest.sequence_number == UNASSIGNED_SEQUENCE_NUMBER {
                manifest.sequence_number = sequence_number;
            }
            if manifest.min_sequence_number == UNASSIGNED_SEQUENCE_NUMBER {
                manifest.min_sequence_number = sequence_number;
            }
        }
        for entry in live {
            let file =
                LiveFile { entry: Arc::clone(entry), spec_id: manifest.partition_spec_id, manifest: index };
            match manifest.content {
                ManifestContentType::Data => inventory.data.push(file),
                ManifestContentType::Deletes => inventory.deletes.push(file),
            }
        }
    }
    inventory.manifests = manifests;
    inventory.entries = entries;
    inventory
}

/// One new manifest collecting the rewritten entries of one spec and content type.
struct Rewrite {
    writer: ManifestWriter,
    schema: iceberg::spec::SchemaRef,
    spec: iceberg::spec::PartitionSpecRef,
    kept: Vec<ManifestEntryRef>,
}

/// The schema and spec to write a rewritten manifest with: the table's current schema when the spec
/// binds to it and the entries' partition values have the types it gives them (no read needed), else
/// the schema the old manifest was written with (e.g. `int` values of a source since promoted to
/// `long`, which iceberg's summary code cannot take with the `long` type: it panics).
async fn writer_schema(
    table: &Table,
    manifest: &ManifestFile,
    live: &[ManifestEntryRef],
) -> Result<(iceberg::spec::SchemaRef, iceberg::spec::PartitionSpecRef), ProduceError> {
    let metadata = table.metadata();
    let spec = metadata
        .partition_spec_by_id(manifest.partition_spec_id)
        .ok_or(ProduceError::UnknownSpec(manifest.partition_spec_id))?
        .clone();
    let schema = metadata.current_schema().clone();
    if spec.partition_type(&schema).is_ok()
        && live.iter().all(|e| super::partition::is_typed_as(&spec, &schema, e.data_file().partition()))
    {
        return Ok((schema, spec));
    }
    let loaded = super::manifests::load(table.file_io(), manifest).await?;
    Ok((loaded.metadata().schema().clone(), Arc::new(loaded.metadata().partition_spec().clone())))
}

/// `total-*` = previous total + added − removed, for each total the previous snapshot had (a total the
/// parent lacked cannot be computed and is left out, as Iceberg Java does).
fn add_totals(previous: Option<&HashMap<String, String>>, props: &mut HashMap<String, String>) {
    const TOTALS: [(&str, &str, &str); 6] = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        ("total-delete-files", "added-delete-files", "removed-delete-files"),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        ("total-position-deletes", "added-position-deletes", "removed-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes", "removed-equality-deletes"),
    ];
    let get = |m: &HashMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<i64>().ok());
    for (total, added, removed) in TOTALS {
        let base = match previous {
            Some(prev) => match get(prev, total) {
                Some(v) => v,
                None => continue,
            },
            None => 0,
        };
        let value = base + get(props, added).unwrap_or(0) - get(props, removed).unwrap_or(0);
        props.insert(total.to_string(), value.max(0).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn totals_for_a_replace_keep_records() {
        let prev =
            map(&[("total-data-files", "10"), ("total-records", "1000"), ("total-files-size", "5000")]);
        let mut props = map(&[
            ("added-data-files", "1"),
            ("deleted-data-files", "8"),
            ("added-records", "800"),
            ("deleted-records", "800"),
            ("added-files-size", "3000"),
            ("removed-files-size", "4000"),
        ]);
        add_totals(Some(&prev), &mut props);
        assert_eq!(props["total-data-files"], "3");
        assert_eq!(props["total-records"], "1000");
        assert_eq!(props["total-files-size"], "4000");
        assert!(!props.contains_key("total-delete-files"), "parent lacked it");
    }

    #[test]
    fn totals_without_parent_start_at_zero() {
        let mut props = map(&[("added-data-files", "2"), ("added-records", "20")]);
        add_totals(None, &mut props);
        assert_eq!(props["total-data-files"], "2");
        assert_eq!(props["total-records"], "20");
        assert_eq!(props["total-delete-files"], "0");
    }
}
