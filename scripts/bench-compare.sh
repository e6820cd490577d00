#!/usr/bin/env bash
# Cost of `profkit compare` on big runs (issue 12): two `noop` runs of
# 20,000,000 operations each, compared by this build and, side by side in
# the same script run, by an earlier build when BEFORE names its binary
# (e.g. BEFORE=/path/to/old/profkit). Target: ≤ 1 s, not growing with the
# operation count. REPEATS interleaved runs, median.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-5}
OPS=${OPS:-20000000}
cargo build --release --quiet --bin profkit
PK=${CARGO_TARGET_DIR:-target}/release/profkit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

"$PK" run noop --ops "$OPS" --out "$work/runs" > /dev/null
"$PK" run noop --ops "$OPS" --out "$work/runs" > /dev/null
set -- "$work"/runs/*-noop*
a=$1 b=$2
echo "## compare of two noop runs of $OPS operations (s, median of $REPEATS)"
: > "$work/after"; : > "$work/before"
for _ in $(seq "$REPEATS"); do
  secs "$PK" compare "$a" "$b" --json >> "$work/after"
  if [ -n "${BEFORE:-}" ]; then secs "$BEFORE" compare "$a" "$b" --json >> "$work/before"; fi
done
after=$(median < "$work/after")
printf 'this build: %.3f s\n' "$after"
if [ -n "${BEFORE:-}" ]; then
  before=$(median < "$work/before")
  printf 'before:     %.3f s\nratio before/after: %.1fx\n' "$before" "$(echo "$before / $after" | bc -l)"
fi
