-- The replicas' rows, re-made (they are heartbeats, rebuilt within lease_ttl / 3 by every live
-- replica): the first version (20261203000001) keyed rows by loop only and had no busy_since.
DROP TABLE IF EXISTS compactor_replicas;
-- Replicas whose loop divides its survey with the others (runtime/share.rs): one row per (group,
-- holder), renewed every lease_ttl / 3 while the daemon runs, removed when it stops. `job` names the
-- group: the loop and the catalog it surveys (`compaction@<catalog_name>`), so that daemons of two
-- catalogs in one database never divide each other's tables. `busy_since`: when the replica's running
-- pass started (NULL between passes); a replica busy for longer than half the lag target leaves its
-- share to the others. Times are milliseconds since the epoch on the catalog database's clock.
-- Portable SQL: SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS compactor_replicas (
    job        VARCHAR(300) NOT NULL,
    holder_id  VARCHAR(255) NOT NULL,
    seen_at    BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    busy_since BIGINT,
    PRIMARY KEY (job, holder_id)
);
