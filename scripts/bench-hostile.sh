#!/usr/bin/env bash
# Hostile-input figures (issue 12), this build and, side by side in the same
# script run, an earlier build when BEFORE names its binary
# (BEFORE=/path/to/old/profkit):
#  1. `profkit compare` of two `noop` runs of 20,000,000 operations each
#     (target ≤ 1 s, not growing with the operation count). REPEATS
#     interleaved runs, median.
#  2. Ctrl-C while populating a 2,000,000-row --db: time from SIGINT to exit
#     (target ≤ 0.5 s), and whether the database is left without a dataset.
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

echo
echo "## Ctrl-C during populate (2,000,000 rows): SIGINT to exit (s)"
ctrl_c() {
  local bin=$1 db="$work/pop-$RANDOM.db"
  "$bin" run point-read --rows 2000000 --ops 10 --db "$db" > /dev/null 2>&1 &
  local pid=$!
  # Ready when the first batch of rows is committed.
  until python3 -c "import sqlite3,sys; c=sqlite3.connect('file:$db?mode=ro', uri=True); sys.exit(0 if c.execute('select count(*) from emails').fetchone()[0] > 0 else 1)" 2>/dev/null; do sleep 0.05; done
  local t0 t1; t0=$(date +%s.%N)
  kill -INT "$pid"; wait "$pid" || true
  t1=$(date +%s.%N)
  local rows
  rows=$(python3 -c "import sqlite3; c=sqlite3.connect('$db'); print(c.execute(\"select count(*) from profkit_meta where key='rows'\").fetchone()[0])" 2>/dev/null || echo "?")
  printf '%.3f s (dataset recorded: %s)\n' "$(echo "$t1 - $t0" | bc -l)" "$rows"
}
printf 'this build: '; ctrl_c "$PK"
if [ -n "${BEFORE:-}" ]; then printf 'before:     '; ctrl_c "$BEFORE"; fi
