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
  kind     --kind K --table NS1.NS2.T [--rows N --appends K]: a table of one kind that once broke
           compaction (add-files, truncate-null, identity, promote, nested); see KINDS.
  scan     [--filter EXPR]: the same through a PyIceberg row filter.
  scan     [--snapshot-id ID]: the same at an older snapshot (time travel).
  manifests --table T [--snapshot-id ID]: the snapshot's manifests and live entries as PyIceberg's
           `inspect` reads them (paths, content, status, snapshot ids, both sequence numbers), and every
           snapshot id of the table.
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
        properties={
            "format-version": str(args.format_version),
            "signaldb.wal.committed.writer-1": "42",
            **({"write.parquet.row-group-limit": str(args.row_group_limit)} if args.row_group_limit else {}),
        },
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


def canonical(value):
    """A JSON-ready form of one Arrow value that both engines produce alike (maps as sorted pairs)."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [canonical(v) for v in value]
        if items and all(isinstance(i, list) and len(i) == 2 for i in items) and isinstance(value, list) and all(
            isinstance(v, tuple) for v in value
        ):
            return sorted(items, key=lambda kv: json.dumps(kv, sort_keys=True, default=str))
        return items
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() + "+00:00"
    return value


def checksum(rows_list):
    """Order-independent content checksum of rows (dicts of column -> value): the sum of the rows'
    hashes mod 2^64 (a sum, not a XOR, so that duplicated rows do not cancel out)."""
    digest = 0
    for row in rows_list:
        h = hashlib.sha256(json.dumps(canonical(row), sort_keys=True, default=str).encode()).digest()
        digest = (digest + int.from_bytes(h[:8], "big")) % 2**64
    return "%016x" % digest


def cmd_scan(args):
    table = catalog(args).load_table(args.table)
    scan_args = {"row_filter": args.filter} if args.filter else {}
    if args.snapshot_id is not None:
        scan_args["snapshot_id"] = args.snapshot_id
    data = table.scan(**scan_args).to_arrow()
    rows_list = data.to_pylist()
    if args.since:
        since = dt.datetime.fromisoformat(args.since)
        rows_list = [r for r in rows_list if r["timestamp"] >= since]
    snapshot = table.current_snapshot()
    has = lambda column: column in data.column_names
    stamps = [r["timestamp"] for r in rows_list if r["timestamp"] is not None] if has("timestamp") else []
    return {
        "rows": len(rows_list),
        "min_timestamp": min(stamps).isoformat() if stamps else None,
        "distinct_trace_ids": len({r["trace_id"] for r in rows_list}) if has("trace_id") else None,
        "checksum": checksum(rows_list),
        "files": len(list(table.scan().plan_files())) if snapshot else 0,
        "metadata_location": table.metadata_location,
        "operation": snapshot.summary.operation.value if snapshot else None,
    }


# Table kinds that once broke compaction (issue 12): `kind --kind K --table T` creates one, written
# by PyIceberg in several appends (several files per partition). Each returns its row count.

def _create(args, schema, spec=None, props=None):
    cat = catalog(args)
    cat.create_namespace_if_not_exists(tuple(args.table.split(".")[:-1]))
    properties = {"format-version": str(args.format_version)}
    properties.update(props or {})
    if spec is None:
        return cat.create_table(args.table, schema=schema, properties=properties)
    return cat.create_table(args.table, schema=schema, partition_spec=spec, properties=properties)


def kind_add_files(args):
    """Plain Parquet files (no field ids) added with add_files, so the table carries a name mapping;
    the files' column order differs from the table's, and a column is dropped between two imports."""
    import pyarrow.parquet as pq
    from pyiceberg.types import LongType

    schema = Schema(
        NestedField(1, "timestamp", TimestampType(), required=False),
        NestedField(2, "service_name", StringType(), required=False),
        NestedField(3, "code", LongType(), required=False),
        NestedField(4, "note", StringType(), required=False),
    )
    table = _create(args, schema)
    rng = random.Random(args.seed)
    files_dir = args.files_dir
    import os

    os.makedirs(files_dir, exist_ok=True)
    total = 0

    def write(k, columns):
        nonlocal total
        data = {
            "timestamp": [BASE + dt.timedelta(seconds=rng.randrange(0, 3600)) for _ in range(args.rows)],
            "service_name": [rng.choice(["api", "db", "web"]) for _ in range(args.rows)],
            "code": [rng.randrange(100, 600) for _ in range(args.rows)],
            "note": ["n%d" % rng.randrange(0, 1000) for _ in range(args.rows)],
        }
        types = {"timestamp": pa.timestamp("us"), "service_name": pa.string(), "code": pa.int64(), "note": pa.string()}
        arrays = [pa.array(data[c], type=types[c]) for c in columns]
        path = os.path.join(files_dir, "import-%d.parquet" % k)
        pq.write_table(pa.Table.from_arrays(arrays, names=columns), path)
        total += args.rows
        return path

    # Reordered columns: read by position they would land in the wrong columns.
    table.add_files([write(k, ["note", "code", "service_name", "timestamp"]) for k in range(3)])
    table = catalog(args).load_table(args.table)
    with table.update_schema() as update:
        update.delete_column("note")
    table = catalog(args).load_table(args.table)
    table.add_files([write(k, ["code", "timestamp", "service_name"]) for k in range(3, 5)])
    if args.drop_mapping:
        table = catalog(args).load_table(args.table)
        with table.transaction() as tx:
            tx.remove_properties("schema.name-mapping.default")
    return total


def kind_truncate_null(args):
    """truncate(4, s) with the string "null" and NULL: two partitions that print alike."""
    from pyiceberg.transforms import TruncateTransform
    from pyiceberg.types import LongType

    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "s", StringType(), required=False))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=TruncateTransform(4), name="s_trunc"))
    table = _create(args, schema, spec)
    values = ["null", None, "nullable", "other"]
    n = 0
    for k in range(args.appends):
        batch = [{"id": n + i, "s": values[i % len(values)]} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n


def kind_identity(args):
    """identity(region) with awkward values: NULL, '', 'null', '/', unicode."""
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "region", StringType(), required=False),
        NestedField(3, "timestamp", TimestampType(), required=False),
    )
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="region"))
    table = _create(args, schema, spec)
    values = [None, "", "null", "/", "été/東京", "eu"]
    n = 0
    for k in range(args.appends):
        batch = [
            {"id": n + i, "region": values[i % len(values)], "timestamp": BASE + dt.timedelta(seconds=n + i)}
            for i in range(args.rows)
        ]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n


def kind_promote(args):
    """identity(n) on an int column later promoted to long: old partition tuples hold ints."""
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import IntegerType, LongType

    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "n", IntegerType(), required=False))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="n"))
    table = _create(args, schema, spec)
    n = 0
    for k in range(args.appends):
        batch = [{"id": n + i, "n": i % 2} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))
    with table.update_schema() as update:
        update.update_column("n", LongType())
    table = catalog(args).load_table(args.table)
    for k in range(args.appends):
        batch = [{"id": n + i, "n": i % 2} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))
    return n


def kind_promote_timed(args):
    """day(timestamp) and identity(n), n: int -> long between appends; half the rows 2026-01-15 (long
    expired for any retention), half an hour ago."""
    from pyiceberg.transforms import DayTransform, IdentityTransform
    from pyiceberg.types import IntegerType, LongType

    schema = Schema(
        NestedField(1, "timestamp", TimestampType(), required=True),
        NestedField(2, "n", IntegerType(), required=False),
    )
    spec = PartitionSpec(
        PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="timestamp_day"),
        PartitionField(source_id=2, field_id=1001, transform=IdentityTransform(), name="n"),
    )
    table = _create(args, schema, spec)
    recent = dt.datetime.fromisoformat(args.recent) if args.recent else (
        dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=30))
    n = 0

    def append():
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        batch = [{"timestamp": BASE if i % 2 else recent, "n": i % 3} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))

    for _ in range(args.appends):
        append()
    with table.update_schema() as update:
        update.update_column("n", LongType())
    for _ in range(args.appends):
        append()
    return n


def kind_nested(args):
    """Fields added inside a struct, a list<struct> and a map value struct between appends."""
    from pyiceberg.types import IntegerType, ListType, LongType, MapType, StructType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "s", StructType(NestedField(3, "a", IntegerType(), required=False)), required=False),
        NestedField(
            4,
            "l",
            ListType(5, StructType(NestedField(6, "x", StringType(), required=False)), element_required=False),
            required=False,
        ),
        NestedField(
            7,
            "m",
            MapType(8, StringType(), 9, StructType(NestedField(10, "v", LongType(), required=False)), value_required=False),
            required=False,
        ),
    )
    table = _create(args, schema)
    n = 0

    def append(extra):
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        rows_list = []
        for i in range(args.rows):
            j = n + i
            s = {"a": j}
            el = {"x": "x%d" % j}
            mv = {"v": j * 10}
            if extra:
                s["b"] = "b%d" % j
                el["y"] = j
                mv["w"] = "w%d" % j
            rows_list.append({"id": j, "s": s, "l": [el, el], "m": [("k%d" % (j % 3), mv)]})
        n += args.rows
        table.append(pa.Table.from_pylist(rows_list, schema=table.schema().as_arrow()))

    for _ in range(args.appends):
        append(False)
    with table.update_schema() as update:
        update.add_column(("s", "b"), StringType())
        update.add_column(("l", "element", "y"), LongType())
        update.add_column(("m", "value", "w"), StringType())
    for _ in range(args.appends):
        append(True)
    return n


def kind_evolved(args):
    """Every primitive type; schema evolution (add, rename, drop, promote; nested add, rename, drop);
    three partition specs (day; hour + bucket; month + truncate + year) with files written under each.
    Rows repeat their partition values across appends, so every partition has several files."""
    import decimal
    import uuid

    from pyiceberg.transforms import BucketTransform, DayTransform, HourTransform, MonthTransform, TruncateTransform, YearTransform
    from pyiceberg.types import (
        BinaryType,
        BooleanType,
        DateType,
        DecimalType,
        DoubleType,
        FixedType,
        FloatType,
        IntegerType,
        LongType,
        StructType,
        TimestamptzType,
        TimeType,
        UUIDType,
    )

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "ts", TimestampType(), required=False),
        NestedField(3, "tstz", TimestamptzType(), required=False),
        NestedField(4, "s", StringType(), required=False),
        NestedField(5, "n", IntegerType(), required=False),
        NestedField(6, "f", FloatType(), required=False),
        NestedField(7, "dbl", DoubleType(), required=False),
        NestedField(8, "b", BooleanType(), required=False),
        NestedField(9, "dec", DecimalType(10, 2), required=False),
        NestedField(10, "d", DateType(), required=False),
        NestedField(11, "t", TimeType(), required=False),
        NestedField(12, "bin", BinaryType(), required=False),
        NestedField(13, "fx", FixedType(4), required=False),
        NestedField(14, "u", UUIDType(), required=False),
        NestedField(15, "dropme", StringType(), required=False),
        NestedField(20, "created", DateType(), required=False),
        NestedField(
            16,
            "st",
            StructType(
                NestedField(17, "a", IntegerType(), required=False),
                NestedField(18, "c", StringType(), required=False),
                NestedField(19, "gone", StringType(), required=False),
            ),
            required=False,
        ),
    )
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="ts_day"))
    table = _create(args, schema, spec)
    rng = random.Random(args.seed)
    # Each spec partitions by other columns (format v1 keeps removed fields as void transforms, and
    # two time transforms of one column are redundant).
    n = 0

    def append():
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        arrow_schema = table.schema().as_arrow()
        names = set(arrow_schema.names)
        rows_list = []
        for i in range(args.rows):
            j = n + i
            ts = BASE + dt.timedelta(hours=(i % 3) * 30, seconds=i)  # three days, a few hours
            row = {
                "id": j,
                "ts": ts,
                "tstz": (ts + dt.timedelta(days=40 * (i % 2))).replace(tzinfo=dt.timezone.utc),
                "s": rng.choice([None, "", "null", "alpha", "beta", "été"]),
                "s2": rng.choice([None, "", "null", "alpha", "beta", "été"]),
                "n": rng.choice([None, -5, 7, 2**20]),
                "f": rng.choice([None, 1.5, -0.25, float("nan")]),
                "dbl": rng.choice([None, 2.5, float("nan"), -1e300]),
                "b": rng.choice([None, True, False]),
                "dec": rng.choice([None, decimal.Decimal("12.34"), decimal.Decimal("-0.01")]),
                "d": rng.choice([None, dt.date(2026, 1, 15), dt.date(1969, 12, 31)]),
                "t": rng.choice([None, dt.time(8, 30, 1, 5), dt.time(23, 59)]),
                "bin": rng.choice([None, b"", b"\x00\xff"]),
                "fx": rng.choice([None, b"abcd", b"\x00\x01\x02\x03"]),
                "u": rng.choice([None, uuid.UUID(int=j).bytes]),
                "dropme": "x",
                "created": dt.date(2020 + i % 2, 6, 1),
                "added": rng.choice([None, "new"]),
            }
            st = {"a": j, "c": "c%d" % j, "gone": "g", "c2": "c%d" % j, "e": "e%d" % j}
            row["st"] = {k: v for k, v in st.items() if k in [f.name for f in arrow_schema.field("st").type]}
            rows_list.append({k: v for k, v in row.items() if k in names})
        n += args.rows
        table.append(pa.Table.from_pylist(rows_list, schema=arrow_schema))

    for _ in range(2):
        append()
    # Schema evolution: add, rename, drop, promote; nested add, rename, drop.
    with table.update_schema() as update:
        update.add_column("added", StringType())
        update.rename_column("s", "s2")
        update.delete_column("dropme")
        update.update_column("n", LongType())
        update.add_column(("st", "e"), StringType())
        update.rename_column("st.c", "c2")
        update.delete_column("st.gone")
    table = catalog(args).load_table(args.table)
    # Spec 1: hour(tstz) and bucket(4, id) instead of day(ts).
    with table.update_spec() as update:
        update.remove_field("ts_day")
        update.add_field("tstz", HourTransform(), "tstz_hour")
        update.add_field("id", BucketTransform(4), "id_bucket")
    for _ in range(2):
        append()
    if args.format_version == 1:
        # PyIceberg 0.12 cannot write a v1 manifest under a spec with two void fields (it encodes their
        # null values as ints): format v1 stops at two specs.
        return n
    # Spec 2: month(d), truncate(2, s2) and year(created).
    table = catalog(args).load_table(args.table)
    with table.update_spec() as update:
        update.remove_field("tstz_hour")
        update.remove_field("id_bucket")
        update.add_field("d", MonthTransform(), "d_month")
        update.add_field("s2", TruncateTransform(2), "s2_trunc")
        update.add_field("created", YearTransform(), "created_year")
    for _ in range(2):
        append()
    return n


KINDS = {
    "evolved": kind_evolved,
    "add-files": kind_add_files,
    "truncate-null": kind_truncate_null,
    "identity": kind_identity,
    "promote": kind_promote,
    "promote-timed": kind_promote_timed,
    "nested": kind_nested,
}


# ---- attack-12: kinds probing holes in compaction -------------------------------------------------

def kind_identity_zero(args):
    """identity(f: double): one append of -0.0 rows, one of +0.0 rows, one more of -0.0 rows.
    -0.0 and +0.0 are different partition values (Java compares doubles with Double.compare)."""
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DoubleType, LongType

    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "f", DoubleType(), required=False))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="f"))
    table = _create(args, schema, spec)
    n = 0
    for value in [-0.0, 0.0, -0.0, 0.0]:
        batch = [{"id": n + i, "f": value} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n


def kind_identity_types(args):
    """identity partitions on one column of every primitive type, each partition written by several
    appends (the reader fills identity columns from the partition tuple)."""
    import decimal
    import uuid

    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import (
        BinaryType, BooleanType, DateType, DecimalType, DoubleType, FixedType, FloatType, IntegerType,
        LongType, TimestamptzType, TimeType, UUIDType,
    )

    which = args.type_name
    types = {
        "bool": (BooleanType(), [True, False]),
        "int": (IntegerType(), [-7, 2**30]),
        "long": (LongType(), [-7, 2**40]),
        "float": (FloatType(), [1.5, -2.25]),
        "double": (DoubleType(), [1.5, -1e300]),
        "dec": (DecimalType(9, 2), [decimal.Decimal("12.34"), decimal.Decimal("-0.01")]),
        "bigdec": (DecimalType(25, 4), [decimal.Decimal("123456789012345678901.2345"), decimal.Decimal("-1.0000")]),
        "date": (DateType(), [dt.date(2026, 1, 15), dt.date(1969, 12, 31)]),
        "time": (TimeType(), [dt.time(8, 30, 1, 5), dt.time(23, 59)]),
        "ts": (TimestampType(), [dt.datetime(2026, 1, 15, 8, 0, 0, 1), dt.datetime(1969, 12, 31, 23, 59, 59)]),
        "tstz": (TimestamptzType(), [dt.datetime(2026, 1, 15, 8, 0, 0, 1, tzinfo=dt.timezone.utc), dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)]),
        "string": (StringType(), ["été/東京", "a"]),
        "uuid": (UUIDType(), [uuid.UUID(int=1).bytes, uuid.UUID(int=2**127 + 5).bytes]),
        "fixed": (FixedType(3), [b"abc", b"\x00\x01\xff"]),
        "binary": (BinaryType(), [b"", b"\x00\xff"]),
        "traversal": (StringType(), ["x/../../../../escaped", "ok"]),
    }
    t, values = types[which]
    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "v", t, required=False))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="v"))
    table = _create(args, schema, spec)
    n = 0
    for k in range(args.appends):
        batch = [{"id": n + i, "v": values[i % len(values)]} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n


def kind_promote_more(args):
    """float -> double and decimal(9,2) -> decimal(20,2) promotions at top level, unpartitioned."""
    import decimal

    from pyiceberg.types import DecimalType, DoubleType, FloatType, LongType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "f", FloatType(), required=False),
        NestedField(3, "dec", DecimalType(9, 2), required=False),
    )
    table = _create(args, schema)
    n = 0

    def append():
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        batch = [{"id": n + i, "f": 1.5 + i, "dec": decimal.Decimal("12.34") + i} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))

    for _ in range(args.appends):
        append()
    with table.update_schema() as update:
        update.update_column("f", DoubleType())
        update.update_column("dec", DecimalType(20, 2))
    for _ in range(args.appends):
        append()
    return n


def kind_nested_promote(args):
    """int -> long promoted inside a struct, a list element and a map value."""
    from pyiceberg.types import IntegerType, ListType, LongType, MapType, StructType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "s", StructType(NestedField(3, "a", IntegerType(), required=False)), required=False),
        NestedField(4, "l", ListType(5, IntegerType(), element_required=False), required=False),
        NestedField(6, "m", MapType(7, StringType(), 8, IntegerType(), value_required=False), required=False),
    )
    table = _create(args, schema)
    n = 0

    def append():
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        rows_list = [{"id": n + i, "s": {"a": n + i}, "l": [n + i, 1], "m": [("k", n + i)]} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(rows_list, schema=table.schema().as_arrow()))

    for _ in range(args.appends):
        append()
    with table.update_schema() as update:
        update.update_column(("s", "a"), LongType())
        update.update_column(("l", "element"), LongType())
        update.update_column(("m", "value"), LongType())
    for _ in range(args.appends):
        append()
    return n


def kind_add_files_nested(args):
    """Plain Parquet files (no field ids) with a struct, a list<struct> and a map column, struct fields
    in another order than the table's, added with add_files (name mapping)."""
    import os

    import pyarrow.parquet as pq
    from pyiceberg.types import IntegerType, ListType, LongType, MapType, StructType

    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "s", StructType(NestedField(3, "a", LongType(), required=False), NestedField(4, "b", StringType(), required=False)), required=False),
        NestedField(5, "l", ListType(6, StructType(NestedField(7, "x", LongType(), required=False), NestedField(8, "y", StringType(), required=False)), element_required=False), required=False),
        NestedField(9, "m", MapType(10, StringType(), 11, LongType(), value_required=False), required=False),
    )
    table = _create(args, schema)
    os.makedirs(args.files_dir, exist_ok=True)
    paths = []
    n = 0
    for k in range(args.appends):
        # struct fields reversed (b, a) and list element fields reversed (y, x)
        s_type = pa.struct([("b", pa.string()), ("a", pa.int64())])
        l_type = pa.list_(pa.struct([("y", pa.string()), ("x", pa.int64())]))
        m_type = pa.map_(pa.string(), pa.int64())
        ids = list(range(n, n + args.rows))
        t = pa.table({
            "m": pa.array([[("k%d" % (j % 3), j * 10)] for j in ids], type=m_type),
            "l": pa.array([[{"y": "y%d" % j, "x": j}] for j in ids], type=l_type),
            "s": pa.array([{"b": "b%d" % j, "a": j} for j in ids], type=s_type),
            "id": pa.array(ids, type=pa.int64()),
        })
        n += args.rows
        path = os.path.join(args.files_dir, "nested-%d.parquet" % k)
        pq.write_table(t, path)
        paths.append(path)
    table.add_files(paths)
    return n


