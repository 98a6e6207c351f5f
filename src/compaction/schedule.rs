//! Compaction scheduling: in which order a pass works off the due work it found, and when it has done
//! enough. Pure (no IO, no clock of its own): the job, the tests under paused time and the scale
//! simulator (`signaldb-compactor simulate`) all run this code.
//!
//! Terms: a partition's *debt* is what the planner would rewrite in it now ([`DueWork`]: picked files
//! and bytes) and how long it has been waiting (`waiting_since`, see [`plan::due_work`]). A table's
//! *score* is the sum over its due partitions of `files × seconds waiting`: many small files waiting
//! long come first. *Fairness*: a tenant's k-th table (0-based, by score) competes with `score / (k +
//! 1)`, so a tenant with 100× the tables of another cannot push the other's due work behind all of its
//! own; every tenant's most indebted table competes at its full score. A *budget* bounds one pass
//! (`max_bytes_per_pass`, `max_pass_duration`); what it leaves undone keeps its debt (which grows with
//! its age) and is first in line at the next pass.
//!
//! [`plan::due_work`]: super::plan::due_work

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plan::DueWork;

/// One table's due work, as a pass's survey found it. `key` identifies the table to the caller.
#[derive(Debug, Clone)]
pub struct TableDebt<K> {
    pub key: K,
    pub tenant: String,
    pub work: Vec<DueWork>,
}

impl<K> TableDebt<K> {
    /// `Σ files × seconds waiting` (at least one second each, so fresh debt still counts by its files).
    pub fn score(&self, now: DateTime<Utc>) -> f64 {
        self.work.iter().map(|w| w.files as f64 * waited(w, now).as_secs_f64().max(1.0)).sum()
    }

    pub fn files(&self) -> u64 {
        self.work.iter().map(|w| w.files).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.work.iter().map(|w| w.bytes).sum()
    }

    /// The longest any of its partitions has been waiting.
    pub fn oldest(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.work.iter().map(|w| waited(w, now)).max()
    }
}

/// How long `w` has been waiting at `now` (zero if `waiting_since` is in the future).
pub fn waited(w: &DueWork, now: DateTime<Utc>) -> Duration {
    (now - w.waiting_since).to_std().unwrap_or_default()
}

/// What each tenant was served lately: tables compacted, halved at every pass. A tenant served in the
/// last passes competes with less of its debt in the next, so when one pass does little (a budget) a
/// tenant with many tables still takes turns with the others instead of winning every tie.
#[derive(Debug, Default, Clone)]
pub struct Fairness {
    served: HashMap<String, f64>,
}

impl Fairness {
    pub fn served(&self, tenant: &str) -> f64 {
        self.served.get(tenant).copied().unwrap_or(0.0)
    }

    /// Ends a pass: halves what every tenant was served, then adds one per table compacted now.
    pub fn record_pass<'a>(&mut self, served: impl IntoIterator<Item = &'a str>) {
        for v in self.served.values_mut() {
            *v /= 2.0;
        }
        for tenant in served {
            *self.served.entry(tenant.to_string()).or_default() += 1.0;
        }
        self.served.retain(|_, v| *v >= 0.01);
    }
}

/// The order to work `tables` off in (indexes into `tables`): repeatedly the table with the highest
/// `score / (1 + served)`, where `served` is what its tenant was served in recent passes plus the
/// tables of it already placed in this order; ties by tenant, then by position in `tables`
/// (deterministic).
pub fn order<K>(tables: &[TableDebt<K>], now: DateTime<Utc>, fairness: &Fairness) -> Vec<usize> {
    let scores: Vec<f64> = tables.iter().map(|t| t.score(now)).collect();
    // Each tenant's tables, most indebted last (popped first).
    let mut queues: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in tables.iter().enumerate() {
        queues.entry(t.tenant.as_str()).or_default().push(i);
    }
    for queue in queues.values_mut() {
        queue.sort_by(|a, b| scores[*a].partial_cmp(&scores[*b]).unwrap_or(Ordering::Equal).then(b.cmp(a)));
    }
    let mut placed: HashMap<&str, f64> = HashMap::new();
    let mut out = Vec::with_capacity(tables.len());
    // Tenants are few: a scan over their heads per placement is cheap.
    loop {
        let head = queues
            .iter()
            .filter_map(|(tenant, q)| {
                let i = *q.last()?;
                let served = fairness.served(tenant) + placed.get(tenant).copied().unwrap_or(0.0);
                Some((scores[i] / (1.0 + served), *tenant, i))
            })
            .max_by(|a, b| {
                a.0.partial_cmp(&b.0)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| b.1.cmp(a.1))
                    .then(b.2.cmp(&a.2))
            });
        let Some((_, tenant, i)) = head else { break };
        out.push(i);
        queues.get_mut(tenant).map(Vec::pop);
        *placed.entry(tenant).or_default() += 1.0;
    }
    out
}

