//! Compaction debt and lag, as the passes leave them: the gauges (`compactor_debt_files`,
//! `compactor_debt_bytes`, `compactor_oldest_uncompacted_partition_age_seconds`), the lag histogram
//! (`compactor_compaction_lag_seconds`), the optional per-table health gauges, and the figures
//! `/status` shows for the compaction loop.
//!
//! Debt is published only by full passes (every table surveyed): a filtered or `--partition` pass sees
//! part of the catalog and would understate it. Cardinality is bounded by tenants × signals (the debt
//! gauges) and, only when `table_metrics` is on, tables × 5 (the health gauges).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::look::Health;
use super::plan::DueWork;
use super::schedule::waited;
use crate::catalog::TableRef;
use crate::job::{PartitionStatus, TableReport};
use crate::metrics::Metrics;

/// Lags kept for `/status`'s percentiles: the last hour's, at most this many.
const LAG_SAMPLES: usize = 10_000;
const LAG_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub(super) struct DebtBoard {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (tenant, signal) series set by the last publish: zeroed when their debt is gone.
    series: BTreeSet<(String, String)>,
    last: Option<Published>,
    /// (compacted at, lag seconds), oldest first.
    lags: VecDeque<(DateTime<Utc>, f64)>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Published {
    at: DateTime<Utc>,
    tables: u64,
    partitions: u64,
    files: u64,
    bytes: u64,
    oldest_waiting_seconds: u64,
}

/// What of `debt` a table's pass left undone: every partition except those it compacted.
pub(super) fn left_undone(debt: &[DueWork], report: Option<&TableReport>) -> Vec<DueWork> {
    let done: BTreeSet<&str> = report
        .into_iter()
        .flat_map(|r| &r.partition_reports)
        .filter(|p| p.status == PartitionStatus::Succeeded)
        .map(|p| p.partition.as_str())
        .collect();
    debt.iter().filter(|d| !done.contains(d.label.as_str())).cloned().collect()
}

impl DebtBoard {
    /// One lag observation per partition the table's pass compacted that the survey found due.
    pub(super) fn observe_lag(
        &self,
        metrics: &Metrics,
        t: &TableRef,
        debt: &[DueWork],
        report: &TableReport,
        now: DateTime<Utc>,
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for p in report.partition_reports.iter().filter(|p| p.status == PartitionStatus::Succeeded) {
            let Some(d) = debt.iter().find(|d| d.label == p.partition) else { continue };
            let lag = waited(d, now).as_secs_f64();
            metrics.compaction_lag_seconds.with_label_values(&[t.signal.as_str()]).observe(lag);
            tracing::debug!(table = %t, partition = %p.partition, lag_seconds = lag, "partition compacted");
            inner.lags.push_back((now, lag));
        }
        trim(&mut inner.lags, now);
    }

    /// Sets the debt gauges from what a full pass left undone, per table.
    pub(super) fn publish<'a>(
        &self,
        metrics: &Metrics,
        left: impl Iterator<Item = (&'a TableRef, Vec<DueWork>)>,

        now: DateTime<Utc>,
    ) {
        let mut by_series: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        let mut published =
            Published { at: now, tables: 0, partitions: 0, files: 0, bytes: 0, oldest_waiting_seconds: 0 };
        for (t, undone) in left {
            let series = by_series.entry((t.tenant.clone(), t.signal.as_str().to_string())).or_default();
            published.tables += u64::from(!undone.is_empty());
            for d in &undone {
                series.0 += d.files;
                series.1 += d.bytes;
                published.partitions += 1;
                published.files += d.files;
                published.bytes += d.bytes;
                published.oldest_waiting_seconds =
                    published.oldest_waiting_seconds.max(waited(d, now).as_secs());
            }
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for gone in inner.series.iter().filter(|s| !by_series.contains_key(*s)) {
            metrics.debt_files.with_label_values(&[&gone.0, &gone.1]).set(0);
            metrics.debt_bytes.with_label_values(&[&gone.0, &gone.1]).set(0);
        }
        for ((tenant, signal), (files, bytes)) in &by_series {
            metrics.debt_files.with_label_values(&[tenant, signal]).set(clamp(*files));
            metrics.debt_bytes.with_label_values(&[tenant, signal]).set(clamp(*bytes));
        }
        metrics.oldest_uncompacted_partition_age_seconds.set(clamp(published.oldest_waiting_seconds));
        inner.series.extend(by_series.into_keys());
        inner.last = Some(published);
        trim(&mut inner.lags, now);
    }

    /// The per-table health gauges, when the operator turned them on.
    pub(super) fn publish_health(&self, metrics: &Metrics, enabled: bool, t: &TableRef, h: &Health) {
        if !enabled {
            return;
        }
        let table = t.qualified();
        let mut figures = vec![
            ("data_files", h.files),
            ("small_files", h.small_files),
            ("manifests", h.manifests),
            ("snapshots", h.snapshots),
        ];
        figures.extend(h.metadata_bytes.map(|b| ("metadata_bytes", b)));
        for (figure, value) in figures {
            metrics.table_health.with_label_values(&[&table, figure]).set(clamp(value));
        }
    }

    /// `/status`'s compaction figures: the debt the last full pass left, and the lag percentiles of
    /// the last hour's compactions against the target.
    pub(super) fn status(&self, now: DateTime<Utc>, target: Duration) -> serde_json::Value {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        trim(&mut inner.lags, now);
        let mut lags: Vec<f64> = inner.lags.iter().map(|(_, l)| *l).collect();
        lags.sort_by(f64::total_cmp);
        let percentile = |q: f64| -> Option<f64> {
            let last = lags.len().checked_sub(1)?;
            Some(lags[((last as f64) * q).round() as usize])
        };
        serde_json::json!({
            "debt": inner.last,
            "lag_last_hour": {
                "compacted_partitions": lags.len(),
                "p50_seconds": percentile(0.5),
                "p99_seconds": percentile(0.99),
                "max_seconds": lags.last(),
                "target_seconds": target.as_secs(),
            },
        })
    }
}

fn trim(lags: &mut VecDeque<(DateTime<Utc>, f64)>, now: DateTime<Utc>) {
    let window = chrono::Duration::from_std(LAG_WINDOW).unwrap_or_default();
    while lags.front().is_some_and(|(at, _)| *at + window < now) || lags.len() > LAG_SAMPLES {
        lags.pop_front();
    }
}

fn clamp(v: u64) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::job::TableStatus;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
    }

    fn due(label: &str, files: u64, minutes: i64) -> DueWork {
        DueWork {
            label: label.into(),
            files,
            bytes: files * 10,
            waiting_since: now() - chrono::Duration::minutes(minutes),
        }
    }

    fn table(tenant: &str) -> TableRef {
        TableRef::from_namespace(&[tenant.to_string(), "prod".to_string()], "traces").unwrap()
    }

    fn report_with(t: &TableRef, done: &[&str]) -> TableReport {
        let mut r = TableReport::new(t, TableStatus::Succeeded);
        for label in done {
            r.partition_reports.push(crate::job::PartitionReport::new(*label, PartitionStatus::Succeeded));
        }
        r
    }

    #[test]
    fn debt_is_what_the_pass_left_and_gone_series_drop_to_zero() {
        let metrics = Metrics::new(prometheus::Registry::new());
        let board = DebtBoard::default();
        let (a, b) = (table("acme"), table("globex"));
        let debt_a = vec![due("h=1", 10, 30), due("h=2", 4, 5)];
        let report_a = report_with(&a, &["h=1"]);
        assert_eq!(left_undone(&debt_a, Some(&report_a)), vec![due("h=2", 4, 5)]);
        assert_eq!(left_undone(&debt_a, None), debt_a, "a table the pass never ran owes everything");
        board.publish(
            &metrics,
            vec![(&a, left_undone(&debt_a, Some(&report_a))), (&b, vec![due("h=1", 7, 60)])].into_iter(),
            now(),
        );
        assert_eq!(metrics.debt_files.with_label_values(&["acme", "traces"]).get(), 4);
        assert_eq!(metrics.debt_bytes.with_label_values(&["globex", "traces"]).get(), 70);
        assert_eq!(metrics.oldest_uncompacted_partition_age_seconds.get(), 3600);
        board.publish(&metrics, vec![(&a, vec![])].into_iter(), now());
        assert_eq!(metrics.debt_files.with_label_values(&["globex", "traces"]).get(), 0);
        assert!(
            metrics.render().contains("compactor_debt_files{signal=\"traces\",tenant=\"acme\"} 0"),
            "{}",
            metrics.render()
        );
        assert_eq!(metrics.oldest_uncompacted_partition_age_seconds.get(), 0);
    }

    #[test]
    fn lag_is_observed_for_compacted_due_partitions_only() {
        let metrics = Metrics::new(prometheus::Registry::new());
        let board = DebtBoard::default();
        let a = table("acme");
        let debt = vec![due("h=1", 10, 30), due("h=2", 4, 5)];
        board.observe_lag(&metrics, &a, &debt, &report_with(&a, &["h=1", "h=9"]), now());
        let h = metrics.compaction_lag_seconds.with_label_values(&["traces"]);
        assert_eq!(h.get_sample_count(), 1);
        assert_eq!(h.get_sample_sum(), 1800.0);
        let status = board.status(now(), Duration::from_secs(600));
        assert_eq!(status["lag_last_hour"]["p99_seconds"], 1800.0);
        assert_eq!(status["lag_last_hour"]["target_seconds"], 600);
        // An hour later the sample has left the window.
        let later = board.status(now() + chrono::Duration::minutes(61), Duration::from_secs(600));
        assert_eq!(later["lag_last_hour"]["compacted_partitions"], 0);
    }
}
