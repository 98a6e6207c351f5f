//! Planning a rewrite of a snapshot's data manifests (Iceberg's `RewriteManifests`), pure: no IO.
//!
//! A table SignalDB writes every few seconds gains one manifest per fast-append, each holding the
//! files of one commit. Every scan plan reads the manifest list and then every manifest whose
//! partition summary may match, so thousands of small manifests make planning slow in every engine.
//! The rewrite moves every live data entry, unchanged (EXISTING, same snapshot id and sequence
//! numbers), into new manifests clustered by partition spec and partition.
//!
//! Terms:
//! - *group*: a partition spec id plus, for entries still typed by an older schema, that schema's id.
//!   Entries of two groups never share a manifest (a manifest has one spec and one schema).
//! - *scatter*: summed over the snapshot's manifests, the number of distinct partitions each holds,
//!   i.e. summed over partitions, the number of manifests a scan of that partition must read.
//!
//! Triggers (Iceberg table properties, Iceberg Java's defaults):
//! - `too_many_manifests`: more than `commit.manifest.min-count-to-merge` (100) data manifests, and
//!   the rewrite would leave fewer;
//! - `scattered_partitions`: the rewrite would cut the scatter by more than half and by more than
//!   `commit.manifest.min-count-to-merge` (manifests that each mix many partitions).
//!
//! A rewritten layout triggers neither again (a new plan of it gives the same manifests, hence the
//! same count and scatter), so a table is rewritten once per burst of commits, not every pass. (Only
//! a table with more than `min-count-to-merge` manifests after a rewrite, i.e. hundreds of MiB of
//! manifests, may be merged once or twice more as its estimate converges.)
//!
//! The number of output manifests of a group is the group's current manifest bytes divided by
//! `commit.manifest.target-size-bytes` (8 MiB), rounded up, as Iceberg Java's rewrite action
//! estimates it; entries are split evenly in partition order. Manifests of one-entry fast-appends are
//! mostly header, so outputs come out smaller than the target, never larger.

use std::collections::{BTreeMap, BTreeSet};

/// The Iceberg property naming the manifest count above which manifests are merged.
pub const MIN_COUNT_TO_MERGE: &str = "commit.manifest.min-count-to-merge";
/// The Iceberg property naming the target size of a manifest.
pub const TARGET_SIZE_BYTES: &str = "commit.manifest.target-size-bytes";
/// Iceberg Java's defaults of those properties.
pub const DEFAULT_MIN_COUNT_TO_MERGE: usize = 100;
pub const DEFAULT_TARGET_SIZE_BYTES: u64 = 8 * 1024 * 1024;

/// A group: partition spec id, and the id of the older schema its entries are typed by (if any).
pub type Group = (i32, Option<i32>);

/// One data manifest of the snapshot, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInput {
    pub group: Group,
    /// Bytes of the manifest file.
    pub length: u64,
    /// A key of each live entry's partition (equal keys: the same partition), in entry order. Empty:
    /// the manifest holds only DELETED entries and is dropped.
    pub partitions: Vec<String>,
}

/// The table's thresholds (from its properties, else Iceberg's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub min_count_to_merge: usize,
    pub target_size_bytes: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_count_to_merge: DEFAULT_MIN_COUNT_TO_MERGE,
            target_size_bytes: DEFAULT_TARGET_SIZE_BYTES,
        }
    }
}

/// One manifest of the new layout: its entries as (input index, entry index), in partition order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub group: Group,
    pub entries: Vec<(usize, usize)>,
}

/// Why a rewrite is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    TooManyManifests,
    ScatteredPartitions,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::TooManyManifests => "too_many_manifests",
            Trigger::ScatteredPartitions => "scattered_partitions",
        }
    }
}

/// The current layout's figures, the planned layout, and whether a rewrite is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPlan {
    /// Data manifests in the snapshot's manifest list.
    pub manifests_before: usize,
    pub planned: Vec<Planned>,
    pub scatter_before: usize,
    pub scatter_after: usize,
    pub trigger: Option<Trigger>,
}