def kind_add_files_nostats(args):
    """Like add-files but written without Parquet statistics and with a mapping that gives two ids the
    same name (a hand-edited or merged mapping): the compactor has no stats to check against."""
    import os

    import pyarrow.parquet as pq
    from pyiceberg.types import LongType

    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "a", LongType(), required=False),
        NestedField(3, "b", LongType(), required=False),
    )
    table = _create(args, schema)
    os.makedirs(args.files_dir, exist_ok=True)
    paths = []
    n = 0
    for k in range(args.appends):
        ids = list(range(n, n + args.rows))
        t = pa.table({"id": pa.array(ids, pa.int64()), "a": pa.array([1] * args.rows, pa.int64()), "b": pa.array([2] * args.rows, pa.int64())})
        n += args.rows
        path = os.path.join(args.files_dir, "ns-%d.parquet" % k)
        pq.write_table(t, path, write_statistics=False)
        paths.append(path)
    table.add_files(paths)
    if args.mapping_json:
        table = catalog(args).load_table(args.table)
        with table.transaction() as tx:
            tx.set_properties({"schema.name-mapping.default": args.mapping_json})
    return n

KINDS.update({
    "identity-zero": kind_identity_zero,
    "identity-types": kind_identity_types,
    "promote-more": kind_promote_more,
    "nested-promote": kind_nested_promote,
    "add-files-nested": kind_add_files_nested,
    "add-files-nostats": kind_add_files_nostats,
})


