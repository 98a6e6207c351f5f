//! What `/status` reports: per loop, whether it is enabled, its last pass and its next run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::job::JobKind;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoopStatus {
    pub job: JobKind,
    pub enabled: bool,
    pub running: bool,
    pub last_pass_start: Option<DateTime<Utc>>,
    pub last_pass_end: Option<DateTime<Utc>>,
    /// `ok`, `partial` (some tables failed) or `failed` (the pass could not run): the `result` label
    /// of `compactor_passes_total` for the same pass.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    /// When the loop is waiting for its maintenance window: when it opens.
    pub next_window: Option<DateTime<Utc>>,
    pub passes: u64,
    pub failures: u64,
    /// The running pass has run past `[compactor] pass_deadline`.
    pub overdue: bool,
    /// The job's own figures after its last pass (compaction: debt and lag against the target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<serde_json::Value>,
}

/// How a pass ended, in the one vocabulary `/status` and the `compactor_passes_total{result}` label share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassResult {
    /// Every table succeeded, was unchanged or skipped.
    Ok,
    /// The pass ran; some tables failed (the error says how many and the first reason).
    Partial(String),
    /// The pass could not run.
    Failed(String),
}

impl PassResult {
    pub fn as_str(&self) -> &'static str {
        match self {
            PassResult::Ok => "ok",
            PassResult::Partial(_) => "partial",
            PassResult::Failed(_) => "failed",
        }
    }
}

/// Shared, lock-protected loop statuses. Updates are tiny and never held across an await.
#[derive(Debug)]
pub struct StatusBoard {
    loops: Mutex<BTreeMap<JobKind, LoopStatus>>,
    /// How long a pass may run before it is reported overdue (none: never).
    pass_deadline: Mutex<Option<std::time::Duration>>,
    /// Passes in flight per job: a loop's pass and admin-requested ones may overlap, and `running`
    /// stays true until the last of them ends.
    in_flight: Mutex<BTreeMap<JobKind, u32>>,
    /// What passes are timed by (the daemon's context clock; the system clock unless set).
    clock: Arc<dyn Clock>,
}

