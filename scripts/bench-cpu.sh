#!/usr/bin/env bash
# CPU profiling benchmarks: sample capture per sampler, frequency and thread
# count, wall-time overhead of each sampler at its default frequency, SVG
# render time.
# Usage: scripts/bench-cpu.sh [runs]   (runs: alternating pairs, default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-7}
cargo build --release --quiet
BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/profkit"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
last_run() { ls -d profiles/*-"$1" | sort | tail -1; }

echo "## Sample capture: samples / (frequency x process CPU seconds), hot-loop, 2 s"
printf "%-8s %-6s %-8s %-10s %-12s %-8s\n" sampler threads freq_hz samples eff_hz capture
for sampler in itimer perf; do
 for threads in 1 2; do
  for f in 199 499 997 1999; do
    "$BIN" cpu hot-loop --duration 2s --warmup 0 --threads "$threads" --frequency "$f" --sampler "$sampler" >/dev/null 2>&1
    d=$(last_run hot-loop)
    printf "%-8s %-6s %-8s %-10s %-12s %-8s\n" "$sampler" "$threads" "$f" \
      "$(json "$d/cpu.json" 'd["samples"]')" \
      "$(json "$d/cpu.json" 'round(d["effective_rate"],1)')" \
      "$(json "$d/cpu.json" 'round(100*d["capture"],1)')%"
  done
 done
done

echo
echo "## Wall-time overhead at each sampler's default frequency (itimer 199 Hz, perf 997 Hz)"
echo "## ($RUNS alternating pairs; ratio = profiled / plain elapsed)"
overhead() {
  local sampler=$1 w=$2; shift 2
  local ratios=()
  for i in $(seq "$RUNS"); do
    "$BIN" run "$w" "$@" >/dev/null 2>&1
    local plain; plain=$(json "$(last_run "$w")/bench.json" 'd["elapsed"]')
    "$BIN" cpu "$w" --sampler "$sampler" "$@" >/dev/null 2>&1
    local prof; prof=$(json "$(last_run "$w")/bench.json" 'd["elapsed"]')
    ratios+=("$(python3 -c "print($prof/$plain)")")
  done
  python3 - "$sampler $w" "${ratios[@]}" <<'PY'
import statistics, sys
w, r = sys.argv[1], sorted(float(x) for x in sys.argv[2:])
print(f"{w:22} median {statistics.median(r):.3f}x  min {r[0]:.3f}x  max {r[-1]:.3f}x  runs {' '.join(f'{x:.3f}' for x in r)}")
PY
}
for sampler in itimer perf; do
  overhead "$sampler" search-like --rows 20000 --ops 400
  overhead "$sampler" alloc-churn --ops 200000
done

echo
echo "## SVG render time of the largest profile here"
# A profile with many distinct stacks: four threads of a mixed workload.
"$BIN" cpu random-emails --rows 20000 --threads 4 --duration 3s >/dev/null 2>&1 || true
big=$(ls -S profiles/*/cpu.folded | head -1)
echo "largest: $big ($(du -k "$big" | cut -f1) KiB)"
wc -l < "$big" | xargs echo "unique stacks:"
python3 - "$BIN" "$big" <<'PY'
import subprocess, sys, time, statistics
t = []
for _ in range(5):
    s = time.perf_counter()
    subprocess.run([sys.argv[1], "flamegraph", sys.argv[2], "-o", "big.svg"], check=True, capture_output=True)
    t.append(time.perf_counter() - s)
print(f"profkit flamegraph (incl. process start): median {1000*statistics.median(t):.1f} ms over 5")
PY
