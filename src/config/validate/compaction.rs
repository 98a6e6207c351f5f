//! The compaction keys of `[compactor]`: interval and polling, file-size targets and thresholds,
//! concurrency and memory, pass budgets, lag target, commit retries.

use std::time::Duration;

use super::*;

pub(super) fn compaction(raw: &RawCompactor, global: Mode) -> Result<CompactionConfig> {
    let interval = TwoForms {
        int_key: "compactor.compaction_interval_secs",
        int_value: raw.compaction_interval_secs,
        unit_secs: 1,
        text_key: "compactor.interval",
        text_value: raw.interval,
        max: MAX_INTERVAL,
    }
    .positive(secs(HOUR))?;
    let threshold =
        at_least("compactor.small_file_threshold_percent", raw.small_file_threshold_percent, 75, 1)?;
    if threshold > 100 {
        return Err(ConfigError::new(
            "compactor.small_file_threshold_percent",
            threshold,
            "must be at most 100 (a percentage of the target file size)",
        ));
    }
    // Above the target with room to spare: the writer rolls a file once it passes the target, so a
    // file it wrote may exceed the target by one batch, and must never count as oversized.
    let max_percent = raw.max_file_size_percent.unwrap_or(180);
    if !(MIN_MAX_FILE_SIZE_PERCENT..=MAX_MAX_FILE_SIZE_PERCENT).contains(&max_percent) {
        return Err(ConfigError::new(
            "compactor.max_file_size_percent",
            max_percent,
            format!(
                "must be between {MIN_MAX_FILE_SIZE_PERCENT} and {MAX_MAX_FILE_SIZE_PERCENT} (a percentage of \
                 the target file size; files the compactor writes may pass the target by one batch and \
                 must never count as oversized)"
            ),
        ));
    }
    let target_mb =
        within("compactor.target_file_size_mb", raw.target_file_size_mb, 128, 1, MAX_TARGET_FILE_SIZE_MB)?;
    let memory_mb = within("compactor.memory_limit_mb", raw.memory_limit_mb, 256, 16, MAX_MEMORY_LIMIT_MB)?;
    Ok(CompactionConfig {
        enabled: raw.enabled.unwrap_or(true),
        mode: global,
        interval,
        // Bounded above: cannot overflow.
        target_file_size_bytes: target_mb * MIB,
        small_file_threshold_percent: threshold,
        max_file_size_percent: max_percent,
        rewrite_to_current_spec: raw.rewrite_to_current_spec.unwrap_or(false),
        rewrite_manifests: raw.rewrite_manifests.unwrap_or(true),
        min_input_files: within("compactor.min_input_files", raw.min_input_files, 5, 2, MAX_COUNT)? as usize,
        partition_lateness: bounded_duration(
            "compactor.partition_lateness",
            raw.partition_lateness,
            secs(600),
            MAX_INTERVAL,
        )?,
        compact_open_partitions: raw.compact_open_partitions.unwrap_or(false),
        max_concurrent_rewrites: at_most(
            "compactor.max_concurrent_rewrites",
            at_least("compactor.max_concurrent_rewrites", raw.max_concurrent_rewrites, 1, 1)?,
            MAX_CONCURRENT_REWRITES,
        )? as usize,
        max_concurrent_tables: max_concurrent_tables(raw)?,
        memory_limit_bytes: memory_mb * MIB,
        poll_interval: poll_interval(raw.poll_interval, interval)?,
        max_bytes_per_pass: match raw.max_bytes_per_pass {
            None => None,
            Some(v) => Some(within("compactor.max_bytes_per_pass", Some(v), MIB, MIB, u64::MAX)?),
        },
        max_pass_duration: match raw.max_pass_duration {
            None => None,
            Some(d) if d < secs(1) => {
                return Err(ConfigError::new(
                    "compactor.max_pass_duration",
                    human(d),
                    "must be at least 1s (leave it out for no limit)",
                ));
            }
            Some(d) => Some(bounded_duration("compactor.max_pass_duration", Some(d), d, MAX_INTERVAL)?),
        },
        table_metrics: raw.table_metrics.unwrap_or(false),
        lag_target: positive_duration("compactor.lag_target", raw.lag_target, secs(600), MAX_INTERVAL)?,
        window: None,
    })
}

/// `compactor.poll_interval`: default 30 s, `0s` turns polling off; shorter than the interval it
/// divides (a poll as long as the interval polls nothing the interval would not).
fn poll_interval(value: Option<Duration>, interval: Duration) -> Result<Option<Duration>> {
    let key = "compactor.poll_interval";
    let d = value.unwrap_or(secs(30).min(interval));
    if d.is_zero() || (value.is_none() && d >= interval) {
        return Ok(None);
    }
    if d < secs(1) {
        return Err(ConfigError::new(key, human(d), "must be at least 1s (or 0s to turn polling off)"));
    }
    if d >= interval {
        return Err(ConfigError::new(
            key,
            human(d),
            format!("must be shorter than compactor.interval ({}); 0s turns polling off", human(interval)),
        ));
    }
    Ok(Some(d))
}

/// `compactor.max_concurrent_tables`: 1–16, and with `max_concurrent_rewrites` at most 16 rewrites in
/// flight. Every sorted rewrite's merge holds a blocking thread while it waits for its writer: the
/// rewrites of all concurrent tables together stay within the same bound as one table's.
fn max_concurrent_tables(raw: &RawCompactor) -> Result<usize> {
    let key = "compactor.max_concurrent_tables";
    let tables = at_most(key, at_least(key, raw.max_concurrent_tables, 1, 1)?, MAX_CONCURRENT_REWRITES)?;
    let rewrites = raw.max_concurrent_rewrites.unwrap_or(1).max(1);
    if tables.saturating_mul(rewrites) > MAX_CONCURRENT_REWRITES {
        return Err(ConfigError::new(
            key,
            tables.to_string(),
            format!(
                "max_concurrent_tables × max_concurrent_rewrites ({tables} × {rewrites}) must be at most \
                 {MAX_CONCURRENT_REWRITES} rewrites in flight"
            ),
        ));
    }
    Ok(tables as usize)
}
