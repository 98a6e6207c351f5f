//! One compaction group of a table pass: rewrite its files → check the outputs' content invariants →
//! commit through the one commit path, revalidated ([`Groups::rebase`]) against the table as it is at
//! every attempt. Groups of a table rewrite concurrently and commit one at a time, each from the table
//! as the previous commit left it.
//!
//! Hazard: a group's outputs are deleted only when its commit definitely did not land
//! ([`definitely_not_committed`]); an ambiguous outcome leaves them to the orphan cleaner.

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use iceberg::spec::{FormatVersion, Operation};
use iceberg::table::Table;
use tokio::sync::Mutex;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;
use tracing::{error, info, warn};

use super::CompactionJob;
use super::deletes::{applies_by_seq, delete_applies, delete_is_clean, may_name, obsolete_deletes};
use super::invariants;
use super::look::Partition;
use super::plan::{self, Group};
use super::rewrite::{self, GroupInput, Rewritten};
use super::schedule::Budget;
use crate::catalog::TableRef;
use crate::failpoint;
use crate::job::PickedFile;
use crate::table::commit::discard_uncommitted;
use crate::table::{
    Abandon, Change, CommitError, CommitTarget, Committed, Inventory, LiveFile, SnapshotChange,
    commit_with_retry,
};

/// A group ready to run: which partition, which files, under which spec the output is written.
pub(super) struct Work<'a> {
    pub partition: usize,
    pub files: Vec<&'a LiveFile>,
    pub group: Group,
    /// Write the output under the table's current spec (the inputs are of an older one).
    pub to_current_spec: bool,
}

impl Work<'_> {
    /// The picked files and why, for the report.
    pub fn picked(&self) -> Vec<PickedFile> {
        self.files
            .iter()
            .zip(&self.group.reasons)
            .map(|(f, r)| PickedFile { path: f.path().to_string(), bytes: f.size(), reason: r.as_str() })
            .collect()
    }

    /// `small 5, oversized 1`.
    pub fn reasons(&self) -> String {
        let mut counts: BTreeMap<plan::PickReason, usize> = BTreeMap::new();
        for r in &self.group.reasons {
            *counts.entry(*r).or_default() += 1;
        }
        counts.iter().map(|(r, n)| format!("{} {n}", r.as_str())).collect::<Vec<_>>().join(", ")
    }
}

/// What the rewrite started from: fixed for every group of this table pass.
pub(super) struct Start {
    schema_id: i32,
    /// The table's target file size when the pass started.
    target_file_size: u64,
    sequence_number: Option<i64>,
    deletes: HashSet<String>,
    /// The live delete files at the start (a rewrite applies those that are clean for its partition).
    delete_files: Vec<LiveFile>,
}

impl Start {
    pub fn new(table: &Table, inventory: &Inventory, target_file_size: u64) -> Start {
        let v2 = table.metadata().format_version() == FormatVersion::V2;
        Start {
            schema_id: table.metadata().current_schema_id(),
            target_file_size,
            sequence_number: v2.then(|| inventory.sequence_number()),
            deletes: inventory.deletes.iter().map(|d| d.path().to_string()).collect(),
            delete_files: inventory.deletes.clone(),
        }
    }
}

pub(super) struct GroupDone {
    /// Index into the table's work list.
    pub work: usize,
    pub committed: Committed,
    pub rewritten: Rewritten,
    pub inputs: usize,
    pub input_bytes: u64,
}

/// A group that did not commit: abandoned cleanly (the table moved on) or failed.
pub(super) enum GroupFailure {
    /// Shutdown was requested before the group's rewrite started; nothing was written.
    NotStarted,
    Abandoned(Abandon),
    /// Deliberately not rewritten (e.g. `no_field_ids`); nothing was written.
    Skipped(&'static str),
    Failed(String),
    /// Gave up after losing the commit race this many times in a row.
    Conflicts {
        error: String,
        conflicts: u32,
    },
}

/// What every group of one table pass shares.
pub(super) struct Groups<'a> {
    pub job: &'a CompactionJob,
    pub t: &'a TableRef,
    /// The table as planned: every rewrite reads it.
    pub table: &'a Table,
    pub start: Start,
    /// The table as the last commit left it: each commit starts from it, one at a time.
    pub latest: Mutex<(Table, Inventory)>,
    pub commit_to: &'a CommitTarget<'a>,
}

