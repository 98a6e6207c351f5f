#!/usr/bin/env bash
# Compaction throughput vs DuckDB on the same small files, in one run on one machine.
#
#   bash bench/compaction.sh            # FILES=1000 ROWS=1500 (~100 KB traces files, one partition)
#
# For each variant (a table without a sort order, and one sorted by timestamp, trace_id) it generates a
# fresh warehouse, copies the input file list, then measures
#   ours:   signaldb-compactor once compaction (end to end: manifests, rewrite, commit), /usr/bin/time -v
#   duckdb: COPY (SELECT * FROM read_parquet([...]) [ORDER BY ...]) TO ... (FORMAT parquet, COMPRESSION zstd)
# and prints wall time, input MB/s, peak RSS and the ratio. Needs the release binary and `pip install duckdb`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench}
FILES=${FILES:-1000}
ROWS=${ROWS:-1500}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
python3 -c 'import duckdb' 2>/dev/null || { echo "pip install duckdb" >&2; exit 2; }

peak_rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
wall_s() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$1"; }

printf '%-9s %8s %10s %10s %10s %10s %10s %8s\n' variant input_MB ours_s ours_MB/s ours_RSS duck_s duck_MB/s ratio
for variant in unsorted sorted; do
  dir="$WORK/$variant"
  rm -rf "$dir" && mkdir -p "$dir"
  flag=""; order=""
  if [ "$variant" = unsorted ]; then flag="--unsorted"; else order="ORDER BY \"timestamp\", trace_id"; fi
  "$BIN" generate --dir "$dir" --tenants 1 --datasets 1 --hours 1 --files-per-hour "$FILES" \
      --rows-per-file "$ROWS" --tables traces $flag --end 2026-01-01T00:59:00Z --json > "$dir/generate.json"
  find "$dir/warehouse" -name '*.parquet' | sort > "$dir/inputs.txt"
  input_bytes=$(xargs stat -c %s < "$dir/inputs.txt" | awk '{s+=$1} END {print s}')
  printf '[schema]\ncatalog_uri = "sqlite:%s/catalog.db"\n[storage]\ndsn = "file://%s/warehouse"\n' "$dir" "$dir" > "$dir/signaldb.toml"

  (cd "$dir" && /usr/bin/time -v "$BIN" once compaction --json > ours.json 2> ours.err) || { cat "$dir/ours.err"; exit 1; }
  /usr/bin/time -v python3 - "$dir" "$order" > "$dir/duck.json" 2> "$dir/duck.err" <<'PY' || { cat "$dir/duck.err"; exit 1; }
import json, sys, time, duckdb
d, order = sys.argv[1], sys.argv[2]
files = [l.strip() for l in open(f"{d}/inputs.txt") if l.strip()]
con = duckdb.connect()
t = time.perf_counter()
con.execute(f"COPY (SELECT * FROM read_parquet({files!r}) {order}) TO '{d}/duck.parquet' (FORMAT parquet, COMPRESSION zstd)")
print(json.dumps({"seconds": time.perf_counter() - t}))
PY
  ours_s=$(wall_s "$dir/ours.err")
  duck_s=$(python3 -c "import json;print('%.2f'%json.load(open('$dir/duck.json'))['seconds'])")
  python3 - "$variant" "$input_bytes" "$ours_s" "$(peak_rss_mib "$dir/ours.err")" "$duck_s" "$(peak_rss_mib "$dir/duck.err")" "$dir" <<'PY'
import json, sys
variant, size, ours, ours_rss, duck, duck_rss, d = sys.argv[1:]
size, ours, duck = int(size) / 1e6, float(ours), float(duck)
report = json.load(open(f"{d}/ours.json"))[0]["tables"][0]
assert report["status"] == "succeeded", report
print(f"{variant:<9} {size:8.1f} {ours:10.2f} {size/ours:10.1f} {ours_rss+'MiB':>10} {duck:10.2f} {size/duck:10.1f} {duck/ours:7.2f}x"
      f"   (files {report['files_before']} -> {report['files_after']}, rows {report['rows']}, duckdb RSS {duck_rss}MiB)")
PY
done
