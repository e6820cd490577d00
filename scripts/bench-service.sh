#!/usr/bin/env bash
# What profkit::service's tracing layer costs a saturated service
# (benches/service_overhead.rs): requests per second with no layer, with
# the layer idle, with a per-endpoint recording open, with the CPU sampler
# alone (no layer), and with the layer while a labelled CPU profile is taken.
# Modes alternate round by round in this one script run (the unit of
# replication is the run); medians and ratios to `none` at the end. Last,
# the `callbacks` mode: the layer's own CPU time per request, apart from
# the runtime's scheduling (which makes the req/s figures bimodal under load).
# Usage: scripts/bench-service.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
secs="${2:-3}"
cargo build --release --bench service_overhead --quiet
bin=$(ls -t target/release/deps/service_overhead-* "${CARGO_TARGET_DIR:-target}"/release/deps/service_overhead-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
declare -A runs
for r in $(seq 1 "$rounds"); do
    for mode in none idle record sampler profile; do
        rate=$("$bin" "$mode" "$secs" 2>/dev/null | awk '{print $2}')
        runs[$mode]+="$rate "
        echo "round $r $mode $rate req/s"
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
none=$(echo "${runs[none]}" | median)
for mode in none idle record sampler profile; do
    m=$(echo "${runs[$mode]}" | median)
    printf '%-8s median %8.0f req/s  ratio to none %.3f  runs: %s\n' "$mode" "$m" "$(echo "$m / $none" | bc -l)" "${runs[$mode]}"
done
"$bin" callbacks "$rounds"
