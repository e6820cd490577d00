#!/usr/bin/env bash
# The main job's leak check sized by time (issue 24 item 5), side by side in
# one script run: the heap child (`profkit heap-pass`, what `profkit profile`
# starts per workload) with the leak check sized by tracked blocks alone
# (--leak-secs 0, the rule before) and by time (--leak-secs SECS: 3 by
# default, as `profkit profile` runs it),
# alternating, REPEATS times each. Prints per workload and rule: wall time
# of the child (median), the leak check's N and its verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-3}
WORKLOADS=${WORKLOADS:-"churn-leak leaky-cache bounded-cache point-read n-plus-one"}
cargo build --release --quiet --bin profkit
T=${CARGO_TARGET_DIR:-target}
P=$(realpath -m "$T/release/profkit")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for w in $WORKLOADS; do
  # The heap child writes into an existing run folder; the bench pass's
  # operations size it as the main job does (heap 1/20, leak N 1/50).
  "$P" run "$w" --ops 200 --out "$work/runs" --json > "$work/bench.json"
  dir=$(ls -d "$work"/runs/*-"$w" | tail -1)
  ops=$("$P" list 2>/dev/null | awk -v w="$w" '$1 == w {print $0}' | grep -o '[0-9,]* ops' | head -1 | tr -d ', ops')
  ops=${ops:-1000}
  for r in $(seq "$REPEATS"); do
    for secs in 0 "${SECS:-3}"; do
      start=$(date +%s.%N)
      line=$("$P" heap-pass "$w" --into "$dir" --templates "$work" \
        --heap-ops $((ops / 20)) --leak-ops $(( (ops + 49) / 50 )) --leak-secs "$secs" --out "$work/runs")
      end=$(date +%s.%N)
      n=$(python3 -c "import json; d=json.load(open('$dir/leaks.json')); print(d['ops'][0] if d['ops'] else 0)")
      printf '%s\tleak-secs %s\trun %s\t%.2f s\tN %s\t%s\n' "$w" "$secs" "$r" "$(echo "$end - $start" | bc)" "$n" "${line#*leaks: }"
    done
  done
done
