-- Replicas whose loop divides its survey with the others (runtime/share.rs): one row per (job,
-- holder), renewed every lease_ttl / 3 while the daemon runs, removed when it stops. Times are
-- milliseconds since the epoch on the catalog database's clock. Portable SQL: SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS compactor_replicas (
    job        VARCHAR(64)  NOT NULL,
    holder_id  VARCHAR(255) NOT NULL,
    seen_at    BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    PRIMARY KEY (job, holder_id)
);
