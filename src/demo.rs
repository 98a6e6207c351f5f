//! `demo`: the lifecycle a SignalDB operator cares about, on a generated warehouse spanning several
//! days: compaction of closed hours, retention dropping expired hours and expiring snapshots, orphan
//! cleanup of planted orphans (a dry-run pass first, then the real one), and `verify`. Each pass is
//! one short summary line; the daemon's logs go to a file (the terminal shows warnings only). Then
//! the daemon keeps running on the same warehouse until Ctrl-C (unless `--no-daemon`).
//!
//! The generator writes several days of data in seconds, so file times are backdated two days: as if
//! the data had been written over those days (orphan cleanup and expiry cleanup age files by them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode, RetentionValue};
use crate::generate::{GenerateOptions, dir_config, generate};
use crate::job::{Job, JobKind, Outcome, PassReport, PassRequest, TableFilter};
use crate::service::{self, Context, StatusBoard};
use crate::stats::{TableStats, human_bytes};

/// Demo options (the `demo` subcommand's flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// Hours of data generated (ending now).
    pub hours: u32,
    /// Run the lifecycle and exit instead of continuing as a daemon.
    pub no_daemon: bool,
}

/// Orphans planted in the demo warehouse (unreferenced files, backdated past the grace period).
const PLANTED_ORPHANS: usize = 3;

const DAY: u64 = 86_400;

/// Sends the daemon's logs to `DIR/demo.log` (INFO) and only warnings to the terminal; returns the
/// log file's path.
pub fn init_logging(dir: &Path) -> anyhow::Result<PathBuf> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, filter::LevelFilter};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = std::path::absolute(dir.join("demo.log"))?;
    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let to_file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .with_filter(LevelFilter::INFO);
    let to_terminal =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(LevelFilter::WARN);
    let _ = tracing_subscriber::registry().with(to_file).with(to_terminal).try_init();
    Ok(path)
}

pub async fn run(mut config: Config, opts: &DemoOptions, log: &Path) -> anyhow::Result<()> {
    let dir = std::path::absolute(&opts.dir)?;
    if !dir.join("catalog.db").exists() {
        println!("generating {} hours of SignalDB data under {} ...", opts.hours, dir.display());
        let report = generate(&GenerateOptions {
            hours: opts.hours,
            files_per_hour: 6,
            rows_per_file: 200,
            seed: 42,
            // Wall-clock time: the data ends now, before the demo's context (on the system clock) exists.
            end: Utc::now(),
            concurrency: 4,
            ..GenerateOptions::small(&dir)
        })
        .await?;
        println!(
            "generated {} tables, {} files, {} rows in {:.1}s",
            report.tables, report.files, report.rows, report.elapsed_secs
        );
        backdate(&dir.join("warehouse"), SystemTime::now() - Duration::from_secs(2 * DAY))?;
    }
    let planted = plant_orphans(&dir)?;
    configure(&mut config, &dir, opts.listen);
    let ctx = Context::build(config, prometheus::Registry::new(), crate::catalog::Access::ReadWrite).await?;
    let policy = &ctx.config.retention.policy.global;
    println!(
        "retention: traces {}, logs {}, metrics {}; snapshots kept per table: {}; orphan grace period {}",
        show(policy.traces),
        show(policy.logs),
        show(policy.metrics),
        ctx.config.retention.snapshots_to_keep,
        humantime::format_duration(ctx.config.orphans.grace_period)
    );
    println!("planted {planted} orphan file(s); logs: {}\n", log.display());
    let before = snapshot_stats(&ctx).await?;
    let cancel = CancellationToken::new();
    service::cancel_on_signals(cancel.clone());
    let jobs = service::jobs(&ctx);
    let status = service::status_board(&jobs, ctx.clock.clone());
    lifecycle(&ctx, &jobs, &status, &cancel).await?;
    if let Some(line) = status.snapshot().iter().find_map(lag_and_debt) {
        // The demo's hours closed long ago but their files were committed moments ago: a partition owes
        // from when its files qualified (plan::due_work), so the lag is seconds.
        println!("{:<22} {line}", "compaction lag");
    }
    println!("\n{}", render(&before, &snapshot_stats(&ctx).await?));
    if opts.no_daemon || cancel.is_cancelled() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    println!(
        "daemon running on the same warehouse: http://{}/status and /metrics; one line per pass below; Ctrl-C stops it",
        listener.local_addr()?
    );
    let printer = tokio::spawn(print_passes(status.clone(), cancel.clone()));
    service::run_jobs(ctx, listener, cancel, jobs, status).await?;
    printer.abort();
    Ok(())
}