def kind_float_edges(args):
    """identity(k) partitions whose float/double columns hold only NaN, only NULL, +-inf, -0.0/+0.0:
    the statistics the compactor writes decide which files filtered scans read."""
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "k", IntegerType(), required=False),
        NestedField(3, "f", FloatType(), required=False),
        NestedField(4, "d", DoubleType(), required=False),
        NestedField(5, "s", StringType(), required=False),
    )
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="k"))
    table = _create(args, schema, spec)
    nan, inf = float("nan"), float("inf")
    per_k = {
        0: [(nan, nan, None)],
        1: [(None, None, None)],
        2: [(inf, -inf, "\U0010ffff\U0010ffffzz" * 3)],
        3: [(-0.0, 0.0, "a" * 40), (0.0, -0.0, "a" * 39 + "b")],
        4: [(nan, 1.0, "x"), (-inf, nan, "y"), (None, inf, None)],
    }
    n = 0
    for a in range(args.appends):
        rows_list = []
        for k, values in per_k.items():
            for i in range(args.rows):
                f, d, s = values[(i + a) % len(values)]
                rows_list.append({"id": n, "k": k, "f": f, "d": d, "s": s})
                n += 1
        table.append(pa.Table.from_pylist(rows_list, schema=schema.as_arrow()))
    return n


