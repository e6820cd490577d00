#!/usr/bin/env bash
# Cost of the latency breakdown (issue 13) on point-read, the cheapest
# database operation: the build before it (PK_BASE) and the current build
# (PK_NEW), run alternately on one populated database file, 7 rounds of
# 300k operations each. Prints the median throughput and p50 of each and
# their ratio. Target: ≤ 1.03×.
#
#   PK_BASE=/path/to/profkit-before PK_NEW=/path/to/profkit scripts/bench-breakdown.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PK_BASE:-}" ]; then
    echo "## breakdown: set PK_BASE to a profkit binary built before the latency breakdown; skipped"
    exit 0
fi
PK_NEW=${PK_NEW:-${CARGO_TARGET_DIR:-target}/release/profkit}
ROUNDS=${ROUNDS:-7}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
DB="$OUT/point-read.db"
"$PK_NEW" run point-read --ops 1000 --db "$DB" --out "$OUT/runs" --json >/dev/null
one() {
    "$1" run point-read --ops 300000 --warmup 30000 --db "$DB" --out "$OUT/runs" --json |
        python3 -c "import json,sys; r=json.load(sys.stdin); print(r['throughput'], r['latency']['p50'])"
}
: >"$OUT/base"; : >"$OUT/new"
for i in $(seq "$ROUNDS"); do
    one "$PK_BASE" >>"$OUT/base"
    one "$PK_NEW" >>"$OUT/new"
done
python3 - "$OUT/base" "$OUT/new" <<'PY'
import statistics, sys
def load(p):
    rows = [tuple(map(float, l.split())) for l in open(p)]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
(bt, bp), (nt, np_) = load(sys.argv[1]), load(sys.argv[2])
print("## breakdown: point-read, alternating runs, medians of %d" % len(open(sys.argv[1]).readlines()))
print("before: %.0f ops/s, p50 %.0f ns" % (bt, bp))
print("after:  %.0f ops/s, p50 %.0f ns" % (nt, np_))
print("cost: %.3fx by throughput, %.3fx by p50" % (bt / nt, np_ / bp))
PY
