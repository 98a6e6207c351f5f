//! Discovery on a generated warehouse and on catalogs written by PyIceberg, including the legacy
//! `iceberg_tables` shape without `iceberg_type` and namespaces of other depths.

use signaldb_compactor::catalog::{DEFAULT_DATASET, Signal};

use crate::support::{connect, generate_small, pyiceberg};

#[tokio::test]
async fn generated_warehouse_maps_tenant_dataset_signal() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let catalog = connect(dir.path()).await;
    let found: Vec<(String, String, String, Signal)> = catalog
        .discover()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.tenant, t.dataset, t.table, t.signal))
        .collect();
    let want: Vec<(String, String, String, Signal)> = ["acme", "globex"]
        .iter()
        .flat_map(|tenant| {
            [("logs", Signal::Logs), ("metrics_gauge", Signal::Metrics), ("traces", Signal::Traces)]
                .into_iter()
                .map(move |(t, s)| (tenant.to_string(), "production".to_string(), t.to_string(), s))
        })
        .collect();
    assert_eq!(found, want);
}

#[tokio::test]
async fn pyiceberg_catalog_without_iceberg_type_is_discovered_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    pyiceberg(
        dir.path(),
        &["create", "--table", "acme.prod.traces", "--rows", "40", "--appends", "2", "--legacy-schema"],
    );

    let catalog = connect(dir.path()).await;
    let tables = catalog.discover().await.unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].qualified(), "acme.prod.traces");
    let table = catalog.load(&tables[0]).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 2);

    // The other engine still reads the table after we touched its catalog.
    assert_eq!(pyiceberg(dir.path(), &["scan", "--table", "acme.prod.traces"])["rows"], 80);

    // Namespaces of other depths map by the documented rule and do not break discovery.
    pyiceberg(dir.path(), &["create", "--table", "solo.logs", "--rows", "5", "--appends", "1"]);
    pyiceberg(
        dir.path(),
        &["create", "--table", "eu.acme.prod.metrics_sum", "--rows", "5", "--appends", "1"],
    );
    let mapped: Vec<(String, String, String)> =
        catalog.discover().await.unwrap().into_iter().map(|t| (t.tenant, t.dataset, t.table)).collect();
    assert_eq!(
        mapped,
        vec![
            ("acme".into(), "prod".into(), "traces".into()),
            ("eu".into(), "acme.prod".into(), "metrics_sum".into()),
            ("solo".into(), DEFAULT_DATASET.into(), "logs".into()),
        ]
    );
}
