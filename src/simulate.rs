//! `signaldb-compactor simulate`: compaction lag at scale, without a warehouse. Replays SignalDB-like
//! ingest (every table commits one small file every `commit_every`) over many tables and hours, and
//! runs the compaction loop's decisions on it with the real planner ([`plan::plan`],
//! [`plan::due_work`]), the real scheduler ([`schedule::order`]) and the real pass [`Budget`] on a
//! simulated clock. What it does not run is IO: a table's compaction costs a measured fixed
//! overhead (load, lease, audit, commit) plus its input bytes at a measured rewrite throughput per
//! core, and a pass's survey costs a measured look per table whose pointer moved (every table, since
//! every table commits between polls). The figures it prints (lag percentiles overall and per tenant,
//! debt over time, busy time) are the model's; `docs/BENCHMARKS.md` says where its costs come from.
//!
//! The model of the loop: the core budget is `replicas` daemons of `cores_per_replica` cores sharing
//! one catalog, dividing the tables as the daemon's survey does (`runtime::share`: rendezvous hashing
//! of the table's name over the replicas). Each replica polls on its own: a pass starts at a poll when
//! its previous one has ended; it surveys its share, orders the tables with due work (debt, its own
//! tenant fairness), and runs them within its pass budget, one table at a time, its groups on up to
//! `cores_per_replica` cores (`max_concurrent_rewrites`). A partition is compacted when its table's
//! work ends; its lag is that time minus its `waiting_since`. Partitions still uncompacted when the
//! simulation ends count with their wait so far (a backlog is not hidden).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::compaction::plan::{self, DueWork, FileInput, PartitionInput, PlanOptions};
use crate::compaction::schedule::{self, Budget, TableDebt};
use crate::runtime::share;

const MIB: u64 = 1024 * 1024;

/// The simulated fleet and the compactor's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SimOptions {
    #[arg(long, default_value_t = 10_000)]
    pub tables: usize,
    #[arg(long, default_value_t = 50)]
    pub tenants: usize,
    /// Tables per tenant follow a Zipf law with this exponent (0: even; 1: the largest tenant has
    /// about 10× the tables of the 10th).
    #[arg(long, default_value_t = 1.0)]
    pub tenant_skew: f64,
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Every table commits one file this often.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub commit_every: Duration,
    /// File sizes: 80 % of tables write files of `small_file_kb`, 15 % ten times that, 5 % a hundred
    /// times (SignalDB's files are tens to hundreds of KB).
    #[arg(long, default_value_t = 2)]
    pub small_file_kb: u64,
    /// Daemons sharing the catalog (they divide tables through leases).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Cores of each replica (`max_concurrent_rewrites` groups of one table at a time).
    #[arg(long, default_value_t = 2)]
    pub cores_per_replica: usize,
    /// Tables a replica compacts at once (`max_concurrent_tables`); `table_overhead` is then what one
    /// table costs while the others run beside it (measure it so).
    #[arg(long, default_value_t = 1)]
    pub tables_at_once: usize,
    /// Rewrite throughput of one core, MiB of input per second (measured: `docs/BENCHMARKS.md`).
    #[arg(long, default_value_t = 28.0)]
    pub mib_per_core_second: f64,
    /// Fixed cost of compacting one table (load, lease, audit row, commit), measured.
    #[arg(long, default_value = "150ms", value_parser = humantime::parse_duration)]
    pub table_overhead: Duration,
    /// Cost of a read-only look at one table whose pointer moved, measured.
    #[arg(long, default_value = "2ms", value_parser = humantime::parse_duration)]
    pub look_cost: Duration,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub partition_lateness: Duration,
    /// The lag the operator promises (`compactor.lag_target`); the alert fires at twice it.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub lag_target: Duration,
    #[arg(long)]
    pub max_bytes_per_pass: Option<u64>,
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_pass_duration: Option<Duration>,
    #[arg(long, default_value_t = 128)]
    pub target_file_size_mb: u64,
    #[arg(long, default_value_t = 5)]
    pub min_input_files: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl SimOptions {
    /// A small fleet for tests.
    pub fn small(tables: usize, tenants: usize, hours: u32) -> SimOptions {
        SimOptions {
            tables,
            tenants,
            tenant_skew: 1.0,
            hours,
            commit_every: Duration::from_secs(60),
            small_file_kb: 2,
            replicas: 1,
            cores_per_replica: 2,
            tables_at_once: 1,
            mib_per_core_second: 28.0,
            table_overhead: Duration::from_millis(150),
            look_cost: Duration::from_millis(2),
            poll_interval: Duration::from_secs(30),
            partition_lateness: Duration::from_secs(600),
            lag_target: Duration::from_secs(600),
            max_bytes_per_pass: None,
            max_pass_duration: None,
            target_file_size_mb: 128,
            min_input_files: 5,
            json: false,
        }
    }
}

