//! The daemon, the top layer: every enabled job's loop, the HTTP server and the admin API over the
//! runtime's shared [`Context`], all stopped by one `CancellationToken`.

pub mod admin;
pub mod http;
pub mod periodic;
pub mod status;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::job::{Job, JobKind};
pub use periodic::{run_pass, run_periodic};
// The runtime layer's parts, under the names callers have always used.
pub use crate::runtime::{Context, ContextBuilder, leases, locks};
pub use status::{LoopStatus, StatusBoard};

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
    let status = status_board(&jobs, ctx.clock.clone());
    run_jobs(ctx, listener, cancel, jobs, status).await
}

/// A status board listing every job kind, enabled where `jobs` has it enabled, timing passes by
/// `clock`.
pub fn status_board(jobs: &[(Arc<dyn Job>, bool)], clock: Arc<dyn Clock>) -> Arc<StatusBoard> {
    let entries: Vec<(JobKind, bool)> = JobKind::ALL
        .iter()
        .map(|k| (*k, jobs.iter().any(|(j, enabled)| j.kind() == *k && *enabled)))
        .collect();
    Arc::new(StatusBoard::new(&entries).with_clock(clock))
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
        .on_daemon(tracker.clone(), status.clone(), ctx.metrics.clone())
        .with_small_file_rule(admin::SmallFileRule::configured(&ctx.config.compaction)),
    );
    let app = http::router(state).merge(admin::router(admin));
    tracker.spawn(http::serve(listener, app, cancel.clone()));
    for (job, enabled) in jobs {
        // A compaction loop that runs for real divides its survey with the other replicas
        // (runtime::share); a dry-run one surveys everything and takes no share from them.
        if enabled && job.kind() == JobKind::Compaction && !job.mode().is_dry_run() {
            // Joined before the loop's first pass, so that a replica restarting among others divides
            // its first survey with them (a failure here is the membership task's to report).
            let group = crate::runtime::share::survey_group(JobKind::Compaction.as_str(), ctx.catalog.name());
            let _ = ctx.leases.beat(&group).await;
            let status = status.clone();
            let liveness = move || status.liveness(JobKind::Compaction);
            tracker.spawn(ctx.leases.clone().membership(group, liveness, cancel.clone()));
        }
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