def kind_nested_identity(args):
    """identity partition on a field inside a struct (st.region)."""
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType, StructType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "st", StructType(NestedField(3, "region", StringType(), required=False), NestedField(4, "x", LongType(), required=False)), required=False),
    )
    spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=IdentityTransform(), name="region"))
    table = _create(args, schema, spec)
    n = 0
    for a in range(args.appends):
        rows_list = [{"id": n + i, "st": {"region": ["eu", "us"][i % 2], "x": n + i}} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(rows_list, schema=schema.as_arrow()))
    return n

KINDS.update({"float-edges": kind_float_edges, "nested-identity": kind_nested_identity})


def _void_spec_table(args, identity):
    """A v1 table partitioned by identity(k) (the void field keeps the column's name) or truncate(k),
    --appends appends of --rows rows (ids from 0, k alternating 1 and 2); the field is removed (v1
    keeps it as void: a spec that is unpartitioned in Java's sense) and the table upgraded to v2.
    Returns the table, its schema and the number of rows."""
    from pyiceberg.transforms import IdentityTransform, TruncateTransform
    from pyiceberg.types import IntegerType, LongType

    args.format_version = 1
    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "k", IntegerType(), required=False))
    if identity:
        spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="k"))
    else:
        spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=TruncateTransform(1), name="k_trunc"))
    table = _create(args, schema, spec)
    n = 0
    for _ in range(args.appends):
        batch = [{"id": n + i, "k": 1 + i % 2} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    table = catalog(args).load_table(args.table)
    with table.update_spec() as update:
        update.remove_field(spec.fields[0].name)
    table = catalog(args).load_table(args.table)
    with table.transaction() as tx:
        tx.upgrade_table_version(format_version=2)
    table = catalog(args).load_table(args.table)
    assert all(f.transform.__class__.__name__ == "VoidTransform" for f in table.spec().fields), table.spec()
    return table, schema, n


def kind_void_spec_position_delete(args):
    """A v1 table partitioned by identity(k); the field is removed (v1 keeps it as void(k): a spec that
    is unpartitioned in Java's sense), the table upgraded to v2, and a position delete file written
    under that current all-void spec deletes the first rows of a k=1 data file of the old spec.
    Java's DeleteFileIndex treats deletes of an all-void spec as global; PyIceberg applies position
    deletes by path. Either way those rows are deleted."""
    import os

    import pyarrow.parquet as pq
    import pyiceberg.table.update.snapshot as snap
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestContent, ManifestWriterV2
    from pyiceberg.typedef import Record

    table, schema, n = _void_spec_table(args, identity=args.type_name.startswith("identity"))
    mixed = args.type_name.endswith("-mixed")
    if mixed:  # data files of the void spec too, older than the delete
        for a in range(2):
            batch = [{"id": n + i, "k": 1 + i % 2} for i in range(args.rows)]
            n += args.rows
            table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
        table = catalog(args).load_table(args.table)
    target = sorted(t.file.file_path for t in table.scan().plan_files() if t.file.partition[0] == 1)[0]
    deleted = 5
    location = table.location()
    local = location[len("file://"):] if location.startswith("file://") else location
    os.makedirs(os.path.join(local, "data"), exist_ok=True)
    path = os.path.join(local, "data", "pos-delete-1.parquet")
    fp = pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": b"2147483546"})
    pos = pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": b"2147483545"})
    pq.write_table(pa.Table.from_arrays([pa.array([target] * deleted), pa.array(range(deleted), pa.int64())], schema=pa.schema([fp, pos])), path)
    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path="file://" + path,
        file_format=FileFormat.PARQUET,
        partition=Record(None),
        record_count=deleted,
        file_size_in_bytes=os.path.getsize(path),
        spec_id=table.spec().spec_id,
    )
    delete_file.spec_id = table.spec().spec_id

    class DeleteWriter(ManifestWriterV2):
        def content(self):
            return ManifestContent.DELETES

        @property
        def _meta(self):
            return {**super()._meta, "content": "deletes"}

    original = snap.write_manifest
    snap.write_manifest = lambda format_version, spec, schema, output_file, snapshot_id, avro_compression: DeleteWriter(spec, schema, output_file, snapshot_id, avro_compression)
    try:
        with table.transaction() as tx:
            with tx.update_snapshot().fast_append() as append:
                append.append_data_file(delete_file)
    finally:
        snap.write_manifest = original
    if mixed:  # and one append after it
        table = catalog(args).load_table(args.table)
        batch = [{"id": n + i, "k": 1 + i % 2} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n - deleted

KINDS.update({"void-spec-position-delete": kind_void_spec_position_delete})


def kind_short_strings(args):
    """Two required string columns of one-character codes with the same lower bound ("a") and
    different upper bounds ("m" vs "z"), unpartitioned."""
    from pyiceberg.types import LongType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "grade", StringType(), required=True),
        NestedField(3, "flag", StringType(), required=True),
    )
    table = _create(args, schema)
    n = 0
    for a in range(args.appends):
        batch = [{"id": n + i, "grade": ["a", "m"][i % 2], "flag": ["a", "z"][(i // 2) % 2]} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n

KINDS.update({"short-strings": kind_short_strings})


def kind_reshape(args):
    """Top-level and nested reorder, rename then re-add a column under the old name (top level and in
    a struct), required -> optional, with a sort order on a column; several appends per schema."""
    from pyiceberg.table.sorting import SortField, SortOrder
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType, StructType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "code", LongType(), required=True),
        NestedField(3, "name", StringType(), required=False),
        NestedField(4, "st", StructType(NestedField(5, "x", LongType(), required=False), NestedField(6, "y", StringType(), required=False)), required=False),
    )
    cat = catalog(args)
    cat.create_namespace_if_not_exists(tuple(args.table.split(".")[:-1]))
    table = cat.create_table(args.table, schema=schema, sort_order=SortOrder(SortField(source_id=2, transform=IdentityTransform())), properties={"format-version": str(args.format_version), **({"write.metadata.metrics.default": "none"} if args.type_name == "nometrics" else {})})
    n = 0

    def append():
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        arrow_schema = table.schema().as_arrow()
        names = set(arrow_schema.names)
        st_names = [f.name for f in arrow_schema.field("st").type]
        rows_list = []
        for i in range(args.rows):
            j = n + i
            row = {"id": j, "code": (j * 7919) % 100, "name": "n%d" % j, "old_code": -j, "code2": j % 3, "st": {k: v for k, v in {"x": j, "y": "y%d" % j, "x_old": -j, "z": "z"}.items() if k in st_names}}
            rows_list.append({k: v for k, v in row.items() if k in names})
        n += args.rows
        table.append(pa.Table.from_pylist(rows_list, schema=arrow_schema))

    for _ in range(args.appends):
        append()
    with table.update_schema() as update:
        update.rename_column("code", "old_code")
        update.rename_column("st.x", "x_old")
        update.make_column_optional("code")
    table = catalog(args).load_table(args.table)
    with table.update_schema() as update:
        update.add_column("code", LongType())
        update.add_column(("st", "x"), LongType())
        update.move_first("name")
        update.move_before("st.y", "st.x_old")
    for _ in range(args.appends):
        append()
    return n

KINDS.update({"reshape": kind_reshape})


def kind_reshape_list(args):
    """list<struct<x, y>> and map<string, struct<x, y>>: x renamed to x_old, y moved first, a new x
    added, with the table's default column metrics (invariants skip lists and maps)."""
    from pyiceberg.types import ListType, LongType, MapType, StructType

    def elem(a, b):
        return StructType(NestedField(a, "x", LongType(), required=False), NestedField(b, "y", StringType(), required=False))

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "l", ListType(3, elem(4, 5), element_required=False), required=False),
        NestedField(6, "m", MapType(7, StringType(), 8, elem(9, 10), value_required=False), required=False),
    )
    table = _create(args, schema)
    n = 0

    def append():
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        arrow_schema = table.schema().as_arrow()
        names = [f.name for f in arrow_schema.field("l").type.value_type]
        rows_list = []
        for i in range(args.rows):
            j = n + i
            e = {k: v for k, v in {"x": j, "y": "y%d" % j, "x_old": -j}.items() if k in names}
            rows_list.append({"id": j, "l": [e], "m": [("k", e)]})
        n += args.rows
        table.append(pa.Table.from_pylist(rows_list, schema=arrow_schema))

    for _ in range(args.appends):
        append()
    with table.update_schema() as update:
        update.rename_column("l.element.x", "x_old")
        update.rename_column("m.value.x", "x_old")
    table = catalog(args).load_table(args.table)
    with table.update_schema() as update:
        update.add_column(("l", "element", "x"), LongType())
        update.add_column(("m", "value", "x"), LongType())
        update.move_before("l.element.y", "l.element.x_old")
        update.move_before("m.value.y", "m.value.x_old")
    for _ in range(args.appends):
        append()
    return n