/// What the simulation measured.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub tables: usize,
    pub tenants: usize,
    pub hours: u32,
    pub ingest_files: u64,
    pub ingest_bytes: u64,
    pub partitions_compacted: u64,
    /// Due partitions still waiting when the simulation ended.
    pub partitions_waiting: u64,
    pub passes: u64,
    /// Passes a budget cut short.
    pub passes_cut_by_budget: u64,
    pub lag_p50_seconds: f64,
    pub lag_p99_seconds: f64,
    pub lag_max_seconds: f64,
    /// The best and the worst tenant's p99 lag, and the p99 lag of the tenant with the fewest tables.
    pub tenant_p99_min_seconds: f64,
    pub tenant_p99_max_seconds: f64,
    pub smallest_tenant_p99_seconds: f64,
    /// Largest debt (due files, due bytes) seen at a poll, per simulated hour.
    pub debt_by_hour: Vec<(u32, u64, u64)>,
    /// p99 lag of the partitions compacted in each simulated hour (the last entry: those still
    /// waiting at the end).
    pub lag_p99_by_hour: Vec<(u32, f64)>,
    /// Hours whose p99 lag is over twice `lag_target` (where `CompactorCompactionLagHigh` fires).
    pub hours_over_alert: u32,
    /// Share of the simulated time a pass was running, averaged over the replicas.
    pub busy_fraction: f64,
    /// Tables a pass's survey read, on average (the rest kept their last look).
    pub tables_read_per_pass: f64,
}

/// One table of the fleet.
struct SimTable {
    tenant: usize,
    file_bytes: u64,
    /// Hours (since the start) already compacted.
    compacted: Vec<bool>,
    /// When a survey last read it.
    looked_at: Option<DateTime<Utc>>,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}

/// A deterministic xorshift, so the same options give the same fleet.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn fleet(o: &SimOptions) -> Vec<SimTable> {
    let weights: Vec<f64> = (1..=o.tenants.max(1)).map(|k| 1.0 / (k as f64).powf(o.tenant_skew)).collect();
    let total: f64 = weights.iter().sum();
    // Every tenant has at least one table; the rest by weight.
    let mut per_tenant: Vec<usize> =
        weights.iter().map(|w| ((w / total) * o.tables as f64).floor().max(1.0) as usize).collect();
    while per_tenant.iter().sum::<usize>() > o.tables && per_tenant[0] > 1 {
        per_tenant[0] -= 1;
    }
    while per_tenant.iter().sum::<usize>() < o.tables {
        per_tenant[0] += 1;
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tables = Vec::with_capacity(o.tables);
    for (tenant, n) in per_tenant.into_iter().enumerate() {
        for _ in 0..n {
            let r = rng.next_f64();
            let factor = if r < 0.80 {
                1
            } else if r < 0.95 {
                10
            } else {
                100
            };
            tables.push(SimTable {
                tenant,
                file_bytes: o.small_file_kb * 1024 * factor,
                compacted: vec![false; o.hours as usize],
                looked_at: None,
            });
        }
    }
    tables
}

