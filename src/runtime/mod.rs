//! The runtime layer, below the jobs and above the Iceberg machinery: the [`Context`] every job is
//! built from (config, catalog, store, metrics, clock, locks, leases, audit), and one table's work
//! within a pass ([`pass::TablePass`], [`pass::Claim`]).

pub mod leases;
pub mod locks;
pub mod pass;
pub mod replicas;
pub mod share;

use std::sync::Arc;

use anyhow::Context as _;
use tracing::warn;

use crate::catalog::{Access, Catalog, Signal};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::storage::Warehouse;
pub use pass::{Claim, TablePass};

/// What every job shares: built once at startup.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub catalog: Catalog,
    pub warehouse: Warehouse,
    /// Retention's cold tier, when `archive_dsn` is set.
    pub archive: Option<Warehouse>,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    /// One job per table at a time.
    pub locks: locks::TableLocks,
    /// The audit trail (a no-op without write access).
    pub audit: crate::audit::Audit,
    /// Table leases shared with other replicas (none without write access).
    pub leases: leases::Leases,
}

/// How a [`Context`] is made: the config, the metrics registry and the access, and optionally another
/// clock or object store (tests: a fixed clock, a failure-injecting store).
pub struct ContextBuilder {
    config: Config,
    registry: prometheus::Registry,
    access: Access,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn object_store::ObjectStore>>,
}

impl ContextBuilder {
    /// The time every job, the audit trail's recovery and the loops read (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serves the warehouse (and iceberg's `FileIO`) from `store` instead of the one the DSN names;
    /// locations keep the configured root.
    pub fn with_store(mut self, store: Arc<dyn object_store::ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Opens storage and the catalog. `access` is read-only when nothing this process will run may
    /// write (every job in dry-run): then not even a missing catalog file or directory is created.
    pub async fn build(self) -> anyhow::Result<Context> {
        // The binary registered them first thing; a library user (the tests) gets them here.
        crate::avro_names::install();
        let ContextBuilder { config, registry, access, clock, store } = self;
        let mut warehouse =
            Warehouse::open(&config.storage, access).context("opening the warehouse storage")?;
        if let Some(store) = store {
            warehouse = Warehouse::with_store(warehouse.root().to_string(), store);
        }
        let catalog = Catalog::connect(&config.catalog, &warehouse, access)
            .await
            .context("connecting to the catalog")?;
        let (audit, leases) = match access {
            Access::ReadWrite => {
                let holder = leases::holder_id();
                let leases = leases::Leases::new(
                    catalog.pool().clone(),
                    catalog.is_postgres(),
                    holder.clone(),
                    config.service.lease_ttl,
                );
                (
                    crate::audit::Audit::new(Some(catalog.pool().clone()), holder, catalog.is_postgres()),
                    leases,
                )
            }
            Access::ReadOnly => (crate::audit::Audit::disabled(), leases::Leases::disabled()),
        };
        let recovered = audit
            .recover(clock.now(), config.service.audit_retention)
            .await
            .context("recovering the audit trail")?;
        if recovered > 0 {
            warn!(runs = recovered, "audit rows left running by a stopped process marked failed");
        }
        let archive = match &config.retention.archive {
            Some(dsn) => {
                let storage = crate::config::StorageConfig {
                    dsn: dsn.clone(),
                    extra_roots: Vec::new(),
                    ..config.storage.clone()
                };
                // Created lazily by the first copy: an unusable archive fails that table's drop, not
                // the whole daemon's startup.
                Some(
                    Warehouse::open(&storage, Access::ReadOnly)
                        .context("opening the retention archive storage")?,
                )
            }
            None => None,
        };
        Ok(Context {
            config: Arc::new(config),
            catalog,
            warehouse,
            archive,
            metrics: Metrics::new(registry),
            clock,
            locks: locks::TableLocks::default(),
            audit,
            leases,
        })
    }
}

impl Context {
    /// A builder for a context on `config` with the system clock and the configured store.
    pub fn builder(config: Config, registry: prometheus::Registry, access: Access) -> ContextBuilder {
        ContextBuilder { config, registry, access, clock: Arc::new(SystemClock), store: None }
    }

    /// Opens storage and the catalog with the system clock ([`ContextBuilder::build`]).
    pub async fn build(
        config: Config,
        registry: prometheus::Registry,
        access: Access,
    ) -> anyhow::Result<Context> {
        Self::builder(config, registry, access).build().await
    }

    /// This context with `clock` as the jobs' time from now on (what was opened stays as it is).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Context {
        self.clock = clock;
        self
    }

    /// This context without replica leases: its passes work outside the lease protocol, as another
    /// engine or a replica whose lease expired would.
    pub fn without_leases(mut self) -> Context {
        self.leases = leases::Leases::disabled();
        self
    }

    /// Discovers tables and records how many of each signal exist.
    pub async fn discover(&self) -> Result<Vec<crate::catalog::TableRef>, crate::catalog::CatalogError> {
        let tables = self.catalog.discover().await?;
        for signal in Signal::KNOWN.into_iter().chain([Signal::Other]) {
            let n = tables.iter().filter(|t| t.signal == signal).count();
            self.metrics.tables_discovered.with_label_values(&[signal.as_str()]).set(n as i64);
        }
        Ok(tables)
    }
}
