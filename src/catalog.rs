//! The Iceberg SQL catalog (SQLite or PostgreSQL) and table discovery.
//!
//! Terms: a *table reference* is a catalog table mapped onto SignalDB's layout: tenant, dataset, table
//! name and signal. Namespaces are `[tenant, dataset]`; other depths map by a fixed rule
//! ([`TableRef::from_namespace`]) instead of being skipped or crashing discovery.
//!
//! Compatibility hazards handled here: catalogs written by PyIceberg's `SqlCatalog` or Java's
//! `JdbcCatalog` (V0 schema) have no `iceberg_type` column, which iceberg-catalog-sql 0.10.1 queries
//! unconditionally; we add it as a nullable column, which those engines ignore. Discovery reads
//! `iceberg_tables` directly: `SqlCatalog::list_namespaces` matches children by string prefix
//! (`acme` would also list `acme2.x`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use iceberg::table::Table;
use iceberg::{Catalog as _, CatalogBuilder as _, NamespaceIdent, TableIdent};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::config::CatalogConfig;
use crate::storage::Warehouse;

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

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {uri}: {source}")]
    Sql {
        uri: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("catalog {uri}: {source}")]
    Iceberg {
        uri: String,
        #[source]
        source: iceberg::Error,
    },
    #[error("table {table}: {source}")]
    Table {
        table: String,
        #[source]
        source: iceberg::Error,
    },
}

impl CatalogError {
    /// Connection-level failures are worth retrying at the next pass; errors about one table are not
    /// retried within a pass.
    pub fn is_retryable(&self) -> bool {
        match self {
            CatalogError::Sql { .. } => true,
            CatalogError::Iceberg { source, .. } | CatalogError::Table { source, .. } => source.retryable(),
        }
    }
}

/// The catalog: iceberg's `SqlCatalog` for loading tables, plus our own pool on the same database for
/// discovery, the compare-and-swap commit and the compactor's own tables.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<SqlCatalog>,
    pool: AnyPool,
    name: String,
    uri: String,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog").field("name", &self.name).field("uri", &redact_uri(&self.uri)).finish()
    }
}

/// Hides a password in a database URI for logs and errors.
pub fn redact_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => uri.to_string(),
    }
}

impl Catalog {
    /// Connects to the catalog database, creating a SQLite file (and its directory) if needed, and
    /// makes the catalog tables usable by iceberg-catalog-sql without breaking other engines.
    pub async fn connect(config: &CatalogConfig, warehouse: &Warehouse) -> Result<Catalog, CatalogError> {
        let uri = config.uri.clone();
        let shown = redact_uri(&uri);
        // A missing directory would surface as an opaque "unable to open database file".
        if let Some(path) = sqlite_file(&uri)
            && let Some(parent) = std::path::Path::new(path).parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            tracing::warn!(path, error = %e, "cannot create the catalog's directory");
        }
        install_default_drivers();
        let sql = |source| CatalogError::Sql { uri: shown.clone(), source };
        let pool = AnyPoolOptions::new()
            .max_connections(config.pool_max_connections)
            .connect(&uri)
            .await
            .map_err(sql)?;
        ensure_iceberg_type_column(&pool).await.map_err(sql)?;
        let props = HashMap::from([
            ("uri".to_string(), uri.clone()),
            ("warehouse".to_string(), warehouse.root().to_string()),
            ("pool.max-connections".to_string(), config.pool_max_connections.to_string()),
        ]);
        let inner = SqlCatalogBuilder::default()
            .with_storage_factory(warehouse.storage_factory())
            .load(&config.name, props)
            .await
            .map_err(|source| CatalogError::Iceberg { uri: shown.clone(), source })?;
        Ok(Catalog { inner: Arc::new(inner), pool, name: config.name.clone(), uri })
    }

    /// iceberg's catalog, for loading and creating tables.
    pub fn iceberg(&self) -> &SqlCatalog {
        &self.inner
    }

    /// Our own pool on the catalog database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `SELECT 1` on the catalog database, for `/ready`.
    pub async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|source| CatalogError::Sql { uri: redact_uri(&self.uri), source })
    }

    /// Every table of this catalog, mapped to SignalDB's layout, sorted.
    pub async fn discover(&self) -> Result<Vec<TableRef>, CatalogError> {
        let rows = sqlx::query(
            "SELECT table_namespace, table_name FROM iceberg_tables \
             WHERE catalog_name = $1 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
        )
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| CatalogError::Sql { uri: redact_uri(&self.uri), source })?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let namespace: String = row.try_get(0).unwrap_or_default();
            let name: String = row.try_get(1).unwrap_or_default();
            let levels: Vec<String> = namespace.split('.').map(str::to_string).collect();
            match TableRef::from_namespace(&levels, &name) {
                Some(t) if !name.is_empty() && !namespace.is_empty() => tables.push(t),
                _ => tracing::warn!(
                    namespace,
                    table = name,
                    "skipping catalog row with empty namespace or name"
                ),
            }
        }
        tables.sort();
        Ok(tables)
    }

    pub async fn load(&self, table: &TableRef) -> Result<Table, CatalogError> {
        self.inner
            .load_table(&table.ident)
            .await
            .map_err(|source| CatalogError::Table { table: table.qualified(), source })
    }
}