fn plan_options(o: &SimOptions) -> PlanOptions {
    let target = o.target_file_size_mb * MIB;
    PlanOptions {
        target_file_size: target,
        small_file_threshold: target / 100 * 75,
        max_file_size: target / 100 * 180,
        rewrite_to_current_spec: false,
        min_input_files: o.min_input_files,
        partition_lateness: o.partition_lateness,
        compact_open_partitions: false,
        full: false,
        only: Vec::new(),
    }
}

/// Hour `h` of a table as the planner sees it: one file per commit, each added when it was committed.
fn partition(o: &SimOptions, t: &SimTable, h: u32) -> PartitionInput {
    let begin = start() + chrono::Duration::hours(h.into());
    let every = chrono::Duration::from_std(o.commit_every).unwrap_or(chrono::Duration::seconds(5));
    let files = (3600 / o.commit_every.as_secs().max(1)) as usize;
    PartitionInput {
        label: format!("timestamp_hour={h}"),
        end: Some(begin + chrono::Duration::hours(1)),
        files: (0..files)
            .map(|i| FileInput {
                path: String::new(),
                size: t.file_bytes,
                records: t.file_bytes / 100,
                parquet: true,
                deletes: 0,
                added_at: Some(begin + every * (i as i32 + 1)),
            })
            .collect(),
        delete_files: 0,
        current_spec: true,
    }
}

/// Runs the simulation on a simulated clock (no runtime, no IO).
pub fn run(o: &SimOptions) -> SimReport {
    simulate(o)
}

