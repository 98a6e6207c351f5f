//! The Iceberg SQL catalog (SQLite or PostgreSQL) and table discovery.
//!
//! Terms: a *table reference* is a catalog table mapped onto SignalDB's layout: tenant, dataset, table
//! name and signal. Namespaces are `[tenant, dataset]`; other depths map by a fixed rule
//! ([`TableRef::from_namespace`]) instead of being skipped or crashing discovery.
//!
//! Compatibility hazards handled here: catalogs written by older PyIceberg `SqlCatalog`s or Java's
//! `JdbcCatalog` (V0 schema) have no `iceberg_type` column, which iceberg-catalog-sql 0.10.1 queries
//! unconditionally. We read around it rather than altering another engine's schema: discovery, table
//! loading and the commit's compare-and-swap are our own SQL, which uses `iceberg_type` only where the
//! column exists. Discovery reads `iceberg_tables` directly: `SqlCatalog::list_namespaces` matches
//! children by string prefix (`acme` would also list `acme2.x`). iceberg's `SqlCatalog` itself is kept
//! for creating namespaces and tables (`generate`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{CatalogBuilder as _, NamespaceIdent, Runtime, TableIdent};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::config::CatalogConfig;
pub use crate::model::{Access, DEFAULT_DATASET, Signal, TableRef};
use crate::storage::Warehouse;

/// One row of `iceberg_tables`, of any catalog name and type.
#[derive(Debug, Clone)]
pub struct CatalogRow {
    pub catalog: String,
    pub namespace: String,
    pub name: String,
    pub ident: TableIdent,
    pub pointer: Option<String>,
    pub view: bool,
}

impl CatalogRow {
    /// (catalog name, namespace, table): unique per row, unambiguous (unlike a dotted join).
    pub fn key(&self) -> (String, String, String) {
        (self.catalog.clone(), self.namespace.clone(), self.name.clone())
    }

    /// `namespace.table`, prefixed with `catalog:` for another catalog's row (logs and reasons).
    pub fn display_name(&self, own_catalog: &str) -> String {
        if self.catalog == own_catalog {
            format!("{}.{}", self.namespace, self.name)
        } else {
            format!("{}:{}.{}", self.catalog, self.namespace, self.name)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {uri}: the database file does not exist (read-only/dry-run access creates nothing)")]
    Missing { uri: String },
    #[error("catalog {uri}: applying the compactor's migrations: {reason}")]
    Migrate { uri: String, reason: String },
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
            CatalogError::Missing { .. } | CatalogError::Migrate { .. } => false,
            CatalogError::Iceberg { source, .. } | CatalogError::Table { source, .. } => source.retryable(),
        }
    }
}

/// Whether a database error means the catalog database cannot be reached at all (rather than a
/// problem with one statement): then every table would fail the same way.
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// The catalog: our own pool on the catalog database for discovery, loading, the compare-and-swap
/// commit and the compactor's own tables; iceberg's `SqlCatalog` for creating namespaces and tables.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<SqlCatalog>,
    pool: AnyPool,
    file_io: FileIO,
    /// The warehouse the FileIO serves (the commit path deletes superseded metadata through its gate).
    warehouse: Warehouse,
    name: String,
    uri: String,
    /// Whether `iceberg_tables` has the `iceberg_type` column (absent in V0-schema catalogs).
    has_iceberg_type: bool,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog").field("name", &self.name).field("uri", &redact_uri(&self.uri)).finish()
    }
}

/// Hides a password in a database URI (user-info and `password=` parameters) for logs and errors.
pub fn redact_uri(uri: &str) -> String {
    crate::config::redact::secrets(uri)
}

impl Catalog {
    /// Connects to the catalog database. With [`Access::ReadWrite`] a missing SQLite file (and its
    /// directory) is created; with [`Access::ReadOnly`] it must exist.
    pub async fn connect(
        config: &CatalogConfig,
        warehouse: &Warehouse,
        access: Access,
    ) -> Result<Catalog, CatalogError> {
        let uri = config.uri.clone();
        let shown = redact_uri(&uri);
        if let Some(path) = sqlite_file(&uri) {
            let path = std::path::Path::new(path);
            if access == Access::ReadOnly && !path.exists() {
                return Err(CatalogError::Missing { uri: shown });
            }
            // A missing directory would surface as an opaque "unable to open database file".
            if let Some(parent) = path.parent()
                && let Err(e) = std::fs::create_dir_all(parent)
            {
                tracing::warn!(path = %parent.display(), error = %e, "cannot create the catalog's directory");
            }
        }
        install_default_drivers();
        let sql = |source| CatalogError::Sql { uri: shown.clone(), source };
        let pool = AnyPoolOptions::new()
            .max_connections(config.pool_max_connections)
            // While the database is down a statement fails after this, not sqlx's default 30 s: a pass
            // then ends sooner (see `is_unreachable`) and the next tick tries again.
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(&uri)
            .await
            .map_err(sql)?;
        let has_iceberg_type =
            sqlx::query("SELECT iceberg_type FROM iceberg_tables LIMIT 0").execute(&pool).await.is_ok()
                || sqlx::query("SELECT 1 FROM iceberg_tables LIMIT 0").execute(&pool).await.is_err();
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
        if access == Access::ReadWrite {
            // The compactor's own tables (checkpoints); never in read-only (dry-run) mode.
            sqlx::migrate!("./migrations")
                .run(&pool)
                .await
                .map_err(|e| CatalogError::Migrate { uri: shown.clone(), reason: e.to_string() })?;
        }
        let file_io = FileIOBuilder::new(warehouse.storage_factory()).build();
        Ok(Catalog {
            inner: Arc::new(inner),
            pool,
            file_io,
            warehouse: warehouse.clone(),
            name: config.name.clone(),
            uri,
            has_iceberg_type,
        })
    }