/// Plans the clustered layout of `inputs` and decides whether it is due under `t`.
pub fn plan(inputs: &[ManifestInput], t: Thresholds) -> ManifestPlan {
    let planned = layout(inputs, t.target_size_bytes);
    let scatter_before = inputs.iter().map(|m| distinct(m.partitions.iter())).sum();
    let scatter_after =
        planned.iter().map(|p| distinct(p.entries.iter().map(|&(i, e)| &inputs[i].partitions[e]))).sum();
    let before = inputs.len();
    let trigger = if before > t.min_count_to_merge && planned.len() < before {
        Some(Trigger::TooManyManifests)
    } else if scatter_before > 2 * scatter_after && scatter_before - scatter_after > t.min_count_to_merge {
        Some(Trigger::ScatteredPartitions)
    } else {
        None
    };
    ManifestPlan { manifests_before: before, planned, scatter_before, scatter_after, trigger }
}

fn distinct<'a>(keys: impl Iterator<Item = &'a String>) -> usize {
    keys.collect::<BTreeSet<_>>().len()
}

/// Every live entry, per group sorted by partition (then by where it was, for a stable order), cut
/// into `ceil(group bytes / target)` manifests of equal entry counts.
fn layout(inputs: &[ManifestInput], target: u64) -> Vec<Planned> {
    // Per group: its manifests' bytes, and its entries as (partition key, input index, entry index).
    type Keyed<'a> = (u64, Vec<(&'a str, usize, usize)>);
    let mut groups: BTreeMap<Group, Keyed<'_>> = BTreeMap::new();
    for (i, m) in inputs.iter().enumerate().filter(|(_, m)| !m.partitions.is_empty()) {
        let (bytes, entries) = groups.entry(m.group).or_default();
        *bytes += m.length;
        entries.extend(m.partitions.iter().enumerate().map(|(e, p)| (p.as_str(), i, e)));
    }
    let mut out = Vec::new();
    for (group, (bytes, mut entries)) in groups {
        entries.sort_unstable();
        let count = bytes.div_ceil(target.max(1)).clamp(1, entries.len() as u64) as usize;
        let per = entries.len().div_ceil(count);
        out.extend(
            entries
                .chunks(per)
                .map(|chunk| Planned { group, entries: chunk.iter().map(|&(_, i, e)| (i, e)).collect() }),
        );
    }
    out
}