/// Which budget a pass ran out of; the partition's skip reason and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    Bytes,
    Duration,
}

impl Exhausted {
    pub fn as_str(self) -> &'static str {
        match self {
            Exhausted::Bytes => "pass_budget_bytes",
            Exhausted::Duration => "pass_budget_duration",
        }
    }
}

/// One pass's budget. Bytes are the input bytes of the groups it started; time counts from the
/// pass's start on tokio's clock (paused in tests). A group is never cut short: the budget decides only
/// whether the next one starts.
#[derive(Debug)]
pub struct Budget {
    max_bytes: Option<u64>,
    max_duration: Option<Duration>,
    started: Started,
    spent: AtomicU64,
}

/// Where a budget's time comes from.
#[derive(Debug)]
enum Started {
    /// tokio's clock (the daemon's; paused in tests).
    At(tokio::time::Instant),
    /// A clock of the caller's: milliseconds since the pass started (the simulator's virtual time).
    Virtual(std::sync::Arc<AtomicU64>),
}

impl Budget {
    pub fn new(max_bytes: Option<u64>, max_duration: Option<Duration>) -> Budget {
        let started = Started::At(tokio::time::Instant::now());
        Budget { max_bytes, max_duration, started, spent: AtomicU64::new(0) }
    }

    /// A budget whose elapsed time is `elapsed_ms`, kept by the caller (a simulated clock).
    pub fn on_virtual_clock(
        max_bytes: Option<u64>,
        max_duration: Option<Duration>,
        elapsed_ms: std::sync::Arc<AtomicU64>,
    ) -> Budget {
        Budget { max_bytes, max_duration, started: Started::Virtual(elapsed_ms), spent: AtomicU64::new(0) }
    }

    fn elapsed(&self) -> Duration {
        match &self.started {
            Started::At(at) => at.elapsed(),
            Started::Virtual(ms) => Duration::from_millis(ms.load(AtomicOrdering::Relaxed)),
        }
    }

    /// No limit (CLI and admin passes: the operator asked for the whole pass).
    pub fn unlimited() -> Budget {
        Budget::new(None, None)
    }

    /// Whether the pass is out of budget before looking at the next table.
    pub fn exhausted(&self) -> Option<Exhausted> {
        if self.max_duration.is_some_and(|d| self.elapsed() >= d) {
            return Some(Exhausted::Duration);
        }
        if self.max_bytes.is_some_and(|max| self.spent.load(AtomicOrdering::Relaxed) >= max) {
            return Some(Exhausted::Bytes);
        }
        None
    }

