//! `demo`: generate a small SignalDB-shaped warehouse (once) and run the daemon on it with short
//! intervals, printing a before/after table after every pass. Ctrl-C stops it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::generate::{GenerateOptions, dir_config, generate};
use crate::service::{self, Context, StatusBoard};
use crate::stats::{TableStats, human_bytes};

pub async fn run(mut config: Config, dir: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    let dir = std::path::absolute(dir)?;
    if !dir.join("catalog.db").exists() {
        println!("generating a demo warehouse under {} ...", dir.display());
        let report = generate(&GenerateOptions {
            dir: dir.clone(),
            tenants: 2,
            datasets: 2,
            hours: 6,
            files_per_hour: 12,
            rows_per_file: 500,
            seed: 42,
            all_signals: false,
            tables: Vec::new(),
            unsorted: false,
            end: Utc::now(),
            concurrency: 4,
        })
        .await?;
        println!(
            "generated {} tables, {} files, {} rows in {:.1}s",
            report.tables, report.files, report.rows, report.elapsed_secs
        );
    }
    let (catalog, storage) = dir_config(&dir);
    config.catalog = catalog;
    config.storage = storage;
    config.http.listen = listen;
    config.compaction.interval = Duration::from_secs(30);
    config.retention.interval = Duration::from_secs(60);
    config.orphans.interval = Duration::from_secs(120);

    let ctx = Context::build(config, prometheus::Registry::new(), crate::catalog::Access::ReadWrite).await?;
    let before = snapshot_stats(&ctx).await?;
    println!("{}", render(&before, &before));
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    println!("daemon running: http://{listen}/status and /metrics; Ctrl-C stops it");
    let cancel = CancellationToken::new();
    service::cancel_on_signals(cancel.clone());
    let jobs = service::jobs(&ctx);
    let status = service::status_board(&jobs);
    if jobs.is_empty() {
        println!("(no maintenance job is part of this build yet: the daemon serves its endpoints only)");
    }
    let printer = tokio::spawn(print_after_passes(ctx.clone(), status.clone(), before, cancel.clone()));
    service::run_jobs(ctx, listener, cancel, jobs, status).await?;
    printer.abort();
    Ok(())
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

/// Prints the table whenever a loop finishes a pass.
async fn print_after_passes(
    ctx: Context,
    status: Arc<StatusBoard>,
    before: BTreeMap<String, Row>,
    cancel: CancellationToken,
) {
    let mut seen: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let passes: u64 = status.snapshot().iter().map(|s| s.passes).sum();
        if passes == seen {
            continue;
        }
        seen = passes;
        if let Ok(after) = snapshot_stats(&ctx).await {
            println!("{}", render(&before, &after));
        }
    }
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