KINDS.update({"reshape-list": kind_reshape_list})


def kind_dropped_partition_source(args):
    """identity(region) files, the partition field removed, then the region column dropped (PyIceberg
    allows it: only the current spec is checked). Old-spec files keep their region tuples."""
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType

    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "region", StringType(), required=False))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="region"))
    table = _create(args, schema, spec)
    n = 0
    for a in range(args.appends):
        table.append(pa.Table.from_pylist([{"id": n + i, "region": ["eu", "us"][i % 2]} for i in range(args.rows)], schema=schema.as_arrow()))
        n += args.rows
    with table.update_spec() as update:
        update.remove_field("region")
    table = catalog(args).load_table(args.table)
    with table.update_schema() as update:
        update.delete_column("region")
    table = catalog(args).load_table(args.table)
    for a in range(args.appends):
        table.append(pa.Table.from_pylist([{"id": n + i} for i in range(args.rows)], schema=table.schema().as_arrow()))
        n += args.rows
    return n

KINDS.update({"dropped-partition-source": kind_dropped_partition_source})


def kind_struct_move_rename(args):
    """A struct of two longs with the same range: st.x renamed to x_old, then st.y moved before it.
    Default column metrics."""
    from pyiceberg.types import LongType, StructType

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "st", StructType(NestedField(3, "x", LongType(), required=False), NestedField(4, "y", LongType(), required=False)), required=False),
    )
    table = _create(args, schema)
    n = 0

    def append():
        nonlocal n, table
        table = catalog(args).load_table(args.table)
        arrow_schema = table.schema().as_arrow()
        names = [f.name for f in arrow_schema.field("st").type]
        rows_list = []
        for i in range(args.rows):
            j = n + i
            v = {"x": j % 50, "x_old": j % 50, "y": (j * 7 + 3) % 50}
            rows_list.append({"id": j, "st": {k: v[k] for k in names}})
        n += args.rows
        table.append(pa.Table.from_pylist(rows_list, schema=arrow_schema))

    for _ in range(args.appends):
        append()
    with table.update_schema() as update:
        update.rename_column("st.x", "x_old")
    table = catalog(args).load_table(args.table)
    with table.update_schema() as update:
        update.move_before("st.y", "st.x_old")
    for _ in range(args.appends):
        append()
    return n

KINDS.update({"struct-move-rename": kind_struct_move_rename})


# ---- issue 15: maintenance completeness ----------------------------------------------------------

def kind_sizes(args):
    """Hour-partitioned table (the SCHEMA above) with one file per append, each append its own hour:
    `--sizes 20000,4000` rows. Returns the row count; file sizes are read back by the test."""
    table = _create(args, SCHEMA, SPEC)
    n = 0
    for k, count in enumerate(int(c) for c in args.sizes.split(",")):
        base = BASE + dt.timedelta(hours=4 * k)
        rng = random.Random(k)
        batch = pa.Table.from_pylist(
            [
                {
                    "timestamp": base + dt.timedelta(seconds=rng.randrange(0, 3600)),
                    "trace_id": "%032x" % rng.getrandbits(128),
                    "service_name": rng.choice(["api", "db", "web"]),
                    "duration_nanos": rng.randrange(1, 10**9),
                }
                for _ in range(count)
            ],
            schema=SCHEMA.as_arrow(),
        )
        table.append(batch)
        n += count
    return n


def kind_respec(args):
    """A day-partitioned table (several appends), then its spec evolved by PyIceberg to hour(timestamp)
    + identity(service_name), then more appends under the new spec: old-spec day partitions whose rows
    fan out into many new-spec partitions."""
    from pyiceberg.transforms import DayTransform, IdentityTransform

    spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="timestamp_day"))
    table = _create(args, SCHEMA, spec)
    for k in range(args.appends):
        table.append(rows(args.rows, k, BASE))
    with table.update_spec() as update:
        update.remove_field("timestamp_day")
        update.add_field("timestamp", HourTransform(), "timestamp_hour")
        update.add_field("service_name", IdentityTransform(), "service_name")
    table = catalog(args).load_table(args.table)
    for k in range(args.appends):
        table.append(rows(args.rows, 100 + k, BASE + dt.timedelta(days=1)))
    return args.rows * args.appends * 2


KINDS.update({"sizes": kind_sizes, "respec": kind_respec})


def _commit_deletes(table, delete_files):
    """Commits delete files in one fast append (PyIceberg 0.12 writes none itself: its merge-on-read
    `delete` falls back to copy-on-write), through a manifest writer whose content is `deletes`."""
    import pyiceberg.table.update.snapshot as snap
    from pyiceberg.manifest import ManifestContent, ManifestWriterV2

    class DeleteWriter(ManifestWriterV2):
        def content(self):
            return ManifestContent.DELETES

        @property
        def _meta(self):
            return {**super()._meta, "content": "deletes"}

    original = snap.write_manifest
    snap.write_manifest = lambda format_version, spec, schema, output_file, snapshot_id, avro_compression: DeleteWriter(spec, schema, output_file, snapshot_id, avro_compression)
    try:
        with table.transaction() as tx:
            with tx.update_snapshot().fast_append() as append:
                for f in delete_files:
                    append.append_data_file(f)
    finally:
        snap.write_manifest = original


