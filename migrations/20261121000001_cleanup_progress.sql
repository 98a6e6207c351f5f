-- Orphan-cleanup checkpoints: one row per (run, table), updated after every deleted batch, so a killed
-- run resumes after its last checkpointed path. Portable SQL: runs on SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS cleanup_progress (
    run_id        VARCHAR(64)  NOT NULL,
    tenant_id     VARCHAR(255) NOT NULL,
    dataset_id    VARCHAR(255) NOT NULL,
    table_name    VARCHAR(255) NOT NULL,
    status        VARCHAR(16)  NOT NULL,
    last_path     VARCHAR(2048),
    files_deleted BIGINT       NOT NULL DEFAULT 0,
    bytes_freed   BIGINT       NOT NULL DEFAULT 0,
    started_at    VARCHAR(40)  NOT NULL,
    updated_at    VARCHAR(40)  NOT NULL,
    PRIMARY KEY (run_id, tenant_id, dataset_id, table_name)
);
