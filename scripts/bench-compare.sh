#!/usr/bin/env bash
# Comparisons that do not cry wolf (issue 25 item 1), at full size:
# PAIRS pairs of sides of identical code and PAIRS pairs with a planted
# 15 % slowdown (PROFKIT_TEST_SLOWDOWN, read by point-read only), each side
# RUNS interleaved `profkit cpu point-read` runs (A B A B …), the two kinds
# of pair alternating. Prints the false-positive rate (identical pairs
# with a verdict other than "no change"; frames listed in more than one
# identical pair), the detection rate, the same with one run a side (the
# first of each, judged by the built-in noise model), and the run-to-run
# spread of each metric measured here (the noise model's figures).
# Targets: <= 1 verdict in 10 identical pairs, no frame in > 1 pair,
# >= 9 of 10 slowdowns flagged.
#
#   PK=/path/to/profkit PAIRS=10 RUNS=3 OPS=100000 scripts/bench-compare.sh
#   (KEEP=dir keeps the runs; REUSE=1 KEEP=dir compares them again)
set -euo pipefail
cd "$(dirname "$0")/.."
PK=${PK:-${CARGO_TARGET_DIR:-target}/release/profkit}
PAIRS=${PAIRS:-10}
RUNS=${RUNS:-3}
OPS=${OPS:-}
OUT=${KEEP:-$(mktemp -d)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$OUT"' EXIT
ops=()
[ -z "$OPS" ] || ops=(--ops "$OPS")
[ -z "${ROWS:-}" ] || ops+=(--rows "$ROWS")
PK=$(realpath "$PK")
one() { # side-folder [slowdown]; flamegraphs land in $OUT/flamegraphs
    (cd "$OUT" && PROFKIT_TEST_SLOWDOWN=${2:-} "$PK" cpu point-read "${ops[@]}" --out "$1" >/dev/null)
}
list() { find "$1" -mindepth 1 -maxdepth 1 -type d | sort | paste -sd, -; }
first() { find "$1" -mindepth 1 -maxdepth 1 -type d | sort | head -1; }
for p in $(seq "$PAIRS"); do
    for kind in id sl; do
        slow=""
        [ "$kind" = sl ] && slow=0.15
        # REUSE=1 with KEEP=dir: compare the runs an earlier call kept.
        for _ in $(seq "$RUNS"); do
            [ -n "${REUSE:-}" ] && break
            one "$OUT/$kind$p/a"
            one "$OUT/$kind$p/b" "$slow"
        done
        "$PK" compare "$(list "$OUT/$kind$p/a")" "$(list "$OUT/$kind$p/b")" --json \
            --flamegraphs "$OUT/fg" >"$OUT/$kind$p.json"
        "$PK" compare "$(first "$OUT/$kind$p/a")" "$(first "$OUT/$kind$p/b")" --json \
            --flamegraphs "$OUT/fg" >"$OUT/$kind$p-single.json"
    done
done
python3 - "$OUT" "$PAIRS" "$RUNS" <<'PY'
import collections, glob, json, math, os, statistics, sys
out, pairs, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def verdict(c):
    ms = [m for m in c["workloads"][0]["metrics"] if m["verdict"] in ("regressed", "improved")]
    if any(m["verdict"] == "regressed" for m in ms): return "regressed", ms
    return ("improved" if ms else "no-change"), ms
def tally(kind, suffix):
    calls, frames = [], collections.Counter()
    for p in range(1, pairs + 1):
        c = json.load(open(f"{out}/{kind}{p}{suffix}.json"))
        v, ms = verdict(c)
        calls.append((v, [f'{m["metric"]} {m["verdict"]} {m["change"]:+.3f}' for m in ms]))
        for f in {f["frame"] for f in c["workloads"][0]["cpu_frames"]}:
            frames[f] += 1
    return calls, frames
print(f"## compare: point-read, {pairs} pairs a kind, {runs} interleaved runs a side")
for suffix, what in (("", f"{runs} runs a side"), ("-single", "1 run a side (noise model)")):
    ids, frames = tally("id", suffix)
    sls, _ = tally("sl", suffix)
    fp = sum(v != "no-change" for v, _ in ids)
    det = sum(v == "regressed" for v, _ in sls)
    listed = {f: n for f, n in frames.items() if n > 1}
    print(f"{what}: identical pairs with a verdict: {fp}/{pairs}; frames listed in > 1 identical pair: {len(listed)} {sorted(listed.items())[:5]}; frames listed at all: {sum(frames.values())}; slowdowns flagged: {det}/{pairs}")
    for v, ms in ids:
        if v != "no-change": print("  identical:", v, ms)
    for v, ms in sls:
        if v != "regressed": print("  slowdown missed:", v, ms)
# The run-to-run spread of identical code: sd of ln(value) within each
# identical pair's 2 x RUNS runs, pooled.
metrics = collections.defaultdict(list)
def value(b, m):
    ops = b["ops"] or 1
    lat = b["latency"]
    cpu = b["cpu"]["user"] + b["cpu"]["system"]
    return {"mean": lat["mean"], "p50": lat["p50"], "p95": lat["p95"], "p99": lat["p99"],
            "throughput": b["throughput"], "cpu_per_op": cpu / ops}.get(m)
for p in range(1, pairs + 1):
    benches = [json.load(open(f)) for f in glob.glob(f"{out}/id{p}/*/*/bench.json")]
    for m in ("mean", "p50", "p95", "p99", "throughput", "cpu_per_op"):
        xs = [math.log(v) for v in (value(b, m) for b in benches) if v and v > 0]
        if len(xs) > 1: metrics[m].append((statistics.variance(xs), len(xs) - 1))
print("run-to-run sd of ln(value), identical code, pooled:")
for m, vs in metrics.items():
    df = sum(d for _, d in vs)
    print(f"  {m}: {math.sqrt(sum(v * d for v, d in vs) / df):.3f} (df {df})")
PY
