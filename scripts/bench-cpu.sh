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
echo "## Agreement: top-5 self frames of the workers, profkit cpu vs perf record --call-graph dwarf"
echo "## (kernel frames folded into their user-space caller; inlined functions are frames on both sides)"
agree() {
  local w=$1; shift
  "$BIN" cpu "$w" "$@" >/dev/null 2>&1
  local folded; folded="$(last_run "$w")/cpu.folded"
  perf record -q -e cpu-clock -F 997 --call-graph dwarf -o perf.data -- "$BIN" run "$w" "$@" >/dev/null 2>&1
  perf script -i perf.data -F comm,tid,ip,sym,dso 2>/dev/null > perf.txt
  python3 - "$w" "$folded" perf.txt <<'PY'
import collections, re, sys
w, folded, script = sys.argv[1:4]
def norm(f):
    return re.sub(r"::h[0-9a-f]{16}$", "", f.strip()).replace(";", ",")
prof = collections.Counter()
for line in open(folded):
    stack, n = line.rstrip("\n").rsplit(" ", 1)
    frames = stack.split(";")
    if frames[0].startswith("pk-worker"):
        prof[norm(frames[-1])] += int(n)
perf = collections.Counter()
for block in open(script).read().split("\n\n"):
    lines = [l for l in block.splitlines() if l.strip()]
    if not lines or not lines[0].startswith("pk-worker"):
        continue
    leaf = "[kernel]"
    for l in lines[1:]:
        m = re.match(r"\s*[0-9a-f]+ (.*) \((.*)\)$", l)
        if m and m.group(2) != "[kernel.kallsyms]":
            leaf = norm(m.group(1).split("+0x")[0])
            break
    perf[leaf] += 1
def top(c):
    t = sum(c.values()) or 1
    return [(f, 100 * n / t) for f, n in c.most_common(5)]
a, b = top(prof), top(perf)
same = {f for f, _ in a} & {f for f, _ in b}
print(f"{w}: {len(same)} of 5 agree (profkit {sum(prof.values())} worker samples, perf {sum(perf.values())})")
for i in range(5):
    pa = f"{a[i][1]:5.1f} % {a[i][0][:60]}" if i < len(a) else ""
    pb = f"{b[i][1]:5.1f} % {b[i][0][:60]}" if i < len(b) else ""
    print(f"  {pa:70} | {pb}")
PY
}
if command -v perf >/dev/null; then
  agree search-like --rows 20000 --ops 400
  agree alloc-churn --ops 200000
fi

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
