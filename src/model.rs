//! The leaf of the dependency graph: the plain values every layer speaks in, and nothing that does IO.
//!
//! Terms: a *table reference* ([`TableRef`]) is a catalog table mapped onto SignalDB's layout: tenant,
//! dataset, table name and signal. Namespaces are `[tenant, dataset]`; other depths map by a fixed rule
//! ([`TableRef::from_namespace`]). [`Access`] is what the process may write at all, [`Mode`] whether a pass may change anything; [`JobKind`] names
//! the jobs. Their historical homes (`catalog`, `config`, `job`) re-export them.

use std::fmt;

use iceberg::{NamespaceIdent, TableIdent};
use serde::Serialize;

/// The kind of data a table holds, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
    Profiles,
    /// Not a SignalDB signal table: compacted and orphan-cleaned, retained only by explicit policy.
    Other,
}

impl Signal {
    pub const KNOWN: [Signal; 4] = [Signal::Traces, Signal::Logs, Signal::Metrics, Signal::Profiles];

    /// `traces`, `logs`, `profiles`, `metrics_*` (the eight SignalDB tables); anything else is `Other`.
    pub fn from_table_name(name: &str) -> Signal {
        match name {
            "traces" => Signal::Traces,
            "logs" => Signal::Logs,
            "profiles" => Signal::Profiles,
            n if n.starts_with("metrics_") => Signal::Metrics,
            _ => Signal::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Profiles => "profiles",
            Signal::Other => "other",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A catalog table in SignalDB's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TableRef {
    pub tenant: String,
    pub dataset: String,
    pub table: String,
    pub signal: Signal,
    #[serde(skip)]
    pub ident: TableIdent,
}

/// Dataset name used for single-level namespaces.
pub const DEFAULT_DATASET: &str = "default";

impl TableRef {
    /// Maps a namespace to tenant and dataset: `[t, d]` → (t, d); `[t]` → (t, `default`);
    /// `[t, a, b, …]` → (t, `a.b.…`). `None` for an empty namespace.
    pub fn from_namespace(levels: &[String], table: &str) -> Option<TableRef> {
        let (tenant, rest) = levels.split_first()?;
        let dataset = if rest.is_empty() { DEFAULT_DATASET.to_string() } else { rest.join(".") };
        let ident = TableIdent::new(NamespaceIdent::from_vec(levels.to_vec()).ok()?, table.into());
        Some(TableRef {
            tenant: tenant.clone(),
            dataset,
            table: table.to_string(),
            signal: Signal::from_table_name(table),
            ident,
        })
    }

    /// `tenant.dataset.table`, the form `--table` takes.
    pub fn qualified(&self) -> String {
        format!("{}.{}.{}", self.tenant, self.dataset, self.table)
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.qualified())
    }
}

/// Whether this process may write to the catalog database and the warehouse at all. Read-only (every
/// job in dry-run) creates nothing: not the SQLite file, not the warehouse directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// The jobs this binary knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Compaction,
    Retention,
    Orphans,
    /// The optional integrity-check loop (read-only).
    Verify,
}

impl JobKind {
    pub const ALL: [JobKind; 4] =
        [JobKind::Compaction, JobKind::Retention, JobKind::Orphans, JobKind::Verify];
    /// The jobs that change tables (what `once all` and `plan` run).
    pub const MAINTENANCE: [JobKind; 3] = [JobKind::Compaction, JobKind::Retention, JobKind::Orphans];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Compaction => "compaction",
            JobKind::Retention => "retention",
            JobKind::Orphans => "orphans",
            JobKind::Verify => "verify",
        }
    }

    /// The config key that enables the job. A job disabled there runs only when a dry run is asked
    /// for explicitly (`once <job> --dry-run`, `"dry_run": true`); its loop does not run at all.
    pub fn enabled_key(self) -> &'static str {
        match self {
            JobKind::Compaction => "compactor.enabled",
            JobKind::Retention => "compactor.retention.enabled",
            JobKind::Orphans => "compactor.orphan_cleanup.enabled",
            JobKind::Verify => "compactor.verify.enabled",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a pass may change storage or the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    DryRun,
    Execute,
}

impl Mode {
    pub fn from_dry_run(dry_run: bool) -> Self {
        if dry_run { Self::DryRun } else { Self::Execute }
    }

    pub fn is_dry_run(self) -> bool {
        self == Self::DryRun
    }

    /// The stricter of two modes: any dry-run wins.
    pub fn and(self, other: Mode) -> Mode {
        if self.is_dry_run() || other.is_dry_run() { Self::DryRun } else { Self::Execute }
    }
}
