#!/usr/bin/env bash
# profkit serve under Locust in distributed mode: requests/s and p99 of point
# reads through HTTP with 1 and 2 Locust workers, beside the same reads in
# process (`profkit run point-read`), in one script run on this machine.
# Usage: [PROFKIT_BIN=…] scripts/bench-serve.sh [duration] [users]   (default 15s, 20 users)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15s}
USERS=${2:-20}
ROWS=10000
# PROFKIT_BIN=path/to/profkit measures that binary instead of a release build.
if [ -z "${PROFKIT_BIN:-}" ]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/profkit
else
  BIN=$(realpath "$PROFKIT_BIN")
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
command -v locust >/dev/null || { echo "locust is missing: pip install locust==2.37.14"; exit 2; }

# Point reads only: the mixed task list with every other weight at 0.
python3 - >mix.json <<'PY'
import json
tasks = ["read_email", "insert", "random_emails", "search_sender", "search_fts",
         "search_like", "aggregate", "recent_batched", "recent_n_plus_one"]
print(json.dumps({t: (1 if t == "read_email" else 0) for t in tasks}))
PY

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

echo "## profkit serve driven by Locust (point reads, $USERS users, $DURATION, $ROWS rows, $(nproc) cores)"
printf "%-8s %-10s %-10s %-8s %-8s %-8s\n" workers requests failures req_s p50_ms p99_ms
for workers in 1 2; do
  "$BIN" load --locust --workers "$workers" --users "$USERS" --spawn-rate "$USERS" \
    --duration "$DURATION" --rows "$ROWS" --mix mix.json --out "w$workers" >/dev/null 2>"w$workers.log"
  f=$(ls -d "w$workers"/*/locust.json | tail -1)
  e='[e for e in d["endpoints"] if e["name"]=="/api/tenants/[t]/emails/[id]"][0]'
  printf "%-8s %-10s %-10s %-8s %-8s %-8s\n" "$workers" \
    "$(json "$f" "$e[\"requests\"]")" "$(json "$f" "$e[\"failures\"]")" \
    "$(json "$f" "round($e[\"rps\"],1)")" "$(json "$f" "$e[\"p50_ms\"]")" "$(json "$f" "$e[\"p99_ms\"]")"
done

echo
echo "## The same reads in process (profkit run point-read, 1 thread, 5 s)"
"$BIN" run point-read --rows "$ROWS" --threads 1 --duration 5s --json --out inproc >inproc.json
python3 -c "
import json; d=json.load(open('inproc.json'))
print('ops/s %.0f  mean %.1f us  p99 %.1f us' % (d['throughput'], d['latency']['mean']/1e3, d['latency']['p99']/1e3))"