    /// `AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)` where the column exists, else nothing.
    pub(crate) fn table_type_filter(&self) -> &'static str {
        if self.has_iceberg_type { " AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)" } else { "" }
    }

    pub(crate) fn sql_error(&self, source: sqlx::Error) -> CatalogError {
        CatalogError::Sql { uri: redact_uri(&self.uri), source }
    }

    /// iceberg's catalog, for loading and creating tables.
    pub fn iceberg(&self) -> &SqlCatalog {
        &self.inner
    }

    /// The warehouse this catalog's FileIO reads and writes.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// Our own pool on the catalog database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the catalog database is PostgreSQL (else SQLite): the few non-portable SQL expressions
    /// (the database clock) depend on it.
    pub fn is_postgres(&self) -> bool {
        self.uri.starts_with("postgres:") || self.uri.starts_with("postgresql:")
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
        Ok(self.discover_pointers().await?.into_iter().map(|(t, _)| t).collect())
    }

    /// Every table of this catalog with its metadata pointer as its row says now, in one query: a
    /// loop's poll selects its tables and detects which moved from the same rows.
    pub async fn discover_pointers(&self) -> Result<Vec<(TableRef, Option<String>)>, CatalogError> {
        let query = format!(
            "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables WHERE catalog_name = $1{}",
            self.table_type_filter()
        );
        let rows = sqlx::query(&query)
            .bind(&self.name)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.sql_error(e))?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let namespace: String = row.try_get(0).unwrap_or_default();
            let name: String = row.try_get(1).unwrap_or_default();
            let pointer: Option<String> = row.try_get(2).ok().flatten();
            let levels: Vec<String> = namespace.split('.').map(str::to_string).collect();
            match TableRef::from_namespace(&levels, &name) {
                Some(t) if !name.is_empty() && !namespace.is_empty() => tables.push((t, pointer)),
                _ => tracing::warn!(
                    namespace,
                    table = name,
                    "skipping catalog row with empty namespace or name"
                ),
            }
        }
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tables)
    }

    pub async fn load(&self, table: &TableRef) -> Result<Table, CatalogError> {
        self.iceberg_load(&table.ident).await
    }

    /// Loads a table: its row's metadata location, then that metadata file.
    pub async fn iceberg_load(&self, ident: &TableIdent) -> Result<Table, CatalogError> {
        let location = self.metadata_location(ident).await?.ok_or_else(|| CatalogError::Table {
            table: ident.to_string(),
            source: iceberg::Error::new(iceberg::ErrorKind::TableNotFound, "no such table in the catalog"),
        })?;
        self.load_pointer(ident, &location).await
    }

    /// Every row of `iceberg_tables` with its metadata pointer, whatever its `catalog_name` or
    /// `iceberg_type` (tables of other catalogs in the same database, views, rows discovery does not map
    /// to SignalDB's layout): the deletion gate must know every location a row names, not only the
    /// tables this daemon maintains. Sorted.
    pub async fn table_pointers(&self) -> Result<Vec<CatalogRow>, CatalogError> {
        let kind = if self.has_iceberg_type { "iceberg_type" } else { "NULL" };
        let query = format!(
            "SELECT catalog_name, table_namespace, table_name, metadata_location, {kind} FROM iceberg_tables"
        );
        let rows = sqlx::query(&query).fetch_all(&self.pool).await.map_err(|e| self.sql_error(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let text = |i: usize| row.try_get::<Option<String>, _>(i).ok().flatten();
            let (catalog, namespace, name) =
                (text(0).unwrap_or_default(), text(1).unwrap_or_default(), text(2).unwrap_or_default());
            let levels: Vec<String> = namespace.split('.').map(str::to_string).collect();
            let ident = NamespaceIdent::from_vec(levels)
                .map(|ns| TableIdent::new(ns, name.clone()))
                .unwrap_or_else(|_| TableIdent::new(NamespaceIdent::new(namespace.clone()), name.clone()));
            let view = text(4).is_some_and(|k| k.eq_ignore_ascii_case("VIEW"));
            out.push(CatalogRow { catalog, namespace, name, ident, pointer: text(3), view });
        }
        out.sort_by_key(CatalogRow::key);
        Ok(out)
    }

    /// Reads a metadata file through the catalog's FileIO and builds the table (`ident` names it).
    pub async fn load_pointer(&self, ident: &TableIdent, location: &str) -> Result<Table, CatalogError> {
        let table_error = |source| CatalogError::Table { table: ident.to_string(), source };
        let metadata = TableMetadata::read_from(&self.file_io, location).await.map_err(table_error)?;
        let runtime = Runtime::try_current().map_err(table_error)?;
        Table::builder()
            .file_io(self.file_io.clone())
            .identifier(ident.clone())
            .metadata_location(location.to_string())
            .metadata(metadata)
            .runtime(runtime)
            .build()
            .map_err(table_error)
    }

    /// The table's current metadata location as the catalog row says now.
    pub async fn metadata_location(&self, ident: &TableIdent) -> Result<Option<String>, CatalogError> {
        let query = format!(
            "SELECT metadata_location FROM iceberg_tables \
             WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3{}",
            self.table_type_filter()
        );
        let row = sqlx::query(&query)
            .bind(&self.name)
            .bind(ident.namespace().join("."))
            .bind(ident.name())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.sql_error(e))?;
        Ok(row.and_then(|r| r.try_get::<String, _>(0).ok()))
    }
}

/// The file path of a `sqlite:` URI, if it names a file.
fn sqlite_file(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("sqlite://").or_else(|| uri.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
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
