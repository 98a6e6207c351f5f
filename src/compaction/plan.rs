//! The compaction planner: pure, no IO. Given one table's partitions (their files and delete files, and
//! when each partition's time range ends), decide per partition what to rewrite, in groups of about
//! the target size, or why not.
//!
//! Terms: a *candidate* is a data file the planner picks, with the reason it was picked
//! ([`PickReason`]): smaller than the small-file threshold (`small`), larger than the maximum file size
//! (`oversized`: rewritten on its own into target-size files), one that delete files apply to
//! (`deletes`: rewritten with them applied), of an older partition spec when
//! `rewrite_to_current_spec` is on (`old_spec`), or any file under `--full` (`full`). Small candidates
//! *qualify* with at least `min_input_files` of them or together at least the target; an oversized file
//! or an old-spec partition qualifies on its own. A partition is *closed* once
//! `end + partition_lateness <= now`; partitions without a time range are treated as closed (they
//! cannot be told apart, and the commit path is safe against concurrent writers either way).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One data file as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInput {
    pub path: String,
    pub size: u64,
    pub records: u64,
    pub parquet: bool,
    /// Delete files (position or equality) that apply to this file and the rewrite can apply.
    pub deletes: usize,
    /// When the snapshot that added the file was committed, if the table still has it: how long the
    /// file has been waiting (compaction lag, debt order).
    pub added_at: Option<DateTime<Utc>>,
}

/// One partition of one spec.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionInput {
    pub label: String,
    /// End of the partition's time range, if it has one.
    pub end: Option<DateTime<Utc>>,
    pub files: Vec<FileInput>,
    /// Live delete files that may apply to this partition but cannot be applied by a rewrite (another
    /// spec's, an all-void spec's, or an equality delete iceberg's reader would not apply exactly to
    /// one of its files): the partition is left alone.
    pub delete_files: usize,
    /// Whether the partition belongs to the table's current (default) partition spec.
    pub current_spec: bool,
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub target_file_size: u64,
    pub small_file_threshold: u64,
    /// Files larger than this are split into target-size files (Iceberg Java's `max-file-size-bytes`).
    pub max_file_size: u64,
    /// Rewrite every file of an older partition spec under the current spec.
    pub rewrite_to_current_spec: bool,
    pub min_input_files: usize,
    pub partition_lateness: Duration,
    pub compact_open_partitions: bool,
    /// Rewrite every file of the selected partitions regardless of size.
    pub full: bool,
    /// Only partitions with these labels (empty: all).
    pub only: Vec<String>,
}

/// Why a partition is left alone; the `reason` label of `compactor_partitions_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Still being written: end + lateness is in the future.
    OpenPartition,
    /// Not enough small files to be worth a rewrite.
    BelowThreshold,
    /// A delete file the rewrite cannot apply (another partitioned or an all-void spec's, or an
    /// equality delete on columns that are NULL in, or absent from, one of its files) may apply to it:
    /// rewriting without applying it could resurrect rows, applying it delete rows it does not cover.
    HasDeleteFiles,
    /// Some of its data files are not Parquet.
    NotParquet,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OpenPartition => "open_partition",
            SkipReason::BelowThreshold => "below_threshold",
            SkipReason::HasDeleteFiles => "has_delete_files",
            SkipReason::NotParquet => "not_parquet",
        }
    }
}

/// Why the planner picked a file; reported per file (`plan`, `--json`, the dry-run log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PickReason {
    /// Smaller than `small_file_threshold_percent` of the target.
    Small,
    /// Larger than `max_file_size_percent` of the target: split into target-size files.
    Oversized,
    /// Written under an older partition spec; rewritten under the current one.
    OldSpec,
    /// Delete files apply to it: rewritten with them applied, so they can be removed.
    Deletes,
    /// `--full`: every file of the selected partitions.
    Full,
}

impl PickReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PickReason::Small => "small",
            PickReason::Oversized => "oversized",
            PickReason::OldSpec => "old_spec",
            PickReason::Deletes => "deletes",
            PickReason::Full => "full",
        }
    }
}

