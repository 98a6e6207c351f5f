"""Times a full scan of one table by PyIceberg and by DuckDB's iceberg_scan (bench/readers.sh).

    python3 bench/readers.py DIR TABLE     # prints {"files", "rows", "pyiceberg_s", "duckdb_s"}
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "helpers"))
from duckdb_tool import connect  # noqa: E402
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402


def main():
    d, name = sys.argv[1], sys.argv[2]
    catalog = SqlCatalog("signaldb", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}/warehouse")
    table = catalog.load_table(name)
    files = len(list(table.scan().plan_files()))
    t = time.perf_counter()
    rows = table.scan().to_arrow().num_rows
    pyiceberg_s = time.perf_counter() - t
    location = table.metadata_location.removeprefix("file://")
    con = connect()
    t = time.perf_counter()
    duck_rows = con.execute("SELECT count(*) FROM (SELECT * FROM iceberg_scan(?))", [location]).fetchone()[0]
    duck_all = con.execute("SELECT * FROM iceberg_scan(?)", [location]).to_arrow_table().num_rows
    duckdb_s = time.perf_counter() - t
    assert rows == duck_rows == duck_all, (rows, duck_rows, duck_all)
    print(json.dumps({"files": files, "rows": rows, "pyiceberg_s": pyiceberg_s, "duckdb_s": duckdb_s}))


if __name__ == "__main__":
    main()
