//! Retention planning, pure: cutoffs, which partitions and files have expired, which snapshots expire.
//!
//! Terms: a table's *cutoff* is `now − retention − grace_period` (UTC; `None` when kept forever). A
//! partition with a time range is *expired* when its whole range ends at or before the cutoff (a
//! partition straddling the cutoff is kept whole). A data file of a partition without a time range is
//! expired when its recorded upper bound on the `timestamp` column is at or before the cutoff; a file
//! with no usable bound is *unclassifiable* and kept. Delete files go with an expired partition and are
//! otherwise kept. Anything uncertain is kept.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use iceberg::spec::{SnapshotReference, SnapshotRetention, TableMetadata};
use serde::Serialize;

use crate::config::RetentionValue;
use crate::table::partition::TimeRange;

/// `now − retention − grace`, or `None` for data kept forever.
pub fn cutoff(now: DateTime<Utc>, retention: RetentionValue, grace: Duration) -> Option<DateTime<Utc>> {
    match retention {
        RetentionValue::Forever => None,
        RetentionValue::For(keep) => {
            let total = chrono::Duration::from_std(keep.saturating_add(grace)).ok()?;
            now.checked_sub_signed(total)
        }
    }
}

/// One live file as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFacts {
    pub path: String,
    pub size: u64,
    pub records: u64,
    pub is_delete_file: bool,
    /// Human partition label (`timestamp_hour=2026-01-15-10`).
    pub partition: String,
    /// The partition's time range, if its spec has a time field and the value is not null.
    pub range: Option<TimeRange>,
    /// Upper bound of the file's `timestamp` column, if recorded.
    pub max_timestamp: Option<DateTime<Utc>>,
}

/// An expired partition and what dropping it removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedPartition {
    pub partition: String,
    pub data_files: usize,
    pub delete_files: usize,
    pub bytes: u64,
    pub records: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DropPlan {
    pub partitions: Vec<DroppedPartition>,
    /// Indexes of data files dropped one by one (partitions without a time range).
    pub file_level: Vec<usize>,
    /// Indexes of every file to remove (partition drops and file-level drops).
    pub remove: Vec<usize>,
    /// Partitions (with a time range) and files (without) looked at.
    pub evaluated: usize,
    /// Data files without a time range or a usable bound: kept.
    pub unclassifiable: usize,
}

/// Decides what expired at `cutoff`.
pub fn plan_drops(files: &[FileFacts], cutoff: DateTime<Utc>) -> DropPlan {
    let mut plan = DropPlan::default();
    let mut by_partition: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        match (f.range, f.is_delete_file) {
            (Some(_), _) => by_partition.entry(f.partition.as_str()).or_default().push(i),
            (None, true) => {} // may apply to kept files: kept
            (None, false) => {
                plan.evaluated += 1;
                match f.max_timestamp {
                    Some(max) if max <= cutoff => {
                        plan.file_level.push(i);
                        plan.remove.push(i);
                    }
                    Some(_) => {}
                    None => plan.unclassifiable += 1,
                }
            }
        }
    }
    for (label, members) in by_partition {
        plan.evaluated += 1;
        // Every member's own range: two specs can print the same label for different ranges (a
        // field name reused for another transform), and the label alone must not drop both.
        let expired = members.iter().all(|&i| files[i].range.is_some_and(|r| r.end <= cutoff));
        if !expired {
            continue;
        }
        let (deletes, data): (Vec<usize>, Vec<usize>) =
            members.iter().partition(|&&i| files[i].is_delete_file);
        plan.partitions.push(DroppedPartition {
            partition: label.to_string(),
            data_files: data.len(),
            delete_files: deletes.len(),
            bytes: members.iter().map(|&i| files[i].size).sum(),
            records: data.iter().map(|&i| files[i].records).sum(),
        });
        plan.remove.extend(members);
    }
    plan.remove.sort_unstable();
    plan
}

/// How long snapshots are kept, after table properties override the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    pub min_snapshots_to_keep: u32,
    pub max_snapshot_age: Duration,
    /// Non-main refs older than this are removed (only when the table sets it).
    pub max_ref_age: Option<Duration>,
}