/// The demo's settings: every job enabled and executing, short intervals, a retention short enough
/// to expire some of the generated days.
fn configure(config: &mut Config, dir: &Path, listen: SocketAddr) {
    let (catalog, storage) = dir_config(dir);
    config.catalog = catalog;
    config.storage = storage;
    config.http.listen = listen;
    config.compaction.enabled = true;
    config.compaction.mode = Mode::Execute;
    config.compaction.interval = Duration::from_secs(30);
    // Due hours are compacted within a poll; `/status` shows the lag and debt.
    config.compaction.poll_interval = Some(Duration::from_secs(10));
    let days = |n: u64| Some(RetentionValue::For(Duration::from_secs(n * DAY)));
    config.retention.enabled = true;
    config.retention.mode = Mode::Execute;
    config.retention.interval = Duration::from_secs(60);
    config.retention.policy.global.traces = days(2);
    config.retention.policy.global.logs = days(1);
    config.retention.policy.global.metrics = days(3);
    config.retention.snapshots_to_keep = 1;
    config.retention.max_snapshot_age = Duration::from_secs(1);
    config.orphans.enabled = true;
    config.orphans.mode = Mode::Execute;
    config.orphans.interval = Duration::from_secs(120);
    config.verify.enabled = true;
    config.verify.interval = Duration::from_secs(300);
}

fn show(v: Option<RetentionValue>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "forever".into())
}

