//! Command line: `run`, `once`, `plan`, `check-config`, `generate`, `demo`.
//!
//! Exit codes: 0 success, 1 a pass (or startup against the catalog/store) failed, 2 bad config or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::catalog::Access;
use crate::config::{Config, LogFormat, Mode};
use crate::generate::{GenerateOptions, generate};
use crate::job::{JobKind, PassReport, PassRequest, TableFilter, TableStatus};
use crate::service::{self, Context};
use crate::stats::human_bytes;

mod check_config;

#[derive(Debug, Parser)]
#[command(name = "signaldb-compactor", version, about = "Keeps SignalDB's Apache Iceberg tables healthy")]
pub struct Cli {
    /// Config file (default: ./signaldb.toml if present). A missing explicit file is an error.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnceJob {
    Compaction,
    Retention,
    Orphans,
    All,
}

impl OnceJob {
    fn kinds(self) -> Vec<JobKind> {
        match self {
            OnceJob::Compaction => vec![JobKind::Compaction],
            OnceJob::Retention => vec![JobKind::Retention],
            OnceJob::Orphans => vec![JobKind::Orphans],
            OnceJob::All => JobKind::MAINTENANCE.to_vec(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: every enabled job on its interval, plus the HTTP server.
    Run,
    /// Run one pass of a job (or all) and print a report.
    Once {
        job: OnceJob,
        /// Change nothing; report what would be done.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Only this table (TENANT.DATASET.TABLE); repeatable.
        #[arg(long = "table", value_name = "TENANT.DATASET.TABLE")]
        tables: Vec<TableFilter>,
        /// Only this partition, as reports name it (e.g. timestamp_hour=2026-11-21-10); repeatable.
        #[arg(long = "partition", value_name = "PARTITION")]
        partitions: Vec<String>,
        /// Compaction: rewrite every file of the selected partitions regardless of size (after a
        /// sort-order or codec change).
        #[arg(long)]
        full: bool,
    },
    /// Show what every job would do now; changes nothing.
    Plan {
        #[arg(long)]
        json: bool,
    },
    /// Check that every file every retained snapshot references exists with its recorded size.
    Verify {
        /// Only this table (TENANT.DATASET.TABLE); repeatable.
        #[arg(long = "table", value_name = "TENANT.DATASET.TABLE")]
        tables: Vec<TableFilter>,
        /// Also parse every Parquet footer and compare row counts with the manifests.
        #[arg(long)]
        deep: bool,
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and print the effective values (secrets redacted).
    CheckConfig {
        #[arg(long)]
        json: bool,
    },
    /// Write a SignalDB-shaped warehouse of many small files.
    Generate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2)]
        tenants: usize,
        #[arg(long, default_value_t = 2)]
        datasets: usize,
        #[arg(long, default_value_t = 6)]
        hours: u32,
        #[arg(long, default_value_t = 12)]
        files_per_hour: usize,
        #[arg(long, default_value_t = 500)]
        rows_per_file: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// All eight SignalDB tables instead of traces, logs and metrics_gauge.
        #[arg(long)]
        all_signals: bool,
        /// Only these tables (comma-separated, e.g. traces,logs).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Declare no sort order on the generated tables.
        #[arg(long)]
        unsorted: bool,
        /// Write files unsorted and claiming no sort order, even on tables that declare one (by default
        /// files are sorted by the declared order and claim it, as SignalDB's writer does).
        #[arg(long)]
        unsorted_files: bool,
        /// Give each file its own stretch of the hour, in order, each overlapping the next by one
        /// stretch (successive flushes of an ingest writer); by default every file's timestamps spread
        /// over its whole hour.
        #[arg(long)]
        windowed_files: bool,
        /// End of the time range (RFC 3339; default now).
        #[arg(long)]
        end: Option<DateTime<Utc>>,
        /// Tables generated concurrently.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long)]
        json: bool,
    },
    /// Simulate compaction lag over a fleet of tables (real planner and scheduler, modelled IO costs).
    Simulate(crate::simulate::SimOptions),
    /// Generate a demo warehouse under .data/demo (if absent), show the maintenance lifecycle on it
    /// (compaction, retention, orphan cleanup dry-run then real, verify), then run the daemon on it.
    Demo {
        #[arg(long, default_value = ".data/demo")]
        dir: PathBuf,
        /// HTTP listen address for the demo daemon.
        #[arg(long, default_value = "127.0.0.1:9091")]
        listen: std::net::SocketAddr,
        /// Hours of data to generate, ending now (only when the warehouse does not exist yet).
        #[arg(long, default_value_t = 72)]
        hours: u32,
        /// Show the lifecycle and exit instead of continuing as a daemon.
        #[arg(long)]
        no_daemon: bool,
    },
}

/// The runtime's cap on blocking threads (tokio's default is 512). Local-filesystem object-store calls
/// each run on one; bursts of them otherwise grow the pool to hundreds of idle threads, whose per-thread
/// heaps cost ~150 MiB of RSS in the orphan benchmark under the allocator before (see
/// docs/BENCHMARKS.md).
pub const MAX_BLOCKING_THREADS: usize = 64;

pub fn main() -> ExitCode {
    // Before any Avro schema is parsed: the checks register once per process.
    crate::avro_names::install();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli))
}