fn simulate(o: &SimOptions) -> SimReport {
    let opts = plan_options(o);
    let mut tables = fleet(o);
    let commits_per_hour = 3600 / o.commit_every.as_secs().max(1);
    let horizon = chrono::Duration::hours(o.hours.into());
    let poll = chrono::Duration::from_std(o.poll_interval).unwrap_or(chrono::Duration::seconds(30));
    let lateness = chrono::Duration::from_std(o.partition_lateness).unwrap_or_default();
    let recheck = chrono::Duration::from_std(o.lag_target / 2).unwrap_or_default();
    let lanes = o.replicas.max(1);
    let slots_per_lane = o.tables_at_once.max(1);
    // A replica's cores divided between the tables it compacts at once.
    let cores_per_slot = (o.cores_per_replica.max(1) as f64 / slots_per_lane as f64).max(1.0);
    let throughput = o.mib_per_core_second * MIB as f64;
    // Each table's replica: the daemon's own division of the survey (`runtime::share`).
    let members: Vec<String> = (0..lanes).map(|l| format!("replica-{l}:{l}:00000000")).collect();
    let owner: Vec<usize> = (0..tables.len())
        .map(|i| {
            let key = format!("tenant{}.dataset{i}.traces", tables[i].tenant);
            let o = share::owner(&members, &key).expect("at least one replica");
            members.iter().position(|m| m == o).expect("an owner is a member")
        })
        .collect();

    // (tenant, lag in seconds, simulated hour it ended in)
    let mut lags: Vec<(usize, f64, u32)> = Vec::new();
    let mut debt_by_hour: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let (mut passes, mut cut, mut busy, mut looks_total) = (0u64, 0u64, 0.0f64, 0u64);
    let mut free_at = vec![start(); lanes];
    let mut fairness = vec![schedule::Fairness::default(); lanes];
    let mut now = start();
    // Due work per (table, hour), planned once when the hour falls due (its files no longer change).
    let mut planned: BTreeMap<(usize, u32), DueWork> = BTreeMap::new();
    let mut groups: BTreeMap<(usize, u32), Vec<u64>> = BTreeMap::new();
    while now < start() + horizon {
        // Each replica polls on its own: a pass starts at a poll when its previous one has ended.
        for lane in 0..lanes {
            if now < free_at[lane] {
                continue;
            }
            // Survey: this replica's share; every table moved since the last poll (it commits every
            // few seconds).
            let mut owing = Vec::new();
            let mut looks = 0usize;
            for (i, t) in tables.iter_mut().enumerate().filter(|(i, _)| owner[*i] == lane) {
                // The daemon reads a table at a poll when it owes work, when an hour of it fell due
                // since its last look, or when that look is older than half the lag target (its
                // pointer moves at every poll); else it keeps the last look (`CompactionJob::defers`).
                let hours_due = |at: DateTime<Utc>| (at - start() - lateness).num_seconds().div_euclid(3600);
                let owes = planned.range((i, 0)..(i + 1, 0)).next().is_some();
                if t.looked_at.is_none_or(|at| owes || now >= at + recheck || hours_due(now) > hours_due(at))
                {
                    t.looked_at = Some(now);
                    looks += 1;
                }
                let work = due_work(o, &opts, t, i, now, lateness, &mut planned, &mut groups);
                if !work.is_empty() {
                    owing.push(TableDebt { key: i, tenant: format!("t{:04}", t.tenant), work });
                }
            }
            passes += 1;
            looks_total += looks as u64;
            let surveyed =
                now + chrono::Duration::from_std(o.look_cost.mul_f64(looks as f64)).unwrap_or_default();
            // The budget reads the simulated time since the pass's survey ended, as in the daemon.
            let elapsed_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let budget =
                Budget::on_virtual_clock(o.max_bytes_per_pass, o.max_pass_duration, elapsed_ms.clone());
            // `tables_at_once` slots, each taking the next table when free (`max_concurrent_tables`).
            let mut slots = vec![surveyed; slots_per_lane];
            let (mut cut_short, mut served) = (false, Vec::new());
            for idx in schedule::order(&owing, now, &fairness[lane]) {
                let debt = &owing[idx];
                let slot = (0..slots.len()).min_by_key(|&s| slots[s]).expect("at least one slot");
                let mut at = slots[slot];
                let since_start = (at - surveyed).num_milliseconds().max(0) as u64;
                elapsed_ms.store(since_start, std::sync::atomic::Ordering::Relaxed);
                if budget.exhausted().is_some() {
                    cut_short = true;
                    break;
                }
                let mut seconds = o.table_overhead.as_secs_f64();
                let mut done = Vec::new();
                for w in &debt.work {
                    let h: u32 = w.label.trim_start_matches("timestamp_hour=").parse().unwrap_or(0);
                    let bytes: Vec<u64> = groups.get(&(debt.key, h)).cloned().unwrap_or_default();
                    if bytes.iter().any(|b| budget.admit(*b).is_err()) {
                        cut_short = true;
                        break;
                    }
                    seconds += bytes.iter().sum::<u64>() as f64
                        / (throughput * cores_per_slot.min(bytes.len().max(1) as f64));
                    done.push((h, w.waiting_since));
                }
                at += chrono::Duration::milliseconds((seconds * 1000.0) as i64);
                slots[slot] = at;
                if !done.is_empty() {
                    served.push(debt.tenant.clone());
                }
                for (h, since) in done {
                    tables[debt.key].compacted[h as usize] = true;
                    planned.remove(&(debt.key, h));
                    lags.push((
                        tables[debt.key].tenant,
                        (at - since).num_milliseconds() as f64 / 1000.0,
                        ((at - start()).num_seconds() / 3600) as u32,
                    ));
                }
                if cut_short {
                    break;
                }
            }
            fairness[lane].record_pass(served.iter().map(String::as_str));
            cut += u64::from(cut_short);
            let at = slots.into_iter().max().unwrap_or(surveyed);
            free_at[lane] = at;
            busy += (at - now).num_milliseconds() as f64 / 1000.0;
        }
        // The debt the replicas' last surveys found and left undone (what their gauges sum to).
        let hour = ((now - start()).num_seconds() / 3600) as u32;
        let debt = debt_by_hour.entry(hour).or_default();
        let files: u64 = planned.values().map(|d| d.files).sum();
        let bytes: u64 = planned.values().map(|d| d.bytes).sum();
        *debt = (debt.0.max(files), debt.1.max(bytes));
        now += poll;
    }
    // What is still waiting counts with its wait so far.
    let end = start() + horizon;
    let mut waiting = 0;
    for ((i, _), due) in &planned {
        waiting += 1;
        let lag = (end - due.waiting_since).num_milliseconds().max(0) as f64 / 1000.0;
        lags.push((tables[*i].tenant, lag, o.hours));
    }
    let mut report = report(o, &tables, lags, waiting, passes, cut, busy, debt_by_hour, commits_per_hour);
    report.tables_read_per_pass = looks_total as f64 / passes.max(1) as f64;
    report
}