/// The five passes, one summary line each.
async fn lifecycle(
    ctx: &Context,
    jobs: &[(Arc<dyn Job>, bool)],
    status: &StatusBoard,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let job = |kind: JobKind| jobs.iter().find(|(j, _)| j.kind() == kind).map(|(j, _)| j.clone());
    let steps = [
        ("1/5 compaction", JobKind::Compaction, Mode::Execute),
        ("2/5 retention", JobKind::Retention, Mode::Execute),
        ("3/5 orphans (dry-run)", JobKind::Orphans, Mode::DryRun),
        ("4/5 orphans", JobKind::Orphans, Mode::Execute),
    ];
    for (title, kind, mode) in steps {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let Some(job) = job(kind) else { continue };
        let started = Instant::now();
        let request = PassRequest::all(mode);
        let line = match service::run_pass(job.as_ref(), &request, cancel, status, &ctx.metrics).await {
            Ok(report) => summary(&report),
            Err(e) => format!("pass failed: {e} (see the log)"),
        };
        println!("{title:<22} {line} [{:.1}s]", started.elapsed().as_secs_f64());
    }
    let started = Instant::now();
    let checked = crate::verify::verify(ctx, &TableFilter::all(), false).await?;
    let problems: usize = checked.iter().map(|t| t.problems.len()).sum();
    println!(
        "{:<22} {} table(s), {} snapshot(s), {} file(s) checked, {problems} problem(s) [{:.1}s]",
        "5/5 verify",
        checked.len(),
        checked.iter().map(|t| t.snapshots).sum::<usize>(),
        checked.iter().map(|t| t.files_checked).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One line for a pass, from the tables' typed outcomes.
fn summary(report: &PassReport) -> String {
    let failed = report.failed_tables();
    let tables = report.tables.len();
    let mut compaction = [0u64; 4];
    let mut retention = crate::job::RetentionOutcome::default();
    let mut orphans = crate::job::OrphanOutcome::default();
    for t in &report.tables {
        match &t.outcome {
            Some(Outcome::Compaction(c)) => {
                for (sum, v) in
                    compaction.iter_mut().zip([c.files_before, c.files_after, c.bytes_before, c.bytes_after])
                {
                    *sum += v;
                }
            }
            Some(Outcome::Retention(r)) => {
                retention.partitions_dropped += r.partitions_dropped;
                retention.files_removed += r.files_removed;
                retention.bytes_removed += r.bytes_removed;
                retention.snapshots_expired += r.snapshots_expired;
                retention.files_deleted += r.files_deleted;
                retention.bytes_deleted += r.bytes_deleted;
            }
            Some(Outcome::Orphans(o)) => {
                orphans.scanned += o.scanned;
                orphans.identified += o.identified;
                orphans.bytes_identified += o.bytes_identified;
                orphans.deleted += o.deleted;
                orphans.bytes_freed += o.bytes_freed;
            }
            None => {}
        }
    }
    let body = match report.job {
        JobKind::Compaction => format!(
            "{tables} table(s): data files {} -> {}, {} -> {} (closed hours only)",
            compaction[0],
            compaction[1],
            human_bytes(compaction[2]),
            human_bytes(compaction[3])
        ),
        JobKind::Retention => format!(
            "dropped {} expired hour(s) ({} files, {}), expired {} snapshot(s), deleted {} unreachable file(s) ({})",
            retention.partitions_dropped,
            retention.files_removed,
            human_bytes(retention.bytes_removed),
            retention.snapshots_expired,
            retention.files_deleted,
            human_bytes(retention.bytes_deleted)
        ),
        JobKind::Orphans if report.mode.is_dry_run() => {
            // What they are: the planted files, and old metadata files no metadata log lists any more
            // (the generator's many small commits leave them behind past previous-versions-max).
            let would: Vec<&String> = report
                .tables
                .iter()
                .flat_map(|t| &t.details)
                .filter(|d| d.starts_with("would delete "))
                .collect();
            let metadata = would.iter().filter(|d| d.contains(".metadata.json ")).count();
            let planted = would.iter().filter(|d| d.contains("/demo-orphan-")).count();
            format!(
                "scanned {} object(s), identified {} orphan(s) ({}: {planted} planted, {metadata} old metadata \
                 file(s)); deleted nothing",
                orphans.scanned,
                orphans.identified,
                human_bytes(orphans.bytes_identified)
            )
        }
        JobKind::Orphans => format!(
            "identified {} orphan(s), deleted {} ({} freed)",
            orphans.identified,
            orphans.deleted,
            human_bytes(orphans.bytes_freed)
        ),
        JobKind::Verify => format!("{tables} table(s)"),
    };
    if failed > 0 { format!("{body}; {failed} table(s) FAILED (see the log)") } else { body }
}

/// Sets the modification time of every file under `dir` to `to`.
fn backdate(dir: &Path, to: SystemTime) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            backdate(&path, to)?;
        } else {
            std::fs::File::options().write(true).open(&path)?.set_modified(to)?;
        }
    }
    Ok(())
}

/// Plants unreferenced files in the first tables' data directories, backdated past the grace period.
fn plant_orphans(dir: &Path) -> anyhow::Result<usize> {
    let mut data_dirs = Vec::new();
    let warehouse = dir.join("warehouse");
    for tenant in std::fs::read_dir(&warehouse)? {
        for dataset in std::fs::read_dir(tenant?.path())? {
            for table in std::fs::read_dir(dataset?.path())? {
                let data = table?.path().join("data");
                if data.is_dir() {
                    data_dirs.push(data);
                }
            }
        }
    }
    data_dirs.sort();
    let old = SystemTime::now() - Duration::from_secs(2 * DAY);
    let mut planted = 0;
    for (i, data) in data_dirs.iter().take(PLANTED_ORPHANS).enumerate() {
        let path = data.join(format!("demo-orphan-{i}.parquet"));
        std::fs::write(&path, vec![0u8; 4096])?;
        std::fs::File::options().write(true).open(&path)?.set_modified(old)?;
        planted += 1;
    }
    Ok(planted)
}

