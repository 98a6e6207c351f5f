#!/usr/bin/env bash
# Reader benefit of compaction: a full scan of a 1,000-file hour by PyIceberg and by DuckDB's
# iceberg_scan, before and after `once compaction` (same warehouse, same run).
#
#   bash bench/readers.sh           # FILES=1000 ROWS=1500 traces files in one closed hour
#
# PyIceberg: table.scan().to_arrow(); DuckDB: SELECT * FROM iceberg_scan(<current metadata>) fetched as
# Arrow (plus a count(*)); both timed inside Python. Needs the release binary, pyiceberg, duckdb and the
# DuckDB iceberg/avro extension packages (as the integration tests use).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-readers}
FILES=${FILES:-1000}
ROWS=${ROWS:-1500}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
rm -rf "$WORK" && mkdir -p "$WORK"
"$BIN" generate --dir "$WORK" --tenants 1 --datasets 1 --hours 1 --files-per-hour "$FILES" \
    --rows-per-file "$ROWS" --tables traces --end 2026-01-01T00:59:00Z --json > "$WORK/generate.json"
printf '[schema]\ncatalog_uri = "sqlite:%s/catalog.db"\n[storage]\ndsn = "file://%s/warehouse"\n' "$WORK" "$WORK" > "$WORK/signaldb.toml"
table=acme.production.traces
before=$(python3 bench/readers.py "$WORK" "$table")
(cd "$WORK" && "$BIN" once compaction --json > compaction.json 2> compaction.err) || { tail "$WORK/compaction.err"; exit 1; }
after=$(python3 bench/readers.py "$WORK" "$table")
python3 - "$before" "$after" <<'PY'
import json, sys
b, a = (json.loads(x) for x in sys.argv[1:])
assert b["rows"] == a["rows"], (b, a)
print(f"{'':10} {'files':>6} {'rows':>9} {'PyIceberg s':>12} {'DuckDB s':>9}")
for name, r in (("before", b), ("after", a)):
    print(f"{name:10} {r['files']:>6} {r['rows']:>9} {r['pyiceberg_s']:>12.2f} {r['duckdb_s']:>9.2f}")
print(f"{'speed-up':10} {'':>6} {'':>9} {b['pyiceberg_s'] / a['pyiceberg_s']:>11.1f}x {b['duckdb_s'] / a['duckdb_s']:>8.1f}x")
PY
