//! The one loop every job runs in: a pass now, then one per interval, until cancelled.
//!
//! A failed pass is logged, counted and retried at the next tick; it never ends the loop. Missed ticks
//! (a pass longer than the interval) are delayed, not bunched. Cancellation is observed between passes
//! here and at safe points inside a pass by the job itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::status::{PassResult, StatusBoard};
use crate::clock::Clock;
use crate::job::{Job, JobError, PassRequest, TableStatus};
use crate::metrics::Metrics;

/// Runs `job` every `job.interval()` until `cancel` fires, only inside its maintenance window if it
/// has one (outside it, the loop sleeps until the window opens). A job with a poll interval shorter
/// than its interval runs a pass every poll instead: its passes skip what has not changed, so a poll
/// that finds nothing costs a catalog query, and new work waits at most one poll.
pub async fn run_periodic(
    job: Arc<dyn Job>,
    cancel: CancellationToken,
    status: Arc<StatusBoard>,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
) {
    let kind = job.kind();
    let interval = job.interval();
    let poll = job.poll_interval().filter(|p| !p.is_zero() && *p < interval);
    let period = poll.unwrap_or(interval);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    info!(
        job = %kind,
        interval = %humantime::format_duration(interval),
        poll = %poll.map(|p| humantime::format_duration(p).to_string()).unwrap_or_else(|| "off".into()),
        "loop started"
    );
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Some(window) = job.window() {
            let now = clock.now();
            if !window.contains(now) {
                let opens = window.next_open(now);
                status.set_next_window(kind, opens);
                info!(job = %kind, window = %window, opens = %opens, "outside the maintenance window; waiting");
                let wait = (opens - now).to_std().unwrap_or_default();
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                // The interval counts from the window's opening, not from before the wait (which would
                // fire an overdue tick right after this pass).
                ticker.reset();
            }
        }
        let request = PassRequest::scheduled(job.mode());
        let span = info_span!("pass", job = %kind, mode = ?request.mode);
        // `run_pass` has logged and counted the outcome; the loop only waits for the next tick.
        let _ = run_pass(job.as_ref(), &request, &cancel, &status, &metrics).instrument(span).await;
        status.set_next_run(kind, clock.now() + chrono::Duration::from_std(period).unwrap_or_default());
    }
    info!(job = %kind, "loop stopped");
}

/// One pass with its bookkeeping: status board, metrics and a log line whatever the outcome. Loops and
/// admin-requested runs both come through here; the outcome is returned for callers that report it.
pub async fn run_pass(
    job: &dyn Job,
    request: &PassRequest,
    cancel: &CancellationToken,
    status: &StatusBoard,
    metrics: &Metrics,
) -> Result<crate::job::PassReport, crate::job::JobError> {
    let kind = job.kind();
    let job_label = kind.as_str();
    status.pass_started(kind);
    // Failure series exist (at 0) from the first pass, so `increase()` alerts see them.
    metrics.pass_failures_total.with_label_values(&[job_label]);
    let started = Instant::now();
    metrics.pass_overdue.with_label_values(&[job_label]).set(0);
    // A panic outside any table's work (tables contain their own) fails the pass, never the loop.
    let pass = std::panic::AssertUnwindSafe(job.run_once(request, cancel)).catch_unwind();
    tokio::pin!(pass);
    let caught = match status.pass_deadline() {
        Some(deadline) => tokio::select! {
            caught = &mut pass => caught,
            _ = tokio::time::sleep(deadline) => {
                warn!(deadline = %humantime::format_duration(deadline), "pass running past its deadline");
                status.pass_overdue(kind);
                metrics.pass_overdue.with_label_values(&[job_label]).set(1);
                metrics.passes_overdue_total.with_label_values(&[job_label]).inc();
                pass.await
            }
        },
        None => pass.await,
    };
    metrics.pass_overdue.with_label_values(&[job_label]).set(0);
    crate::table::manifests::forget();
    crate::alloc::release_after_pass();
    let outcome = match caught {
        Ok(outcome) => outcome,
        Err(payload) => {
            Err(JobError::Other(format!("pass panicked: {}", crate::job::panic_message(payload.as_ref()))))
        }
    };
    let elapsed = started.elapsed();
    metrics.pass_duration_seconds.with_label_values(&[job_label]).observe(elapsed.as_secs_f64());
    let result = log_outcome(request, &outcome, elapsed);
    // One vocabulary: the metric's `result` label and `/status`'s `last_result` come from `result`.
    metrics.passes_total.with_label_values(&[job_label, result.as_str()]).inc();
    if result == PassResult::Ok {
        metrics.last_success_timestamp_seconds.with_label_values(&[job_label]).set(status.now().timestamp());
    } else {
        metrics.pass_failures_total.with_label_values(&[job_label]).inc();
    }
    status.pass_finished(kind, result);
    status.set_detail(kind, job.status_detail());
    outcome
}

