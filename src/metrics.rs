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
    /// Unix time of the last pass that finished without failure, per job.
    pub last_success_timestamp_seconds: IntGaugeVec,
    /// Tables found in the catalog at the last discovery, per signal.
    pub tables_discovered: IntGaugeVec,
}

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
