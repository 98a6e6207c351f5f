#!/usr/bin/env bash
# Peak RSS of one sorted rewrite of a big partition at memory_limit_mb = 64, 256 and 1024.
#
#   bash bench/memory.sh            # FILES=100 ROWS=500000: one traces hour of ~2.1 GiB on disk, 50 M rows
#   LIMITS="64 256" FILES=20 bash bench/memory.sh
#
# Generates the partition once (files sorted by the declared order and claiming it, or unsorted with
# LAYOUT=--unsorted-files), then for each limit copies the warehouse, runs `once compaction` under
# /usr/bin/time -v and prints wall time, peak RSS and RSS minus the limit (the fixed overhead; the
# documented bound is limit + 96 MiB). Needs the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-memory}
FILES=${FILES:-100}
ROWS=${ROWS:-500000}
LIMITS=${LIMITS:-64 256 1024}
LAYOUT=${LAYOUT:-}
OVERHEAD_MIB=96
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }

peak_rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
wall_s() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$1"; }

# Iceberg metadata names absolute paths: generate in $WORK/run, keep a pristine copy, and restore it
# to the same path before each limit.
run="$WORK/run" pristine="$WORK/pristine"
if [ ! -f "$pristine/generate.json" ] || [ "$(cat "$pristine/params" 2>/dev/null)" != "$FILES $ROWS $LAYOUT" ]; then
  rm -rf "$run" "$pristine" && mkdir -p "$run"
  # shellcheck disable=SC2086
  "$BIN" generate --dir "$run" --tenants 1 --datasets 1 --hours 1 --files-per-hour "$FILES" \
      --rows-per-file "$ROWS" --tables traces --end 2026-01-01T00:59:00Z --concurrency 1 $LAYOUT --json \
      > "$run/generate.json"
  echo "$FILES $ROWS $LAYOUT" > "$run/params"
  cp -a "$run" "$pristine"
fi
input_mib=$(find "$pristine/warehouse" -name '*.parquet' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s/1048576}')
rows=$(python3 -c "import json;print(json.load(open('$pristine/generate.json'))['rows'])")

printf 'partition: %s MiB on disk, %s rows, %s files %s\n' "$input_mib" "$rows" "$FILES" "$LAYOUT"
printf '%-9s %8s %10s %14s %8s\n' limit_MiB wall_s peak_RSS RSS-limit within
for limit in $LIMITS; do
  dir="$run"
  rm -rf "$run" && cp -a "$pristine" "$run"
  printf '[schema]\ncatalog_uri = "sqlite:%s/catalog.db"\n[storage]\ndsn = "file://%s/warehouse"\n[compactor]\nmemory_limit_mb = %s\n' \
      "$dir" "$dir" "$limit" > "$dir/signaldb.toml"
  (cd "$dir" && /usr/bin/time -v "$BIN" once compaction --json > ours.json 2> ours.err) || { tail -20 "$dir/ours.err"; exit 1; }
  python3 - "$dir/ours.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))[0]["tables"][0]
assert t["status"] == "succeeded" and t["files_after"] < t["files_before"], t
PY
  rss=$(peak_rss_mib "$dir/ours.err")
  over=$((rss - limit))
  ok=yes; [ "$over" -le "$OVERHEAD_MIB" ] || ok=NO
  printf '%-9s %8s %10s %14s %8s\n' "$limit" "$(wall_s "$dir/ours.err")" "${rss}MiB" "${over}MiB" "$ok"
done
echo "bound: peak RSS <= memory_limit_mb + ${OVERHEAD_MIB} MiB"
