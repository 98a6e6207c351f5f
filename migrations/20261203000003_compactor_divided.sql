-- Tables whose due compaction work is divided between the replicas by partition (runtime/leases.rs,
-- compaction/mod.rs): a replica that finds a table owing more than its pass budget marks it here; every
-- replica of the same group (`compaction@<catalog_name>`) then compacts the due partitions that fall to
-- it, each under its own partition lease in compactor_leases. A mark not renewed by `expires_at` is
-- ignored. Times are milliseconds since the epoch on the catalog database's clock.
-- Portable SQL: SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS compactor_divided (
    job        VARCHAR(300) NOT NULL,
    tenant_id  VARCHAR(255) NOT NULL,
    dataset_id VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    marked_by  VARCHAR(255) NOT NULL,
    expires_at BIGINT       NOT NULL,
    PRIMARY KEY (job, tenant_id, dataset_id, table_name)
);
