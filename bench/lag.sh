#!/usr/bin/env bash
# Compaction lag at scale: measures what one table costs the compaction loop on this machine, then
# feeds those costs to `signaldb-compactor simulate` for 10,000 tables over a day.
#
#   bash bench/lag.sh           # TENANTS=2 DATASETS=25: 50 traces tables
#
# 1. `generate` two warehouses of SignalDB-like ingest in the next hour (still open: nothing due), one
#    one-commit file of ROWS rows per 5 s: `look` with LOOK_FILES=100 files per table (100 manifests:
#    Iceberg's commit.manifest.min-count-to-merge, above which the daemon rewrites a table's manifests,
#    so the most a table holds between rewrites), `table` with FILES=720 (a whole hour).
# 2. look:  `once compaction` with nothing due and manifest rewrites off: every table is read (metadata,
#    manifest list, manifests) and found idle: wall / tables = the survey's cost of one table read.
# 3. table: `once compaction` with `compact_open_partitions = true`: every table's hour is compacted
#    (lease, audit row, load, plan, rewrite, invariants, commit): wall / tables = one table's cost.
#    With AT_ONCE=k the table run compacts k tables at once (`max_concurrent_tables = k`) and one
#    table's cost is wall × k / tables (what a table costs while k - 1 others run beside it).
# 4. `simulate` with those two costs, 10,000 tables, 24 h, at several core budgets, and a budget too small.
# Needs the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench/lag}
TENANTS=${TENANTS:-2}
DATASETS=${DATASETS:-25}
FILES=${FILES:-720}
LOOK_FILES=${LOOK_FILES:-100}
ROWS=${ROWS:-20}
AT_ONCE=${AT_ONCE:-1}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
end=$(python3 -c "import datetime as d; n=d.datetime.now(d.timezone.utc).replace(minute=0,second=0,microsecond=0); print((n+d.timedelta(hours=1, minutes=59)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
rm -rf "$WORK" && mkdir -p "$WORK/look" "$WORK/table"
for w in look table; do
  files=$FILES; [ "$w" = look ] && files=$LOOK_FILES
  "$BIN" generate --dir "$WORK/$w" --tenants "$TENANTS" --datasets "$DATASETS" --hours 1 --files-per-hour "$files" \
      --rows-per-file "$ROWS" --tables traces --end "$end" --concurrency 2 --json > "$WORK/$w/generate.json"
done
timed() { # warehouse, compact_open_partitions: runs `once compaction`, keeps its report and /usr/bin/time's figures
  cat > "$WORK/$1/signaldb.toml" <<TOML
[schema]
catalog_uri = "sqlite:$WORK/$1/catalog.db"
[storage]
dsn = "file://$WORK/$1/warehouse"
[compactor]
compact_open_partitions = $2
rewrite_manifests = false
max_concurrent_tables = $AT_ONCE
TOML
  (cd "$WORK/$1" && /usr/bin/time -v "$BIN" once compaction --json > run.json 2> run.err) || { tail -20 "$WORK/$1/run.err"; exit 1; }
}
timed look false
timed table true
read -r look_ms table_ms < <(python3 - "$WORK" "$AT_ONCE" <<'PY'
import json, re, sys
d, at_once = sys.argv[1], int(sys.argv[2])
def wall(name):
    err = open(f"{d}/{name}/run.err").read()
    w = re.search(r"Elapsed \(wall clock\) time.*: (.*)", err).group(1)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) // 1024
    return sum(float(p) * 60 ** i for i, p in enumerate(reversed(w.split(":")))), rss
def statuses(name):
    out = {}
    for t in json.load(open(f"{d}/{name}/run.json"))[0]["tables"]:
        out[t["status"]] = out.get(t["status"], 0) + 1
    return out
(lw, lr), (tw, tr) = wall("look"), wall("table")
for name, w, r in [("look", lw, lr), ("table", tw, tr)]:
    gen = json.load(open(f"{d}/{name}/generate.json"))
    n = gen["tables"]
    print(f"{name}: {n} tables, {gen['files']} files, {gen['bytes'] / 2**20:.1f} MiB; once compaction "
          f"{statuses(name)} wall {w:.2f}s peak {r} MiB -> {1000 * w / n:.1f} ms per table", file=sys.stderr)
print(f"{max(1, round(1000 * lw / n))} {max(1, round(1000 * tw * at_once / n))}")
PY
)
echo "simulate: --look-cost ${look_ms}ms --table-overhead ${table_ms}ms --tables-at-once $AT_ONCE (10,000 tables, 50 tenants, 24 h, lag target 10m)"
for replicas in ${REPLICAS:-16 32 64}; do
  echo "--- $replicas replica(s) x 2 cores"
  # Into a file first: `head` closing the pipe early would fail the simulator's printing.
  "$BIN" simulate --tables 10000 --hours 24 --replicas "$replicas" --cores-per-replica 2 \
      --look-cost "${look_ms}ms" --table-overhead "${table_ms}ms" --tables-at-once "$AT_ONCE" > "$WORK/simulate-$replicas.txt"
  head -4 "$WORK/simulate-$replicas.txt"
done
echo "--- budget too small: 32 replicas x 2 cores, each pass capped at 5 s"
"$BIN" simulate --tables 10000 --hours 24 --replicas 32 --cores-per-replica 2 \
    --look-cost "${look_ms}ms" --table-overhead "${table_ms}ms" --tables-at-once "$AT_ONCE" --max-pass-duration 5s