def cmd_posdelete(args):
    """Position deletes: the first --count rows of each of the --targets data files (default: the first
    two files, by path, of the table's first partition), in one delete file of their partition.
    Returns the paths targeted and the rows deleted."""
    import os
    import uuid

    import pyarrow.parquet as pq
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    table = catalog(args).load_table(args.table)
    files = sorted((t.file for t in table.scan().plan_files()), key=lambda f: (str(f.partition), f.file_path))
    if args.targets:
        targets = [f for f in files if f.file_path in args.targets]
    else:
        first = str(files[0].partition)
        targets = [f for f in files if str(f.partition) == first][:2]
    paths, positions = [], []
    for f in targets:
        chosen = list(range(0, f.record_count, args.every))[: args.count]
        paths += [f.file_path] * len(chosen)
        positions += chosen
    ghost = 0
    if args.ghost:
        # Entries naming a file of the partition that does not exist (any reader ignores them).
        missing = targets[0].file_path.rsplit("/", 1)[0] + "/never-written.parquet"
        ghost = args.count
        paths += [missing] * ghost
        positions += list(range(ghost))
    location = table.location()
    local = location[len("file://"):] if location.startswith("file://") else location
    os.makedirs(os.path.join(local, "data"), exist_ok=True)
    path = os.path.join(local, "data", "pos-delete-%s.parquet" % uuid.uuid4())
    fp = pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": b"2147483546"})
    pos = pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": b"2147483545"})
    pq.write_table(pa.Table.from_arrays([pa.array(paths), pa.array(positions, pa.int64())], schema=pa.schema([fp, pos])), path)
    # Java's position delete writers keep full (untruncated) file_path bounds; --no-bounds writes none.
    bounds = {} if args.no_bounds else {
        "lower_bounds": {2147483546: min(paths).encode()},
        "upper_bounds": {2147483546: max(paths).encode()},
    }
    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path="file://" + path,
        file_format=FileFormat.PARQUET,
        partition=targets[0].partition,
        record_count=len(paths),
        file_size_in_bytes=os.path.getsize(path),
        spec_id=targets[0].spec_id,
        **bounds,
    )
    delete_file.spec_id = targets[0].spec_id
    _commit_deletes(table, [delete_file])
    return {"targets": [f.file_path for f in targets], "deleted": len(paths), "ghost": ghost, "delete_file": "file://" + path}


def cmd_props(args):
    """Set (`--set k=v`, repeatable) and remove (`--unset k`) table properties through PyIceberg."""
    table = catalog(args).load_table(args.table)
    with table.transaction() as tx:
        if args.set:
            tx.set_properties(**dict(kv.split("=", 1) for kv in args.set))
        if args.unset:
            tx.remove_properties(*args.unset)
    table = catalog(args).load_table(args.table)
    return {"properties": dict(table.properties)}


def cmd_eqdelete(args):
    """An equality delete on trace_id (field 2) of the first --count rows of the table's first data file
    (by partition, then path), in that file's partition, committed like a merge-on-read writer would.
    trace_ids are unique, so engines that scope equality deletes by partition and those that do not
    (DuckDB 1.5) agree. With --reinsert those rows are then appended again: newer than the delete, they
    must survive it."""
    import os
    import uuid

    import pyarrow.parquet as pq
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    table = catalog(args).load_table(args.table)
    files = sorted((t.file for t in table.scan().plan_files()), key=lambda f: (str(f.partition), f.file_path))
    target = files[0]
    local_of = lambda p: p[len("file://"):] if p.startswith("file://") else p
    victims = pq.read_table(local_of(target.file_path)).slice(0, args.count)
    ids = victims.column("trace_id").to_pylist()
    location = table.location()
    os.makedirs(os.path.join(local_of(location), "data"), exist_ok=True)
    path = os.path.join(local_of(location), "data", "eq-delete-%s.parquet" % uuid.uuid4())
    field = pa.field("trace_id", pa.string(), nullable=False, metadata={b"PARQUET:field_id": b"2"})
    pq.write_table(pa.Table.from_arrays([pa.array(ids)], schema=pa.schema([field])), path)
    delete_file = DataFile.from_args(
        content=DataFileContent.EQUALITY_DELETES,
        file_path="file://" + path,
        file_format=FileFormat.PARQUET,
        partition=target.partition,
        record_count=len(ids),
        file_size_in_bytes=os.path.getsize(path),
        equality_ids=[2],
        spec_id=target.spec_id,
    )
    delete_file.spec_id = target.spec_id
    _commit_deletes(table, [delete_file])
    if args.reinsert:
        table = catalog(args).load_table(args.table)
        table.append(pa.Table.from_pylist(victims.to_pylist(), schema=SCHEMA.as_arrow()))
    return {"deleted": ids, "delete_file": "file://" + path}


def cmd_eqnull(args):
    """Equality deletes meeting NULLs and absent columns (review 17). An unpartitioned table (id long
    required, k string optional, n long optional) written in --appends appends of --rows rows: row i has
    k = 'a', 'b', NULL by turn and n = NULL on every fourth row, else i % 5. With --on tag, column `tag`
    (string) is then added and one more append writes tag 'x' or 'y' (the older files have no `tag`
    column: every value NULL). Then one equality delete (committed like a merge-on-read writer):
      --on k: k = 'a';  --on kn: (k = 'b', n = 1);  --on tag: tag = 'x'.
    NULL never equals a value, so rows with NULL there survive. Prints the rows a correct reader keeps
    (computed here, not read) and their checksum."""
    import os
    import uuid

    import pyarrow.parquet as pq
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record

    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "k", StringType(), required=False),
        NestedField(3, "n", LongType(), required=False),
    )
    table = _create(args, schema)
    all_rows = []
    n = 0
    for _ in range(args.appends):
        batch = [
            {"id": n + i, "k": ["a", "b", None][(n + i) % 3], "n": None if (n + i) % 4 == 0 else (n + i) % 5}
            for i in range(args.rows)
        ]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))
        all_rows += batch
    if args.on == "tag":
        with table.update_schema() as update:
            update.add_column("tag", StringType())
        table = catalog(args).load_table(args.table)
        for r in all_rows:
            r["tag"] = None
        batch = [
            {"id": n + i, "k": ["a", "b", None][(n + i) % 3], "n": (n + i) % 5, "tag": "x" if i % 2 else "y"}
            for i in range(args.rows)
        ]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))
        all_rows += batch
    table = catalog(args).load_table(args.table)
    if args.on == "k":
        fields, columns, deleted = [("k", 2, pa.string())], [["a"]], lambda r: r["k"] == "a"
    elif args.on == "kn":
        fields, columns = [("k", 2, pa.string()), ("n", 3, pa.int64())], [["b"], [1]]
        deleted = lambda r: r["k"] == "b" and r["n"] == 1
    else:
        fields, columns, deleted = [("tag", 4, pa.string())], [["x"]], lambda r: r["tag"] == "x"
    local_of = lambda p: p[len("file://"):] if p.startswith("file://") else p
    location = local_of(table.location())
    os.makedirs(os.path.join(location, "data"), exist_ok=True)
    path = os.path.join(location, "data", "eq-delete-%s.parquet" % uuid.uuid4())
    arrow_fields = [
        pa.field(name, t, nullable=False, metadata={b"PARQUET:field_id": str(fid).encode()}) for name, fid, t in fields
    ]
    pq.write_table(
        pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, arrow_fields)], schema=pa.schema(arrow_fields)),
        path,
    )
    delete_file = DataFile.from_args(
        content=DataFileContent.EQUALITY_DELETES,
        file_path="file://" + path,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=1,
        file_size_in_bytes=os.path.getsize(path),
        equality_ids=[fid for _, fid, _ in fields],
        spec_id=table.spec().spec_id,
    )
    delete_file.spec_id = table.spec().spec_id
    _commit_deletes(table, [delete_file])
    kept = [r for r in all_rows if not deleted(r)]
    return {"rows": len(kept), "checksum": checksum(kept), "total": len(all_rows)}