/// A set of files rewritten together into about `ceil(bytes / target)` files, committed on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Indexes into the partition's `files`.
    pub files: Vec<usize>,
    /// Why each file was picked (same order as `files`).
    pub reasons: Vec<PickReason>,
    pub bytes: u64,
    pub records: u64,
    pub estimated_output_files: u64,
}

/// The decision for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Compact { groups: Vec<Group>, to_current_spec: bool },
    Skip { reason: SkipReason },
}

/// Plans every selected partition of a table, in input order.
pub fn plan(partitions: &[PartitionInput], opts: &PlanOptions, now: DateTime<Utc>) -> Vec<(usize, Decision)> {
    partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| opts.only.is_empty() || opts.only.contains(&p.label))
        .map(|(i, p)| (i, plan_partition(p, opts, now)))
        .collect()
}

/// When the earliest partition the plan skipped as still open falls due (`end + partition_lateness`),
/// if any: until then, and while the table does not change, planning again decides the same.
pub fn next_due(
    partitions: &[PartitionInput],
    decisions: &[(usize, Decision)],
    opts: &PlanOptions,
) -> Option<DateTime<Utc>> {
    let lateness = chrono::Duration::from_std(opts.partition_lateness).ok()?;
    decisions
        .iter()
        .filter(|(_, d)| matches!(d, Decision::Skip { reason: SkipReason::OpenPartition }))
        .filter_map(|(i, _)| partitions[*i].end?.checked_add_signed(lateness))
        .min()
}

/// What one partition the plan compacts owes: its picked files and bytes, and since when it has been
/// waiting for compaction (the lag clock): when it fell due (`end + partition_lateness`), or, for files
/// that arrived after that (late data) or a partition without a time range, when enough of its picked
/// files had arrived to qualify (the `min_input_files`-th earliest `added_at`); never before it fell due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueWork {
    pub label: String,
    pub files: u64,
    pub bytes: u64,
    pub waiting_since: DateTime<Utc>,
}

/// The [`DueWork`] of every partition `decisions` compacts, in decision order. `now` stands in for a
/// file's unknown `added_at` (its snapshot expired): such a file cannot make the wait look longer.
pub fn due_work(
    partitions: &[PartitionInput],
    decisions: &[(usize, Decision)],
    opts: &PlanOptions,
    now: DateTime<Utc>,
) -> Vec<DueWork> {
    let lateness = chrono::Duration::from_std(opts.partition_lateness).unwrap_or(chrono::Duration::MAX);
    decisions
        .iter()
        .filter_map(|(i, d)| match d {
            Decision::Compact { groups, .. } => Some((&partitions[*i], groups)),
            Decision::Skip { .. } => None,
        })
        .map(|(p, groups)| {
            let picked: Vec<&FileInput> =
                groups.iter().flat_map(|g| g.files.iter().map(|&f| &p.files[f])).collect();
            let due = p.end.and_then(|end| end.checked_add_signed(lateness));
            let mut added: Vec<DateTime<Utc>> =
                picked.iter().map(|f| f.added_at.unwrap_or(now).min(now)).collect();
            added.sort_unstable();
            let qualified = added.get(opts.min_input_files.clamp(1, added.len().max(1)) - 1).copied();
            let waiting_since = match (due, qualified) {
                (Some(due), Some(q)) => due.max(q),
                (Some(due), None) => due,
                (None, Some(q)) => q,
                (None, None) => now,
            }
            .min(now);
            DueWork {
                label: p.label.clone(),
                files: picked.len() as u64,
                bytes: picked.iter().map(|f| f.size).sum(),
                waiting_since,
            }
        })
        .collect()
}

