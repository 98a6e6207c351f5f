-- Leases that divide tables between replicas sharing one catalog: one row per leased table
-- (partition_id '*' = the whole table). Times are milliseconds since the epoch on the catalog
-- database's clock, so replicas' clocks never decide who may steal an expired lease.
-- Portable SQL: runs on SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS compactor_leases (
    tenant_id    VARCHAR(255) NOT NULL,
    dataset_id   VARCHAR(255) NOT NULL,
    table_name   VARCHAR(255) NOT NULL,
    partition_id VARCHAR(255) NOT NULL,
    holder_id    VARCHAR(255) NOT NULL,
    acquired_at  BIGINT       NOT NULL,
    expires_at   BIGINT       NOT NULL,
    renewed_at   BIGINT       NOT NULL,
    PRIMARY KEY (tenant_id, dataset_id, table_name, partition_id)
);
-- Which replica wrote an audit row: a restarting replica marks `running` rows failed only when their
-- holder no longer holds a live lease.
ALTER TABLE compactor_runs ADD COLUMN holder_id VARCHAR(255);