def cmd_files(args):
    """Live data files: path, size, records, spec id, partition (as a list of strings)."""
    table = catalog(args).load_table(args.table)
    out = []
    for task in table.scan().plan_files():
        f = task.file
        out.append(
            {
                "path": f.file_path,
                "size": f.file_size_in_bytes,
                "records": f.record_count,
                "spec_id": f.spec_id,
                "partition": [str(v) for v in f.partition],
                "deletes": len(task.delete_files),
            }
        )
    return {"files": sorted(out, key=lambda f: f["path"])}


def cmd_manifests(args):
    """A snapshot's manifests and live entries as PyIceberg's `inspect` tables read them."""
    table = catalog(args).load_table(args.table)
    manifests = table.inspect.manifests().to_pylist() if args.snapshot_id is None else None
    # PyIceberg's own manifest reader (inspect.entries needs column statistics every delete file lacks).
    snapshot = table.snapshot_by_id(args.snapshot_id) if args.snapshot_id is not None else table.current_snapshot()
    entries = [
        {
            "status": int(e.status),
            "snapshot_id": e.snapshot_id,
            "sequence_number": e.sequence_number,
            "file_sequence_number": e.file_sequence_number,
            "data_file": {
                "file_path": e.data_file.file_path,
                "content": int(e.data_file.content),
                "partition": dict(zip([f.name for f in table.specs()[e.data_file.spec_id].fields], e.data_file.partition)),
            },
        }
        for m in (snapshot.manifests(table.io) if snapshot else [])
        for e in m.fetch_manifest_entry(table.io, discard_deleted=True)
    ]
    return {
        "manifests": None
        if manifests is None
        else sorted(
            (
                {
                    "path": m["path"],
                    "content": m["content"],
                    "spec_id": m["partition_spec_id"],
                    "added_snapshot_id": m["added_snapshot_id"],
                    "bounds": [[str(f["lower_bound"]), str(f["upper_bound"])] for f in m["partition_summaries"] or []],
                    "files": (m["added_data_files_count"] or 0)
                    + (m["existing_data_files_count"] or 0)
                    + (m["added_delete_files_count"] or 0)
                    + (m["existing_delete_files_count"] or 0),
                }
                for m in manifests
            ),
            key=lambda m: m["path"],
        ),
        "entries": sorted(
            (
                {
                    "path": e["data_file"]["file_path"],
                    "content": e["data_file"]["content"],
                    "status": e["status"],
                    "snapshot_id": e["snapshot_id"],
                    "sequence_number": e["sequence_number"],
                    "file_sequence_number": e["file_sequence_number"],
                    "partition": json.loads(json.dumps(e["data_file"]["partition"], default=str)),
                }
                for e in entries
            ),
            key=lambda e: e["path"],
        ),
        "snapshots": [s.snapshot_id for s in table.snapshots()],
        "current_snapshot_id": table.current_snapshot().snapshot_id if table.current_snapshot() else None,
        "parent_snapshot_id": table.current_snapshot().parent_snapshot_id if table.current_snapshot() else None,
        "summary": dict(table.current_snapshot().summary.additional_properties) if table.current_snapshot() else {},
        "operation": table.current_snapshot().summary.operation.value if table.current_snapshot() else None,
    }


def cmd_delete(args):
    """A copy-on-write delete by another writer: PyIceberg's table.delete(--filter). Files whose rows all
    match are removed (a `delete` snapshot)."""
    table = catalog(args).load_table(args.table)
    before = table.current_snapshot().snapshot_id
    table.delete(args.filter)
    table = catalog(args).load_table(args.table)
    return {"parent": before, "snapshot_id": table.current_snapshot().snapshot_id, "operation": table.current_snapshot().summary.operation.value}


def kind_avro_names(args):
    """hour(timestamp) and identity(--column): a partition source column whose name is not an Avro
    name (PyIceberg writes the manifest's partition field sanitized, `_x2D`, or not at all for
    non-ASCII letters); half the rows 2026-01-15, half at --recent (default: half an hour ago)."""
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType

    column = args.column
    schema = Schema(
        NestedField(1, "timestamp", TimestampType(), required=True),
        NestedField(2, "id", LongType(), required=True),
        NestedField(3, column, StringType(), required=False),
    )
    spec = PartitionSpec(
        PartitionField(source_id=1, field_id=1000, transform=HourTransform(), name="timestamp_hour"),
        PartitionField(source_id=3, field_id=1001, transform=IdentityTransform(), name=column),
    )
    table = _create(args, schema, spec)
    recent = dt.datetime.fromisoformat(args.recent) if args.recent else (
        dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=30))
    n = 0
    for _ in range(args.appends):
        batch = [
            {"timestamp": BASE if i % 2 else recent, "id": n + i, column: ["x", None, "y-z"][i % 3]}
            for i in range(args.rows)
        ]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n


KINDS.update({"avro-names": kind_avro_names})


# ---- second hostile review (2026-12-08): equality deletes the reader cannot apply exactly -----------

def _eq_delete_file(table, name, field_id, arrow_type, values, partition, spec_id):
    """Writes and describes an equality delete file of `values` in column `name` (field `field_id`)."""
    import os
    import uuid

    import pyarrow.parquet as pq
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    location = table.location()
    local = location[len("file://"):] if location.startswith("file://") else location
    os.makedirs(os.path.join(local, "data"), exist_ok=True)
    path = os.path.join(local, "data", "eq-delete-%s.parquet" % uuid.uuid4())
    field = pa.field(name, arrow_type, nullable=False, metadata={b"PARQUET:field_id": str(field_id).encode()})
    pq.write_table(pa.Table.from_arrays([pa.array(values, type=arrow_type)], schema=pa.schema([field])), path)
    delete_file = DataFile.from_args(
        content=DataFileContent.EQUALITY_DELETES,
        file_path="file://" + path,
        file_format=FileFormat.PARQUET,
        partition=partition,
        record_count=len(values),
        file_size_in_bytes=os.path.getsize(path),
        equality_ids=[field_id],
        spec_id=spec_id,
    )
    delete_file.spec_id = spec_id
    return delete_file


def kind_eqdelete_promoted(args):
    """Unpartitioned v2 table: three appends of an `id` column written as int (--type-name int) or
    float (--type-name float), then `id` promoted to long / double, then an equality delete on `id`
    in the promoted type: [5, 3000000000] (the second fits no int) or [0.1] (a double no float
    equals). Java compares in the table's type: one row deleted, or none. iceberg-rust's reader casts
    the delete's values down to the file's type first: 3000000000 becomes NULL and `id != NULL`
    drops every row, 0.1 rounds to the float 0.1f and deletes it."""
    from pyiceberg.typedef import Record
    from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType, StringType

    is_int = args.type_name == "int"
    schema = Schema(
        NestedField(1, "id", IntegerType() if is_int else FloatType(), required=True),
        NestedField(2, "v", StringType(), required=True),
    )
    table = _create(args, schema)
    n = 0
    for _ in range(args.appends):
        batch = [{"id": n + i if is_int else (n + i) / 10, "v": "r%d" % (n + i)} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))
    with table.update_schema() as update:
        update.update_column("id", LongType() if is_int else DoubleType())
    table = catalog(args).load_table(args.table)
    values, arrow_type = ([5, 3_000_000_000], pa.int64()) if is_int else ([0.1], pa.float64())
    _commit_deletes(table, [_eq_delete_file(table, "id", 1, arrow_type, values, Record(), table.spec().spec_id)])
    return n - 1 if is_int else n