/// Loads the config or prints the one-line error; `None` means exit 2.
fn load_config(path: Option<&std::path::Path>) -> Option<Config> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match crate::config::utf8_vars(std::env::vars_os()).and_then(|vars| Config::load(path, vars, &cwd)) {
        Ok((config, _)) => Some(config),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Generate {
            dir,
            tenants,
            datasets,
            hours,
            files_per_hour,
            rows_per_file,
            seed,
            all_signals,
            tables,
            unsorted,
            unsorted_files,
            windowed_files,
            end,
            concurrency,
            json,
        } => {
            init_logging(LogFormat::Text);
            let opts = GenerateOptions {
                dir,
                tenants,
                datasets,
                hours,
                files_per_hour,
                rows_per_file,
                seed,
                all_signals,
                tables,
                unsorted,
                unsorted_files,
                windowed_files,
                end: end.unwrap_or_else(Utc::now),
                concurrency,
            };
            match generate(&opts).await {
                Ok(r) if json => print_json(&r),
                Ok(r) => {
                    println!(
                        "generated {} tables, {} files, {} rows, {} in {:.1}s ({:.0} files/min)\ncatalog: {}\nwarehouse: {}",
                        r.tables,
                        r.files,
                        r.rows,
                        human_bytes(r.bytes),
                        r.elapsed_secs,
                        r.files_per_minute,
                        r.catalog_uri,
                        r.warehouse
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::CheckConfig { json } => check_config::check_config(cli.config.as_deref(), json).await,
        Command::Simulate(opts) => crate::simulate::main(&opts),
        Command::Demo { dir, listen, hours, no_daemon } => {
            let Some(config) = load_config(cli.config.as_deref()) else { return ExitCode::from(2) };
            let log = match crate::demo::init_logging(&dir) {
                Ok(log) => log,
                Err(e) => return fail(&e),
            };
            let opts = crate::demo::DemoOptions { dir, listen, hours, no_daemon };
            match crate::demo::run(config, &opts, &log).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        command => {
            let Some(config) = load_config(cli.config.as_deref()) else { return ExitCode::from(2) };
            if let Command::Once { job, dry_run: false, .. } = &command
                && let Some(refusal) = disabled_refusal(&config, *job)
            {
                eprintln!("{refusal}");
                return ExitCode::from(2);
            }
            init_logging(config.service.log_format);
            let access = command_access(&command, &config);
            let ctx = match Context::build(config, prometheus::Registry::new(), access).await {
                Ok(ctx) => ctx,
                Err(e) => return fail(&e),
            };
            match command {
                Command::Run => {
                    let cancel = CancellationToken::new();
                    service::cancel_on_signals(cancel.clone());
                    match service::run(ctx, cancel).await {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => fail(&e),
                    }
                }
                Command::Once { job, dry_run, json, tables, partitions, full } => {
                    let filter = TableFilter::only(tables.into_iter().flat_map(|t| t.tables().to_vec()));
                    let request = PassRequest {
                        filter,
                        partitions,
                        full,
                        ..PassRequest::all(Mode::from_dry_run(dry_run))
                    };
                    once(ctx, job, request, json, Selection::Enabled).await
                }
                Command::Plan { json } => {
                    once(ctx, OnceJob::All, PassRequest::all(Mode::DryRun), json, Selection::Every).await
                }
                Command::Verify { tables, deep, json } => {
                    let filter = TableFilter::only(tables.into_iter().flat_map(|t| t.tables().to_vec()));
                    verify(ctx, filter, deep, json).await
                }
                _ => unreachable!("handled above"),
            }
        }
    }
}

/// `once <job>` without `--dry-run` on a job its configuration disables: the refusal (exit 2) naming
/// the key. A disabled job never changes a byte; a dry run of it is still allowed. `once all` is never
/// refused: it runs the enabled jobs only.
fn disabled_refusal(config: &Config, job: OnceJob) -> Option<String> {
    let [kind] = job.kinds()[..] else { return None };
    (!config.job_enabled(kind)).then(|| {
        format!(
            "error: job {kind} is disabled by configuration ({key} = false); set {key} = true to run \
             it, or pass --dry-run to see what it would do",
            key = kind.enabled_key()
        )
    })
}

/// Which of the selected jobs `once` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    /// Only the jobs the configuration enables (`once`).
    Enabled,
    /// Every job, in dry-run (`plan`).
    Every,
}

/// Read-only unless the command may run a job that executes.
fn command_access(command: &Command, config: &Config) -> Access {
    let executes = |kind: JobKind| match kind {
        JobKind::Compaction => config.compaction.mode == Mode::Execute,
        JobKind::Retention => config.retention.mode == Mode::Execute,
        JobKind::Orphans => config.orphans.mode == Mode::Execute,
        JobKind::Verify => false,
    };
    let writes = match command {
        Command::Run => {
            (config.compaction.enabled && executes(JobKind::Compaction))
                || (config.retention.enabled && executes(JobKind::Retention))
                || (config.orphans.enabled && executes(JobKind::Orphans))
        }
        Command::Once { job, dry_run, .. } => {
            !dry_run && job.kinds().into_iter().any(|k| config.job_enabled(k) && executes(k))
        }
        _ => false,
    };
    if writes { Access::ReadWrite } else { Access::ReadOnly }
}

/// `verify`: exit 1 when any table has a problem.
async fn verify(ctx: Context, filter: TableFilter, deep: bool, json: bool) -> ExitCode {
    let results = match crate::verify::verify(&ctx, &filter, deep).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let problems: usize = results.iter().map(|r| r.problems.len()).sum();
    // A named table that does not exist is a failure, as in `once`: a typo must not pass as "all good".
    let missing: Vec<&String> =
        filter.tables().iter().filter(|name| !results.iter().any(|r| r.table == **name)).collect();
    for name in &missing {
        eprintln!("error: {name}: table not found in the catalog (check the TENANT.DATASET.TABLE spelling)");
    }
    if json {
        print_json(&results);
    } else {
        for r in &results {
            let verdict = if r.problems.is_empty() {
                "ok".to_string()
            } else {
                format!("{} problem(s)", r.problems.len())
            };
            println!("{:<40} snapshots={} files={} {verdict}", r.table, r.snapshots, r.files_checked);
            for p in &r.problems {
                println!("    {}", serde_json::to_string(p).unwrap_or_default());
            }
        }
    }
    if problems > 0 || !missing.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", crate::config::redact::secrets(&format!("{e:#}")));
    ExitCode::from(1)
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.into()),
    }
}

/// Runs one pass of each selected job present in this build; exit 1 if any pass or table failed.
/// With [`Selection::Enabled`], a job the configuration disables is not run (a single disabled job was
/// refused before the catalog was opened, unless dry-run was asked for).
async fn once(ctx: Context, job: OnceJob, base: PassRequest, json: bool, selection: Selection) -> ExitCode {
    let jobs = service::jobs(&ctx);
    let mut wanted = job.kinds();
    if selection == Selection::Enabled && matches!(job, OnceJob::All) {
        wanted.retain(|k| {
            let enabled = ctx.config.job_enabled(*k);
            if !enabled {
                eprintln!("note: {k} not run: disabled by configuration ({} = false)", k.enabled_key());
            }
            enabled
        });
    }
    let missing: Vec<_> = wanted.iter().filter(|k| !jobs.iter().any(|(j, _)| j.kind() == **k)).collect();
    if !missing.is_empty() && !matches!(job, OnceJob::All) {
        eprintln!("error: job {} is not part of this build yet", missing[0]);
        return ExitCode::from(2);
    }
    if !base.partitions.is_empty()
        && let Err(why) = check_partitions(&ctx, &wanted, &base).await
    {
        eprintln!("error: {why}");
        return ExitCode::from(2);
    }
    let cancel = CancellationToken::new();
    service::cancel_on_signals(cancel.clone());
    let mut reports: Vec<PassReport> = Vec::new();
    let mut failed = false;
    for (j, _) in jobs.iter().filter(|(j, _)| wanted.contains(&j.kind())) {
        let request = PassRequest { mode: j.mode().and(base.mode), ..base.clone() };
        match j.run_once(&request, &cancel).await {
            Ok(report) => {
                failed |= report.failed_tables() > 0;
                reports.push(report);
            }
            Err(e) => {
                eprintln!(
                    "error: {} pass failed: {}",
                    j.kind(),
                    crate::config::redact::secrets(&e.to_string())
                );
                failed = true;
            }
        }
    }
    if json {
        print_json(&reports);
    } else {
        if reports.is_empty() {
            println!(
                "no job of this build matched ({})",
                wanted.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        for r in &reports {
            print!("{}", render_report(r));
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// `--partition` selectors: compaction only, and each must name a partition field of the selected
/// tables with a value written as reports write it (a selector that matches nothing is a usage error,
/// not a silent no-op).
async fn check_partitions(ctx: &Context, wanted: &[JobKind], request: &PassRequest) -> Result<(), String> {
    if wanted != [JobKind::Compaction] {
        return Err("--partition applies to `once compaction` only".into());
    }
    let tables = ctx.catalog.discover().await.map_err(|e| e.to_string())?;
    let mut fields = Vec::new();
    for t in tables.iter().filter(|t| request.filter.matches(t)) {
        let table = ctx.catalog.load(t).await.map_err(|e| e.to_string())?;
        for f in crate::table::partition::fields(table.metadata()) {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    for selector in &request.partitions {
        crate::table::partition::check_selector(selector, &fields)
            .map_err(|why| format!("--partition {selector}: {why}"))?;
    }
    Ok(())
}

/// A pass report as a readable table.
pub fn render_report(r: &PassReport) -> String {
    let mut out = format!(
        "{} pass ({}), {} table(s), {:.1}s\n",
        r.job,
        if r.mode.is_dry_run() { "dry-run" } else { "execute" },
        r.tables.len(),
        r.duration().as_secs_f64()
    );
    for t in &r.tables {
        let status = match &t.status {
            TableStatus::Succeeded => "ok".to_string(),
            TableStatus::Unchanged => "unchanged".to_string(),
            TableStatus::Skipped { reason } => format!("skipped ({reason})"),
            TableStatus::Failed { error } => format!("FAILED: {error}"),
        };
        // Each job's figures in its own terms; a table the job never reached has none.
        let figures = match &t.outcome {
            Some(outcome) => outcome.render(r.mode.is_dry_run()),
            None => String::new(),
        };
        out.push_str(&format!("  {:<40} {:<12} {figures}\n", t.table, status));
        for d in &t.details {
            out.push_str(&format!("      {d}\n"));
        }
    }
    out
}