impl StatusBoard {
    pub fn new(jobs: &[(JobKind, bool)]) -> StatusBoard {
        let loops = jobs
            .iter()
            .map(|&(job, enabled)| {
                (
                    job,
                    LoopStatus {
                        job,
                        enabled,
                        running: false,
                        last_pass_start: None,
                        last_pass_end: None,
                        last_result: None,
                        last_error: None,
                        next_run: None,
                        next_window: None,
                        passes: 0,
                        failures: 0,
                        overdue: false,
                        schedule: None,
                    },
                )
            })
            .collect();
        StatusBoard {
            loops: Mutex::new(loops),
            pass_deadline: Mutex::new(None),
            in_flight: Mutex::new(BTreeMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The board timing passes by `clock` (the context's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> StatusBoard {
        self.clock = clock;
        self
    }

    /// Now, by the board's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn update(&self, job: JobKind, f: impl FnOnce(&mut LoopStatus)) {
        let mut loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = loops.get_mut(&job) {
            f(s);
        }
    }

    /// Counts a pass in or out; returns how many remain in flight.
    fn count(&self, job: JobKind, started: bool) -> u32 {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_flight.entry(job).or_insert(0);
        *n = if started { *n + 1 } else { n.saturating_sub(1) };
        *n
    }

    pub fn pass_started(&self, job: JobKind) {
        self.count(job, true);
        let now = self.now();
        self.update(job, |s| {
            s.running = true;
            s.last_pass_start = Some(now);
            s.next_run = None;
            s.next_window = None;
        });
    }

    pub fn set_pass_deadline(&self, deadline: std::time::Duration) {
        *self.pass_deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
    }

    pub fn pass_deadline(&self) -> Option<std::time::Duration> {
        *self.pass_deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running pass of `job` has run past the deadline (cleared when it finishes).
    pub fn pass_overdue(&self, job: JobKind) {
        self.update(job, |s| s.overdue = true);
    }

    /// What `job`'s loop is doing, for its replica membership row: between passes, in a pass since
    /// how long, or in a pass past the deadline.
    pub fn liveness(&self, job: JobKind) -> crate::runtime::leases::Liveness {
        use crate::runtime::leases::Liveness;
        let now = self.now();
        let loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        match loops.get(&job) {
            Some(s) if s.overdue => Liveness::Overdue,
            Some(LoopStatus { running: true, last_pass_start: Some(start), .. }) => {
                Liveness::Busy((now - *start).to_std().unwrap_or_default())
            }
            _ => Liveness::Idle,
        }
    }

    pub fn pass_finished(&self, job: JobKind, result: PassResult) {
        let still_running = self.count(job, false) > 0;
        let now = self.now();
        self.update(job, |s| {
            s.running = still_running;
            if !still_running {
                s.overdue = false;
            }
            s.last_pass_end = Some(now);
            s.passes += 1;
            s.last_result = Some(result.as_str().into());
            match result {
                PassResult::Ok => s.last_error = None,
                PassResult::Partial(e) | PassResult::Failed(e) => {
                    s.failures += 1;
                    s.last_error = Some(crate::config::redact::secrets(&e));
                }
            }
        });
    }

    pub fn set_next_run(&self, job: JobKind, at: DateTime<Utc>) {
        self.update(job, |s| s.next_run = Some(at));
    }

    pub fn set_detail(&self, job: JobKind, detail: Option<serde_json::Value>) {
        if detail.is_some() {
            self.update(job, |s| s.schedule = detail);
        }
    }

    pub fn set_next_window(&self, job: JobKind, at: DateTime<Utc>) {
        self.update(job, |s| s.next_window = Some(at));
    }

    pub fn snapshot(&self) -> Vec<LoopStatus> {
        let loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        loops.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_says_idle_busy_since_the_pass_started_or_overdue() {
        use crate::runtime::leases::Liveness;
        let start = chrono::Utc::now();
        let clock = crate::clock::ManualClock::new(start);
        let board = StatusBoard::new(&[(JobKind::Compaction, true)]).with_clock(Arc::new(clock.clone()));
        assert_eq!(board.liveness(JobKind::Compaction), Liveness::Idle);
        board.pass_started(JobKind::Compaction);
        clock.set(start + chrono::Duration::seconds(400));
        assert_eq!(board.liveness(JobKind::Compaction), Liveness::Busy(std::time::Duration::from_secs(400)));
        board.pass_overdue(JobKind::Compaction);
        assert_eq!(board.liveness(JobKind::Compaction), Liveness::Overdue);
        board.pass_finished(JobKind::Compaction, PassResult::Ok);
        assert_eq!(board.liveness(JobKind::Compaction), Liveness::Idle);
    }

    #[test]
    fn overlapping_passes_keep_the_job_running_until_the_last_ends() {
        let board = StatusBoard::new(&[(JobKind::Compaction, true)]);
        board.pass_started(JobKind::Compaction); // the loop
        board.pass_started(JobKind::Compaction); // an admin-requested run
        board.pass_finished(JobKind::Compaction, PassResult::Ok);
        assert!(board.snapshot()[0].running, "one pass is still in flight");
        board.pass_finished(JobKind::Compaction, PassResult::Partial("1 table(s) failed".into()));
        let s = &board.snapshot()[0];
        assert!(!s.running);
        assert_eq!((s.passes, s.failures, s.last_result.as_deref()), (2, 1, Some("partial")));
    }

    #[test]
    fn passes_are_timed_by_the_boards_clock() {
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        let board = StatusBoard::new(&[(JobKind::Compaction, true)])
            .with_clock(Arc::new(crate::clock::FixedClock(at)));
        board.pass_started(JobKind::Compaction);
        board.pass_finished(JobKind::Compaction, PassResult::Ok);
        let s = &board.snapshot()[0];
        assert_eq!((s.last_pass_start, s.last_pass_end), (Some(at), Some(at)));
        assert_eq!(board.now(), at);
    }

    #[test]
    fn errors_are_shown_without_passwords() {
        let board = StatusBoard::new(&[(JobKind::Compaction, true)]);
        board.pass_finished(
            JobKind::Compaction,
            PassResult::Failed(
                "catalog postgres://u:hunter2@db/x?password=hunter3: connection refused".into(),
            ),
        );
        let error = board.snapshot()[0].last_error.clone().unwrap();
        // A password runs to a URI separator or whitespace: the ':' after it goes too (over-masking is
        // harmless).
        assert_eq!(error, "catalog postgres://u:***@db/x?password=*** connection refused");
    }
}