/// The file path of a `sqlite:` URI, if it names a file.
fn sqlite_file(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("sqlite://").or_else(|| uri.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Adds `iceberg_type` to an `iceberg_tables` that lacks it (PyIceberg, Java JDBC V0). Existing rows
/// keep NULL, which every engine reads as a table.
async fn ensure_iceberg_type_column(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let exists = sqlx::query("SELECT 1 FROM iceberg_tables LIMIT 0").execute(pool).await.is_ok();
    if !exists {
        return Ok(());
    }
    let has_column =
        sqlx::query("SELECT iceberg_type FROM iceberg_tables LIMIT 0").execute(pool).await.is_ok();
    if !has_column {
        tracing::info!(
            "adding the iceberg_type column to iceberg_tables (catalog created by another engine)"
        );
        sqlx::query("ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)").execute(pool).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn namespace_depths_map_by_rule() {
        let t = TableRef::from_namespace(&levels(&["acme", "prod"]), "traces").unwrap();
        assert_eq!((t.tenant.as_str(), t.dataset.as_str(), t.signal), ("acme", "prod", Signal::Traces));
        let t = TableRef::from_namespace(&levels(&["acme"]), "logs").unwrap();
        assert_eq!((t.tenant.as_str(), t.dataset.as_str()), ("acme", DEFAULT_DATASET));
        let t = TableRef::from_namespace(&levels(&["acme", "eu", "prod"]), "x").unwrap();
        assert_eq!((t.tenant.as_str(), t.dataset.as_str(), t.signal), ("acme", "eu.prod", Signal::Other));
        assert_eq!(t.ident.namespace().as_ref(), &levels(&["acme", "eu", "prod"]));
        assert!(TableRef::from_namespace(&[], "x").is_none());
    }

    #[test]
    fn signal_from_table_name() {
        assert_eq!(Signal::from_table_name("metrics_exponential_histogram"), Signal::Metrics);
        assert_eq!(Signal::from_table_name("profiles"), Signal::Profiles);
        assert_eq!(Signal::from_table_name("metrics"), Signal::Other);
        assert_eq!(Signal::from_table_name("traces_v2"), Signal::Other);
    }

    #[test]
    fn sqlite_uri_file_and_redaction() {
        assert_eq!(sqlite_file("sqlite:.data/catalog.db?mode=rwc"), Some(".data/catalog.db"));
        assert_eq!(sqlite_file("sqlite:///tmp/c.db"), Some("/tmp/c.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(redact_uri("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
