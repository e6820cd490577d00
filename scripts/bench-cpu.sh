#!/usr/bin/env bash
# CPU profiling benchmarks: sample capture per sampler, frequency and thread
# count; cost of each per-thread sampler (signal and stack-copy) beside
# `perf record --call-graph dwarf`; agreement of the top-5 self frames with
# perf's; SVG render time.
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

SAMPLERS="itimer perf-signal perf-stack"
echo "## Sample capture: samples / (frequency x process CPU seconds), hot-loop, 2 s"
printf "%-12s %-8s %-8s %-10s %-12s %-8s\n" sampler threads freq_hz samples eff_hz capture
for sampler in $SAMPLERS; do
 for threads in 1 2; do
  for f in 199 997 1999; do
    "$BIN" cpu hot-loop --duration 2s --warmup 0 --threads "$threads" --frequency "$f" --sampler "$sampler" >/dev/null 2>&1
    d=$(last_run hot-loop)
    printf "%-12s %-8s %-8s %-10s %-12s %-8s\n" "$sampler" "$threads" "$f" \
      "$(json "$d/cpu.json" 'd["samples"]')" \
      "$(json "$d/cpu.json" 'round(d["effective_rate"],1)')" \
      "$(json "$d/cpu.json" 'round(100*d["capture"],1)')%"
  done
 done
done

# One round of a workload under every variant, in turn: plain `profkit run`,
# each sampler, and `perf record -F <f> --call-graph dwarf` of the plain run.
# Prints "variant cpu_ns_per_op elapsed_ns" per variant.
round() {
  local f=$1 w=$2; shift 2
  "$BIN" run "$w" "$@" >/dev/null 2>&1
  echo "run $(json "$(last_run "$w")/bench.json" '(d["cpu"]["user"]+d["cpu"]["system"])/d["ops"]') $(json "$(last_run "$w")/bench.json" 'd["elapsed"]')"
  for sampler in perf-signal perf-stack; do
    "$BIN" cpu "$w" --sampler "$sampler" --frequency "$f" "$@" >/dev/null 2>&1
    echo "$sampler $(json "$(last_run "$w")/bench.json" '(d["cpu"]["user"]+d["cpu"]["system"])/d["ops"]') $(json "$(last_run "$w")/bench.json" 'd["elapsed"]')"
  done
  if command -v perf >/dev/null; then
    perf record -q -e cpu-clock -F "$f" --call-graph dwarf -o perf.data -- "$BIN" run "$w" "$@" >/dev/null 2>&1
    echo "perf-record $(json "$(last_run "$w")/bench.json" '(d["cpu"]["user"]+d["cpu"]["system"])/d["ops"]') $(json "$(last_run "$w")/bench.json" 'd["elapsed"]')"
  fi
}

# Medians over $RUNS alternating rounds of the ratios to each round's plain run.
cost() {
  local f=$1 w=$2; shift 2
  for i in $(seq "$RUNS"); do round "$f" "$w" "$@"; done > rounds.txt
  python3 - "$w at $f Hz" <<'PY'
import statistics, sys
rounds, cur = [], {}
for line in open("rounds.txt"):
    v, cpu, wall = line.split()
    if v == "run" and cur:
        rounds.append(cur); cur = {}
    cur[v] = (float(cpu), float(wall))
rounds.append(cur)
print(f"{sys.argv[1]}: {len(rounds)} rounds; plain run median {statistics.median(r['run'][0] for r in rounds)/1000:.2f} us CPU/op")
for v in ("perf-signal", "perf-stack", "perf-record"):
    rs = [r for r in rounds if v in r]
    if not rs:
        continue
    c = sorted(r[v][0] / r["run"][0] for r in rs)
    w = sorted(r[v][1] / r["run"][1] for r in rs)
    print(f"  {v:12} CPU/op median {statistics.median(c):.3f}x ({c[0]:.3f}-{c[-1]:.3f})   wall median {statistics.median(w):.3f}x ({w[0]:.3f}-{w[-1]:.3f})")
PY
}

echo
echo "## Cost: process CPU per operation and wall time, ratio to plain \`profkit run\`"
echo "## ($RUNS alternating rounds: run, perf-signal, perf-stack, perf record --call-graph dwarf; medians)"
echo "## load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for f in 199 997 1999; do
  cost "$f" hot-loop --duration 2s --warmup 0 --threads 2
done
cost 997 search-like --rows 20000 --ops 400
cost 997 alloc-churn --ops 200000
echo "## load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

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
