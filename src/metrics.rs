//! Every Prometheus metric the binary exports, registered once on a registry passed in (tests use a
//! fresh one each). Names are the ones `docs/metrics.md` and the README document.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Passes started per job and result (`ok`, `partial`, `failed`).
    pub passes_total: IntCounterVec,
    /// Passes that failed (an error, or at least one table failed), per job.
    pub pass_failures_total: IntCounterVec,
    pub pass_duration_seconds: HistogramVec,
    /// 1 while a job's pass runs past `[compactor] pass_deadline`, else 0.
    pub pass_overdue: IntGaugeVec,
    /// Passes that ran past the deadline, per job.
    pub passes_overdue_total: IntCounterVec,
    /// Unix time of the last pass that finished without failure, per job.
    pub last_success_timestamp_seconds: IntGaugeVec,
    /// Tables found in the catalog at the last discovery, per signal.
    pub tables_discovered: IntGaugeVec,
    /// Compaction: groups rewritten and committed (tenant, dataset, signal).
    pub compaction_runs_total: IntCounterVec,
    /// Compaction: input files replaced by committed rewrites.
    pub files_compacted_total: IntCounterVec,
    /// Compaction: input bytes replaced by committed rewrites.
    pub bytes_compacted_total: IntCounterVec,
    /// Compaction: wall time per table pass.
    pub compaction_duration_seconds: HistogramVec,
    /// Commit attempts that lost the compare-and-swap to another writer.
    pub commit_conflicts_total: IntCounterVec,
    /// Compaction: data manifests replaced by committed manifest rewrites.
    pub manifests_rewritten_total: IntCounterVec,
    /// Partitions not compacted, by reason.
    pub partitions_skipped_total: IntCounterVec,
    /// Whole tables a job left alone, by job and reason (unsupported format, encrypted, unreadable).
    pub tables_skipped_total: IntCounterVec,
    /// Table leases lost mid-work, by job.
    pub leases_lost_total: IntCounterVec,
    /// Groups abandoned because their output broke a content invariant (job, table).
    pub invariant_violations_total: IntCounterVec,
    /// Retention: cutoffs computed (once per tenant, dataset, signal per pass).
    pub retention_cutoffs_computed_total: IntCounterVec,
    /// Retention: partitions (and partition-less files) evaluated against a cutoff.
    pub partitions_evaluated_total: IntCounterVec,
    /// Retention: partitions dropped.
    pub partitions_dropped_total: IntCounterVec,
    /// Retention: snapshots expired (tenant, dataset, table).
    pub snapshots_expired_total: IntCounterVec,
    /// Retention: wall time per table (tenant, dataset).
    pub retention_enforcement_duration_seconds: HistogramVec,
    /// Bytes deleted from storage after snapshot expiry.
    pub bytes_reclaimed_total: IntCounterVec,
    /// Orphan cleanup (labels tenant, dataset, table): passes over a table.
    pub orphan_cleanup_runs_total: IntCounterVec,
    pub files_scanned_total: IntCounterVec,
    pub orphans_identified_total: IntCounterVec,
    pub files_deleted_total: IntCounterVec,
    pub deletion_failures_total: IntCounterVec,
    pub bytes_freed_total: IntCounterVec,
    pub orphan_cleanup_duration_seconds: HistogramVec,
    /// Integrity problems found by the last `verify` of a table (tenant, dataset, table).
    pub integrity_problems: IntGaugeVec,
    /// Compaction lag: from a partition's due time (or its late files' arrival) to its compaction,
    /// per signal.
    pub compaction_lag_seconds: HistogramVec,
    /// The promised lag (`[compactor] lag_target`), for the alert rule.
    pub compaction_lag_target_seconds: prometheus::IntGauge,
    /// Replicas dividing the compaction survey as the last loop pass saw them (1: this one alone).
    pub survey_replicas: prometheus::IntGauge,
    /// Tables this replica surveyed at its last loop pass (its share when the survey is divided).
    pub survey_share_tables: prometheus::IntGauge,
    /// Due compaction work the last full pass left undone (tenant, signal): files and bytes.
    pub debt_files: IntGaugeVec,
    pub debt_bytes: IntGaugeVec,
    /// How long the longest-waiting due partition had waited when the last full pass ended.
    pub oldest_uncompacted_partition_age_seconds: prometheus::IntGauge,
    /// Optional per-table health (`[compactor] table_metrics`), label `table`.
    pub table_health: IntGaugeVec,
}

