#!/usr/bin/env bash
# The predictor of gains where no fix can be tried (issue 24 item 3),
# checked on the built-in slow/fast twins, side by side in one script run:
#   predicted: `profkit profile` of the slow twin alone → findings.json's
#              advice section (`predicted.change`), nothing of the fast twin;
#   measured:  PAIRS alternating `profkit run` of slow and fast on one
#              database: mean latency per operation, gain = 1 − geometric
#              mean of the paired ratios fast ÷ slow (95 % t interval);
#              for the leak pair, `profkit leaks` of each: the live heap's
#              slope (bytes retained per operation), gain = 1 − fast ÷ slow.
# Prints one line per pair: predicted gain, measured gain, their ratio and
# whether the prediction is within ±25 % of the measured gain.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-20000}
PAIRS=${PAIRS:-5}
cargo build --release --quiet --bin profkit
T=${CARGO_TARGET_DIR:-target}
P=$(realpath -m "$T/release/profkit")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The slow twin's predicted change (negative: a gain), from its profile.
predicted() {
  local w=$1 heap=$2
  "$P" profile --workloads "$w" --rows "$ROWS" $heap --out "$work/prof" >/dev/null 2>&1
  local dir
  dir=$(ls -d "$work"/prof/*-"$w" | tail -1)
  python3 - "$dir/findings.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
p = next((a["predicted"] for a in d.get("advice", []) if a.get("predicted")), None)
print(p["change"] if p else "nan")
print((p or {}).get("basis", "no prediction"), file=sys.stderr)
EOF
}

# Mean latency, median latency and CPU time per operation of a run.
figures() { python3 -c "import json,sys; d=json.load(sys.stdin); l=d['latency']; c=d['cpu']; print(f\"{l['mean']}:{l['p50']}:{(c['user']+c['system'])/max(d['ops'],1)}\")"; }

# Measured change, fast against slow, from alternating runs: of the mean
# latency (the verdict), and of the median latency and the CPU time per
# operation (less moved by other processes' load).
measured_latency() {
  local slow=$1 fast=$2 slow_ops=$3 fast_ops=$4
  local db="$work/db-$ROWS.sqlite" runs=""
  for _ in $(seq "$PAIRS"); do
    s=$("$P" run "$slow" --rows "$ROWS" --db "$db" --ops "$slow_ops" --out "$work/runs" --json | figures)
    f=$("$P" run "$fast" --rows "$ROWS" --db "$db" --ops "$fast_ops" --out "$work/runs" --json | figures)
    runs="$runs $s,$f"
  done
  python3 - $runs <<'EOF2'
import math, sys
pairs = [tuple(tuple(map(float, side.split(":"))) for side in a.split(",")) for a in sys.argv[1:]]
def change(i):
    logs = [math.log(f[i] / s[i]) for s, f in pairs]
    n = len(logs); m = sum(logs) / n
    sd = math.sqrt(sum((l - m) ** 2 for l in logs) / (n - 1)) if n > 1 else float("inf")
    t = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}.get(n - 1, 2.0)
    h = t * sd / math.sqrt(n)
    return math.exp(m) - 1, math.exp(m - h) - 1, math.exp(m + h) - 1
n = len(pairs)
c, lo, hi = change(0)
slow = sorted(s[0] for s, _ in pairs)[n // 2]; fast = sorted(f[0] for _, f in pairs)[n // 2]
med, cpu = change(1)[0], change(2)[0]
print(f"{c} {lo} {hi} {slow} {fast} {med} {cpu}")
EOF2
}

# Measured change of bytes retained per operation (the live heap's slope).
measured_leak() {
  local slope=""
  for w in "$1" "$2"; do
    "$P" leaks "$w" --rows "$ROWS" --out "$work/runs" >/dev/null 2>&1 || true
    dir=$(ls -d "$work"/runs/*-"$w" | tail -1)
    slope="$slope $(python3 -c "import json; print(json.load(open('$dir/leaks.json'))['total_slope_bytes_per_op'])")"
  done
  python3 -c "import sys; s, f = map(float, sys.argv[1:]); print(f'{f / s - 1} nan nan {s} {f} nan nan')" $slope
}

report() {
  python3 - "$@" <<'EOF'
import sys
pair, pred, change, lo, hi, slow, fast, med, cpu, unit = sys.argv[1:11]
pred, change, lo, hi, slow, fast, med, cpu = map(float, (pred, change, lo, hi, slow, fast, med, cpu))
g, mg = -pred, -change
ratio = g / mg if mg else float("nan")
iv = "" if lo != lo else f" (95 % interval {-100*hi:.0f} to {-100*lo:.0f} %)"
if unit == "ns":
    fig = f"{slow/1e6:.3f} ms → {fast/1e6:.3f} ms"
else:
    fig = f"{slow:.1f} → {fast:.1f} B/op"
ok = "within ±25 %" if abs(ratio - 1) <= 0.25 else "OUTSIDE ±25 %"
other = "" if med != med else f"; median {-100*med:.1f} %, CPU/op {-100*cpu:.1f} %"
print(f"{pair:45s} predicted gain {100*g:5.1f} %   measured {100*mg:5.1f} %{iv}  [{fig}{other}]   ratio {ratio:.2f}  {ok}")
EOF
}

echo "rows $ROWS, $PAIRS pairs of alternating runs per latency pair, release build, $(nproc) cores, $(date -u +%F)"
for spec in "n-plus-one n-plus-one-batched 1000 1000" \
            "random-emails-naive random-emails 60 2000" \
            "search-like fts-search 15 2000"; do
  set -- $spec
  p=$(predicted "$1" --no-heap 2>"$work/basis")
  m=$(measured_latency "$1" "$2" "$3" "$4")
  report "$1 → $2 (mean latency)" "$p" $m ns
  echo "    basis: $(cat "$work/basis")"
done
p=$(predicted leaky-cache "" 2>"$work/basis")
m=$(measured_leak leaky-cache bounded-cache)
report "leaky-cache → bounded-cache (B retained/op)" "$p" $m bytes
echo "    basis: $(cat "$work/basis")"
