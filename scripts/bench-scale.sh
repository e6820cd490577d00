#!/usr/bin/env bash
# Scalability and load benchmarks, measured in one script run:
#  1. Harness overhead per operation on the no-op workload: closed loop
#     (elapsed ÷ ops) and open loop (1 ÷ the highest rate it can issue:
#     asks for 100M/s, far more than it can do, so it never waits).
#  2. Open-loop rate accuracy at 1k and 10k ops/s (target ±2 %).
#  3. Scaling efficiency of point-read and concurrent-write at 2 threads.
# Each figure is the median of REPEATS runs, with min–max as the noise.
# Usage: scripts/bench-scale.sh            (REPEATS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-5}
cargo build --release --quiet --bin profkit
BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/profkit"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# median, min, max of numbers on stdin
stats() { python3 -c '
import sys, statistics
v = sorted(float(x) for x in sys.stdin.read().split())
fmt = sys.argv[1]
print(("median " + fmt + "  (min " + fmt + ", max " + fmt + ", n=%d)") % (statistics.median(v), v[0], v[-1], len(v)))
' "$1"; }

echo "machine: $(nproc) cores, $(uname -r); REPEATS=$REPEATS"
echo
echo "## 1. Harness overhead per operation (noop)"
for _ in $(seq "$REPEATS"); do
  "$BIN" run noop --ops 2m --warmup 200000 --json | jq '.elapsed / .ops'
done | stats "%.1f ns/op" | sed 's/^/closed loop, 1 thread:   /'
for _ in $(seq "$REPEATS"); do
  "$BIN" run noop --rate 100m/s --duration 1s --warmup 0 --json | jq '1e9 / .achieved_rate'
done | stats "%.1f ns/op" | sed 's/^/open loop, 1 thread:     /'
echo

echo "## 2. Open-loop rate accuracy (noop, 2 s per run): achieved ÷ target"
for rate in 1000 10000; do
  for _ in $(seq "$REPEATS"); do
    "$BIN" run noop --rate "$rate/s" --duration 2s --json | jq '100 * .achieved_rate / .target_rate'
  done | stats "%.2f %%" | sed "s/^/$rate ops\/s: /"
  for _ in $(seq "$REPEATS"); do
    "$BIN" run noop --rate "$rate/s" --duration 2s --json | jq '.corrected.p99'
  done | stats "%.0f ns" | sed "s/^/$rate ops\/s corrected p99 (scheduler jitter): /"
done
echo

echo "## 3. Scaling efficiency at 2 threads (throughput(2) ÷ 2 × throughput(1)), 1 s per level, 100k rows"
for w in point-read concurrent-write; do
  for _ in $(seq "$REPEATS"); do
    "$BIN" sweep "$w" --threads 1,2 --duration 1s --json | jq '.levels[1].efficiency * 100'
  done | stats "%.0f %%" | sed "s/^/$w: /"
done