fn plan_partition(p: &PartitionInput, opts: &PlanOptions, now: DateTime<Utc>) -> Decision {
    let lateness = chrono::Duration::from_std(opts.partition_lateness).unwrap_or(chrono::Duration::MAX);
    let closed = p.end.is_none_or(|end| end.checked_add_signed(lateness).is_some_and(|t| t <= now));
    if !closed && !opts.compact_open_partitions {
        return Decision::Skip { reason: SkipReason::OpenPartition };
    }
    if p.delete_files > 0 {
        return Decision::Skip { reason: SkipReason::HasDeleteFiles };
    }
    if p.files.iter().any(|f| !f.parquet) {
        return Decision::Skip { reason: SkipReason::NotParquet };
    }
    let to_current_spec = !p.current_spec && (opts.rewrite_to_current_spec || opts.full);
    let reason = |f: &FileInput| -> Option<PickReason> {
        if !p.current_spec && opts.rewrite_to_current_spec {
            Some(PickReason::OldSpec)
        } else if f.deletes > 0 {
            Some(PickReason::Deletes)
        } else if f.size > opts.max_file_size {
            Some(PickReason::Oversized)
        } else if f.size < opts.small_file_threshold {
            Some(PickReason::Small)
        } else if opts.full {
            Some(PickReason::Full)
        } else {
            None
        }
    };
    let picked: Vec<(usize, PickReason)> =
        p.files.iter().enumerate().filter_map(|(i, f)| reason(f).map(|r| (i, r))).collect();
    let small: Vec<usize> = picked.iter().filter(|(_, r)| *r == PickReason::Small).map(|(i, _)| *i).collect();
    let small_total: u64 = small.iter().map(|&i| p.files[i].size).sum();
    // Small files are worth a rewrite in numbers (or together reaching the target); a file of another
    // reason is worth one on its own.
    let small_qualify = opts.full
        || small.len() >= opts.min_input_files
        || (small.len() >= 2 && small_total >= opts.target_file_size);
    let candidates: Vec<(usize, PickReason)> =
        picked.into_iter().filter(|(_, r)| *r != PickReason::Small || small_qualify).collect();
    if candidates.is_empty() {
        return Decision::Skip { reason: SkipReason::BelowThreshold };
    }
    let sizes: Vec<u64> = candidates.iter().map(|&(i, _)| p.files[i].size).collect();
    let groups: Vec<Group> = bin_pack(&sizes, opts.target_file_size)
        .into_iter()
        .map(|bin| bin.into_iter().map(|j| candidates[j]).collect::<Vec<_>>())
        // A group of one small file gains nothing, unless a full rewrite was asked for; one oversized
        // or old-spec file is rewritten on its own.
        .filter(|files| opts.full || files.len() > 1 || files.iter().any(|(_, r)| *r != PickReason::Small))
        .map(|files| {
            let bytes = files.iter().map(|&(i, _)| p.files[i].size).sum::<u64>();
            Group {
                records: files.iter().map(|&(i, _)| p.files[i].records).sum(),
                estimated_output_files: bytes.div_ceil(opts.target_file_size).max(1),
                bytes,
                reasons: files.iter().map(|&(_, r)| r).collect(),
                files: files.into_iter().map(|(i, _)| i).collect(),
            }
        })
        .collect();
    if groups.is_empty() {
        return Decision::Skip { reason: SkipReason::BelowThreshold };
    }
    Decision::Compact { groups, to_current_spec }
}

