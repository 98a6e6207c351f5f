#!/usr/bin/env bash
# Compaction throughput vs DuckDB, DataFusion and delta-rs on the same small files, in one run on one machine.
#
#   bash bench/compaction.sh            # FILES=1000 ROWS=1500 (~80 KB traces files), all variants
#   VARIANTS="sorted unsorted-files" bash bench/compaction.sh
#
# Variants (each a fresh warehouse made by `generate`):
#   nosort          table without a sort order; peers copy without ORDER BY; delta-rs optimize.compact()
#   sorted          sort order (timestamp, trace_id); files sorted by it and claiming it (SignalDB's writer)
#   unsorted-files  same sort order declared, files neither sorted nor claiming it (`--unsorted-files`)
#   sorted-windowed like `sorted`, but file i of FILES covers its own stretch of the hour (stretches i and
#                   i+1 of FILES), as an ingest writer's successive flushes do (`--windowed-files`)
#   sorted-10x100   like `sorted`, but FILES spread over 10 hour partitions (10 x 100 files)
# For each it measures
#   ours:       signaldb-compactor once compaction (end to end: manifests, rewrite, commit), /usr/bin/time -v
#   duckdb:     COPY (SELECT * FROM read_parquet([...]) [ORDER BY ...]) TO ... zstd level 1, per partition
#   duck@MB:    the same under DuckDB's `memory_limit` of MEMORY_MB (our budget; DuckDB then spills too)
#   datafusion: the same in DataFusion (Python bindings) under a FairSpillPool of MEMORY_MB (default 256,
#               our default memory_limit_mb), both cores
#   delta-rs:   (nosort only) the same files as a Delta table, one commit per file, then optimize.compact()
# and prints wall time, peak RSS and our throughput relative to each peer (> 1: we are faster).
# Peers are timed inside Python (no interpreter start-up, no catalog work); ours includes process start,
# reading the manifests and the commit. Needs the release binary and `pip install duckdb datafusion deltalake`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/signaldb-compactor/target}/release/signaldb-compactor}
WORK=${WORK:-/tmp/signaldb-compactor-bench}
FILES=${FILES:-1000}
ROWS=${ROWS:-1500}
MEMORY_MB=${MEMORY_MB:-256}
VARIANTS=${VARIANTS:-nosort sorted sorted-windowed unsorted-files sorted-10x100}
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release" >&2; exit 2; }
python3 -c 'import duckdb, datafusion, deltalake' 2>/dev/null || { echo "pip install duckdb datafusion deltalake" >&2; exit 2; }

peak_rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
wall_s() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$1"; }
# A peer that failed (DataFusion under its pool) prints "failed" and its error goes to DIR/errors.txt.
seconds() { python3 -c "
import json, os; r = json.load(open('$1'))
if r['seconds'] is None: open(os.path.dirname('$1') + '/errors.txt', 'a').write(r['error'] + '\\n'); print('failed')
else: print('%.2f' % r['seconds'])"; }
# peer NAME DIR ORDER: runs a peer under /usr/bin/time -v; prints "seconds rss".
peer() {
  local name=$1 dir=$2 order=$3
  /usr/bin/time -v python3 bench/peers.py "$name" "$dir" "$order" "$MEMORY_MB" > "$dir/$name.json" 2> "$dir/$name.err" \
    || { cat "$dir/$name.err" >&2; exit 1; }
  echo "$(seconds "$dir/$name.json") $(peak_rss_mib "$dir/$name.err")"
}

printf '%-15s %8s | %7s %7s | %7s %7s %6s | %7s %7s %6s | %7s %7s %6s | %7s %7s %6s\n' variant input_MB \
  ours_s RSS duck_s RSS ratio duck@MB RSS ratio df_s RSS ratio delta_s RSS ratio
for variant in $VARIANTS; do
  dir="$WORK/$variant"
  rm -rf "$dir" && mkdir -p "$dir"
  flags=(--hours 1 --files-per-hour "$FILES" --end 2026-01-01T00:59:00Z)
  order='ORDER BY "timestamp", trace_id'
  case $variant in
    nosort) flags+=(--unsorted); order="" ;;
    sorted) ;;
    sorted-windowed) flags+=(--windowed-files) ;;
    unsorted-files) flags+=(--unsorted-files) ;;
    sorted-10x100) flags=(--hours 10 --files-per-hour $((FILES / 10)) --end 2026-01-01T09:59:00Z) ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
  "$BIN" generate --dir "$dir" --tenants 1 --datasets 1 --rows-per-file "$ROWS" --tables traces \
      "${flags[@]}" --json > "$dir/generate.json"
  find "$dir/warehouse" -name '*.parquet' | sort > "$dir/inputs.txt"
  input_bytes=$(xargs stat -c %s < "$dir/inputs.txt" | awk '{s+=$1} END {print s}')
  printf '[schema]\ncatalog_uri = "sqlite:%s/catalog.db"\n[storage]\ndsn = "file://%s/warehouse"\n[compactor]\nmemory_limit_mb = %s\n' \
      "$dir" "$dir" "$MEMORY_MB" > "$dir/signaldb.toml"

  (cd "$dir" && /usr/bin/time -v "$BIN" once compaction --json > ours.json 2> ours.err) || { cat "$dir/ours.err"; exit 1; }
  read -r duck_s duck_rss < <(peer duckdb "$dir" "$order")
  read -r duckl_s duckl_rss < <(peer duckdb-limited "$dir" "$order")
  read -r df_s df_rss < <(peer datafusion "$dir" "$order")
  delta_s=-; delta_rss=-
  if [ "$variant" = nosort ]; then
    python3 bench/peers.py delta-load "$dir" > "$dir/delta-load.json"
    read -r delta_s delta_rss < <(peer delta-compact "$dir" "")
  fi
  python3 - "$variant" "$input_bytes" "$(wall_s "$dir/ours.err")" "$(peak_rss_mib "$dir/ours.err")" \
      "$duck_s" "$duck_rss" "$duckl_s" "$duckl_rss" "$df_s" "$df_rss" "$delta_s" "$delta_rss" "$dir" <<'PY'
import json, sys
variant, size, ours, ours_rss, duck, duck_rss, duckl, duckl_rss, df, df_rss, delta, delta_rss, d = sys.argv[1:]
size, ours = int(size) / 1e6, float(ours)
tables = json.load(open(f"{d}/ours.json"))[0]["tables"]
assert all(t["status"] == "succeeded" for t in tables), tables
def ratio(peer):
    return "-" if peer in ("-", "failed") else f"{float(peer) / ours:.2f}x"
before = sum(t["files_before"] for t in tables)
after = sum(t["files_after"] for t in tables)
print(f"{variant:<15} {size:8.1f} | {ours:7.2f} {ours_rss:>7} | {duck:>7} {duck_rss:>7} {ratio(duck):>6} | "
      f"{duckl:>7} {duckl_rss:>7} {ratio(duckl):>6} | {df:>7} {df_rss:>7} {ratio(df):>6} | {delta:>7} {delta_rss:>7} {ratio(delta):>6}   (files {before} -> {after})")
PY
  [ ! -f "$dir/errors.txt" ] || sed 's/^/    peer error: /' "$dir/errors.txt"
done
echo "ratio = peer seconds / our seconds (our throughput relative to the peer); RSS in MiB"
