#!/usr/bin/env bash
# The predictor of gains where no fix can be tried (issue 24 item 3),
# checked on the built-in slow/fast twins, side by side in one script run:
#   predicted: `profkit profile` of the slow twin alone → findings.json's
#              advice section (`predicted.change`), nothing of the fast twin;
#   measured:  PAIRS (12) alternating pairs of `profkit run` of slow and
#              fast on one database (which twin goes first alternates too).
#              Per run, the trimmed mean latency: the mean of the middle
#              80 % of its operations (TRIM=0.1 cut from each end, read from
#              the run's latency histogram), so that an operation stalled
#              behind another process on this shared machine does not move
#              it. Gain = 1 − fast ÷ slow: the Hodges–Lehmann estimate of the
#              paired log ratios with the exact Wilcoxon signed-rank 95 %
#              interval (the run is the unit; no normal law assumed). The
#              plain mean, the median and CPU time per operation beside it.
#              For the leak pair, `profkit leaks` of each: the live heap's
#              slope (bytes retained per operation), gain = 1 − fast ÷ slow.
# Prints one line per pair: predicted gain, measured gain, their ratio and
# whether the prediction is within ±25 % of the measured gain. RUNS=1 also
# prints every run's figures.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-20000}
PAIRS=${PAIRS:-12}
TRIM=${TRIM:-0.1}
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

# The figures of one run (bench JSON on stdin), colon-separated: trimmed
# mean, mean, median latency, CPU time per operation, slowest operation.
# The trimmed mean drops the fastest and the slowest TRIM of the run's
# operations (read from its latency histogram) and averages the rest.
figures() {
  python3 -c '
import json, sys
d = json.load(sys.stdin); l = d["latency"]; c = d["cpu"]
trim = float(sys.argv[1])
h = [(float(v), int(n)) for v, n in l["histogram"]]
total = sum(n for _, n in h); lo, hi = trim * total, (1 - trim) * total
seen = kept = acc = 0.0
for v, n in h:
    take = max(0.0, min(seen + n, hi) - max(seen, lo))
    acc += take * v; kept += take; seen += n
cpu = (c["user"] + c["system"]) / max(d["ops"], 1)
print(":".join(map(str, (acc / kept, l["mean"], l["p50"], cpu, l["max"]))))
' "$TRIM"
}

