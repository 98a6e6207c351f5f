#!/usr/bin/env bash
# The daemon's resident memory once idle after a real compaction pass.
#
#   bash bench/idle.sh        # FILES=1000 ROWS=1500: one traces hour of 1,000 small files (79 MB, 1.5 M rows)
#
# Starts `signaldb-compactor run` (compaction only, 1 h interval) on a fresh copy of the warehouse, waits
# for the first compaction pass to finish, then samples VmRSS from /proc at 1, 5, 15 and 30 s after it,
# and prints the process's peak (VmHWM). Needs the release binary. MALLOC_* variables pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench/idle}
FILES=${FILES:-1000}
ROWS=${ROWS:-1500}
PORT=${PORT:-19392}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }

# Iceberg metadata names absolute paths: generate in $WORK/run, keep a pristine copy, restore it in place.
run="$WORK/run" pristine="$WORK/pristine"
if [ ! -f "$pristine/generate.json" ] || [ "$(cat "$pristine/params" 2>/dev/null)" != "$FILES $ROWS" ]; then
  rm -rf "$run" "$pristine" && mkdir -p "$run"
  "$BIN" generate --dir "$run" --tenants 1 --datasets 1 --hours 1 --files-per-hour "$FILES" \
      --rows-per-file "$ROWS" --tables traces --end 2026-01-01T00:59:00Z --json > "$run/generate.json"
  echo "$FILES $ROWS" > "$run/params"
  cp -a "$run" "$pristine"
fi
rm -rf "$run" && cp -a "$pristine" "$run"
cat > "$run/signaldb.toml" <<TOML
[schema]
catalog_uri = "sqlite:$run/catalog.db"
[storage]
dsn = "file://$run/warehouse"
[compactor]
interval = "1h"
[compactor.http]
listen = "127.0.0.1:$PORT"
TOML

(cd "$run" && exec "$BIN" run > daemon.log 2>&1) &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep 'pass finished' "$run/daemon.log" 2>/dev/null | grep -q compaction && break
  sleep 0.2
done
grep 'pass finished' "$run/daemon.log" | grep -q compaction || { tail -20 "$run/daemon.log"; exit 1; }
samples=""
last=0
for at in 1 5 15 30; do
  sleep $((at - last)); last=$at
  samples="$samples ${at}s=$(awk '/VmRSS/ {printf "%d", $2/1024}' /proc/$pid/status)MiB"
done
hwm=$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$pid/status)
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT
files=$(grep -c '' <(find "$run/warehouse" -name '*.parquet') || true)
printf 'compaction pass done (%s parquet files on disk now); peak RSS %s MiB; idle RSS after the pass:%s\n' \
  "$files" "$hwm" "$samples"
