//! One table's work within a pass, as every job runs it: the table's in-process lock, its replica
//! lease, an audit row and a log span around it, a panic contained to the table, failures logged by
//! name. The work receives the table's [`Claim`]; whatever commits or deletes takes it.

use crate::catalog::TableRef;
use crate::config::Mode;
use crate::job::{JobError, PartitionStatus, PassRequest, TableReport, TableStatus, panic_message};

/// This task's hold on one table: its in-process lock, and its replica lease when the pass has one.
/// Only [`TablePass::run`] makes one; whatever commits to the table or deletes in its location takes
/// it (or its [`fence`](Claim::fence)), so work that forgot the lock or the lease does not compile.
/// The lock is held as long as the claim lives.
pub struct Claim {
    _lock: std::sync::Arc<tokio::sync::OwnedMutexGuard<()>>,
    lease: Option<std::sync::Arc<dyn crate::table::Fence>>,
}

impl Claim {
    /// The fence of the table's lease; [`Unleased`](crate::table::Unleased) in a dry run or when
    /// leases are disabled (no write access to the catalog database).
    pub fn fence(&self) -> &dyn crate::table::Fence {
        match &self.lease {
            Some(lease) => lease.as_ref(),
            None => &crate::table::Unleased,
        }
    }
}

/// What every job's pass over tables shares: selecting tables, and running one table's work under its
/// in-process lock, the table's replica lease, an audit row and a log span. Jobs hold one and keep only
/// their per-table work.
#[derive(Clone)]
pub struct TablePass {
    pub catalog: crate::catalog::Catalog,
    pub locks: super::locks::TableLocks,
    pub leases: super::leases::Leases,
    pub audit: crate::audit::Audit,
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub metrics: crate::metrics::Metrics,
}

impl TablePass {
    pub fn new(ctx: &super::Context) -> TablePass {
        TablePass {
            catalog: ctx.catalog.clone(),
            locks: ctx.locks.clone(),
            leases: ctx.leases.clone(),
            audit: ctx.audit.clone(),
            clock: ctx.clock.clone(),
            metrics: ctx.metrics.clone(),
        }
    }

    /// The tables `request` selects, and a failed report for each named table that does not exist.
    pub async fn select(&self, request: &PassRequest) -> Result<(Vec<TableRef>, Vec<TableReport>), JobError> {
        let (selected, missing, _) = self.select_with_pointers(request).await?;
        Ok((selected, missing))
    }

    /// [`select`](Self::select), with each selected table's catalog pointer from the same query.
    pub async fn select_with_pointers(
        &self,
        request: &PassRequest,
    ) -> Result<(Vec<TableRef>, Vec<TableReport>, Vec<Option<String>>), JobError> {
        let discovered = self.catalog.discover_pointers().await?;
        let missing = request
            .filter
            .tables()
            .iter()
            .filter(|wanted| !discovered.iter().any(|(t, _)| t.qualified() == **wanted))
            .map(|wanted| {
                let mut report = TableReport::new_named(
                    wanted,
                    TableStatus::Failed { error: "table not found in the catalog".into() },
                );
                report.details.push("check the TENANT.DATASET.TABLE spelling (see `check-config`)".into());
                report
            })
            .collect();
        let (selected, pointers) = discovered.into_iter().filter(|(t, _)| request.filter.matches(t)).unzip();
        Ok((selected, missing, pointers))
    }

