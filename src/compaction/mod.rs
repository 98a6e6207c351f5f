//! Compaction: rewrite a partition's small files into target-size files, committed as an Iceberg
//! `replace` snapshot that never loses, duplicates or resurrects a row.
//!
//! Parts: `plan` (pure: which files, in which groups, or why not), `rewrite` (read → optionally sort →
//! write new files), `execute` (per table: inventory → plan → per group rewrite + commit with
//! revalidation), and the [`CompactionJob`] that the loop, the CLI and the admin API drive.
//!
//! Safety argument: inputs are removed and outputs added in one snapshot through the one commit path
//! (compare-and-swap on the catalog row). Before every commit attempt the change is rebuilt against the
//! table as it is then; it is abandoned if any input is no longer live, a delete file appeared that may
//! apply to the partition, or the schema changed. Outputs keep the data sequence number of the snapshot
//! the rewrite started from. Delete files of the partition's own spec and value (or of an
//! unpartitioned spec) are applied while reading; the commit removes those no remaining data file
//! needs. A partition another delete may apply to is skipped (`has_delete_files`).

mod columns;
mod execute;
pub mod invariants;
pub mod plan;
pub mod rewrite;
pub mod sort;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::audit::RunType;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::{CompactionConfig, Mode};
use crate::job::TablePass;
use crate::job::{BeforeCommitHook, Job, JobError, JobKind, PassReport, PassRequest};
use crate::metrics::Metrics;
use crate::service::Context;

/// The compaction job: holds only what it needs.
pub struct CompactionJob {
    catalog: Catalog,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    config: CompactionConfig,
    pass: TablePass,
    before_commit: Option<BeforeCommitHook>,
}

impl CompactionJob {
    pub fn new(ctx: &Context) -> Self {
        CompactionJob {
            catalog: ctx.catalog.clone(),
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            config: ctx.config.compaction.clone(),
            pass: TablePass::new(ctx),
            before_commit: None,
        }
    }

    /// Runs `hook(partition label)` between writing a group's files and committing them.
    pub fn with_before_commit(mut self, hook: BeforeCommitHook) -> Self {
        self.before_commit = Some(hook);
        self
    }
}

#[async_trait]
impl Job for CompactionJob {
    fn kind(&self) -> JobKind {
        JobKind::Compaction
    }

    fn interval(&self) -> Duration {
        self.config.interval
    }

    fn mode(&self) -> Mode {
        self.config.mode
    }

    fn window(&self) -> Option<crate::window::Window> {
        self.config.window
    }

    async fn run_once(
        &self,
        request: &PassRequest,
        cancel: &CancellationToken,
    ) -> Result<PassReport, JobError> {
        let started_at = self.pass.clock.now();
        let (selected, mut tables) = self.pass.select(request).await?;
        for table in &selected {
            if cancel.is_cancelled() {
                break;
            }
            let work = execute::compact_table(self, table, request, cancel);
            tables.push(self.pass.run(RunType::Compaction, request.mode, table, work).await?);
        }
        Ok(PassReport {
            job: JobKind::Compaction,
            mode: request.mode,
            started_at,
            finished_at: self.pass.clock.now(),
            tables,
        })
    }
}