# Measured change, fast against slow, from PAIRS alternating pairs of runs
# on one database (the order within a pair alternates too: slow first in
# odd pairs, fast first in even ones, so a drift of the machine's load
# weighs on both sides alike). Per figure: the paired log ratios fast ÷ slow,
# their Hodges–Lehmann estimate (the median of the pairwise means) with the
# exact Wilcoxon signed-rank 95 % interval. The run is the unit; no normal
# law is assumed of runs that share a loaded machine with other processes.
measured_latency() {
  local slow=$1 fast=$2 slow_ops=$3 fast_ops=$4
  local db="$work/db-$ROWS.sqlite" runs="" i=0 s f
  one() { "$P" run "$1" --rows "$ROWS" --db "$db" --ops "$2" --out "$work/runs" --json | figures; }
  for _ in $(seq "$PAIRS"); do
    i=$((i + 1))
    if [ $((i % 2)) -eq 1 ]; then
      s=$(one "$slow" "$slow_ops"); f=$(one "$fast" "$fast_ops")
    else
      f=$(one "$fast" "$fast_ops"); s=$(one "$slow" "$slow_ops")
    fi
    runs="$runs $s,$f"
  done
  python3 - "$work/runs.log" $runs <<'EOF2'
import math, sys
log = open(sys.argv[1], "a")
pairs = [tuple(tuple(map(float, side.split(":"))) for side in a.split(",")) for a in sys.argv[2:]]
for k, (s, f) in enumerate(pairs, 1):
    side = lambda x: (f"trimmed {x[0]/1e3:.1f} mean {x[1]/1e3:.1f} p50 {x[2]/1e3:.1f} "
                      f"cpu {x[3]/1e3:.1f} max {x[4]/1e3:.0f} µs")
    print(f"pair {k:2d}: slow {side(s)} | fast {side(f)}", file=log)
def walsh_interval(xs):
    """Hodges–Lehmann estimate and exact Wilcoxon signed-rank 95 % interval."""
    n = len(xs)
    w = sorted((xs[i] + xs[j]) / 2 for i in range(n) for j in range(i, n))
    m = len(w)
    est = (w[(m - 1) // 2] + w[m // 2]) / 2
    counts = [1]                       # ways to reach each W+ over the 2^n signs
    for r in range(1, n + 1):
        nxt = [0] * (len(counts) + r)
        for v, c in enumerate(counts):
            nxt[v] += c; nxt[v + r] += c
        counts = nxt
    cum, k = 0, 0
    for c in counts:
        if (cum + c) / 2 ** n > 0.025:
            break
        cum += c; k += 1
    if k == 0:                          # n < 6: no 95 % interval exists
        return est, float("nan"), float("nan")
    return est, w[k - 1], w[m - k]
def change(i):
    est, lo, hi = walsh_interval([math.log(f[i] / s[i]) for s, f in pairs])
    return math.exp(est) - 1, math.exp(lo) - 1, math.exp(hi) - 1
n = len(pairs)
c, lo, hi = change(0)
slow = sorted(s[0] for s, _ in pairs)[n // 2]; fast = sorted(f[0] for _, f in pairs)[n // 2]
mean, med, cpu = change(1), change(2)[0], change(3)
print(f"{c} {lo} {hi} {slow} {fast} {med} {cpu[0]} {mean[0]} {mean[1]} {mean[2]} {cpu[1]} {cpu[2]}")
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
  python3 -c "import sys; s, f = map(float, sys.argv[1:]); print(f'{f / s - 1} nan nan {s} {f} nan nan nan nan nan nan nan')" $slope
}

report() {
  python3 - "$@" <<'EOF'
import sys
pair, pred, change, lo, hi, slow, fast, med, cpu, mean, mlo, mhi, clo, chi, unit = sys.argv[1:16]
pred, change, lo, hi, slow, fast, med, cpu, mean, mlo, mhi, clo, chi = map(
    float, (pred, change, lo, hi, slow, fast, med, cpu, mean, mlo, mhi, clo, chi))
g, mg = -pred, -change
ratio = g / mg if mg else float("nan")
iv = lambda a, b: "" if a != a else f" ({-100*b:.0f} to {-100*a:.0f} %)"
if unit == "ns":
    fig = f"{slow/1e6:.3f} ms → {fast/1e6:.3f} ms"
else:
    fig = f"{slow:.1f} → {fast:.1f} B/op"
ok = "within ±25 %" if abs(ratio - 1) <= 0.25 else "OUTSIDE ±25 %"
other = "" if med != med else (
    f"; mean {-100*mean:.1f} %{iv(mlo, mhi)}, median {-100*med:.1f} %, "
    f"CPU/op {-100*cpu:.1f} %{iv(clo, chi)}, ratio {g / -cpu:.2f} on CPU/op")
what = "trimmed mean" if unit == "ns" else "slope"
print(f"{pair:40s} predicted gain {100*g:5.1f} %   measured ({what}) {100*mg:5.1f} %{iv(lo, hi)}  [{fig}{other}]   ratio {ratio:.2f}  {ok}")
EOF
}

echo "rows $ROWS, $PAIRS pairs of alternating runs per latency pair, trimmed mean of the middle $(python3 -c "print(round(100 - 200 * $TRIM))") % of operations, release build, $(nproc) cores, $(date -u '+%F %H:%M'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for spec in "n-plus-one n-plus-one-batched 1000 1000" \
            "random-emails-naive random-emails 60 2000" \
            "search-like fts-search 15 2000"; do
  set -- $spec
  p=$(predicted "$1" --no-heap 2>"$work/basis")
  m=$(measured_latency "$1" "$2" "$3" "$4")
  report "$1 → $2" "$p" $m ns
  echo "    basis: $(cat "$work/basis")"
  if [ -n "${RUNS:-}" ]; then sed 's/^/    /' "$work/runs.log"; fi
  : >"$work/runs.log"
done
p=$(predicted leaky-cache "" 2>"$work/basis")
m=$(measured_leak leaky-cache bounded-cache)
report "leaky-cache → bounded-cache (B retained/op)" "$p" $m bytes
echo "    basis: $(cat "$work/basis")"
