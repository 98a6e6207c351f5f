#!/usr/bin/env bash
# Compaction lag at scale: measures what one table costs the compaction loop on this machine, then
# feeds those costs to `signaldb-compactor simulate` for 10,000 tables over a day.
#
#   bash bench/lag.sh           # TENANTS=2 DATASETS=25: 50 traces tables, one hour of FILES=720 files each
#
# 1. `generate`: every table holds one hour of SignalDB-like ingest (FILES one-commit files of ROWS rows,
#    one per 5 s), in the next hour (still open: nothing due), so FILES manifests per table.
# 2. look:  `once compaction` with nothing due: every table is read (metadata, manifest list, manifests)
#    and found idle: wall / tables = the survey's cost of one table whose pointer moved.
# 3. table: `once compaction` with `compact_open_partitions = true`: every table's hour is compacted
#    (lease, audit row, load, plan, rewrite, invariants, commit): wall / tables = one table's cost.
# 4. `simulate` with those two costs, 10,000 tables, 24 h, at several core budgets, and a budget too small.
# Needs the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench/lag}
TENANTS=${TENANTS:-2}
DATASETS=${DATASETS:-25}
FILES=${FILES:-720}
ROWS=${ROWS:-20}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
end=$(python3 -c "import datetime as d; n=d.datetime.now(d.timezone.utc).replace(minute=0,second=0,microsecond=0); print((n+d.timedelta(hours=1, minutes=59)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
rm -rf "$WORK" && mkdir -p "$WORK"
"$BIN" generate --dir "$WORK" --tenants "$TENANTS" --datasets "$DATASETS" --hours 1 --files-per-hour "$FILES" \
    --rows-per-file "$ROWS" --tables traces --end "$end" --concurrency 2 --json > "$WORK/generate.json"
config() {
  cat > "$WORK/signaldb.toml" <<TOML
[schema]
catalog_uri = "sqlite:$WORK/catalog.db"
[storage]
dsn = "file://$WORK/warehouse"
[compactor]
compact_open_partitions = $1
TOML
}
timed() { # name: runs `once compaction`, keeps its report and /usr/bin/time's figures
  (cd "$WORK" && /usr/bin/time -v "$BIN" once compaction --json > "$1.json" 2> "$1.err") || { tail -20 "$WORK/$1.err"; exit 1; }
}
config false; timed look
config true;  timed table
read -r look_ms table_ms < <(python3 - "$WORK" <<'PY'
import json, re, sys
d = sys.argv[1]
gen = json.load(open(f"{d}/generate.json"))
def wall(name):
    err = open(f"{d}/{name}.err").read()
    w = re.search(r"Elapsed \(wall clock\) time.*: (.*)", err).group(1)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) // 1024
    return sum(float(p) * 60 ** i for i, p in enumerate(reversed(w.split(":")))), rss
def statuses(name):
    out = {}
    for t in json.load(open(f"{d}/{name}.json"))[0]["tables"]:
        out[t["status"]] = out.get(t["status"], 0) + 1
    return out
n = gen["tables"]
(lw, lr), (tw, tr) = wall("look"), wall("table")
print(f"generated {n} tables, {gen['files']} files, {gen['bytes'] / 2**20:.1f} MiB", file=sys.stderr)
print(f"look:  {statuses('look')} wall {lw:.2f}s peak {lr} MiB -> {1000 * lw / n:.1f} ms per table", file=sys.stderr)
print(f"table: {statuses('table')} wall {tw:.2f}s peak {tr} MiB -> {1000 * tw / n:.1f} ms per table", file=sys.stderr)
print(f"{max(1, round(1000 * lw / n))} {max(1, round(1000 * tw / n))}")
PY
)
echo "simulate: --look-cost ${look_ms}ms --table-overhead ${table_ms}ms (10,000 tables, 50 tenants, 24 h, lag target 10m)"
for replicas in ${REPLICAS:-1 4 8 16}; do
  echo "--- $replicas replica(s) x 2 cores"
  "$BIN" simulate --tables 10000 --hours 24 --replicas "$replicas" --cores-per-replica 2 \
      --look-cost "${look_ms}ms" --table-overhead "${table_ms}ms" | head -4
done
echo "--- budget too small: 4 replicas x 2 cores, each pass capped at 30 s"
"$BIN" simulate --tables 10000 --hours 24 --replicas 4 --cores-per-replica 2 \
    --look-cost "${look_ms}ms" --table-overhead "${table_ms}ms" --max-pass-duration 30s