/// A table's due work at `now`: each closed, due hour not yet compacted, planned by the real
/// planner once when it falls due (its files no longer change).
#[allow(clippy::too_many_arguments)]
fn due_work(
    o: &SimOptions,
    opts: &PlanOptions,
    t: &mut SimTable,
    i: usize,
    now: DateTime<Utc>,
    lateness: chrono::Duration,
    planned: &mut BTreeMap<(usize, u32), DueWork>,
    groups: &mut BTreeMap<(usize, u32), Vec<u64>>,
) -> Vec<DueWork> {
    let mut work = Vec::new();
    for h in 0..o.hours {
        if t.compacted[h as usize] {
            continue;
        }
        // Still open (the planner would say so too, at the cost of planning it).
        let closes = start() + chrono::Duration::hours(i64::from(h) + 1);
        if now < closes + lateness {
            break;
        }
        let due = match planned.entry((i, h)) {
            std::collections::btree_map::Entry::Occupied(e) => e.get().clone(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let p = partition(o, t, h);
                let decisions = plan::plan(std::slice::from_ref(&p), opts, now);
                match decisions.first() {
                    Some((_, plan::Decision::Compact { groups: g, .. })) => {
                        groups.insert((i, h), g.iter().map(|g| g.bytes).collect());
                    }
                    // This hour and the later ones are still open.
                    Some((_, plan::Decision::Skip { reason: plan::SkipReason::OpenPartition })) => break,
                    // Nothing worth a rewrite: never owed.
                    _ => {
                        t.compacted[h as usize] = true;
                        continue;
                    }
                }
                let due = plan::due_work(std::slice::from_ref(&p), &decisions, opts, now);
                e.insert(due.into_iter().next().expect("a compacted partition owes")).clone()
            }
        };
        work.push(due);
    }
    work
}

#[allow(clippy::too_many_arguments)]
fn report(
    o: &SimOptions,
    tables: &[SimTable],
    lags: Vec<(usize, f64, u32)>,
    waiting: u64,
    passes: u64,
    cut: u64,
    busy: f64,
    debt_by_hour: BTreeMap<u32, (u64, u64)>,
    commits_per_hour: u64,
) -> SimReport {
    let percentile = |values: &mut Vec<f64>, q: f64| -> f64 {
        values.sort_by(f64::total_cmp);
        match values.len() {
            0 => 0.0,
            n => values[(((n - 1) as f64) * q).round() as usize],
        }
    };
    let mut all: Vec<f64> = lags.iter().map(|(_, l, _)| *l).collect();
    let mut per_tenant: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut per_hour: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for (tenant, lag, hour) in &lags {
        per_tenant.entry(*tenant).or_default().push(*lag);
        per_hour.entry(*hour).or_default().push(*lag);
    }
    let lag_p99_by_hour: Vec<(u32, f64)> =
        per_hour.iter_mut().map(|(h, v)| (*h, percentile(v, 0.99))).collect();
    let alert = 2.0 * o.lag_target.as_secs_f64();
    let mut table_counts: BTreeMap<usize, usize> = BTreeMap::new();
    for t in tables {
        *table_counts.entry(t.tenant).or_default() += 1;
    }
    let smallest =
        table_counts.iter().min_by_key(|(tenant, n)| (**n, std::cmp::Reverse(**tenant))).map(|(t, _)| *t);
    let tenant_p99: BTreeMap<usize, f64> =
        per_tenant.iter_mut().map(|(t, v)| (*t, percentile(v, 0.99))).collect();
    let ingest_files = tables.len() as u64 * commits_per_hour * u64::from(o.hours);
    SimReport {
        tables: tables.len(),
        tenants: table_counts.len(),
        hours: o.hours,
        ingest_files,
        ingest_bytes: tables.iter().map(|t| t.file_bytes * commits_per_hour * u64::from(o.hours)).sum(),
        partitions_compacted: lags.len() as u64 - waiting,
        partitions_waiting: waiting,
        passes,
        passes_cut_by_budget: cut,
        lag_p50_seconds: percentile(&mut all, 0.5),
        lag_p99_seconds: percentile(&mut all, 0.99),
        lag_max_seconds: all.last().copied().unwrap_or(0.0),
        tenant_p99_min_seconds: tenant_p99.values().copied().fold(f64::INFINITY, f64::min).min(f64::MAX),
        tenant_p99_max_seconds: tenant_p99.values().copied().fold(0.0, f64::max),
        smallest_tenant_p99_seconds: smallest.and_then(|t| tenant_p99.get(&t)).copied().unwrap_or(0.0),
        debt_by_hour: debt_by_hour.into_iter().map(|(h, (f, b))| (h, f, b)).collect(),
        hours_over_alert: lag_p99_by_hour.iter().filter(|(_, p99)| *p99 > alert).count() as u32,
        lag_p99_by_hour,
        busy_fraction: busy / (f64::from(o.hours) * 3600.0 * o.replicas.max(1) as f64),
        tables_read_per_pass: 0.0,
    }
}