def kind_void_spec_eqdelete(args):
    """A v1 table partitioned by truncate(k); the field is removed (v1 keeps it as void), the table
    upgraded to v2, two more appends, and an equality delete on `id` committed under the all-void
    spec (partition tuple: one null) naming ids of the old spec's files and of the new ones. Java
    treats deletes of an all-void spec as global (`PartitionSpec.isUnpartitioned`): every named row
    is deleted."""
    from pyiceberg.typedef import Record

    table, schema, n = _void_spec_table(args, identity=False)
    old_rows = n
    for _ in range(2):
        batch = [{"id": n + i, "k": 1 + i % 2} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    table = catalog(args).load_table(args.table)
    ids = [0, 1, 2, 3, 4, old_rows, old_rows + 1, old_rows + 2]
    spec_id = table.spec().spec_id
    _commit_deletes(table, [_eq_delete_file(table, "id", 1, pa.int64(), ids, Record(None), spec_id)])
    return n - len(ids)


KINDS.update({"eqdelete-promoted": kind_eqdelete_promoted, "void-spec-eqdelete": kind_void_spec_eqdelete})


def kind_nullable_timestamp(args):
    """Unpartitioned, an optional `timestamp`, retention 7d as a table property: the first append's
    rows are from 2020 but one has no timestamp, every row of the later appends is from 2020. A file
    is dropped by its timestamp upper bound only if none of its rows lacks a timestamp."""
    import datetime as dt

    from pyiceberg.types import LongType, TimestampType

    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "timestamp", TimestampType(), required=False))
    table = _create(args, schema, props={"signaldb.compactor.retention": "7d"})
    old = dt.datetime(2020, 1, 1)
    n = 0
    for a in range(args.appends):
        batch = [{"id": n + i, "timestamp": None if (a == 0 and i == 0) else old} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=schema.as_arrow()))
    return n


KINDS.update({"nullable-timestamp": kind_nullable_timestamp})


def kind_eqdelete_narrow_import(args):
    """Unpartitioned v2 table, `id` a long from the start: --appends ordinary appends, then a file
    whose `id` column is stored as INT32 (an import, committed as it is: no schema of the table was
    ever `int`), then an equality delete on `id` of [5, 3000000000]. Java compares in the table's
    type: only id 5 goes. iceberg-rust's reader would cast 3000000000 to the file's INT32 (NULL) and
    drop every row of that file."""
    import os
    import uuid

    import pyarrow.parquet as pq
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record
    from pyiceberg.types import IntegerType, LongType, StringType

    # --type-name int16: an `int` table and an INT32 column annotated INT(16) (a Spark ShortType
    # import), with the delete value 70000, which fits the table's int but not the file's int16.
    short = args.type_name == "int16"
    table_type, stored, table_arrow = (IntegerType(), pa.int16(), pa.int32()) if short else (LongType(), pa.int32(), pa.int64())
    big = 70_000 if short else 3_000_000_000
    schema = Schema(NestedField(1, "id", table_type, required=True), NestedField(2, "v", StringType(), required=True))
    table = _create(args, schema)
    n = 0
    for _ in range(args.appends):
        batch = [{"id": n + i, "v": "r%d" % (n + i)} for i in range(args.rows)]
        n += args.rows
        table.append(pa.Table.from_pylist(batch, schema=table.schema().as_arrow()))
    location = table.location()
    local = location[len("file://"):] if location.startswith("file://") else location
    path = os.path.join(local, "data", "import-%s.parquet" % uuid.uuid4())
    fields = [
        pa.field("id", stored, nullable=False, metadata={b"PARQUET:field_id": b"1"}),
        pa.field("v", pa.string(), nullable=False, metadata={b"PARQUET:field_id": b"2"}),
    ]
    ids = list(range(n, n + args.rows))
    pq.write_table(pa.Table.from_arrays([pa.array(ids, stored), pa.array(["r%d" % i for i in ids])], schema=pa.schema(fields)), path)
    n += args.rows
    imported = DataFile.from_args(
        content=DataFileContent.DATA,
        file_path="file://" + path,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=len(ids),
        file_size_in_bytes=os.path.getsize(path),
        value_counts={1: len(ids), 2: len(ids)},
        null_value_counts={1: 0, 2: 0},
    )
    imported.spec_id = table.spec().spec_id
    with table.transaction() as tx:
        with tx.update_snapshot().fast_append() as append:
            append.append_data_file(imported)
    table = catalog(args).load_table(args.table)
    _commit_deletes(table, [_eq_delete_file(table, "id", 1, table_arrow, [5, big], Record(), table.spec().spec_id)])
    return n - 1


KINDS.update({"eqdelete-narrow-import": kind_eqdelete_narrow_import})


def cmd_kind(args):
    return {"rows": KINDS[args.kind](args)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["create", "scan", "append", "tag", "kind", "props", "files", "posdelete", "eqdelete", "manifests", "eqnull", "delete"])
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
    p.add_argument("--filter", help="scan: a PyIceberg row filter, e.g. \"s is null\"")
    p.add_argument("--kind", choices=sorted(KINDS), help="kind: which table to create")
    p.add_argument("--column", default="c", help="kind avro-names: the partition source column's name")
    p.add_argument("--recent", help="kind avro-names: the recent rows' time (ISO, naive UTC; default half an hour ago)")
    p.add_argument("--files-dir", help="kind add-files: where to write the plain Parquet files")
    p.add_argument("--drop-mapping", action="store_true", help="kind add-files: remove the name mapping")
    p.add_argument("--type-name", default="long", help="kind identity-types: which primitive type")
    p.add_argument("--mapping-json", help="kind add-files-nostats: a name mapping to set")
    p.add_argument("--sizes", default="20000,4000", help="kind sizes: rows per append (one hour each)")
    p.add_argument("--set", action="append", help="props: KEY=VALUE to set (repeatable)")
    p.add_argument("--unset", action="append", help="props: KEY to remove (repeatable)")
    p.add_argument("--targets", action="append", help="posdelete: a data file path (repeatable)")
    p.add_argument("--count", type=int, default=5, help="posdelete: rows deleted per target")
    p.add_argument("--no-bounds", action="store_true", help="posdelete: write no file_path bounds")
    p.add_argument("--ghost", action="store_true", help="posdelete: also --count entries naming a file that does not exist")
    p.add_argument("--every", type=int, default=1, help="posdelete: delete positions 0, E, 2E, ... (--count of them)")
    p.add_argument("--row-group-limit", type=int, help="create: write.parquet.row-group-limit (rows per row group)")
    p.add_argument("--reinsert", action="store_true", help="eqdelete: append the deleted rows again")
    p.add_argument("--snapshot-id", type=int, help="scan, manifests: at this snapshot (time travel)")
    p.add_argument("--on", choices=["k", "kn", "tag"], default="k", help="eqnull: the equality delete's columns")
    args = p.parse_args()
    if not (args.db or args.uri):
        p.error("one of --db or --uri is required")
    commands = {
        "create": cmd_create,
        "scan": cmd_scan,
        "append": cmd_append,
        "tag": cmd_tag,
        "kind": cmd_kind,
        "props": cmd_props,
        "files": cmd_files,
        "posdelete": cmd_posdelete,
        "eqdelete": cmd_eqdelete,
        "delete": cmd_delete,
        "manifests": cmd_manifests,
        "eqnull": cmd_eqnull,
    }
    out = commands[args.command](args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