/// The table's expiry policy: `history.expire.*` properties where set, else the configuration.
/// `Err(reason)` when the table must not be expired (`gc.enabled=false`) or a property is invalid.
pub fn expiry_policy(md: &TableMetadata, keep: u32, max_age: Duration) -> Result<ExpiryPolicy, String> {
    let props = crate::table::properties::IcebergProperties::of(md);
    if !props.gc_enabled() {
        return Err("gc_disabled".into());
    }
    let history = props.history_expire().map_err(|key| format!("invalid_property:{key}"))?;
    let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
    Ok(ExpiryPolicy {
        min_snapshots_to_keep: history
            .min_snapshots_to_keep
            .map(|v| v.clamp(1, i64::from(u32::MAX)) as u32)
            .unwrap_or(keep),
        max_snapshot_age: history.max_snapshot_age_ms.map(ms).unwrap_or(max_age),
        max_ref_age: history.max_ref_age_ms.map(ms),
    })
}

/// Snapshots to expire and refs to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryPlan {
    pub expire: Vec<i64>,
    pub remove_refs: Vec<String>,
}

/// Keeps, per branch, its `min_snapshots_to_keep` newest ancestors and any ancestor newer than the
/// cutoff (walking stops at the first that is neither); keeps tag heads, the current snapshot, and
/// unreferenced snapshots newer than the cutoff. Refs (never `main`) older than `max_ref_age` are
/// removed first. Per-ref retention settings override the policy.
pub fn plan_expiry(
    md: &TableMetadata,
    refs: &BTreeMap<String, SnapshotReference>,
    policy: ExpiryPolicy,
    now: DateTime<Utc>,
) -> ExpiryPlan {
    let now_ms = now.timestamp_millis();
    let age_ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let timestamp = |id: i64| md.snapshot_by_id(id).map(|s| s.timestamp_ms());
    let mut remove_refs = Vec::new();
    let mut keep: HashSet<i64> = md.current_snapshot_id().into_iter().collect();
    let mut in_branches: HashSet<i64> = HashSet::new();
    for (name, reference) in refs {
        let head = reference.snapshot_id;
        let (ref_max_age, ref_min_keep, ref_snapshot_age) = match &reference.retention {
            SnapshotRetention::Branch { min_snapshots_to_keep, max_snapshot_age_ms, max_ref_age_ms } => {
                (*max_ref_age_ms, *min_snapshots_to_keep, *max_snapshot_age_ms)
            }
            SnapshotRetention::Tag { max_ref_age_ms } => (*max_ref_age_ms, None, None),
        };
        let max_ref_age = ref_max_age.map(|v| v.max(0)).or(policy.max_ref_age.map(age_ms));
        if name != "main"
            && let (Some(limit), Some(ts)) = (max_ref_age, timestamp(head))
            && now_ms.saturating_sub(ts) > limit
        {
            remove_refs.push(name.clone());
            continue;
        }
        match &reference.retention {
            SnapshotRetention::Tag { .. } => {
                keep.insert(head);
            }
            SnapshotRetention::Branch { .. } => {
                let min_keep =
                    ref_min_keep.map(|v| v.max(1) as usize).unwrap_or(policy.min_snapshots_to_keep as usize);
                let cutoff =
                    now_ms.saturating_sub(ref_snapshot_age.unwrap_or(age_ms(policy.max_snapshot_age)));
                let mut kept = 0usize;
                let mut retaining = true;
                let mut cursor = Some(head);
                while let Some(id) = cursor {
                    let Some(s) = md.snapshot_by_id(id) else { break };
                    in_branches.insert(id);
                    if retaining && (kept < min_keep || s.timestamp_ms() >= cutoff) {
                        keep.insert(id);
                        kept += 1;
                    } else {
                        retaining = false;
                    }
                    cursor = s.parent_snapshot_id();
                }
            }
        }
    }
    let cutoff = now_ms.saturating_sub(age_ms(policy.max_snapshot_age));
    for s in md.snapshots() {
        let id = s.snapshot_id();
        let tagged_head = keep.contains(&id);
        if !in_branches.contains(&id) && !tagged_head && s.timestamp_ms() >= cutoff {
            keep.insert(id); // unreferenced but young
        }
    }
    let mut expire: Vec<i64> =
        md.snapshots().map(|s| s.snapshot_id()).filter(|id| !keep.contains(id)).collect();
    expire.sort_unstable();
    ExpiryPlan { expire, remove_refs }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap()
    }

    #[test]
    fn cutoff_is_now_minus_retention_minus_grace_in_utc() {
        let now = utc(29, 12);
        let week = RetentionValue::For(Duration::from_secs(7 * 86_400));
        assert_eq!(cutoff(now, week, Duration::from_secs(3600)), Some(utc(22, 11)));
        assert_eq!(cutoff(now, RetentionValue::Forever, Duration::ZERO), None);
        // 2026-03-29 is Europe/Berlin's spring-forward day: the cutoff is an instant, computed in UTC,
        // so a local 23-hour day changes nothing.
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let local_now = berlin.with_ymd_and_hms(2026, 3, 29, 14, 0, 0).unwrap().with_timezone(&Utc);
        assert_eq!(local_now, now);
        assert_eq!(cutoff(local_now, week, Duration::from_secs(3600)), Some(utc(22, 11)));
    }

    /// Two specs that print the same label for different ranges (spec 0 `b: month(ts)` = "2026-03",
    /// spec 1 `b: identity(s)` with the string "2026-03" and a `year` field's range): only the file
    /// whose own range ended goes.
    #[test]
    fn a_label_two_specs_share_is_judged_file_by_file() {
        let month = hour_file("a", utc(1, 0), false);
        let mut year = hour_file("b", utc(1, 0), false);
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        year.range = Some(TimeRange { start, end: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap() });
        let plan = plan_drops(&[month, year], utc(20, 0));
        assert!(plan.remove.is_empty(), "the label's files are not all expired: {plan:?}");
        let plan =
            plan_drops(&[hour_file("a", utc(1, 0), false), hour_file("b", utc(1, 0), true)], utc(20, 0));
        assert_eq!(plan.remove, vec![0, 1], "one spec, one range: the partition goes with its deletes");
    }

    fn hour_file(path: &str, start: DateTime<Utc>, delete: bool) -> FileFacts {
        FileFacts {
            path: path.into(),
            size: 10,
            records: if delete { 0 } else { 5 },
            is_delete_file: delete,
            partition: format!("timestamp_hour={}", start.format("%Y-%m-%d-%H")),
            range: Some(TimeRange { start, end: start + chrono::Duration::hours(1) }),
            max_timestamp: None,
        }
    }

    #[test]
    fn only_partitions_wholly_before_the_cutoff_are_dropped() {
        let cut = utc(10, 12) + chrono::Duration::minutes(30);
        let files = vec![
            hour_file("a", utc(10, 10), false),
            hour_file("b", utc(10, 11), false),
            hour_file("b-del", utc(10, 11), true),
            hour_file("c", utc(10, 12), false), // straddles 12:30: kept whole
            hour_file("d", utc(10, 13), false),
        ];
        let plan = plan_drops(&files, cut);
        assert_eq!(plan.remove, vec![0, 1, 2]);
        assert_eq!(
            plan.partitions.iter().map(|p| p.partition.as_str()).collect::<Vec<_>>(),
            ["timestamp_hour=2026-03-10-10", "timestamp_hour=2026-03-10-11"]
        );
        assert_eq!((plan.partitions[1].data_files, plan.partitions[1].delete_files), (1, 1));
        assert_eq!(plan.evaluated, 4);
    }

    #[test]
    fn partitions_without_time_use_file_bounds_and_keep_the_unknown() {
        let plain = |path: &str, max: Option<DateTime<Utc>>, delete: bool| FileFacts {
            path: path.into(),
            size: 1,
            records: 1,
            is_delete_file: delete,
            partition: "region=eu".into(),
            range: None,
            max_timestamp: max,
        };
        let cut = utc(10, 12);
        let files = vec![
            plain("old", Some(utc(10, 11)), false),
            plain("edge", Some(cut), false),
            plain("new", Some(utc(10, 13)), false),
            plain("unknown", None, false),
            plain("deletes", None, true),
        ];
        let plan = plan_drops(&files, cut);
        assert_eq!(plan.remove, vec![0, 1]);
        assert_eq!(plan.file_level, vec![0, 1]);
        assert_eq!(plan.unclassifiable, 1);
        assert!(plan.partitions.is_empty());
    }

    /// V2 metadata with a chain of `n` snapshots (ids 1..=n, one hour apart ending at `last`), main at
    /// n, and extra refs.
    fn metadata(
        n: i64,
        last: DateTime<Utc>,
        extra_refs: serde_json::Value,
        props: serde_json::Value,
    ) -> TableMetadata {
        let snapshots: Vec<_> = (1..=n)
            .map(|id| {
                serde_json::json!({
                    "snapshot-id": id,
                    "parent-snapshot-id": if id > 1 { Some(id - 1) } else { None },
                    "sequence-number": id,
                    "timestamp-ms": (last - chrono::Duration::hours(n - id)).timestamp_millis(),
                    "manifest-list": format!("s3://b/t/metadata/snap-{id}.avro"),
                    "summary": {"operation": "append"},
                    "schema-id": 0
                })
            })
            .collect();
        let mut refs = serde_json::json!({"main": {"snapshot-id": n, "type": "branch"}});
        refs.as_object_mut().unwrap().extend(extra_refs.as_object().unwrap().clone());
        serde_json::from_value(serde_json::json!({
            "format-version": 2,
            "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
            "location": "s3://b/t",
            "last-sequence-number": n,
            "last-updated-ms": last.timestamp_millis(),
            "last-column-id": 1,
            "current-schema-id": 0,
            "schemas": [{"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "required": true, "type": "long"}]}],
            "default-spec-id": 0,
            "partition-specs": [{"spec-id": 0, "fields": []}],
            "last-partition-id": 999,
            "default-sort-order-id": 0,
            "sort-orders": [{"order-id": 0, "fields": []}],
            "properties": props,
            "current-snapshot-id": n,
            "snapshots": snapshots,
            "refs": refs,
            "snapshot-log": [],
            "metadata-log": []
        }))
        .unwrap()
    }

    fn policy(keep: u32, days: u64) -> ExpiryPolicy {
        ExpiryPolicy {
            min_snapshots_to_keep: keep,
            max_snapshot_age: Duration::from_secs(days * 86_400),
            max_ref_age: None,
        }
    }

    fn expire(md: &TableMetadata, p: ExpiryPolicy, now: DateTime<Utc>) -> ExpiryPlan {
        plan_expiry(md, &crate::table::refs(md).unwrap(), p, now)
    }

    #[test]
    fn keeps_recent_per_branch_and_tag_heads() {
        let last = utc(1, 12);
        let md = metadata(
            10,
            last,
            serde_json::json!({"audit": {"snapshot-id": 3, "type": "tag"}}),
            serde_json::json!({}),
        );
        // Ten days later every snapshot is older than 5 days: keep main's newest 2 and the tagged one.
        let plan = expire(&md, policy(2, 5), last + chrono::Duration::days(10));
        assert_eq!(plan.expire, vec![1, 2, 4, 5, 6, 7, 8]);
        assert!(plan.remove_refs.is_empty());
        // Right after: everything is younger than the age limit and kept.
        assert!(expire(&md, policy(2, 5), last).expire.is_empty());
        // Age keeps the newest 3 hours (ids 8, 9, 10 at 10:00, 11:00, 12:00) even with keep = 1.
        let hours = ExpiryPolicy { max_snapshot_age: Duration::from_secs(2 * 3600 + 60), ..policy(1, 0) };
        assert_eq!(expire(&md, hours, last).expire, vec![1, 2, 4, 5, 6, 7]);
    }

    #[test]
    fn branch_retention_and_ref_age_override_the_policy() {
        let last = utc(1, 12);
        let refs = serde_json::json!({
            "old-tag": {"snapshot-id": 2, "type": "tag", "max-ref-age-ms": 3_600_000},
            "dev": {"snapshot-id": 6, "type": "branch", "min-snapshots-to-keep": 3}
        });
        let md = metadata(10, last, refs, serde_json::json!({}));
        let plan = expire(&md, policy(1, 1), last + chrono::Duration::days(3));
        assert_eq!(plan.remove_refs, vec!["old-tag".to_string()]);
        // main keeps 10; dev keeps 6, 5, 4; the old tag's snapshot 2 is no longer protected.
        assert_eq!(plan.expire, vec![1, 2, 3, 7, 8, 9]);
    }

    #[test]
    fn table_properties_win_and_gc_disabled_refuses() {
        let md = metadata(
            3,
            utc(1, 12),
            serde_json::json!({}),
            serde_json::json!({
                "history.expire.min-snapshots-to-keep": "7",
                "history.expire.max-snapshot-age-ms": "1000"
            }),
        );
        assert_eq!(
            expiry_policy(&md, 2, Duration::from_secs(99)).unwrap(),
            ExpiryPolicy {
                min_snapshots_to_keep: 7,
                max_snapshot_age: Duration::from_secs(1),
                max_ref_age: None
            }
        );
        let off = metadata(3, utc(1, 12), serde_json::json!({}), serde_json::json!({"gc.enabled": "false"}));
        assert_eq!(expiry_policy(&off, 2, Duration::from_secs(99)), Err("gc_disabled".to_string()));
        let bad = metadata(
            3,
            utc(1, 12),
            serde_json::json!({}),
            serde_json::json!({"history.expire.max-snapshot-age-ms": "soon"}),
        );
        assert!(expiry_policy(&bad, 2, Duration::from_secs(99)).unwrap_err().starts_with("invalid_property"));
    }
}