    /// Runs `work` (one table's work, given the table's [`Claim`]) holding the table's lock and, for a
    /// real (not dry-run) pass, its replica lease, recorded as [`record`](Self::record) does. A table another replica holds is
    /// skipped (`leased_elsewhere`) without an audit row; the lease is released when the work ends.
    /// `Err`: the lease could not be taken, or the table failed, because the catalog database cannot be
    /// reached; the rest of the pass would fail the same way table after table, so the caller ends the
    /// pass (retried at the next tick).
    pub async fn run<W, F>(
        &self,
        run_type: crate::audit::RunType,
        mode: Mode,
        table: &TableRef,
        work: W,
    ) -> Result<TableReport, JobError>
    where
        W: FnOnce(Claim) -> F,
        F: std::future::Future<Output = TableReport>,
    {
        use super::leases::Acquired;
        // Released after the lease (below), when the claim is gone too.
        let lock = std::sync::Arc::new(self.locks.lock(&table.qualified()).await);
        let acquired = if mode.is_dry_run() { Ok(None) } else { self.leases.acquire(table).await };
        let job = run_type.as_str();
        let lease = match acquired {
            Ok(None) => {
                let claim = Claim { _lock: lock.clone(), lease: None };
                return self.unless_unreachable(self.record(run_type, mode, table, work(claim)).await).await;
            }
            Ok(Some(Acquired::Held(lease))) => lease,
            Ok(Some(Acquired::Busy { holder })) => {
                tracing::info!(job, table = %table, holder, "table leased by another replica; skipped");
                self.metrics.tables_skipped_total.with_label_values(&[job, "leased_elsewhere"]).inc();
                return Ok(TableReport::new(
                    table,
                    TableStatus::Skipped { reason: format!("leased_elsewhere: held by {holder}") },
                ));
            }
            Err(e) if crate::catalog::is_unreachable(&e) => {
                return Err(JobError::Catalog(self.catalog.sql_error(e)));
            }
            Err(e) => {
                tracing::warn!(job, table = %table, error = %e, "could not take the table's lease");
                let error = format!("could not take the table's lease: {e}");
                return Ok(TableReport::new(table, TableStatus::Failed { error }));
            }
        };
        let claim = Claim { _lock: lock.clone(), lease: Some(lease.fence()) };
        let report = self.record(run_type, mode, table, work(claim)).await;
        if lease.is_lost() {
            self.metrics.leases_lost_total.with_label_values(&[job]).inc();
        }
        lease.release().await;
        drop(lock);
        self.unless_unreachable(report).await
    }

    /// [`run`](Self::run) for a table whose due partitions the replicas divide: `work` gets a claim
    /// fenced by a lease on each of `partitions` (labels) that could be taken, and those labels. The
    /// partitions another holder has (or all, while another holds the whole table) are left to it; a
    /// table none of whose partitions could be leased is skipped (`leased_elsewhere`) without an
    /// audit row. Without leases (disabled) the work gets every partition, as `run` would.
    pub async fn run_partitions<W, F>(
        &self,
        run_type: crate::audit::RunType,
        mode: Mode,
        table: &TableRef,
        partitions: &[String],
        work: W,
    ) -> Result<TableReport, JobError>
    where
        W: FnOnce(Claim, Vec<String>) -> F,
        F: std::future::Future<Output = TableReport>,
    {
        use super::leases::Acquired;
        let lock = std::sync::Arc::new(self.locks.lock(&table.qualified()).await);
        let job = run_type.as_str();
        let (mut held, mut labels, mut busy) = (Vec::new(), Vec::new(), None);
        for label in partitions {
            // A dry run takes no lease (as `run`): it writes nothing to the catalog database.
            let acquired =
                if mode.is_dry_run() { Ok(None) } else { self.leases.acquire_partition(table, label).await };
            match acquired {
                Ok(None) => {
                    let claim = Claim { _lock: lock.clone(), lease: None };
                    let report = self.record(run_type, mode, table, work(claim, partitions.to_vec())).await;
                    return self.unless_unreachable(report).await;
                }
                Ok(Some(Acquired::Held(lease))) => {
                    held.push(lease);
                    labels.push(label.clone());
                }
                Ok(Some(Acquired::Busy { holder })) => {
                    tracing::debug!(job, table = %table, partition = label, holder, "partition leased elsewhere");
                    busy.get_or_insert(holder);
                }
                Err(e) => {
                    for lease in held {
                        lease.release().await;
                    }
                    if crate::catalog::is_unreachable(&e) {
                        return Err(JobError::Catalog(self.catalog.sql_error(e)));
                    }
                    tracing::warn!(job, table = %table, partition = label, error = %e, "could not take a partition's lease");
                    let error = format!("could not take the lease of partition {label}: {e}");
                    return Ok(TableReport::new(table, TableStatus::Failed { error }));
                }
            }
        }
        if held.is_empty() {
            let holder = busy.unwrap_or_else(|| "nobody".into());
            tracing::info!(job, table = %table, holder, "the table's due partitions are leased by others; skipped");
            self.metrics.tables_skipped_total.with_label_values(&[job, "leased_elsewhere"]).inc();
            return Ok(TableReport::new(
                table,
                TableStatus::Skipped { reason: format!("leased_elsewhere: partitions held by {holder}") },
            ));
        }
        let claim = Claim { _lock: lock.clone(), lease: Some(super::leases::fence_all(&held)) };
        let report = self.record(run_type, mode, table, work(claim, labels)).await;
        if held.iter().any(|l| l.is_lost()) {
            self.metrics.leases_lost_total.with_label_values(&[job]).inc();
        }
        for lease in held {
            lease.release().await;
        }
        drop(lock);
        self.unless_unreachable(report).await
    }

