#!/usr/bin/env python3
"""DuckDB's Iceberg extension as a second independent reader for the integration tests.

  scan --db PATH|--uri URL --warehouse DIR|URI --table NS1.NS2.T [--filter SQL] [--snapshot-id ID]
       Row count and the same order-independent content checksum as pyiceberg_tool.py's `scan`, read by
       DuckDB's `iceberg_scan` from the table's current metadata file (found through the catalog).

The extensions come from PyPI (`duckdb-extension-iceberg`, `duckdb-extension-avro`) and are loaded
offline: nothing is downloaded at test time.
"""
import argparse
import glob
import json
import os
import sys

import duckdb

sys.dont_write_bytecode = True  # importing the sibling helper must not write into the source tree

from pyiceberg_tool import catalog, checksum


def extension(package, name):
    module = __import__(package)
    found = glob.glob(os.path.join(os.path.dirname(module.__file__), "**", name + ".duckdb_extension"), recursive=True)
    if not found:
        raise SystemExit(f"{name}.duckdb_extension not found in {package} (pip install {package.replace('_', '-')})")
    return found[0]


def connect():
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    for package, name in [("duckdb_extension_avro", "avro"), ("duckdb_extension_iceberg", "iceberg")]:
        con.install_extension(extension(package, name))
        con.load_extension(name)
    return con


def cmd_scan(args):
    location = catalog(args).load_table(args.table).metadata_location
    path = location[len("file://"):] if location.startswith("file://") else location
    con = connect()
    params = [path]
    query = "SELECT * FROM iceberg_scan(?)"
    if args.snapshot_id is not None:
        query = "SELECT * FROM iceberg_scan(?, snapshot_from_id = ?)"
        params.append(args.snapshot_id)
    if args.filter:
        query += " WHERE " + args.filter
    data = con.execute(query, params).to_arrow_table()
    rows_list = data.to_pylist()
    return {"rows": len(rows_list), "checksum": checksum(rows_list), "metadata_location": location}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["scan"])
    p.add_argument("--db")
    p.add_argument("--uri")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--s3-endpoint")
    p.add_argument("--table", required=True)
    p.add_argument("--filter", help="an SQL condition, e.g. \"s IS NULL\"")
    p.add_argument("--snapshot-id", type=int, help="read the table at this snapshot (time travel)")
    args = p.parse_args()
    if not (args.db or args.uri):
        p.error("one of --db or --uri is required")
    print(json.dumps({"scan": cmd_scan}[args.command](args)))


if __name__ == "__main__":
    main()
