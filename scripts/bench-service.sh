#!/usr/bin/env bash
# What profkit::service's tracing layer costs a saturated service
# (benches/service_overhead.rs): requests per second with no layer (none),
# with the layer idle (idle), with a per-endpoint recording open (record),
# with the CPU sampler alone and no layer (sampler), and with the layer
# while a labelled CPU profile is taken (profile). Two apps: `tiny` (one
# handler, ~30 µs of CPU a request, mostly the runtime's thread switches)
# and `shop`, the example's own service (examples/async_service.rs)
# loaded on its clean endpoint GET /orders/{id} (one sqlx query).
#
# Each round runs every mode once, the order turned by one each round;
# a mode's cost is judged round by round (its req/s over `none`'s in the
# same round: the machine's drift between rounds cancels), reported as
# the median of the per-round ratios with a distribution-free ~95 %
# interval (order statistics), beside each mode's median req/s, CPU per
# request and CPUs busy in the measured window. Then, per app, PAIRS
# (default 30) pairs of 1 s windows inside one process, without and with
# a CPU profile (`alternate`: the layer installed; `alternate-none`: no
# layer, the sampler alone), each pair's ratio and their median. Last,
# the `callbacks` mode: the layer's own CPU time per request, apart from
# the runtime.
# Usage: scripts/bench-service.sh [ROUNDS] [SECONDS] [APPS]
#   e.g. scripts/bench-service.sh 15 2 "tiny shop"; MODES overrides the modes.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-15}"
secs="${2:-2}"
apps="${3:-tiny shop}"
read -r -a modes <<<"${MODES:-none idle record sampler profile}"
cargo build --release --bench service_overhead --quiet
bin=$(ls -t target/release/deps/service_overhead-* "${CARGO_TARGET_DIR:-target}"/release/deps/service_overhead-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
n=${#modes[@]}
for app in $apps; do
    for r in $(seq 1 "$rounds"); do
        for k in $(seq 0 $((n - 1))); do
            mode=${modes[$(((k + r) % n))]}
            out=$("$bin" "$mode" "$secs" "$app" 2>&1)
            rate=$(echo "$out" | awk -v m="$mode" '$1 == m {print $2}')
            cpu=$(echo "$out" | sed -n 's/.* \([0-9.]*\) µs CPU\/request.*/\1/p')
            busy=$(echo "$out" | sed -n 's/window: \([0-9.]*\) CPUs busy.*/\1/p')
            echo "$app $r $mode $rate $cpu $busy" >>"$log"
            echo "$app round $r $mode $rate req/s, $cpu µs CPU/request, $busy CPUs busy"
        done
    done
done
python3 - "$log" "${modes[@]}" <<'PY'
import math, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
order = sys.argv[2:]
def interval(xs):
    """Median and a distribution-free ~95 % interval (order statistics)."""
    xs = sorted(xs); n = len(xs)
    # the largest k with P(Binomial(n, 1/2) < k) <= 2.5 %
    k, acc = 0, 0.0
    while True:
        p = math.comb(n, k) / 2 ** n
        if acc + p > 0.025: break
        acc += p; k += 1
    lo, hi = (xs[k - 1], xs[n - k]) if k >= 1 else (float('nan'), float('nan'))
    return statistics.median(xs), lo, hi
for app in dict.fromkeys(r[0] for r in rows):
    by = {}
    for a, r, m, rate, cpu, busy in (x for x in rows if x[0] == app):
        by.setdefault(m, {})[int(r)] = (float(rate), float(cpu), float(busy))
    none = by['none']
    print(f"\n{app}: {len(none)} rounds")
    print(f"{'mode':8} {'req/s':>8} {'µs CPU/req':>10} {'CPUs':>5}  per-round ratio to none: median [~95 % interval]")
    for m in (m for m in order if m in by):
        runs = by[m]
        med = lambda i: statistics.median(v[i] for v in runs.values())
        line = f"{m:8} {med(0):8.0f} {med(1):10.1f} {med(2):5.2f}"
        if m != 'none':
            ratios = [runs[r][0] / none[r][0] for r in runs if r in none]
            c, lo, hi = interval(ratios)
            line += f"  {c:.3f} [{lo:.3f}, {hi:.3f}]"
        print(line)
PY
# Inside one process, the load running throughout: 1 s windows without and
# with a CPU profile in turn (the process's own luck cancels): with the
# layer (idle vs profiling) and without it (the sampler's own cost).
for app in $apps; do
    for mode in alternate alternate-none; do
        echo "$app $("$bin" "$mode" "${PAIRS:-30}" "$app" 2>/dev/null | tr '\n' ' ')"
    done
done
"$bin" callbacks 7