/// A table's figures plus its number of partitions with live data files.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    stats: TableStats,
    partitions: u64,
}

impl Row {
    fn files_per_partition(&self) -> f64 {
        self.stats.data_files as f64 / self.partitions.max(1) as f64
    }
}

async fn snapshot_stats(ctx: &Context) -> anyhow::Result<BTreeMap<String, Row>> {
    let mut out = BTreeMap::new();
    for t in ctx.catalog.discover().await? {
        let table = ctx.catalog.load(&t).await?;
        let inventory = crate::table::Inventory::load(&table).await?;
        let partitions: std::collections::HashSet<_> = inventory
            .data
            .iter()
            .map(|f| (f.spec_id, format!("{:?}", f.entry.data_file().partition())))
            .collect();
        out.insert(t.qualified(), Row { stats: TableStats::of(&table), partitions: partitions.len() as u64 });
    }
    Ok(out)
}

/// One line per finished loop pass whose outcome differs from the job's last line: time, job, result.
async fn print_passes(status: Arc<StatusBoard>, cancel: CancellationToken) {
    let mut seen: BTreeMap<JobKind, (u64, String)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        for s in status.snapshot() {
            let last = seen.entry(s.job).or_default();
            if last.0 == s.passes {
                continue;
            }
            let result = s.last_result.as_deref().unwrap_or("?");
            let error = s.last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
            let lag = lag_and_debt(&s).map(|l| format!("; {l}")).unwrap_or_default();
            let line = format!("{:<10} pass {result}{error}{lag}", s.job.as_str());
            if line != last.1 {
                println!("{} {line}", status.now().format("%H:%M:%S"));
            }
            *last = (s.passes, line);
        }
    }
}

/// Compaction's lag and debt as `/status` shows them (`schedule` of the compaction loop).
fn lag_and_debt(s: &crate::service::LoopStatus) -> Option<String> {
    let detail = s.schedule.as_ref()?;
    let lag = &detail["lag_last_hour"];
    let secs = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |s| format!("{s:.0}s"));
    let debt = match &detail["debt"] {
        serde_json::Value::Null => "debt not yet surveyed".to_string(),
        d => format!(
            "debt {} partition(s), {} file(s), {}, oldest {}s",
            d["partitions"],
            d["files"],
            human_bytes(d["bytes"].as_u64().unwrap_or(0)),
            d["oldest_waiting_seconds"]
        ),
    };
    Some(format!(
        "last hour p50 {} p99 {} over {} partition(s), target {}s; {debt} (/status)",
        secs(&lag["p50_seconds"]),
        secs(&lag["p99_seconds"]),
        lag["compacted_partitions"],
        lag["target_seconds"]
    ))
}

fn render(before: &BTreeMap<String, Row>, after: &BTreeMap<String, Row>) -> String {
    let mut out = format!(
        "{:<36} {:>17} {:>15} {:>25} {:>19} {:>13}\n",
        "table", "data files", "files/partition", "bytes", "rows", "snapshots"
    );
    let mut total_before = Row::default();
    let mut total_after = Row::default();
    for (name, a) in after {
        let b = before.get(name).copied().unwrap_or_default();
        for (total, row) in [(&mut total_before, b), (&mut total_after, *a)] {
            total.stats = total.stats + row.stats;
            total.partitions += row.partitions;
        }
        out.push_str(&row(name, &b, a));
    }
    out.push_str(&row("TOTAL", &total_before, &total_after));
    out
}

fn row(name: &str, b: &Row, a: &Row) -> String {
    format!(
        "{:<36} {:>7} -> {:<7} {:>6.1} -> {:<6.1} {:>11} -> {:<11} {:>8} -> {:<8} {:>5} -> {:<5}\n",
        name,
        b.stats.data_files,
        a.stats.data_files,
        b.files_per_partition(),
        a.files_per_partition(),
        human_bytes(b.stats.bytes),
        human_bytes(a.stats.bytes),
        b.stats.rows,
        a.stats.rows,
        b.stats.snapshots,
        a.stats.snapshots
    )
}
