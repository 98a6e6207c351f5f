//! Crash chaos: passes of every job run as child processes and are SIGKILLed at random moments; after
//! every kill the warehouse must verify clean and its rows must be the original rows from some whole
//! hour on (compaction changes no row; retention removes whole expired hours, atomically).
//! `SIGNALDB_CHAOS_ITERATIONS` (default 60) sets the number of kills.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use futures::TryStreamExt;
use rand::{Rng, SeedableRng};
use signaldb_compactor::generate::GenerateOptions;

use crate::support::{bin, context, write_config};

/// (timestamp µs, trace id) of every row of every table, sorted.
async fn rows(ctx: &signaldb_compactor::service::Context) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut out = BTreeMap::new();
    for t in ctx.catalog.discover().await.unwrap() {
        let table = ctx.catalog.load(&t).await.unwrap_or_else(|e| panic!("{t} does not load: {e}"));
        let batches: Vec<arrow_array::RecordBatch> =
            table.scan().select_all().build().unwrap().to_arrow().await.unwrap().try_collect().await.unwrap();
        let mut rows = Vec::new();
        for b in batches {
            rows.extend(crate::support::timestamp_and_trace_id(&b));
        }
        rows.sort();
        out.insert(t.qualified(), rows);
    }
    out
}

/// Files under `dir` (cheap: no contents read).
fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

/// Whether `now` is `original` restricted to rows from some whole hour on.
fn is_hour_suffix(original: &[(i64, String)], now: &[(i64, String)]) -> bool {
    let Some(first) = now.first() else { return true };
    let hour = first.0 - first.0.rem_euclid(3_600_000_000);
    let expected: Vec<&(i64, String)> = original.iter().filter(|r| r.0 >= hour).collect();
    expected.len() == now.len() && expected.iter().zip(now).all(|(a, b)| *a == b)
}