/// Logs how a pass ended (a poll that changed nothing only at debug) and names its result.
fn log_outcome(
    request: &PassRequest,
    outcome: &Result<crate::job::PassReport, JobError>,
    elapsed: Duration,
) -> PassResult {
    match outcome {
        // A poll that found every table unchanged is not news.
        Ok(report)
            if request.scheduled && report.tables.iter().all(|t| t.status == TableStatus::Unchanged) =>
        {
            debug!(tables = report.tables.len(), elapsed_ms = ms(elapsed), "pass finished; nothing changed");
            PassResult::Ok
        }
        Ok(report) if report.failed_tables() == 0 => {
            info!(tables = report.tables.len(), elapsed_ms = ms(elapsed), "pass finished");
            PassResult::Ok
        }
        Ok(report) => {
            let failed = report.failed_tables();
            let names: Vec<&str> = report
                .tables
                .iter()
                .filter(|t| matches!(t.status, TableStatus::Failed { .. }))
                .map(|t| t.table.as_str())
                .collect();
            // Each failed table and partition was logged by name where it failed (`TablePass::record`).
            warn!(
                tables = report.tables.len(),
                failed,
                elapsed_ms = ms(elapsed),
                "pass finished with failing tables"
            );
            PassResult::Partial(format!("{failed} table(s) failed: {}", names.join(", ")))
        }
        Err(e) => {
            let error = crate::config::redact::secrets(&crate::job::error_chain(e));
            error!(
                error,
                retryable = e.is_retryable(),
                elapsed_ms = ms(elapsed),
                "pass failed; retrying at the next tick"
            );
            PassResult::Failed(error)
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use chrono::Utc;

    use super::*;
    use crate::config::Mode;
    use crate::job::{JobKind, PassReport};

    /// A job that counts its passes and fails every `fail_every`-th one.
    struct CountingJob {
        passes: AtomicUsize,
        fail_every: usize,
        window: Option<crate::window::Window>,
        interval: Duration,
        poll: Option<Duration>,
        /// Whether each pass was a loop's own (budgeted) one.
        scheduled: std::sync::Mutex<Vec<bool>>,
    }

    fn system() -> Arc<dyn Clock> {
        Arc::new(crate::clock::SystemClock)
    }

    /// Wall time that follows tokio's (paused) clock from a fixed start.
    #[derive(Debug)]
    struct TokioClock {
        base: chrono::DateTime<Utc>,
        start: tokio::time::Instant,
    }

    impl Clock for TokioClock {
        fn now(&self) -> chrono::DateTime<Utc> {
            self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap()
        }
    }

    #[async_trait]
    impl Job for CountingJob {
        fn kind(&self) -> JobKind {
            JobKind::Compaction
        }
        fn interval(&self) -> Duration {
            self.interval
        }
        fn mode(&self) -> Mode {
            Mode::DryRun
        }
        fn window(&self) -> Option<crate::window::Window> {
            self.window
        }
        fn poll_interval(&self) -> Option<Duration> {
            self.poll
        }
        async fn run_once(
            &self,
            request: &PassRequest,
            _: &CancellationToken,
        ) -> Result<PassReport, JobError> {
            self.scheduled.lock().unwrap().push(request.scheduled);
            let n = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
            if n.is_multiple_of(self.fail_every) {
                return Err(JobError::Other(format!("pass {n} failed")));
            }
            Ok(PassReport {
                job: JobKind::Compaction,
                mode: request.mode,
                started_at: Utc::now(),
                finished_at: Utc::now(),
                tables: vec![],
            })
        }
    }

    fn setup(fail_every: usize) -> (Arc<CountingJob>, Arc<StatusBoard>, Metrics) {
        let job = Arc::new(CountingJob {
            passes: AtomicUsize::new(0),
            fail_every,
            window: None,
            interval: Duration::from_secs(60),
            poll: None,
            scheduled: Default::default(),
        });
        let status = Arc::new(StatusBoard::new(&[(JobKind::Compaction, true)]));
        (job, status, Metrics::new(prometheus::Registry::new()))
    }

    /// Lets spawned tasks run until they block on the (paused) clock.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_start_and_every_interval() {
        let (job, status, metrics) = setup(usize::MAX);
        let cancel = CancellationToken::new();
        let handle =
            tokio::spawn(run_periodic(job.clone(), cancel.clone(), status, metrics.clone(), system()));
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(59)).await;
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 2);
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(60)).await;
            settle().await;
        }
        assert_eq!(job.passes.load(Ordering::SeqCst), 5);
        // A pass that overran several intervals is followed by one pass, not a burst of missed ones.
        tokio::time::advance(Duration::from_secs(600)).await;
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 6);
        tokio::time::advance(Duration::from_secs(59)).await;
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 6);
        cancel.cancel();
        handle.await.unwrap();
        assert_eq!(metrics.passes_total.with_label_values(&["compaction", "ok"]).get(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_with_a_poll_interval_runs_a_budgeted_pass_every_poll() {
        let job = Arc::new(CountingJob {
            passes: AtomicUsize::new(0),
            fail_every: usize::MAX,
            window: None,
            interval: Duration::from_secs(3600),
            poll: Some(Duration::from_secs(30)),
            scheduled: Default::default(),
        });
        let status = Arc::new(StatusBoard::new(&[(JobKind::Compaction, true)]));
        let metrics = Metrics::new(prometheus::Registry::new());
        let cancel = CancellationToken::new();
        let handle =
            tokio::spawn(run_periodic(job.clone(), cancel.clone(), status.clone(), metrics, system()));
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 1);
        // Work that appears right after a pass waits at most one poll, not the hour.
        tokio::time::advance(Duration::from_secs(29)).await;
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 2);
        for _ in 0..2 {
            tokio::time::advance(Duration::from_secs(30)).await;
            settle().await;
        }
        assert_eq!(job.passes.load(Ordering::SeqCst), 4);
        let next = status.snapshot()[0].next_run.unwrap();
        let end = status.snapshot()[0].last_pass_end.unwrap();
        assert!(next - end <= chrono::Duration::seconds(31), "next run {next}, last pass {end}");
        cancel.cancel();
        handle.await.unwrap();
        assert_eq!(*job.scheduled.lock().unwrap(), vec![true; 4], "the loop's passes are budgeted");
    }

    #[tokio::test(start_paused = true)]
    async fn failing_pass_is_counted_and_loop_continues() {
        let (job, status, metrics) = setup(2);
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run_periodic(
            job.clone(),
            cancel.clone(),
            status.clone(),
            metrics.clone(),
            system(),
        ));
        settle().await;
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(60)).await;
            settle().await;
        }
        assert_eq!(job.passes.load(Ordering::SeqCst), 4);
        assert_eq!(metrics.pass_failures_total.with_label_values(&["compaction"]).get(), 2);
        assert_eq!(metrics.passes_total.with_label_values(&["compaction", "ok"]).get(), 2);
        let snapshot = status.snapshot();
        let loop_status = &snapshot[0];
        assert_eq!(loop_status.last_result.as_deref(), Some("failed"));
        assert_eq!(loop_status.last_error.as_deref(), Some("pass 4 failed"));
        assert_eq!(loop_status.failures, 2);
        cancel.cancel();
        handle.await.unwrap();
    }

    /// A job whose every pass panics outside any table's work.
    struct PanickingJob(AtomicUsize);

    #[async_trait]
    impl Job for PanickingJob {
        fn kind(&self) -> JobKind {
            JobKind::Compaction
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(60)
        }
        fn mode(&self) -> Mode {
            Mode::DryRun
        }
        async fn run_once(&self, _: &PassRequest, _: &CancellationToken) -> Result<PassReport, JobError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            panic!("pass {n} hit a bug");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_pass_is_counted_and_the_next_tick_runs() {
        let job = Arc::new(PanickingJob(AtomicUsize::new(0)));
        let status = Arc::new(StatusBoard::new(&[(JobKind::Compaction, true)]));
        let metrics = Metrics::new(prometheus::Registry::new());
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run_periodic(
            job.clone(),
            cancel.clone(),
            status.clone(),
            metrics.clone(),
            system(),
        ));
        settle().await;
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(job.0.load(Ordering::SeqCst), 2, "the loop survived the first panic");
        assert_eq!(metrics.pass_failures_total.with_label_values(&["compaction"]).get(), 2);
        let s = &status.snapshot()[0];
        assert!(!s.running, "the pass is not shown as running forever");
        assert_eq!(s.last_error.as_deref(), Some("pass panicked: pass 2 hit a bug"));
        cancel.cancel();
        handle.await.unwrap();
    }

    /// A job whose pass takes two hours.
    struct SlowJob;

    #[async_trait]
    impl Job for SlowJob {
        fn kind(&self) -> JobKind {
            JobKind::Compaction
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(60)
        }
        fn mode(&self) -> Mode {
            Mode::DryRun
        }
        async fn run_once(
            &self,
            request: &PassRequest,
            _: &CancellationToken,
        ) -> Result<PassReport, JobError> {
            tokio::time::sleep(Duration::from_secs(7200)).await;
            Ok(PassReport {
                job: JobKind::Compaction,
                mode: request.mode,
                started_at: Utc::now(),
                finished_at: Utc::now(),
                tables: vec![],
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_past_its_deadline_is_shown_overdue_until_it_ends() {
        let status = Arc::new(StatusBoard::new(&[(JobKind::Compaction, true)]));
        status.set_pass_deadline(Duration::from_secs(3600));
        let metrics = Metrics::new(prometheus::Registry::new());
        let pass = tokio::spawn({
            let (status, metrics) = (status.clone(), metrics.clone());
            async move {
                let request = PassRequest::all(Mode::DryRun);
                run_pass(&SlowJob, &request, &CancellationToken::new(), &status, &metrics)
                    .await
                    .expect("the slow pass succeeds");
            }
        });
        let overdue = |m: &Metrics| m.pass_overdue.with_label_values(&["compaction"]).get();
        settle().await; // the pass has started and armed its deadline
        tokio::time::advance(Duration::from_secs(3599)).await;
        settle().await;
        assert!(!status.snapshot()[0].overdue);
        assert_eq!(overdue(&metrics), 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert!(status.snapshot()[0].overdue && status.snapshot()[0].running);
        assert_eq!(overdue(&metrics), 1);
        assert_eq!(metrics.passes_overdue_total.with_label_values(&["compaction"]).get(), 1);
        tokio::time::advance(Duration::from_secs(3600)).await;
        pass.await.unwrap();
        assert!(!status.snapshot()[0].overdue && !status.snapshot()[0].running);
        assert_eq!(overdue(&metrics), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_the_loop_promptly() {
        let (job, status, metrics) = setup(usize::MAX);
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run_periodic(job.clone(), cancel.clone(), status, metrics, system()));
        settle().await;
        cancel.cancel();
        // No time passes: the loop must end without waiting for its next tick.
        tokio::time::timeout(Duration::from_millis(1), handle).await.unwrap().unwrap();
        assert_eq!(job.passes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_its_window_across_a_dst_change() {
        use chrono::TimeZone;
        // 2026-03-28 12:00 UTC; window 02:30-04:00 Europe/Berlin. That night clocks spring forward at
        // 02:00 CET, so 02:30 does not exist: the window opens at 03:00 CEST = 01:00 UTC (+13 h) and
        // closes at 04:00 CEST = 02:00 UTC. The next night it opens at 02:30 CEST = 00:30 UTC (+36.5 h).
        let base = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let window =
            crate::window::Window::new("02:30-04:00".parse().unwrap(), "Europe/Berlin".parse().unwrap());
        let job = Arc::new(CountingJob {
            passes: AtomicUsize::new(0),
            fail_every: usize::MAX,
            window: Some(window),
            interval: Duration::from_secs(3600),
            poll: None,
            scheduled: Default::default(),
        });
        let status = Arc::new(StatusBoard::new(&[(JobKind::Compaction, true)]));
        let metrics = Metrics::new(prometheus::Registry::new());
        let clock = Arc::new(TokioClock { base, start: tokio::time::Instant::now() });
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run_periodic(job.clone(), cancel.clone(), status.clone(), metrics, clock));
        settle().await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 0, "outside the window: no pass at start");
        assert_eq!(
            status.snapshot()[0].next_window,
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap())
        );
        let step = |secs: u64| async move {
            tokio::time::advance(Duration::from_secs(secs)).await;
            settle().await;
        };
        step(13 * 3600 - 60).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 0, "still one minute before the window");
        step(60).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 1, "first pass when the window opens");
        step(3600).await; // 02:00 UTC: the window has closed; the loop waits for the next night
        assert_eq!(job.passes.load(Ordering::SeqCst), 1);
        assert_eq!(
            status.snapshot()[0].next_window,
            Some(Utc.with_ymd_and_hms(2026, 3, 30, 0, 30, 0).unwrap())
        );
        step(22 * 3600 + 29 * 60).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 1, "one minute before the second night's window");
        step(60).await;
        assert_eq!(job.passes.load(Ordering::SeqCst), 2);
        cancel.cancel();
        handle.await.unwrap();
    }
}
