#!/usr/bin/env bash
# Planning time on a table with many fast-append manifests, before and after the manifest rewrite:
# PyIceberg (table.scan().plan_files()), DuckDB (iceberg_metadata: the manifest list and every manifest,
# and count(*) over iceberg_scan) and our own planner (`once compaction --dry-run`, end to end).
#
#   bash bench/manifests.sh          # MANIFESTS=5000: 50 hours x 100 one-file fast-appends, traces
#
# The table is made by `generate` (one fast-append per file, as SignalDB's writer commits), with every
# hour still open (the range ends three days from now) so that the pass rewrites manifests only. The
# rewrite itself is `once compaction` (timed too). Each reader's time is the median of REPEAT runs
# inside one Python process (catalog load excluded); ours is the wall time of the whole process
# (/usr/bin/time -v). Needs the binary (release by default; BIN=... to choose), pyiceberg, duckdb and
# the DuckDB iceberg/avro extension packages (as the integration tests use).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-manifests}
MANIFESTS=${MANIFESTS:-5000}
HOURS=${HOURS:-50}
REPEAT=${REPEAT:-3}
[ -x "$BIN" ] || { echo "build the binary first (cargo build --release) or set BIN" >&2; exit 2; }
rm -rf "$WORK" && mkdir -p "$WORK"
# The range ends three days from now: all HOURS (<= 72) hours are still open and no file is compacted.
end=$(date -u -d "+3 days" +%Y-%m-%dT%H:%M:%SZ)
gen_time=$( { /usr/bin/time -f %e "$BIN" generate --dir "$WORK" --tenants 1 --datasets 1 --hours "$HOURS" \
    --files-per-hour $((MANIFESTS / HOURS)) --rows-per-file 5 --tables traces --end "$end" \
    --json > "$WORK/generate.json"; } 2>&1 | tail -1)
printf '[schema]\ncatalog_uri = "sqlite:%s/catalog.db"\n[storage]\ndsn = "file://%s/warehouse"\n' "$WORK" "$WORK" > "$WORK/signaldb.toml"
table=acme.production.traces

wall_s() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$1"; }
peak_rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
ours() { # ours NAME ARGS...: runs the binary in WORK under /usr/bin/time -v; prints "seconds rss"
  local name=$1; shift
  (cd "$WORK" && /usr/bin/time -v -o "$name.time" "$BIN" "$@" --table "$table" --json > "$name.json" 2> "$name.err") \
    || { tail "$WORK/$name.err"; exit 1; }
  echo "$(wall_s "$WORK/$name.time") $(peak_rss_mib "$WORK/$name.time")"
}
readers() {
  python3 - "$WORK" "$table" "$REPEAT" <<'PY'
import json, os, statistics, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "helpers"))
from duckdb_tool import connect
from pyiceberg.catalog.sql import SqlCatalog
d, name, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
table = SqlCatalog("signaldb", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}/warehouse").load_table(name)
manifests = len(table.current_snapshot().manifests(table.io))
def median(f):
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); out = f(); times.append(time.perf_counter() - t)
    return statistics.median(times), out
py_s, files = median(lambda: len(list(table.scan().plan_files())))
location = table.metadata_location.removeprefix("file://")
con = connect()
meta_s, entries = median(lambda: con.execute("SELECT count(*) FROM iceberg_metadata(?)", [location]).fetchone()[0])
count_s, rows = median(lambda: con.execute("SELECT count(*) FROM iceberg_scan(?)", [location]).fetchone()[0])
print(json.dumps({"manifests": manifests, "files": files, "entries": entries, "rows": rows,
                  "pyiceberg_s": py_s, "duckdb_metadata_s": meta_s, "duckdb_count_s": count_s}))
PY
}

before=$(readers)
read -r plan_before rss_plan_before <<< "$(ours plan-before once compaction --dry-run)"
read -r rewrite_s rewrite_rss <<< "$(ours rewrite once compaction)"
after=$(readers)
read -r plan_after rss_plan_after <<< "$(ours plan-after once compaction --dry-run)"
python3 - "$before" "$after" "$plan_before" "$plan_after" "$rewrite_s" "$rewrite_rss" "$gen_time" "$WORK/rewrite.json" <<'PY'
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
plan_b, plan_a, rewrite_s, rewrite_rss, gen = sys.argv[3:8]
report = json.load(open(sys.argv[8]))
table = report[0]["tables"][0] if isinstance(report, list) else report["tables"][0]
assert (b["files"], b["rows"]) == (a["files"], a["rows"]), (b, a)
assert table["status"] == "succeeded", table
print(f"table: {b['files']} data files, {b['rows']} rows; generated in {gen} s; rewrite (once compaction): {rewrite_s} s, {rewrite_rss} MiB peak RSS")
print(f"{'':8} {'manifests':>9} {'PyIceberg plan_files s':>23} {'DuckDB iceberg_metadata s':>26} {'DuckDB count(*) s':>18} {'ours --dry-run s':>17}")
for name, r, ours in (("before", b, plan_b), ("after", a, plan_a)):
    print(f"{name:8} {r['manifests']:>9} {r['pyiceberg_s']:>23.3f} {r['duckdb_metadata_s']:>26.3f} {r['duckdb_count_s']:>18.3f} {float(ours):>17.2f}")
print(f"speed-up {'':>9} {b['pyiceberg_s'] / a['pyiceberg_s']:>22.1f}x {b['duckdb_metadata_s'] / a['duckdb_metadata_s']:>25.1f}x {b['duckdb_count_s'] / a['duckdb_count_s']:>17.1f}x {float(plan_b) / float(plan_a):>16.1f}x")
PY