#[tokio::test]
async fn sigkill_at_random_points_never_loses_duplicates_or_resurrects_a_row() {
    let iterations: usize =
        std::env::var("SIGNALDB_CHAOS_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    chaos(None, iterations).await;
}

/// The same harness on a PostgreSQL catalog, where each killed process also leaves its table leases
/// behind (the next process on this host takes them over). `SIGNALDB_CHAOS_PG_ITERATIONS` (default 60).
#[tokio::test]
async fn sigkill_at_random_points_on_postgresql() {
    let iterations: usize =
        std::env::var("SIGNALDB_CHAOS_PG_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let pg = crate::support::Postgres::start();
    let uri = pg.database("signaldb").await;
    chaos(Some(uri), iterations).await;
}

/// Kills `once <job>` processes at random points `iterations` times on a catalog at `uri` (None: the
/// temp dir's SQLite file), checking the invariants after every kill.
async fn chaos(uri: Option<String>, iterations: usize) {
    let dir = tempfile::tempdir().unwrap();
    // Eight hours ending two days ago plus three hours: with traces and logs kept 2 days (+1 h grace),
    // the oldest hours expire and the newest stay.
    let end =
        (Utc::now() - TimeDelta::days(2) + TimeDelta::hours(3)).duration_trunc(TimeDelta::hours(1)).unwrap()
            + TimeDelta::minutes(30);
    signaldb_compactor::generate::generate_into(
        &GenerateOptions {
            tenants: 1,
            hours: 8,
            files_per_hour: 6,
            rows_per_file: 40,
            seed: 21,
            tables: vec!["traces".into(), "logs".into()],
            end,
            ..GenerateOptions::small(dir.path())
        },
        uri.as_deref(),
        None,
    )
    .await
    .unwrap();
    write_config(
        dir.path(),
        "[compactor]\nmin_input_files = 2\ncommit_retry_backoff = \"5ms\"\n\
         [compactor.retention]\nenabled = true\ntraces_retention_days = 2\nlogs_retention_days = 2\nsnapshots_to_keep = 2\nmax_snapshot_age = \"1s\"\n\
         [compactor.orphan_cleanup]\nenabled = true\ndry_run = false\ngrace_period = \"1s\"\nallow_short_grace_period = true\nbatch_size = 3\n",
    );
    if let Some(uri) = &uri {
        // The same configuration with the catalog in PostgreSQL.
        let path = dir.path().join("signaldb.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        let sqlite = config.lines().find(|l| l.starts_with("catalog_uri")).unwrap().to_string();
        std::fs::write(&path, config.replace(&sqlite, &format!("catalog_uri = \"{uri}\""))).unwrap();
    }
    let catalog_uri = uri.clone();
    let ctx = context(dir.path(), Utc::now(), move |c| {
        if let Some(uri) = catalog_uri {
            c.catalog.uri = uri;
        }
    })
    .await;
    let original = rows(&ctx).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC4A05);
    let jobs = ["compaction", "retention", "orphans"];
    let (mut killed, mut finished, mut changed) = (0, 0, 0);
    let started = Instant::now();
    let traces = ctx.catalog.discover().await.unwrap().into_iter().find(|t| t.table == "traces").unwrap();
    let columns = signaldb_compactor::generate::schema::columns("traces");
    let newest_hour = end.duration_trunc(TimeDelta::hours(1)).unwrap();
    for i in 0..iterations {
        let job = jobs[i % jobs.len()];
        // Keep every job busy, as in production: ingest appends to the newest (kept) hour, and
        // leftovers of earlier kills plus planted files are orphans.
        for k in 0..3 {
            let mut table = ctx.catalog.load(&traces).await.unwrap();
            let start = newest_hour + TimeDelta::minutes(k * 10);
            let spec = signaldb_compactor::generate::batch::FileSpec {
                seed: (i * 10) as u64 + k as u64,
                rows: 20,
                start,
                end: start + TimeDelta::minutes(10),
            };
            signaldb_compactor::generate::append_file(&ctx.catalog, &mut table, &columns, &spec)
                .await
                .unwrap();
        }
        let planted =
            dir.path().join(format!("warehouse/acme/production/logs/data/chaos-orphan-{i}.parquet"));
        std::fs::write(&planted, b"x").unwrap();
        assert!(
            std::process::Command::new("touch")
                .args(["-d", "1 hour ago"])
                .arg(&planted)
                .status()
                .unwrap()
                .success()
        );
        let pre = rows(&ctx).await;
        let before = count_files(&dir.path().join("warehouse"));
        let mut child = bin()
            .current_dir(dir.path())
            .args(["once", job])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.random_range(5..180));
        std::thread::sleep(delay);
        let _ = std::process::Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        } else {
            finished += 1;
        }
        if count_files(&dir.path().join("warehouse")) != before {
            changed += 1;
        }
        // The invariants, after every kill.
        let problems = signaldb_compactor::verify::verify(&ctx, &Default::default(), false).await.unwrap();
        assert!(
            problems.iter().all(|t| t.problems.is_empty()),
            "iteration {i} ({job}, {delay:?}): {problems:#?}"
        );
        let now = rows(&ctx).await;
        for (table, rows) in &now {
            let mut dedup = rows.clone();
            dedup.dedup();
            assert_eq!(dedup.len(), rows.len(), "iteration {i} ({job}): duplicated rows in {table}");
            assert!(
                is_hour_suffix(&pre[table], rows),
                "iteration {i} ({job}, {delay:?}): {table} lost or resurrected rows"
            );
        }
    }
    // Uninterrupted passes finish the work; the invariants still hold.
    for job in jobs {
        let out = crate::support::run_bin(dir.path(), &["once", job], &[]);
        assert_eq!(out.status.code(), Some(0), "{job}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let problems = signaldb_compactor::verify::verify(&ctx, &Default::default(), true).await.unwrap();
    assert!(problems.iter().all(|t| t.problems.is_empty()), "{problems:#?}");
    let last = rows(&ctx).await;
    for (table, rows) in &last {
        let first_kept = rows.first().unwrap().0;
        let expected_from_original: Vec<&(i64, String)> =
            original[table].iter().filter(|r| r.0 >= first_kept).collect();
        assert!(
            expected_from_original.iter().all(|r| rows.binary_search(r).is_ok()),
            "{table}: a row of a kept hour is missing"
        );
        assert!(rows.len() < original[table].len() + 3 * 20 * iterations, "{table}: expired hours dropped");
    }
    assert_eq!(
        last["acme.production.traces"].len()
            - original["acme.production.traces"]
                .iter()
                .filter(|r| r.0 >= last["acme.production.traces"][0].0)
                .count(),
        3 * 20 * iterations,
        "every appended row kept exactly once"
    );
    println!(
        "chaos ({}): {iterations} iterations in {:.1}s: {killed} killed mid-pass, {finished} finished first, \
         {changed} changed storage, 0 invariant violations",
        if uri.is_some() { "postgresql" } else { "sqlite" },
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed * 3 >= iterations,
        "at least a third of the iterations must be killed mid-pass ({killed}/{iterations})"
    );
}