    /// Takes `bytes` for a group about to start, or says which budget is spent. A pass that has spent
    /// nothing may always start one group, so a group larger than the whole budget still runs (alone)
    /// rather than never.
    pub fn admit(&self, bytes: u64) -> Result<(), Exhausted> {
        if self.max_duration.is_some_and(|d| self.elapsed() >= d) {
            return Err(Exhausted::Duration);
        }
        let Some(max) = self.max_bytes else {
            self.spent.fetch_add(bytes, AtomicOrdering::Relaxed);
            return Ok(());
        };
        self.spent
            .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |spent| {
                (spent == 0 || spent.saturating_add(bytes) <= max).then(|| spent.saturating_add(bytes))
            })
            .map(|_| ())
            .map_err(|_| Exhausted::Bytes)
    }

    /// Input bytes of the groups started so far.
    pub fn spent(&self) -> u64 {
        self.spent.load(AtomicOrdering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
    }

    fn due(files: u64, minutes_waiting: i64) -> DueWork {
        DueWork {
            label: format!("p{files}-{minutes_waiting}"),
            files,
            bytes: files * 1000,
            waiting_since: now() - chrono::Duration::minutes(minutes_waiting),
        }
    }

    fn table(tenant: &str, work: Vec<DueWork>) -> TableDebt<usize> {
        TableDebt { key: 0, tenant: tenant.into(), work }
    }

    #[test]
    fn more_files_waiting_longer_come_first() {
        let tables = vec![
            table("a", vec![due(10, 1)]),  // 600
            table("b", vec![due(10, 30)]), // 18,000
            table("c", vec![due(100, 5)]), // 30,000
        ];
        assert_eq!(order(&tables, now(), &Fairness::default()), vec![2, 1, 0]);
    }

    #[test]
    fn a_tenant_with_many_tables_does_not_push_another_behind_all_of_its_own() {
        // Tenant "big" has 100 tables each owing more than tenant "small"'s one table.
        let mut tables: Vec<TableDebt<usize>> = (0..100).map(|_| table("big", vec![due(20, 10)])).collect();
        tables.push(table("small", vec![due(10, 10)]));
        let ordered = order(&tables, now(), &Fairness::default());
        let small_at = ordered.iter().position(|&i| i == 100).unwrap();
        // score/(k+1): small's 6,000 beats big's k-th table once 12,000/(k+1) < 6,000, i.e. k >= 2.
        assert_eq!(small_at, 2, "{ordered:?}");
    }

    #[test]
    fn a_tenant_served_in_the_last_passes_yields_its_ties() {
        // One table per pass (a budget): tenant "big" with many equal tables would win every tie by
        // name; having been served, it yields to "small".
        let mut tables: Vec<TableDebt<usize>> = (0..10).map(|_| table("big", vec![due(20, 10)])).collect();
        tables.push(table("small", vec![due(20, 10)]));
        let mut fairness = Fairness::default();
        assert_eq!(order(&tables, now(), &fairness)[0], 0);
        fairness.record_pass(["big"]);
        assert_eq!(order(&tables, now(), &fairness)[0], 10);
        fairness.record_pass(["small"]);
        // big 0.5, small 1: big's turn again.
        assert_eq!(order(&tables, now(), &fairness)[0], 0);
        assert!((fairness.served("big") - 0.5).abs() < 1e-9 && (fairness.served("small") - 1.0).abs() < 1e-9);
        // Service fades: after enough passes without any, a tenant's share is forgotten.
        for _ in 0..10 {
            fairness.record_pass([]);
        }
        assert_eq!(fairness.served("small"), 0.0);
    }

    #[test]
    fn fresh_debt_counts_by_its_files() {
        let tables = vec![table("a", vec![due(3, 0)]), table("a", vec![due(5, 0)])];
        assert_eq!(tables[1].score(now()), 5.0);
        assert_eq!(order(&tables, now(), &Fairness::default()), vec![1, 0]);
    }

    #[test]
    fn ties_are_deterministic() {
        let tables =
            vec![table("b", vec![due(5, 5)]), table("a", vec![due(5, 5)]), table("a", vec![due(5, 5)])];
        // a's second table is halved; b and a's first tie and go by tenant name.
        assert_eq!(order(&tables, now(), &Fairness::default()), vec![1, 0, 2]);
    }

    #[test]
    fn byte_budget_admits_until_spent_and_always_one_group() {
        let budget = Budget::new(Some(100), None);
        assert_eq!(budget.admit(250), Ok(()), "the first group runs even if larger than the budget");
        assert_eq!(budget.admit(1), Err(Exhausted::Bytes));
        assert_eq!(budget.exhausted(), Some(Exhausted::Bytes));
        let budget = Budget::new(Some(100), None);
        assert_eq!(budget.admit(60), Ok(()));
        assert_eq!(budget.admit(40), Ok(()));
        assert_eq!(budget.admit(1), Err(Exhausted::Bytes));
        assert_eq!(budget.spent(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn duration_budget_stops_new_groups_once_elapsed() {
        let budget = Budget::new(None, Some(Duration::from_secs(60)));
        assert_eq!(budget.admit(1 << 40), Ok(()));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(budget.exhausted(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(budget.admit(1), Err(Exhausted::Duration));
        assert_eq!(budget.exhausted(), Some(Exhausted::Duration));
        assert_eq!(Budget::unlimited().admit(u64::MAX), Ok(()));
    }

    #[test]
    fn a_budget_on_a_virtual_clock_reads_the_callers_time() {
        let ms = std::sync::Arc::new(AtomicU64::new(0));
        let budget = Budget::on_virtual_clock(Some(10), Some(Duration::from_secs(30)), ms.clone());
        assert_eq!(budget.admit(4), Ok(()));
        ms.store(29_999, AtomicOrdering::Relaxed);
        assert_eq!(budget.exhausted(), None);
        ms.store(30_000, AtomicOrdering::Relaxed);
        assert_eq!(budget.exhausted(), Some(Exhausted::Duration));
        assert_eq!(budget.admit(1), Err(Exhausted::Duration));
    }
}
