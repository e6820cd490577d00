#!/usr/bin/env bash
# Benchmarks recorded in BENCHMARKS.md. Runs on release builds; takes a few
# minutes. Each part prints its figures; ratios are measured side by side in
# one process or one run of this script.
#
#   scripts/bench.sh            everything
#   scripts/bench.sh db         only the foundation part (db, sql are built in)
#   scripts/bench.sh cpu heap   only those parts (scripts/bench-<part>.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(db sql $(ls scripts/bench-*.sh 2>/dev/null | sed 's#scripts/bench-\(.*\)\.sh#\1#'))

cargo build --release --quiet
PK="${CARGO_TARGET_DIR:-target}/release/profkit"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# One workload run as JSON, summarised by a python one-liner.
field() { python3 -c "import json,sys; r=json.load(sys.stdin); print($1)"; }

db_part() {
    echo "## db: DatabaseManager vs a plain rusqlite loop (same process, alternating)"
    cargo bench --quiet --bench db_overhead 2>/dev/null
    echo
    echo "## db: SQLite tuning side by side (50,000 point reads; 2 MB cache, no mmap, then profkit's settings)"
    PROFKIT_BENCH_READS=50000 PROFKIT_BENCH_CACHE_KIB=2000 PROFKIT_BENCH_MMAP=0 \
        cargo bench --quiet --bench db_overhead 2>/dev/null | grep -i '^point read' | sed 's/^/defaults: /'
    PROFKIT_BENCH_READS=50000 \
        cargo bench --quiet --bench db_overhead 2>/dev/null | grep -i '^point read' | sed 's/^/tuned:    /'
    echo
    echo "## db: for the record (100k rows)"
    $PK run random-emails --out "$OUT" --json | field \
        "'random-emails(100): p50 %.3f ms  p95 %.3f ms  mean %.3f ms' % (r['latency']['p50']/1e6, r['latency']['p95']/1e6, r['latency']['mean']/1e6)"
    $PK run random-emails-naive --out "$OUT" --json | field \
        "'random-emails-naive(100): p50 %.3f ms  p95 %.3f ms' % (r['latency']['p50']/1e6, r['latency']['p95']/1e6)"
    $PK run point-read --out "$OUT" --json | field \
        "'point-read: p50 %.2f us  p99 %.2f us  %.0f ops/s' % (r['latency']['p50']/1e3, r['latency']['p99']/1e3, r['throughput'])"
    for t in 1 2; do
        $PK run concurrent-write --threads "$t" --ops 4000 --out "$OUT" --json | field \
            "'concurrent-write $t thread(s): %.0f ops/s  p50 %.3f ms  p99 %.3f ms  errors %d  rows written %d' % (r['throughput'], r['latency']['p50']/1e6, r['latency']['p99']/1e6, r['errors'], r['metrics']['rows_written'])"
    done
    $PK run mixed --out "$OUT" --json | field \
        "'mixed (4 threads): %.0f ops/s, peak RSS %.1f MiB' % (r['throughput'], r['memory']['peak_rss']/2**20)"
    $PK run tenant-isolation --out "$OUT" --json | field \
        "'tenant-isolation: scoped %.1f us, unscoped %.1f us, ratio %.3f' % (r['metrics']['scoped_mean_ns']/1e3, r['metrics']['unscoped_mean_ns']/1e3, r['metrics']['scoping_cost_ratio'])"
}

sql_part() {
    echo "## sql: trace hook on vs off (same process, alternating)"
    cargo bench --quiet --bench sql_overhead 2>/dev/null
    echo
    echo "## sql: top finding per twin (100k rows)"
    for w in search-like fts-search random-emails-naive random-emails n-plus-one n-plus-one-batched; do
        $PK sql "$w" --out "$OUT" >/dev/null
        run=$(ls -td "$OUT"/*-"$w" | head -1)
        python3 -c "import json; f=json.load(open('$run/findings.json'))['findings']; print('$w:', (('[%s] %s' % (f[0]['severity'], f[0]['title'])) if f else 'no findings'))"
    done
}

for part in "${parts[@]}"; do
    if [ "$part" = db ]; then
        db_part
    elif [ "$part" = sql ]; then
        sql_part
    elif [ -x "scripts/bench-$part.sh" ] || [ -f "scripts/bench-$part.sh" ]; then
        echo "## $part"
        bash "scripts/bench-$part.sh"
    else
        echo "no benchmark part '$part'" >&2
        exit 2
    fi
    echo
done
