-- Audit trail: one row per job pass per table. Portable SQL: runs on SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS compactor_runs (
    run_id              VARCHAR(64)   NOT NULL PRIMARY KEY,
    run_type            VARCHAR(16)   NOT NULL,
    tenant_id           VARCHAR(255)  NOT NULL,
    dataset_id          VARCHAR(255)  NOT NULL,
    table_name          VARCHAR(255)  NOT NULL,
    started_at          VARCHAR(40)   NOT NULL,
    completed_at        VARCHAR(40),
    status              VARCHAR(16)   NOT NULL,
    partitions_affected BIGINT        NOT NULL DEFAULT 0,
    files_processed     BIGINT        NOT NULL DEFAULT 0,
    bytes_reclaimed     BIGINT        NOT NULL DEFAULT 0,
    snapshot_id         BIGINT,
    error_message       VARCHAR(4000),
    created_at          VARCHAR(40)   NOT NULL
);
CREATE INDEX IF NOT EXISTS compactor_runs_by_time ON compactor_runs (started_at);
CREATE INDEX IF NOT EXISTS compactor_runs_by_table ON compactor_runs (tenant_id, dataset_id, table_name);