/// A table's thresholds from its properties. Values that do not parse (or a target below 1 KiB) fall
/// back to Iceberg's defaults: these are Iceberg's properties, shared with other writers, not ours to
/// refuse.
pub fn thresholds(props: &std::collections::HashMap<String, String>) -> Thresholds {
    let d = Thresholds::default();
    let min_count_to_merge =
        props.get(MIN_COUNT_TO_MERGE).and_then(|v| v.trim().parse().ok()).unwrap_or(d.min_count_to_merge);
    let target_size_bytes = props
        .get(TARGET_SIZE_BYTES)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|b| *b >= 1024)
        .unwrap_or(d.target_size_bytes);
    Thresholds { min_count_to_merge, target_size_bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(group: i32, length: u64, parts: &[&str]) -> ManifestInput {
        ManifestInput {
            group: (group, None),
            length,
            partitions: parts.iter().map(|p| p.to_string()).collect(),
        }
    }

    const T: Thresholds = Thresholds { min_count_to_merge: 3, target_size_bytes: 1000 };

    #[test]
    fn fast_appends_above_the_count_are_clustered_by_partition() {
        let inputs = vec![m(0, 300, &["h2"]), m(0, 300, &["h1"]), m(0, 300, &["h2"]), m(0, 300, &["h1"])];
        let p = plan(&inputs, T);
        assert_eq!(p.trigger, Some(Trigger::TooManyManifests));
        // 1,200 bytes at a 1,000-byte target: two manifests, h1's entries first.
        assert_eq!(
            p.planned,
            vec![
                Planned { group: (0, None), entries: vec![(1, 0), (3, 0)] },
                Planned { group: (0, None), entries: vec![(0, 0), (2, 0)] },
            ]
        );
        assert_eq!((p.scatter_before, p.scatter_after), (4, 2));
    }

    #[test]
    fn at_or_below_the_count_nothing_is_due() {
        let inputs = vec![m(0, 300, &["h2"]), m(0, 300, &["h1"]), m(0, 300, &["h2"])];
        assert_eq!(plan(&inputs, T).trigger, None);
    }

    #[test]
    fn specs_never_share_a_manifest_and_deleted_only_manifests_are_dropped() {
        let inputs =
            vec![m(0, 10, &["a"]), m(1, 10, &["a"]), m(0, 10, &[]), m(1, 10, &["b"]), m(0, 10, &["b"])];
        let p = plan(&inputs, T);
        assert_eq!(
            p.planned,
            vec![
                Planned { group: (0, None), entries: vec![(0, 0), (4, 0)] },
                Planned { group: (1, None), entries: vec![(1, 0), (3, 0)] },
            ]
        );
        assert_eq!(p.trigger, Some(Trigger::TooManyManifests));
    }

    #[test]
    fn few_manifests_mixing_many_partitions_are_scattered() {
        let parts: Vec<String> = (0..10).map(|h| format!("h{h:02}")).collect();
        let all: Vec<&str> = parts.iter().map(String::as_str).collect();
        let inputs = vec![m(0, 100, &all), m(0, 100, &all), m(0, 100, &all)];
        let p = plan(&inputs, T);
        assert_eq!((p.scatter_before, p.scatter_after, p.planned.len()), (30, 10, 1));
        assert_eq!(p.trigger, Some(Trigger::ScatteredPartitions));
        // A scan of one partition reads 3 manifests instead of 1: 20 more reads in all, not more than a
        // threshold of 20.
        assert_eq!(plan(&inputs, Thresholds { min_count_to_merge: 20, ..T }).trigger, None);
        // Halving is not enough: two such manifests (not more than the count) stay.
        assert_eq!(plan(&inputs[..2], T).trigger, None);
    }

    #[test]
    fn thresholds_come_from_the_table_properties_or_icebergs_defaults() {
        let props =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(thresholds(&props(&[])), Thresholds::default());
        assert_eq!(
            thresholds(&props(&[(MIN_COUNT_TO_MERGE, "10"), (TARGET_SIZE_BYTES, "4096")])),
            Thresholds { min_count_to_merge: 10, target_size_bytes: 4096 }
        );
        assert_eq!(
            thresholds(&props(&[(MIN_COUNT_TO_MERGE, "many"), (TARGET_SIZE_BYTES, "12")])),
            Thresholds::default()
        );
    }

    fn inputs() -> impl Strategy<Value = Vec<ManifestInput>> {
        let manifest =
            (0..3i32, proptest::option::of(0..2i32), 1..5000u64, proptest::collection::vec(0..12u8, 0..8))
                .prop_map(|(spec, schema, length, parts)| ManifestInput {
                    group: (spec, schema),
                    length,
                    partitions: parts.into_iter().map(|p| format!("p{p:02}")).collect(),
                });
        proptest::collection::vec(manifest, 0..60)
    }

    proptest! {
        /// Every live entry lands in exactly one new manifest, of its own group; and the planned
        /// layout, planned again, is due for nothing.
        #[test]
        fn the_layout_is_a_permutation_of_the_live_entries_and_is_stable(
            inputs in inputs(), min_count in 0..10usize, target in 1..20_000u64
        ) {
            let t = Thresholds { min_count_to_merge: min_count, target_size_bytes: target };
            let p = plan(&inputs, t);
            let mut seen: Vec<(usize, usize)> = p.planned.iter().flat_map(|m| m.entries.clone()).collect();
            seen.sort_unstable();
            let mut live: Vec<(usize, usize)> = inputs
                .iter()
                .enumerate()
                .flat_map(|(i, m)| (0..m.partitions.len()).map(move |e| (i, e)))
                .collect();
            live.sort_unstable();
            prop_assert_eq!(seen, live);
            for planned in &p.planned {
                prop_assert!(!planned.entries.is_empty());
                prop_assert!(planned.entries.iter().all(|&(i, _)| inputs[i].group == planned.group));
            }
            // The rewritten layout as the next pass sees it (manifests of the target size), planned
            // again: the same manifests, nothing is due.
            let rewritten: Vec<ManifestInput> = p
                .planned
                .iter()
                .map(|planned| ManifestInput {
                    group: planned.group,
                    length: target,
                    partitions: planned.entries.iter().map(|&(i, e)| inputs[i].partitions[e].clone()).collect(),
                })
                .collect();
            let again = plan(&rewritten, t);
            prop_assert_eq!(again.trigger, None, "{:?} -> {:?}", p, again);
            prop_assert_eq!(again.planned.len(), p.planned.len());
        }
    }
}