    /// A table that failed while the catalog database cannot be reached: every next table would fail
    /// the same way, so the pass ends here (`Err`). Costs a query only after a failure.
    async fn unless_unreachable(&self, report: TableReport) -> Result<TableReport, JobError> {
        if matches!(report.status, TableStatus::Failed { .. })
            && let Err(e) = self.catalog.ping().await
            && matches!(&e, crate::catalog::CatalogError::Sql { source, .. } if crate::catalog::is_unreachable(source))
        {
            return Err(e.into());
        }
        Ok(report)
    }

    /// Runs `work` inside an audit row and a `table` span (run id, job, tenant, dataset, table); the
    /// caller already holds the table's lock.
    ///
    /// A panic in `work` (a bug here or in a dependency) is contained to this table: it is logged with
    /// the table and reported as a failed table (audit row, pass failure, `/status`), and the pass goes
    /// on with the next table. Whatever the work had written but not committed is left to the orphan
    /// cleaner.
    pub async fn record(
        &self,
        run_type: crate::audit::RunType,
        mode: Mode,
        table: &TableRef,
        work: impl std::future::Future<Output = TableReport>,
    ) -> TableReport {
        use futures::FutureExt;
        let record = self.audit.start(run_type, table, self.clock.now()).await;
        let span = crate::audit::table_span(run_type.as_str(), record.run_id(), table);
        let caught = tracing::Instrument::instrument(std::panic::AssertUnwindSafe(work).catch_unwind(), span);
        let report = match caught.await {
            Ok(report) => report,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(
                    job = run_type.as_str(),
                    table = %table,
                    panic = %message,
                    "table work panicked; recorded as failed, the pass goes on"
                );
                TableReport::new(table, TableStatus::Failed { error: format!("panicked: {message}") })
            }
        };
        log_failures(run_type.as_str(), &report);
        crate::table::manifests::forget();
        if let Some(outcome) = &report.outcome {
            outcome.count(&self.metrics, table, mode);
        }
        self.audit.finish(record, mode, &report, self.clock.now()).await;
        report
    }
}

/// One log line per failed table and per failed partition, naming them, with the cause chain the report
/// carries (passwords masked), whichever entry point ran the pass.
fn log_failures(job: &str, report: &TableReport) {
    for p in &report.partition_reports {
        if let PartitionStatus::Failed { error } = &p.status {
            let error = crate::config::redact::secrets(error);
            tracing::warn!(job, table = %report.table, partition = %p.partition, error, "partition failed");
        }
    }
    if let TableStatus::Failed { error } = &report.status {
        let error = crate::config::redact::secrets(error);
        tracing::error!(job, table = %report.table, error, "table failed");
    }
}
