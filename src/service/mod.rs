//! The daemon: the shared context (config, catalog, store, metrics, clock), every enabled job's loop
//! and the HTTP server, all stopped by one `CancellationToken`.

pub mod admin;
pub mod http;
pub mod leases;
pub mod locks;
pub mod periodic;
pub mod status;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::catalog::{Access, Catalog, Signal};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::job::{Job, JobKind};
use crate::metrics::Metrics;
use crate::storage::Warehouse;
pub use periodic::{run_pass, run_periodic};
pub use status::StatusBoard;

/// What every job shares: built once at startup.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub catalog: Catalog,
    pub warehouse: Warehouse,
    /// Retention's cold tier, when `archive_dsn` is set.
    pub archive: Option<Warehouse>,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    /// One job per table at a time.
    pub locks: locks::TableLocks,
    /// The audit trail (a no-op without write access).
    pub audit: crate::audit::Audit,
    /// Table leases shared with other replicas (none without write access).
    pub leases: leases::Leases,
}

impl Context {
    /// Opens storage and the catalog. `access` is read-only when nothing this process will run may
    /// write (every job in dry-run): then not even a missing catalog file or directory is created.
    pub async fn build(
        config: Config,
        registry: prometheus::Registry,
        access: Access,
    ) -> anyhow::Result<Context> {
        let warehouse = Warehouse::open(&config.storage, access).context("opening the warehouse storage")?;
        let catalog = Catalog::connect(&config.catalog, &warehouse, access)
            .await
            .context("connecting to the catalog")?;
        let (audit, leases) = match access {
            Access::ReadWrite => {
                let holder = leases::holder_id();
                let leases = leases::Leases::new(
                    catalog.pool().clone(),
                    catalog.is_postgres(),
                    holder.clone(),
                    config.service.lease_ttl,
                );
                (
                    crate::audit::Audit::new(Some(catalog.pool().clone()), holder, catalog.is_postgres()),
                    leases,
                )
            }
            Access::ReadOnly => (crate::audit::Audit::disabled(), leases::Leases::disabled()),
        };
        let recovered = audit
            .recover(chrono::Utc::now(), config.service.audit_retention)
            .await
            .context("recovering the audit trail")?;
        if recovered > 0 {
            warn!(runs = recovered, "audit rows left running by a stopped process marked failed");
        }
        let archive = match &config.retention.archive {
            Some(dsn) => {
                let storage = crate::config::StorageConfig {
                    dsn: dsn.clone(),
                    extra_roots: Vec::new(),
                    ..config.storage.clone()
                };
                // Created lazily by the first copy: an unusable archive fails that table's drop, not
                // the whole daemon's startup.
                Some(
                    Warehouse::open(&storage, Access::ReadOnly)
                        .context("opening the retention archive storage")?,
                )
            }
            None => None,
        };
        Ok(Context {
            config: Arc::new(config),
            catalog,
            warehouse,
            archive,
            metrics: Metrics::new(registry),
            clock: Arc::new(SystemClock),
            locks: locks::TableLocks::default(),
            audit,
            leases,
        })
    }

    /// Discovers tables and records how many of each signal exist.
    pub async fn discover(&self) -> Result<Vec<crate::catalog::TableRef>, crate::catalog::CatalogError> {
        let tables = self.catalog.discover().await?;
        for signal in Signal::KNOWN.into_iter().chain([Signal::Other]) {
            let n = tables.iter().filter(|t| t.signal == signal).count();
            self.metrics.tables_discovered.with_label_values(&[signal.as_str()]).set(n as i64);
        }
        Ok(tables)
    }
}

/// The jobs this build provides, each with whether its configuration enables it.
pub fn jobs(ctx: &Context) -> Vec<(Arc<dyn Job>, bool)> {
    vec![
        (Arc::new(crate::compaction::CompactionJob::new(ctx)) as Arc<dyn Job>, ctx.config.compaction.enabled),
        (Arc::new(crate::retention::RetentionJob::new(ctx)) as Arc<dyn Job>, ctx.config.retention.enabled),
        (Arc::new(crate::orphans::OrphanJob::new(ctx)) as Arc<dyn Job>, ctx.config.orphans.enabled),
        (Arc::new(crate::verify::VerifyJob::new(ctx)) as Arc<dyn Job>, ctx.config.verify.enabled),
    ]
}

/// Runs the daemon until `cancel` fires, then waits up to the shutdown timeout for loops to stop.
pub async fn run(ctx: Context, cancel: CancellationToken) -> anyhow::Result<()> {
    let listen = ctx.config.http.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the HTTP server to {listen} (compactor.http.listen)"))?;
    run_with_listener(ctx, listener, cancel).await
}

/// [`run`] on an already bound listener (tests bind port 0).
pub async fn run_with_listener(
    ctx: Context,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let jobs = jobs(&ctx);
    let status = status_board(&jobs);
    run_jobs(ctx, listener, cancel, jobs, status).await
}

/// A status board listing every job kind, enabled where `jobs` has it enabled.
pub fn status_board(jobs: &[(Arc<dyn Job>, bool)]) -> Arc<StatusBoard> {
    let entries: Vec<(JobKind, bool)> = JobKind::ALL
        .iter()
        .map(|k| (*k, jobs.iter().any(|(j, enabled)| j.kind() == *k && *enabled)))
        .collect();
    Arc::new(StatusBoard::new(&entries))
}

/// Serves HTTP and runs each enabled job's loop until `cancel` fires, then waits up to the shutdown
/// timeout for them to stop.
pub async fn run_jobs(
    ctx: Context,
    listener: TcpListener,
    cancel: CancellationToken,
    jobs: Vec<(Arc<dyn Job>, bool)>,
    status: Arc<StatusBoard>,
) -> anyhow::Result<()> {
    status.set_pass_deadline(ctx.config.service.pass_deadline);
    match ctx.discover().await {
        Ok(tables) => info!(tables = tables.len(), "catalog discovered"),
        Err(e) => warn!(error = %e, "catalog discovery failed at startup; loops will retry"),
    }
    let tracker = TaskTracker::new();
    let state = Arc::new(http::HttpState {
        metrics: ctx.metrics.clone(),
        status: status.clone(),
        catalog: ctx.catalog.clone(),
        warehouse: ctx.warehouse.clone(),
        dry_run: ctx.config.service.dry_run,
    });
    let addr = listener.local_addr()?;
    info!(%addr, "http server listening");
    let admin = Arc::new(
        admin::AdminState::new(
            ctx.config.http.admin_tokens.clone(),
            jobs.clone(),
            ctx.catalog.clone(),
            ctx.audit.is_enabled(),
            cancel.clone(),
        )
        .on_daemon(tracker.clone(), status.clone(), ctx.metrics.clone()),
    );
    let app = http::router(state).merge(admin::router(admin));
    tracker.spawn(http::serve(listener, app, cancel.clone()));
    for (job, enabled) in jobs {
        if enabled {
            tracker.spawn(run_periodic(
                job,
                cancel.clone(),
                status.clone(),
                ctx.metrics.clone(),
                ctx.clock.clone(),
            ));
        } else {
            info!(job = %job.kind(), "loop disabled by configuration");
        }
    }
    tracker.close();
    cancel.cancelled().await;
    let timeout = ctx.config.service.shutdown_timeout;
    info!(timeout = %humantime::format_duration(timeout), "shutting down");
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        warn!(
            "shutdown timeout reached with work in flight; exiting (unfinished commits were not swapped in)"
        );
    }
    Ok(())
}

/// Cancels `cancel` on SIGTERM or SIGINT.
pub fn cancel_on_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        }
        cancel.cancel();
    });
}
