#!/usr/bin/env bash
# Orphan cleanup at scale: TABLES x FILES objects (default 10 x 100,000 = 1,000,000), 10 % orphans.
#
#   bash bench/orphans.sh
#
# Builds the warehouse with examples/orphan_bench_setup.rs, ages every object 3 days, then times a real
# (non-dry-run) `signaldb-compactor once orphans` with /usr/bin/time -v: wall time, peak RSS, deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}
BIN=${BIN:-$TARGET/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench/orphans}
TABLES=${TABLES:-10}; FILES=${FILES:-100000}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
rm -rf "$WORK" && mkdir -p "$WORK"
CARGO_TARGET_DIR=$TARGET cargo run --quiet --release --example orphan_bench_setup -- "$WORK" "$TABLES" "$FILES" 10 | tail -1
find "$WORK/warehouse" -type f -exec touch -d '3 days ago' {} +
objects=$(find "$WORK/warehouse" -type f | wc -l)
cat > "$WORK/signaldb.toml" <<TOML
[schema]
catalog_uri = "sqlite:$WORK/catalog.db"
[storage]
dsn = "file://$WORK/warehouse"
[compactor.orphan_cleanup]
enabled = true
dry_run = false
batch_size = 1000
TOML
(cd "$WORK" && /usr/bin/time -v "$BIN" once orphans --json > orphans.json 2> orphans.err) || { tail -20 "$WORK/orphans.err"; exit 1; }
python3 - "$WORK" "$objects" <<'PY'
import json, re, sys
d, objects = sys.argv[1], int(sys.argv[2])
report = json.load(open(f"{d}/orphans.json"))[0]
err = open(f"{d}/orphans.err").read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", err).group(1)
secs = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) // 1024
deleted = sum(t["files_after"] for t in report["tables"])
print(f"objects {objects}  tables {len(report['tables'])}  orphans deleted {deleted}  wall {secs:.2f}s  peak RSS {rss} MiB")
PY
