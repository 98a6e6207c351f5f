#!/usr/bin/env python3
"""PyIceberg as an independent Iceberg implementation for the integration tests.

Subcommands print one JSON object on stdout:
  (every subcommand: --db PATH or --uri SQLALCHEMY_URL, --warehouse DIR|URI, optional --s3-endpoint URL)
  create   --db PATH --warehouse DIR --table NS1.NS2.T [--rows N --appends K]
           Create a SqlCatalog (PyIceberg's schema: no iceberg_type column) with an hour-partitioned
           table and K appends of N rows each.
  scan     --db PATH --warehouse DIR --table NS1.NS2.T
           Row count and an order-independent content checksum of the table's rows.
  append   --db PATH --warehouse DIR --table NS1.NS2.T --rows N [--seed S]
"""
import argparse
import datetime as dt
import hashlib
import json
import random

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import HourTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestampType


def catalog(args):
    props = {
        "uri": args.uri or f"sqlite:///{args.db}",
        "warehouse": args.warehouse if "://" in args.warehouse else f"file://{args.warehouse}",
    }
    if args.s3_endpoint:
        props.update(
            {
                "s3.endpoint": args.s3_endpoint,
                "s3.access-key-id": "testing",
                "s3.secret-access-key": "testing",
                "s3.region": "us-east-1",
            }
        )
    return SqlCatalog("signaldb", **props)


SCHEMA = Schema(
    NestedField(1, "timestamp", TimestampType(), required=True),
    NestedField(2, "trace_id", StringType(), required=True),
    NestedField(3, "service_name", StringType(), required=True),
    NestedField(4, "duration_nanos", LongType(), required=True),
)
SPEC = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=HourTransform(), name="timestamp_hour"))


def rows(n, seed, base):
    rng = random.Random(seed)
    return pa.Table.from_pylist(
        [
            {
                "timestamp": base + dt.timedelta(seconds=rng.randrange(0, 3 * 3600)),
                "trace_id": "%032x" % rng.getrandbits(128),
                "service_name": rng.choice(["api", "db", "web"]),
                "duration_nanos": rng.randrange(1, 10**9),
            }
            for _ in range(n)
        ],
        schema=SCHEMA.as_arrow(),
    )


BASE = dt.datetime(2026, 1, 15, 8, 0, 0)


def cmd_create(args):
    cat = catalog(args)
    ns = tuple(args.table.split(".")[:-1])
    cat.create_namespace_if_not_exists(ns)
    table = cat.create_table(
        args.table,
        schema=SCHEMA,
        partition_spec=SPEC,
        properties={"format-version": str(args.format_version), "signaldb.wal.committed.writer-1": "42"},
    )
    for k in range(args.appends):
        table.append(rows(args.rows, k, BASE))
    if args.legacy_schema:
        drop_iceberg_type(args.db)
    return {"rows": args.rows * args.appends}


def drop_iceberg_type(db):
    """Rewrite iceberg_tables in the Java JDBC V0 / older PyIceberg shape: no iceberg_type column."""
    import sqlite3

    con = sqlite3.connect(db)
    con.executescript(
        """
        CREATE TABLE iceberg_tables_v0 (
            catalog_name VARCHAR(255) NOT NULL,
            table_namespace VARCHAR(255) NOT NULL,
            table_name VARCHAR(255) NOT NULL,
            metadata_location VARCHAR(1000),
            previous_metadata_location VARCHAR(1000),
            PRIMARY KEY (catalog_name, table_namespace, table_name));
        INSERT INTO iceberg_tables_v0 SELECT catalog_name, table_namespace, table_name,
            metadata_location, previous_metadata_location FROM iceberg_tables;
        DROP TABLE iceberg_tables;
        ALTER TABLE iceberg_tables_v0 RENAME TO iceberg_tables;
        """
    )
    con.commit()
    con.close()


def cmd_tag(args):
    """Tag the current snapshot (a ref the compactor does not own)."""
    table = catalog(args).load_table(args.table)
    snapshot_id = table.current_snapshot().snapshot_id
    table.manage_snapshots().create_tag(snapshot_id, "audit").commit()
    return {"tagged": snapshot_id}


def cmd_append(args):
    table = catalog(args).load_table(args.table)
    table.append(rows(args.rows, args.seed, BASE))
    return {"rows": args.rows}


def cmd_scan(args):
    table = catalog(args).load_table(args.table)
    data = table.scan().to_arrow()
    rows_list = data.to_pylist()
    if args.since:
        since = dt.datetime.fromisoformat(args.since)
        rows_list = [r for r in rows_list if r["timestamp"] >= since]
    digest = 0
    for row in rows_list:
        h = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).digest()
        digest ^= int.from_bytes(h[:8], "big")
    snapshot = table.current_snapshot()
    has = lambda column: column in data.column_names
    return {
        "rows": len(rows_list),
        "min_timestamp": min(r["timestamp"] for r in rows_list).isoformat() if rows_list and has("timestamp") else None,
        "distinct_trace_ids": len({r["trace_id"] for r in rows_list}) if has("trace_id") else None,
        "checksum": "%016x" % digest,
        "operation": snapshot.summary.operation.value if snapshot else None,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["create", "scan", "append", "tag"])
    p.add_argument("--db", help="SQLite catalog file (or --uri)")
    p.add_argument("--uri", help="SQLAlchemy URL of the catalog database, e.g. postgresql+psycopg2://...")
    p.add_argument("--warehouse", required=True, help="a directory, or a URI such as s3://bucket/prefix")
    p.add_argument("--s3-endpoint", help="S3-compatible endpoint (test credentials)")
    p.add_argument("--table", required=True)
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--appends", type=int, default=3)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--legacy-schema", action="store_true", help="drop the iceberg_type column after creating")
    p.add_argument("--format-version", type=int, default=2)
    p.add_argument("--since", help="scan: only rows with timestamp >= this (ISO, naive UTC)")
    args = p.parse_args()
    if not (args.db or args.uri):
        p.error("one of --db or --uri is required")
    out = {"create": cmd_create, "scan": cmd_scan, "append": cmd_append, "tag": cmd_tag}[args.command](args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
