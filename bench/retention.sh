#!/usr/bin/env bash
# Retention at scale: ~10,000 expired hour partitions over 40 tables, evaluated and dropped in one pass.
#
#   bash bench/retention.sh          # TABLES = 2 tenants x 20 datasets (traces), HOURS=275, 1 file/hour
#
# Generates the warehouse (hours ending 2026-01-20, long past), then times `signaldb-compactor once
# retention` (traces kept 1 day + 1 h grace on the wall clock, so every one of the 275 hours of every
# table has expired: 11,000 partitions) with /usr/bin/time -v, and prints partitions dropped, wall time
# and peak RSS. Needs the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench/retention}
HOURS=${HOURS:-275}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
end=2026-01-20T00:30:00Z
# The generated warehouse is kept beside $WORK (generation takes minutes) and copied back for each run:
# metadata and manifests hold absolute paths, so the copy is restored to the same place.
PRISTINE="$WORK.pristine-$HOURS"
if [ ! -f "$PRISTINE/generate.json" ]; then
  rm -rf "$WORK" "$PRISTINE" && mkdir -p "$WORK"
  "$BIN" generate --dir "$WORK" --tenants 2 --datasets 20 --hours "$HOURS" --files-per-hour 1 --rows-per-file 10 \
      --tables traces --end "$end" --concurrency 4 --json > "$WORK/generate.json"
  cp -a "$WORK" "$PRISTINE"
fi
rm -rf "$WORK" && cp -a "$PRISTINE" "$WORK"
gen_s=$(python3 -c "import json;print('%.1f'%json.load(open('$WORK/generate.json'))['elapsed_secs'])")
cat > "$WORK/signaldb.toml" <<TOML
[schema]
catalog_uri = "sqlite:$WORK/catalog.db"
[storage]
dsn = "file://$WORK/warehouse"
[compactor.retention]
enabled = true
traces_retention_days = 1
TOML
(cd "$WORK" && /usr/bin/time -v "$BIN" once retention --json > retention.json 2> retention.err) || { tail -20 "$WORK/retention.err"; exit 1; }
python3 - "$WORK" "$gen_s" <<'PY'
import json, re, sys
d, gen_s = sys.argv[1], sys.argv[2]
report = json.load(open(f"{d}/retention.json"))[0]
err = open(f"{d}/retention.err").read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", err).group(1)
parts = [float(x) for x in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) // 1024
dropped = sum(1 for t in report["tables"] for p in t.get("partition_reports", []) if p["status"] == "succeeded")
failed = sum(1 for t in report["tables"] if t["status"] == "failed")
print(f"tables {len(report['tables'])}  partitions dropped {dropped}  failed tables {failed}  "
      f"wall {secs:.2f}s  peak RSS {rss} MiB  (generation {gen_s}s)")
PY