/// First-fit decreasing: items (by size) into bins of at most `target` bytes; an item larger than the
/// target gets a bin of its own. Returns item indexes per bin, each bin in ascending index order.
pub fn bin_pack(sizes: &[u64], target: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut bins: Vec<(u64, Vec<usize>)> = Vec::new();
    for i in order {
        match bins.iter_mut().find(|(used, _)| used + sizes[i] <= target) {
            Some((used, items)) => {
                *used += sizes[i];
                items.push(i);
            }
            None => bins.push((sizes[i], vec![i])),
        }
    }
    bins.into_iter()
        .map(|(_, mut items)| {
            items.sort_unstable();
            items
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const MB: u64 = 1024 * 1024;

    fn opts() -> PlanOptions {
        PlanOptions {
            target_file_size: 128 * MB,
            small_file_threshold: 96 * MB,
            max_file_size: 128 * MB / 100 * 180,
            rewrite_to_current_spec: false,
            min_input_files: 5,
            partition_lateness: Duration::from_secs(600),
            compact_open_partitions: false,
            full: false,
            only: vec![],
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
    }

    fn partition(label: &str, end_hour: u32, sizes: &[u64]) -> PartitionInput {
        PartitionInput {
            label: label.into(),
            end: Some(Utc.with_ymd_and_hms(2026, 11, 21, end_hour, 0, 0).unwrap()),
            files: sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| FileInput {
                    path: format!("f{i}"),
                    size,
                    records: size / 100,
                    parquet: true,
                    deletes: 0,
                    added_at: None,
                })
                .collect(),
            delete_files: 0,
            current_spec: true,
        }
    }

    #[test]
    fn next_due_is_the_earliest_open_partition_closing() {
        // 12:00 now, lateness 10 min: hour 12 (ends 13:00) and hour 13 (ends 14:00) are open; hour 10
        // is closed but too small to compact.
        let parts =
            [partition("h=12", 13, &[MB; 6]), partition("h=10", 10, &[MB]), partition("h=13", 14, &[MB])];
        let decisions = plan(&parts, &opts(), now());
        let due = Utc.with_ymd_and_hms(2026, 11, 21, 13, 10, 0).unwrap();
        assert_eq!(next_due(&parts, &decisions, &opts()), Some(due));
        // Planning again at that instant compacts it: the due time is when the decision changes.
        assert!(matches!(plan(&parts, &opts(), due)[0].1, Decision::Compact { .. }));
        assert!(matches!(
            plan(&parts, &opts(), due - chrono::Duration::seconds(1))[0].1,
            Decision::Skip { .. }
        ));
        // Only closed partitions: nothing falls due until the table changes.
        assert_eq!(next_due(&parts[1..2], &plan(&parts[1..2], &opts(), now()), &opts()), None);
    }

    #[test]
    fn due_work_waits_from_the_due_time_or_from_when_late_files_qualified() {
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, 21, h, m, 0).unwrap();
        // Hour 10 (ends 11:00, due 11:10), written on time: waiting since 11:10.
        let mut on_time = partition("h=10", 11, &[MB; 6]);
        for (i, f) in on_time.files.iter_mut().enumerate() {
            f.added_at = Some(at(10, 5 * i as u32));
        }
        // Hour 8, compacted long ago; six late files arrived 11:20..11:45: it qualified with the 5th
        // (min_input_files) at 11:40.
        let mut late = partition("h=8", 9, &[MB; 6]);
        for (i, f) in late.files.iter_mut().enumerate() {
            f.added_at = Some(at(11, 20 + 5 * i as u32));
        }
        // No time range, files of unknown age (expired snapshots): waiting since now, not longer.
        let mut unknown = partition("bucket=3", 0, &[MB; 6]);
        unknown.end = None;
        // Open and too small: owe nothing.
        let open = partition("h=12", 13, &[MB; 6]);
        let small = partition("h=9", 10, &[MB]);
        let parts = [on_time, late, unknown, open, small];
        let decisions = plan(&parts, &opts(), now());
        let work = due_work(&parts, &decisions, &opts(), now());
        let expected = |label: &str, since| DueWork {
            label: label.into(),
            files: 6,
            bytes: 6 * MB,
            waiting_since: since,
        };
        assert_eq!(
            work,
            vec![expected("h=10", at(11, 10)), expected("h=8", at(11, 40)), expected("bucket=3", now())]
        );
    }

    #[test]
    fn bin_pack_first_fit_decreasing() {
        assert_eq!(bin_pack(&[60, 50, 40, 30, 20], 100), vec![vec![0, 2], vec![1, 3, 4]]);
        assert_eq!(bin_pack(&[150, 10, 10], 100), vec![vec![0], vec![1, 2]]);
        assert_eq!(bin_pack(&[], 100), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn small_files_of_a_closed_partition_are_grouped() {
        let p = partition("h=10", 11, &[MB; 6]);
        let decisions = plan(&[p], &opts(), now());
        assert_eq!(
            decisions,
            vec![(
                0,
                Decision::Compact {
                    groups: vec![Group {
                        files: vec![0, 1, 2, 3, 4, 5],
                        reasons: vec![PickReason::Small; 6],
                        bytes: 6 * MB,
                        records: 6 * (MB / 100),
                        estimated_output_files: 1
                    }],
                    to_current_spec: false,
                }
            )]
        );
    }

    #[test]
    fn open_partition_waits_for_lateness() {
        // Ends at 11:55, lateness 10 min: open until 12:05.
        let mut p = partition("h=11", 11, &[MB; 6]);
        p.end = Some(Utc.with_ymd_and_hms(2026, 11, 21, 11, 55, 0).unwrap());
        assert_eq!(
            plan(&[p.clone()], &opts(), now())[0].1,
            Decision::Skip { reason: SkipReason::OpenPartition }
        );
        let o = PlanOptions { compact_open_partitions: true, ..opts() };
        assert!(matches!(plan(&[p], &o, now())[0].1, Decision::Compact { .. }));
    }

    #[test]
    fn too_few_small_files_are_left_alone_unless_they_reach_the_target() {
        let few = partition("h=1", 2, &[MB, MB, 200 * MB]);
        assert_eq!(plan(&[few], &opts(), now())[0].1, Decision::Skip { reason: SkipReason::BelowThreshold });
        // Two candidates reach the target together, but cannot share a 128 MiB bin: nothing to gain.
        let apart = partition("h=1", 2, &[90 * MB, 80 * MB]);
        assert_eq!(
            plan(&[apart], &opts(), now())[0].1,
            Decision::Skip { reason: SkipReason::BelowThreshold }
        );
        // 130 MiB of candidates reach the target; the two that fit one bin are rewritten.
        let together = partition("h=1", 2, &[60 * MB, 60 * MB, 10 * MB]);
        let Decision::Compact { groups, .. } = &plan(&[together], &opts(), now())[0].1 else {
            panic!("should compact")
        };
        assert_eq!(groups.iter().map(|g| g.files.clone()).collect::<Vec<_>>(), vec![vec![0, 1]]);
    }

    #[test]
    fn large_files_are_not_candidates() {
        let p = partition("h=1", 2, &[MB, MB, MB, MB, MB, 100 * MB]);
        let Decision::Compact { groups, .. } = &plan(&[p], &opts(), now())[0].1 else {
            panic!("should compact")
        };
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].files, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn delete_files_and_non_parquet_skip() {
        let mut d = partition("h=1", 2, &[MB; 6]);
        d.delete_files = 1;
        assert_eq!(plan(&[d], &opts(), now())[0].1, Decision::Skip { reason: SkipReason::HasDeleteFiles });
        let mut n = partition("h=1", 2, &[MB; 6]);
        n.files[3].parquet = false;
        assert_eq!(plan(&[n], &opts(), now())[0].1, Decision::Skip { reason: SkipReason::NotParquet });
    }

    #[test]
    fn full_rewrites_every_file_of_selected_partitions_only() {
        let a = partition("h=1", 2, &[100 * MB]);
        let b = partition("h=2", 3, &[MB; 6]);
        let o = PlanOptions { full: true, only: vec!["h=1".into()], ..opts() };
        assert_eq!(
            plan(&[a, b], &o, now()),
            vec![(
                0,
                Decision::Compact {
                    groups: vec![Group {
                        files: vec![0],
                        reasons: vec![PickReason::Full],
                        bytes: 100 * MB,
                        records: MB,
                        estimated_output_files: 1
                    }],
                    to_current_spec: false,
                }
            )]
        );
    }

    #[test]
    fn partitions_without_time_range_count_as_closed() {
        let mut p = partition("region=eu", 0, &[MB; 5]);
        p.end = None;
        assert!(matches!(plan(&[p], &opts(), now())[0].1, Decision::Compact { .. }));
    }

    #[test]
    fn an_oversized_file_is_split_on_its_own_and_one_between_target_and_max_is_left_alone() {
        // Target 128 MiB, max 180 % = 230.4 MiB.
        let p = partition("h=1", 2, &[300 * MB, 200 * MB, 129 * MB]);
        let Decision::Compact { groups, to_current_spec } = &plan(&[p], &opts(), now())[0].1 else {
            panic!("an oversized file qualifies on its own")
        };
        assert!(!to_current_spec);
        assert_eq!(
            groups,
            &vec![Group {
                files: vec![0],
                reasons: vec![PickReason::Oversized],
                bytes: 300 * MB,
                records: 3 * MB,
                estimated_output_files: 3,
            }]
        );
        let between = partition("h=1", 2, &[230 * MB, 129 * MB, 128 * MB]);
        assert_eq!(
            plan(&[between], &opts(), now())[0].1,
            Decision::Skip { reason: SkipReason::BelowThreshold }
        );
        // Exactly the maximum is not above it.
        let at_max = partition("h=1", 2, &[opts().max_file_size]);
        assert_eq!(
            plan(&[at_max], &opts(), now())[0].1,
            Decision::Skip { reason: SkipReason::BelowThreshold }
        );
    }

    #[test]
    fn oversized_and_small_files_are_never_packed_together_and_reasons_follow_each_file() {
        let p = partition("h=1", 2, &[MB, 400 * MB, MB, MB, MB, MB]);
        let Decision::Compact { groups, .. } = &plan(&[p], &opts(), now())[0].1 else { panic!("compact") };
        let mut got: Vec<(Vec<usize>, Vec<PickReason>)> =
            groups.iter().map(|g| (g.files.clone(), g.reasons.clone())).collect();
        got.sort();
        assert_eq!(
            got,
            vec![(vec![0, 2, 3, 4, 5], vec![PickReason::Small; 5]), (vec![1], vec![PickReason::Oversized]),]
        );
        // Too few small files: only the oversized one is picked.
        let p = partition("h=1", 2, &[MB, 400 * MB]);
        let Decision::Compact { groups, .. } = &plan(&[p], &opts(), now())[0].1 else { panic!("compact") };
        assert_eq!(groups.iter().map(|g| g.files.clone()).collect::<Vec<_>>(), vec![vec![1]]);
    }

    #[test]
    fn old_spec_partitions_are_rewritten_whole_only_when_asked() {
        let mut p = partition("h=1", 2, &[100 * MB, 129 * MB]);
        p.current_spec = false;
        assert_eq!(
            plan(&[p.clone()], &opts(), now())[0].1,
            Decision::Skip { reason: SkipReason::BelowThreshold }
        );
        let o = PlanOptions { rewrite_to_current_spec: true, ..opts() };
        let Decision::Compact { groups, to_current_spec } = &plan(&[p.clone()], &o, now())[0].1 else {
            panic!("old spec partitions are rewritten")
        };
        assert!(to_current_spec);
        let mut files: Vec<usize> = groups.iter().flat_map(|g| g.files.clone()).collect();
        files.sort();
        assert_eq!(files, vec![0, 1]);
        assert!(groups.iter().all(|g| g.reasons.iter().all(|r| *r == PickReason::OldSpec)));
        // `--full` of an old-spec partition rewrites it under the current spec too.
        let f = PlanOptions { full: true, ..opts() };
        assert!(matches!(
            plan(&[p.clone()], &f, now())[0].1,
            Decision::Compact { to_current_spec: true, .. }
        ));
        // A current-spec partition is never moved.
        let mut c = p;
        c.current_spec = true;
        assert!(matches!(plan(&[c], &f, now())[0].1, Decision::Compact { to_current_spec: false, .. }));
    }

    #[test]
    fn delete_files_skip_oversized_and_old_spec_partitions_too() {
        let mut p = partition("h=1", 2, &[400 * MB]);
        p.delete_files = 1;
        p.current_spec = false;
        let o = PlanOptions { rewrite_to_current_spec: true, full: true, ..opts() };
        assert_eq!(plan(&[p], &o, now())[0].1, Decision::Skip { reason: SkipReason::HasDeleteFiles });
    }

    #[test]
    fn a_file_with_deletes_is_picked_on_its_own_and_unapplicable_deletes_still_skip() {
        let mut p = partition("h=1", 2, &[129 * MB, MB]);
        p.files[0].deletes = 1;
        let Decision::Compact { groups, .. } = &plan(&[p.clone()], &opts(), now())[0].1 else {
            panic!("a file with deletes qualifies on its own")
        };
        assert_eq!(
            groups.iter().map(|g| (g.files.clone(), g.reasons.clone())).collect::<Vec<_>>(),
            vec![(vec![0], vec![PickReason::Deletes])]
        );
        p.delete_files = 1;
        assert_eq!(plan(&[p], &opts(), now())[0].1, Decision::Skip { reason: SkipReason::HasDeleteFiles });
    }
}