/// The `simulate` command: runs the simulation and prints the report.
pub fn main(o: &SimOptions) -> std::process::ExitCode {
    let report = run(o);
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return std::process::ExitCode::SUCCESS;
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!(
        "{} tables, {} tenants, {} h: {} files, {:.1} GiB ingested; {} replica(s) x {} cores",
        report.tables,
        report.tenants,
        report.hours,
        report.ingest_files,
        gib(report.ingest_bytes),
        o.replicas,
        o.cores_per_replica
    );
    println!(
        "lag p50 {:.0}s p99 {:.0}s max {:.0}s; tenants' p99 {:.0}s..{:.0}s (fewest tables: {:.0}s)",
        report.lag_p50_seconds,
        report.lag_p99_seconds,
        report.lag_max_seconds,
        report.tenant_p99_min_seconds,
        report.tenant_p99_max_seconds,
        report.smallest_tenant_p99_seconds
    );
    println!(
        "{} partitions compacted, {} still waiting; {} passes ({} cut by budget), {:.0} tables read per pass; busy {:.0}%",
        report.partitions_compacted,
        report.partitions_waiting,
        report.passes,
        report.passes_cut_by_budget,
        report.tables_read_per_pass,
        report.busy_fraction * 100.0
    );
    println!(
        "hours with p99 lag over 2x the {}s target (the alert fires): {}",
        o.lag_target.as_secs(),
        report.hours_over_alert
    );
    let p99: BTreeMap<u32, f64> = report.lag_p99_by_hour.iter().copied().collect();
    for (hour, files, bytes) in &report.debt_by_hour {
        let lag = p99.get(hour).map_or("-".to_string(), |s| format!("{s:.0}s"));
        println!(
            "hour {hour:>3}: debt up to {files} files, {:.2} GiB; p99 lag of what it compacted {lag}",
            gib(*bytes)
        );
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_capacity_to_spare_every_partition_is_compacted_within_a_poll_of_falling_due() {
        let report = run(&SimOptions::small(20, 3, 4));
        // Hours 0..2 fall due within the simulated 4 h (hour 3 closes at the end).
        assert_eq!(report.partitions_compacted, 20 * 3, "{report:#?}");
        assert_eq!(report.partitions_waiting, 0);
        assert!(report.lag_max_seconds <= 30.0 + 5.0, "{report:#?}");
        assert_eq!(report.passes_cut_by_budget, 0);
        // Every table moves at every poll, yet a poll reads a table only every lag_target / 2 (10 polls)
        // or when an hour of it falls due.
        assert!(report.tables_read_per_pass < 20.0 / 4.0, "{report:#?}");
    }

    #[test]
    fn a_tenant_with_a_hundred_times_the_tables_does_not_starve_the_other() {
        // 101 tables: tenant 0 has 100, tenant 1 has one. One group per pass (a 1-byte budget) is
        // about as much as falls due: a backlog forms and moves.
        let mut o = SimOptions::small(101, 2, 6);
        o.tenant_skew = 100f64.log2();
        o.max_bytes_per_pass = Some(1);
        let report = run(&o);
        assert_eq!(report.tenants, 2);
        assert!(report.passes_cut_by_budget > 0, "{report:#?}");
        assert!(report.lag_p99_seconds > 20.0 * 60.0, "the fleet falls behind: {report:#?}");
        // The small tenant's one table competes at its full debt against the big tenant's k-th at
        // 1/(k+1) of its own: it is compacted within a few polls of falling due.
        assert!(report.smallest_tenant_p99_seconds <= 5.0 * 60.0, "{report:#?}");
        assert!(report.smallest_tenant_p99_seconds < report.tenant_p99_max_seconds / 4.0, "{report:#?}");
    }

    #[test]
    fn replicas_divide_a_fleet_one_replica_cannot_keep_up_with() {
        // 300 tables at 2 s each: one replica needs 10 min per hour, past the alert's 2 × 2 min.
        let mut o = SimOptions::small(300, 5, 4);
        o.table_overhead = Duration::from_secs(2);
        o.lag_target = Duration::from_secs(120);
        let one = run(&o);
        o.replicas = 4;
        let four = run(&o);
        assert_eq!(one.partitions_compacted, four.partitions_compacted, "{one:#?} {four:#?}");
        assert!(one.lag_p99_seconds > 480.0, "{one:#?}");
        assert!(one.hours_over_alert > 0, "{one:#?}");
        assert!(four.lag_p99_seconds < one.lag_p99_seconds / 3.0, "{four:#?}");
        assert_eq!(four.hours_over_alert, 0, "{four:#?}");
    }

    #[test]
    fn replicas_divide_the_survey_of_an_hour_boundary() {
        // 200 tables whose look costs 2 s: one replica's survey of an hour boundary takes 400 s on its
        // own; four replicas each read their quarter.
        let mut o = SimOptions::small(200, 5, 4);
        o.look_cost = Duration::from_secs(2);
        o.table_overhead = Duration::from_millis(10);
        let one = run(&o);
        o.replicas = 4;
        let four = run(&o);
        assert_eq!(one.partitions_compacted, four.partitions_compacted, "{one:#?} {four:#?}");
        assert!(one.lag_p99_seconds > 400.0, "{one:#?}");
        assert!(four.lag_p99_seconds < one.lag_p99_seconds / 2.5, "{four:#?}");
        // A pass reads at most its replica's share (a quarter, give or take the hashing's balance).
        assert_eq!(one.tables_read_per_pass, 200.0, "{one:#?}");
        assert!(four.tables_read_per_pass <= 200.0 / 4.0 * 1.5, "{four:#?}");
    }

    #[test]
    fn two_tables_at_once_divide_a_replicas_queue() {
        // 300 tables at 2 s each on one replica: 10 min of work per hour one at a time, half with two.
        let mut o = SimOptions::small(300, 5, 4);
        o.table_overhead = Duration::from_secs(2);
        let one = run(&o);
        o.tables_at_once = 2;
        let two = run(&o);
        assert_eq!(one.partitions_compacted, two.partitions_compacted, "{one:#?} {two:#?}");
        assert!(two.lag_p99_seconds < one.lag_p99_seconds * 0.6, "{one:#?} {two:#?}");
    }

    #[test]
    fn the_same_options_give_the_same_figures() {
        let o = SimOptions::small(30, 4, 3);
        assert_eq!(serde_json::to_value(run(&o)).unwrap(), serde_json::to_value(run(&o)).unwrap());
    }
}
