"""The peers `bench/compaction.sh` and `bench/memory.sh` compare signaldb-compactor with, on the same files.

    python3 bench/peers.py duckdb     DIR [ORDER_BY]        # COPY (SELECT * ... [ORDER BY]) per partition
    python3 bench/peers.py duckdb-limited DIR [ORDER_BY] [MB] # the same under DuckDB's memory_limit of MB
    python3 bench/peers.py datafusion DIR [ORDER_BY] [MB]  # the same in DataFusion under a FairSpillPool
    python3 bench/peers.py delta-load DIR                  # the same rows as a Delta table, one commit per file
    python3 bench/peers.py delta-compact DIR               # deltalake optimize.compact() of that table

DIR holds `inputs.txt` (one Parquet path per line; a partition is the directory a file lives in). Each
prints one JSON line with the seconds the operation took, timed inside Python (no interpreter start-up);
run it under /usr/bin/time -v for the peak RSS. Outputs are zstd level 1 Parquet, like ours.
"""

import json
import os
import sys
import time
from collections import OrderedDict


def partitions(d):
    groups = OrderedDict()
    for line in open(f"{d}/inputs.txt"):
        path = line.strip()
        if path:
            groups.setdefault(os.path.dirname(path), []).append(path)
    return list(groups.values())


def duckdb_run(d, order, memory_mb=None):
    import duckdb

    con = duckdb.connect()
    if memory_mb is not None:
        # The budget ours runs under (`memory_limit_mb`): DuckDB's sort then spills to disk as ours does.
        con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    t = time.perf_counter()
    for i, files in enumerate(partitions(d)):
        con.execute(
            f"COPY (SELECT * FROM read_parquet({files!r}) {order}) TO '{d}/duck-{i}.parquet' "
            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
        )
    return time.perf_counter() - t


def datafusion_run(d, order, memory_mb):
    from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext, col

    runtime = (
        RuntimeEnvBuilder()
        .with_disk_manager_os()
        .with_fair_spill_pool(int(memory_mb) * 1024 * 1024)
    )
    config = SessionConfig().with_target_partitions(os.cpu_count() or 2)
    ctx = SessionContext(config, runtime)
    keys = [k.strip().strip('"') for k in order.removeprefix("ORDER BY").split(",")] if order else []
    t = time.perf_counter()
    for i, files in enumerate(partitions(d)):
        # A partition's files are all the files of its directory.
        df = ctx.read_parquet(os.path.dirname(files[0]))
        if keys:
            df = df.sort(*[col(f'"{k}"').sort(ascending=True, nulls_first=True) for k in keys])
        df.write_parquet(f"{d}/datafusion-{i}", compression="zstd", compression_level=1)
    return time.perf_counter() - t


def delta_load(d):
    import pyarrow.parquet as pq
    from deltalake import WriterProperties, write_deltalake

    # The same codec as the inputs the others read (generate writes zstd level 1): delta-rs's default,
    # Snappy, would give its compaction cheaper files to decode than ours and DuckDB's.
    zstd = WriterProperties(compression="ZSTD", compression_level=1)
    t = time.perf_counter()
    for files in partitions(d):
        for path in files:
            # One commit per file, as the small-file writer would; the hour column keeps partitions apart.
            table = pq.read_table(path)
            hour = os.path.basename(os.path.dirname(path))
            import pyarrow as pa

            table = table.append_column("part", pa.array([hour] * table.num_rows))
            write_deltalake(f"{d}/delta", table, mode="append", partition_by=["part"], writer_properties=zstd)
    return time.perf_counter() - t


def delta_compact(d):
    from deltalake import DeltaTable, WriterProperties

    table = DeltaTable(f"{d}/delta")
    t = time.perf_counter()
    metrics = table.optimize.compact(writer_properties=WriterProperties(compression="ZSTD", compression_level=1))
    seconds = time.perf_counter() - t
    assert metrics["numFilesRemoved"] > 0, metrics
    return seconds


def main():
    what, d = sys.argv[1], sys.argv[2]
    order = sys.argv[3] if len(sys.argv) > 3 else ""
    if what == "datafusion":
        try:
            s = datafusion_run(d, order, sys.argv[4] if len(sys.argv) > 4 else 256)
        except Exception as e:  # e.g. "Resources exhausted" under the pool: reported, not fatal
            print(json.dumps({"seconds": None, "error": str(e).splitlines()[0][:200]}))
            return
    elif what == "duckdb":
        s = duckdb_run(d, order)
    elif what == "duckdb-limited":
        s = duckdb_run(d, order, sys.argv[4] if len(sys.argv) > 4 else 256)
    elif what == "delta-load":
        s = delta_load(d)
    elif what == "delta-compact":
        s = delta_compact(d)
    else:
        sys.exit(f"unknown peer {what}")
    print(json.dumps({"seconds": s}))


if __name__ == "__main__":
    main()