/// Labels of orphan-cleanup metrics.
pub const ORPHAN_LABELS: [&str; 3] = ["tenant", "dataset", "table"];

/// Labels of per-table job metrics.
pub const TABLE_LABELS: [&str; 3] = ["tenant", "dataset", "signal"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn plain_gauge(registry: &Registry, name: &str, help: &str) -> prometheus::IntGauge {
    let g = prometheus::IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
    registry.register(Box::new(h.clone())).expect("metric registered once");
    h
}

impl Metrics {
    pub fn new(registry: Registry) -> Metrics {
        let r = &registry;
        Metrics {
            passes_total: counter(
                r,
                "compactor_passes_total",
                "Passes run, by job and result",
                &["job", "result"],
            ),
            pass_failures_total: counter(
                r,
                "compactor_pass_failures_total",
                "Passes that failed or had a failing table, by job",
                &["job"],
            ),
            pass_overdue: gauge(
                r,
                "compactor_pass_overdue",
                "1 while the job's pass runs past [compactor] pass_deadline, else 0",
                &["job"],
            ),
            passes_overdue_total: counter(
                r,
                "compactor_passes_overdue_total",
                "Passes that ran past [compactor] pass_deadline, by job",
                &["job"],
            ),
            pass_duration_seconds: histogram(
                r,
                "compactor_pass_duration_seconds",
                "Wall time of a whole pass, by job",
                &["job"],
            ),
            last_success_timestamp_seconds: gauge(
                r,
                "compactor_last_success_timestamp_seconds",
                "Unix time at which the last successful pass of a job finished",
                &["job"],
            ),
            tables_discovered: gauge(
                r,
                "compactor_tables_discovered",
                "Catalog tables found at the last discovery, by signal",
                &["signal"],
            ),
            compaction_runs_total: counter(
                r,
                "compactor_compaction_runs_total",
                "Compaction groups rewritten and committed",
                &TABLE_LABELS,
            ),
            files_compacted_total: counter(
                r,
                "compactor_files_compacted_total",
                "Input data files replaced by committed compactions",
                &TABLE_LABELS,
            ),
            bytes_compacted_total: counter(
                r,
                "compactor_bytes_compacted_total",
                "Input bytes replaced by committed compactions",
                &TABLE_LABELS,
            ),
            compaction_duration_seconds: histogram(
                r,
                "compactor_compaction_duration_seconds",
                "Wall time of compacting one table",
                &TABLE_LABELS,
            ),
            commit_conflicts_total: counter(
                r,
                "compactor_commit_conflicts_total",
                "Commit attempts that lost the catalog compare-and-swap to another writer",
                &TABLE_LABELS,
            ),
            manifests_rewritten_total: counter(
                r,
                "compactor_manifests_rewritten_total",
                "Data manifests replaced by committed manifest rewrites (clustered by partition)",
                &TABLE_LABELS,
            ),
            partitions_skipped_total: counter(
                r,
                "compactor_partitions_skipped_total",
                "Partitions left alone, by reason",
                &["tenant", "dataset", "signal", "reason"],
            ),
            retention_cutoffs_computed_total: counter(
                r,
                "compactor_retention_cutoffs_computed_total",
                "Retention cutoffs computed",
                &TABLE_LABELS,
            ),
            partitions_evaluated_total: counter(
                r,
                "compactor_partitions_evaluated_total",
                "Partitions evaluated against a retention cutoff",
                &TABLE_LABELS,
            ),
            partitions_dropped_total: counter(
                r,
                "compactor_partitions_dropped_total",
                "Expired partitions dropped",
                &TABLE_LABELS,
            ),
            snapshots_expired_total: counter(
                r,
                "compactor_snapshots_expired_total",
                "Snapshots expired",
                &["tenant", "dataset", "table"],
            ),
            retention_enforcement_duration_seconds: histogram(
                r,
                "compactor_retention_enforcement_duration_seconds",
                "Wall time of enforcing retention on one table",
                &["tenant", "dataset"],
            ),
            bytes_reclaimed_total: counter(
                r,
                "compactor_bytes_reclaimed_total",
                "Bytes deleted from storage after snapshot expiry",
                &TABLE_LABELS,
            ),
            orphan_cleanup_runs_total: counter(
                r,
                "compactor_orphan_cleanup_runs_total",
                "Orphan cleanup passes over a table",
                &ORPHAN_LABELS,
            ),
            files_scanned_total: counter(
                r,
                "compactor_files_scanned_total",
                "Objects listed under table locations",
                &ORPHAN_LABELS,
            ),
            orphans_identified_total: counter(
                r,
                "compactor_orphans_identified_total",
                "Unreferenced objects older than the grace period",
                &ORPHAN_LABELS,
            ),
            files_deleted_total: counter(
                r,
                "compactor_files_deleted_total",
                "Orphan files deleted",
                &ORPHAN_LABELS,
            ),
            deletion_failures_total: counter(
                r,
                "compactor_deletion_failures_total",
                "Orphan deletions that failed (retried next pass)",
                &ORPHAN_LABELS,
            ),
            bytes_freed_total: counter(
                r,
                "compactor_bytes_freed_total",
                "Bytes freed by orphan cleanup",
                &ORPHAN_LABELS,
            ),
            orphan_cleanup_duration_seconds: histogram(
                r,
                "compactor_orphan_cleanup_duration_seconds",
                "Wall time of cleaning one table",
                &ORPHAN_LABELS,
            ),
            integrity_problems: gauge(
                r,
                "compactor_integrity_problems",
                "Missing, truncated or corrupt files found by the last verify of a table",
                &ORPHAN_LABELS,
            ),
            tables_skipped_total: counter(
                r,
                "compactor_tables_skipped_total",
                "Tables a job left alone, by job and reason",
                &["job", "reason"],
            ),
            leases_lost_total: counter(
                r,
                "compactor_leases_lost_total",
                "Table leases lost while the work ran (another replica took it over, or renewals failed)",
                &["job"],
            ),
            invariant_violations_total: counter(
                r,
                "compactor_invariant_violations_total",
                "Rewrites abandoned before commit because the output's content did not match the inputs'",
                &["job", "table"],
            ),
            compaction_lag_seconds: {
                // Seconds to a day: the promise is minutes; a backlog shows in the top buckets.
                let buckets = vec![
                    15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
                ];
                let opts = HistogramOpts::new(
                    "compactor_compaction_lag_seconds",
                    "From a partition falling due (or its late files qualifying) to its compaction, by signal",
                )
                .buckets(buckets);
                let h = HistogramVec::new(opts, &["signal"]).expect("valid metric");
                r.register(Box::new(h.clone())).expect("metric registered once");
                h
            },
            compaction_lag_target_seconds: plain_gauge(
                r,
                "compactor_compaction_lag_target_seconds",
                "The compaction lag promised ([compactor] lag_target)",
            ),
            survey_replicas: plain_gauge(
                r,
                "compactor_survey_replicas",
                "Replicas dividing the compaction survey, as this one saw them at its last loop pass",
            ),
            survey_share_tables: plain_gauge(
                r,
                "compactor_survey_share_tables",
                "Tables this replica surveyed at its last loop pass (its share when replicas divide the survey)",
            ),
            debt_files: gauge(
                r,
                "compactor_debt_files",
                "Files due for compaction that the last full pass left undone, by tenant and signal",
                &["tenant", "signal"],
            ),
            debt_bytes: gauge(
                r,
                "compactor_debt_bytes",
                "Bytes due for compaction that the last full pass left undone, by tenant and signal",
                &["tenant", "signal"],
            ),
            oldest_uncompacted_partition_age_seconds: plain_gauge(
                r,
                "compactor_oldest_uncompacted_partition_age_seconds",
                "How long the longest-waiting due partition had waited when the last full pass ended",
            ),
            table_health: gauge(
                r,
                "compactor_table_health",
                "Per-table figures ([compactor] table_metrics): data_files, small_files, manifests, snapshots, metadata_bytes",
                &["table", "figure"],
            ),
            registry,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new().encode_to_string(&families).unwrap_or_default()
    }
}
