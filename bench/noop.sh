#!/usr/bin/env bash
# A compaction pass over many tables with nothing to do, and the daemon's memory when idle.
#
#   bash bench/noop.sh              # TENANTS=10 DATASETS=100: 1,000 traces tables, 2 hours x 1 file each
#
# Every partition holds one file (below `min_input_files`), so no table has work. Measures
#   once:   `signaldb-compactor once compaction` (a fresh process: every table is read once), /usr/bin/time -v
#   daemon: `signaldb-compactor run` polling every 2 s (interval 1 h); the "pass finished" log lines give
#           the first pass (reads every table) and the later polls (tables whose pointer did not move are
#           not read: the poll's time is the catalog's, two queries); then the process's RSS once idle
#           (VmRSS from /proc, 2 s after a poll).
# Needs the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench/noop}
TENANTS=${TENANTS:-10}
DATASETS=${DATASETS:-100}
PORT=${PORT:-19391}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
if [ ! -f "$WORK/generate.json" ]; then
  rm -rf "$WORK" && mkdir -p "$WORK"
  "$BIN" generate --dir "$WORK" --tenants "$TENANTS" --datasets "$DATASETS" --hours 2 --files-per-hour 1 \
      --rows-per-file 10 --tables traces --end 2026-01-20T01:30:00Z --concurrency 4 --json > "$WORK/generate.json.tmp"
  mv "$WORK/generate.json.tmp" "$WORK/generate.json"
fi
cat > "$WORK/signaldb.toml" <<TOML
[schema]
catalog_uri = "sqlite:$WORK/catalog.db"
[storage]
dsn = "file://$WORK/warehouse"
[compactor]
interval = "1h"
poll_interval = "2s"
[compactor.http]
listen = "127.0.0.1:$PORT"
TOML
tables=$(python3 -c "import json;print(json.load(open('$WORK/generate.json'))['tables'])" 2>/dev/null || echo "?")

(cd "$WORK" && /usr/bin/time -v "$BIN" once compaction --json > once.json 2> once.err) || { tail -20 "$WORK/once.err"; exit 1; }
python3 - "$WORK" <<'PY'
import json, re, sys
d = sys.argv[1]
report = json.load(open(f"{d}/once.json"))[0]
err = open(f"{d}/once.err").read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", err).group(1)
secs = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) // 1024
statuses = {}
for t in report["tables"]:
    statuses[t["status"]] = statuses.get(t["status"], 0) + 1
print(f"once compaction: tables {len(report['tables'])} {statuses}  wall {secs:.2f}s  peak RSS {rss} MiB")
PY

# A poll with nothing changed logs its "pass finished" line at debug.
(cd "$WORK" && RUST_LOG=info,signaldb_compactor::service::periodic=debug exec "$BIN" run > daemon.log 2>&1) &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  [ "$(grep 'pass finished' "$WORK/daemon.log" | grep -c compaction || true)" -ge 6 ] && break
  sleep 1
done
sleep 2
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT
python3 - "$WORK" "$rss_kb" <<'PY'
import re, sys
d, rss_kb = sys.argv[1], int(sys.argv[2])
passes = [int(m.group(1)) for line in open(f"{d}/daemon.log")
          if "pass finished" in line and "compaction" in line
          for m in [re.search(r"elapsed_ms[=\": ]+(\d+)", line)] if m]
print(f"daemon compaction passes (ms): {passes}  (first reads every table; later polls read none)")
if len(passes) > 1:
    later = sorted(passes[1:])
    print(f"no-op polls: median {later[len(later) // 2]} ms, max {later[-1]} ms over {len(later)} polls")
print(f"daemon idle RSS after the passes: {rss_kb // 1024} MiB")
PY