impl Groups<'_> {
    /// Runs every group, up to `max_concurrent_rewrites` at a time, each admitted by the pass's
    /// budget as it is about to start: (partition, outcome) per group.
    pub async fn run_all(
        &self,
        parts: &[Partition<'_>],
        work: &[Work<'_>],
        budget: &Budget,
    ) -> Vec<(usize, Result<GroupDone, GroupFailure>)> {
        // Indexes, not `work.iter()`: a closure over borrowed items trips the Send check of async_trait.
        futures::stream::iter(0..work.len())
            .map(|i| async move {
                let w = &work[i];
                let p = &parts[w.partition];
                // About to start a group: the pass's budget decides whether it may.
                if let Err(spent) = budget.admit(w.group.bytes) {
                    return (w.partition, Err(GroupFailure::Skipped(spent.as_str())));
                }
                let result = self.run_group(p, w).await;
                (w.partition, result.map(|done| GroupDone { work: i, ..done }))
            })
            .buffer_unordered(self.job.config.max_concurrent_rewrites.max(1))
            .collect()
            .await
    }

    /// One group: rewrite → content invariants → commit (revalidated at every attempt).
    async fn run_group(&self, p: &Partition<'_>, w: &Work<'_>) -> Result<GroupDone, GroupFailure> {
        if self.commit_to.cancel.is_cancelled() {
            return Err(GroupFailure::NotStarted);
        }
        let rewritten = self.rewrite(p, w).await?;
        let outputs: Vec<String> = rewritten.files.iter().map(|f| f.file.file_path().to_string()).collect();
        self.check_invariants(p, w, &rewritten, &outputs).await?;
        failpoint::hit(failpoint::COMPACTION_BEFORE_SWAP);
        if let Some(hook) = &self.job.before_commit {
            hook(p.label.clone()).await;
        }
        failpoint::panic_point(failpoint::COMPACTION_PANIC, &self.t.qualified());
        self.commit(p, w, rewritten, &outputs).await
    }

    /// Reads the group's files (applying the start's deletes that are clean for the partition) and
    /// writes the outputs. Nothing is committed.
    async fn rewrite(&self, p: &Partition<'_>, w: &Work<'_>) -> Result<Rewritten, GroupFailure> {
        let (job, t, table, start) = (self.job, self.t, self.table, &self.start);
        let input = GroupInput {
            table: table.clone(),
            spec_id: p.spec_id,
            partition: p.value.clone(),
            files: w.files.iter().map(|&f| f.clone()).collect(),
            target_file_size: start.target_file_size,
            // `memory_limit_mb` bounds the process's rewrites together: the concurrent rewrites of the
            // concurrent tables share it.
            memory_limit: job.config.memory_limit_bytes
                / (job.config.max_concurrent_rewrites.max(1) * job.config.max_concurrent_tables.max(1))
                    as u64,
            output_spec_id: if w.to_current_spec {
                table.metadata().default_partition_spec_id()
            } else {
                p.spec_id
            },
            deletes: w
                .files
                .iter()
                .map(|f| {
                    start
                        .delete_files
                        .iter()
                        .filter(|d| delete_is_clean(table, d, p.spec_id, &p.value) && applies_by_seq(d, f))
                        .cloned()
                        .collect()
                })
                .collect(),
        };
        // Its own task: the concurrent rewrites of a table (`max_concurrent_rewrites`) read, sort and
        // encode on different cores, and a long rewrite never holds up the worker that renews the
        // lease. Aborted when this group's future is dropped (shutdown, the table's pass ending); a
        // panic fails this group only, its outputs left to the orphan cleaner.
        let key = format!("{}/{}", t.qualified(), p.label);
        let task = AbortOnDropHandle::new(tokio::spawn(
            async move {
                failpoint::panic_point(failpoint::REWRITE_PANIC, &key);
                rewrite::rewrite(input).await
            }
            .in_current_span(),
        ));
        let result = match task.await {
            Ok(result) => result,
            Err(e) => {
                let cause = if e.is_panic() { "panicked" } else { "was cancelled" };
                error!(table = %t, partition = %p.label, "rewrite task {cause}: group abandoned, nothing committed");
                return Err(GroupFailure::Failed(format!("rewrite task {cause}")));
            }
        };
        result.map_err(|e| match e.skip_reason() {
            Some(reason) => {
                warn!(table = %t, partition = %p.label, reason, error = %e, "partition skipped");
                job.metrics
                    .partitions_skipped_total
                    .with_label_values(&[&t.tenant, &t.dataset, t.signal.as_str(), reason])
                    .inc();
                GroupFailure::Skipped(reason)
            }
            None => GroupFailure::Failed(format!("rewrite failed: {}", crate::job::error_chain(&e))),
        })
    }

    /// Checks the outputs against the inputs' statistics; on a violation the outputs are discarded
    /// and the group fails before the commit path is entered.
    async fn check_invariants(
        &self,
        p: &Partition<'_>,
        w: &Work<'_>,
        rewritten: &Rewritten,
        outputs: &[String],
    ) -> Result<(), GroupFailure> {
        let (t, table) = (self.t, self.table);
        let inputs_stats: Vec<&iceberg::spec::DataFile> =
            w.files.iter().map(|f| f.entry.data_file()).collect();
        let outputs_stats: Vec<&iceberg::spec::DataFile> = rewritten.files.iter().map(|f| &f.file).collect();
        let schema = table.metadata().current_schema();
        let checked = if w.to_current_spec {
            match table.metadata().partition_spec_by_id(table.metadata().default_partition_spec_id()) {
                Some(spec) => invariants::check_respec(
                    schema,
                    spec,
                    &inputs_stats,
                    &outputs_stats,
                    rewritten.deletes_applied,
                ),
                None => Err(invariants::Violation {
                    check: "partition",
                    column: "(partition spec)".into(),
                    input: "the current spec".into(),
                    output: "not found".into(),
                }),
            }
        } else {
            invariants::check(schema, &p.value, &inputs_stats, &outputs_stats, rewritten.deletes_applied)
        };
        let Err(v) = checked else { return Ok(()) };
        error!(
            table = %t, partition = %p.label, check = v.check, column = %v.column, input = %v.input,
            output = %v.output, "content invariant violated: group abandoned, nothing committed"
        );
        self.job.metrics.invariant_violations_total.with_label_values(&["compaction", &t.qualified()]).inc();
        discard_uncommitted(table, outputs).await;
        Err(GroupFailure::Failed(format!("content invariant violated: {v}")))
    }

    /// Commits the group on the table as the last commit left it, revalidated by [`Groups::rebase`] at
    /// every attempt.
    async fn commit(
        &self,
        p: &Partition<'_>,
        w: &Work<'_>,
        rewritten: Rewritten,
        outputs: &[String],
    ) -> Result<GroupDone, GroupFailure> {
        let t = self.t;
        let inputs: HashSet<String> = w.files.iter().map(|f| f.path().to_string()).collect();
        let rebase = |current: &Table, inv: &Inventory| self.rebase(p, w, &inputs, &rewritten, current, inv);
        let mut guard = self.latest.lock().await;
        let (base_table, base_inventory) = guard.clone();
        let outcome = commit_with_retry(self.commit_to, base_table, base_inventory, rebase).await;
        match outcome {
            Ok(committed) => {
                *guard = (committed.table.clone(), committed.inventory.clone());
                drop(guard);
                let input_bytes = w.files.iter().map(|f| f.size()).sum();
                info!(
                    table = %t, partition = %p.label, files_in = w.files.len(), files_out = rewritten.files.len(),
                    bytes_in = input_bytes, bytes_out = rewritten.bytes_written, rows = rewritten.rows,
                    snapshot_id = committed.snapshot_id, attempts = committed.attempts, "compacted partition"
                );
                Ok(GroupDone { work: 0, committed, rewritten, inputs: w.files.len(), input_bytes })
            }
            Err(e) => {
                drop(guard);
                Err(self.not_committed(p, e, outputs).await)
            }
        }
    }

    /// The group's change on the table as it is now (`current`, `inv`), or why it no longer applies.
    fn rebase(
        &self,
        p: &Partition<'_>,
        w: &Work<'_>,
        inputs: &HashSet<String>,
        rewritten: &Rewritten,
        current: &Table,
        inv: &Inventory,
    ) -> Result<Change, Abandon> {
        let start = &self.start;
        if current.metadata().current_schema_id() != start.schema_id {
            return Err(Abandon::SchemaChanged);
        }
        // A table disabled meanwhile is refused by the commit path itself (`commit_with_retry`).
        let live: HashSet<&str> = inv.data.iter().map(|f| f.path()).collect();
        if let Some(gone) = inputs.iter().find(|i| !live.contains(i.as_str())) {
            return Err(Abandon::InputGone(gone.clone()));
        }
        if let Some(d) = inv.deletes.iter().find(|d| {
            (delete_applies(current, d, p.spec_id, &p.value) || w.files.iter().any(|f| may_name(d, f)))
                && !start.deletes.contains(d.path())
        }) {
            return Err(Abandon::DeleteFileAdded(d.path().to_string()));
        }
        // Deletes applied by this rewrite that no live data file needs any more leave with the
        // inputs (decided on the table as it is now; only deletes present at the start were
        // applied, and any other delete for the partition abandoned the group above).
        let remaining: Vec<&LiveFile> = inv.data.iter().filter(|f| !inputs.contains(f.path())).collect();
        let applied = inv
            .deletes
            .iter()
            .filter(|d| start.deletes.contains(d.path()) && delete_is_clean(current, d, p.spec_id, &p.value));
        let mut remove = inputs.clone();
        remove.extend(obsolete_deletes(current, applied, &remaining));
        Ok(Change::Snapshot(SnapshotChange {
            operation: Operation::Replace,
            remove,
            add: rewritten.files.clone(),
            added_data_sequence_number: start.sequence_number,
            summary: [("signaldb.compactor.version".to_string(), env!("CARGO_PKG_VERSION").to_string())]
                .into(),
        }))
    }

    /// A group whose commit did not land: its outputs discarded when they were definitely never
    /// referenced, logged, counted, and typed for the report.
    async fn not_committed(&self, p: &Partition<'_>, e: CommitError, outputs: &[String]) -> GroupFailure {
        let t = self.t;
        // Outputs were never referenced by a landed commit unless the outcome is unknown.
        if definitely_not_committed(&e) {
            discard_uncommitted(self.table, outputs).await;
        }
        warn!(table = %t, partition = %p.label, error = %e, "compaction group not committed");
        match e {
            CommitError::Abandoned(reason) => {
                self.job
                    .metrics
                    .partitions_skipped_total
                    .with_label_values(&[&t.tenant, &t.dataset, t.signal.as_str(), "abandoned"])
                    .inc();
                GroupFailure::Abandoned(reason)
            }
            CommitError::TooManyConflicts(conflicts) => {
                GroupFailure::Conflicts { error: crate::job::error_chain(&e), conflicts }
            }
            other => GroupFailure::Failed(crate::job::error_chain(&other)),
        }
    }
}

fn definitely_not_committed(e: &CommitError) -> bool {
    matches!(e, CommitError::Abandoned(_) | CommitError::TooManyConflicts(_) | CommitError::Produce(_))
}
