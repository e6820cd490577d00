#!/usr/bin/env bash
# Reruns the outputs and figures README.md quotes, part by part, on a
# release build in a scratch folder. README.md names the part beside each
# output or figure; benchmark figures come from scripts/bench*.sh instead
# (BENCHMARKS.md). Figures vary with the machine and its load: the README's
# were taken on a shared 2-core VM.
#
#   scripts/readme.sh             every part (about 10 minutes on 2 cores)
#   scripts/readme.sh profile     `profkit profile`: summary, wall time, CPU-pass samples
#   scripts/readme.sh no-heap     wall time of `profkit profile --no-heap`
#   scripts/readme.sh tour        `profkit list`, `profkit run random-emails`
#   scripts/readme.sh cpu         `profkit cpu search-like --rows 20000 --ops 300`
#   scripts/readme.sh sql         `profkit sql n-plus-one --ops 200`
#   scripts/readme.sh heap        heap, leaks and soak examples
#   scripts/readme.sh scale       sweeps, open-loop runs, stress
#   scripts/readme.sh reports     check, baseline + compare, report sizes and times
#   scripts/readme.sh service     the example shop served over HTTP under a curl
#                                 load: /debug/profkit/endpoints and pprof tags
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(profile no-heap tour cpu sql heap scale reports service)

cargo build --release --quiet --bin profkit
[[ " ${parts[*]} " == *" service "* ]] && cargo build --release --quiet --example async_service
SHOP="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/examples/async_service"
PK="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/profkit"
REPO=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# Prints a command, runs it, prints its output.
show() {
    echo "\$ profkit $*"
    "$PK" "$@" 2>&1
}

# Wall seconds of one command (output discarded).
seconds() {
    python3 - "$PK" "$@" <<'PY'
import subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{time.perf_counter() - t:.2f}")
PY
}

newest() { ls -d profiles/*-"$1" | sort | tail -1; }

profile_part() {
    echo "## profile: the main job at default sizes"
    local s; s=$(date +%s.%N)
    show profile | grep -v '^profkit: ' || true
    echo "wall time: $(python3 -c "import time; print(f'{time.time() - $s:.1f} s')")"
    echo
    echo "## profile: samples of each workload's CPU pass (no CPU flamegraph below 20)"
    local session; session=$(newest profile)
    python3 - "$session" <<'PY'
import json, os, sys
index = json.load(open(os.path.join(sys.argv[1], "index.json")))
for w in index["runs"]:
    run = os.path.join(os.path.dirname(sys.argv[1]), w["run_id"])
    cpu = os.path.join(run, "cpu.json")
    if os.path.exists(cpu):
        d = json.load(open(cpu))
        print(f"{w['workload']:20} {d['samples']:5} samples  {d['cpu_time'] / 1e9:6.2f} s CPU")
    else:
        print(f"{w['workload']:20} no cpu.json")
PY
}

no-heap_part() {
    echo "## profile --no-heap: wall time $(seconds profile --no-heap) s"
}

tour_part() {
    echo "## tour"
    show list
    show run random-emails
}

cpu_part() {
    echo "## cpu"
    show cpu search-like --rows 20000 --ops 300
}

sql_part() {
    echo "## sql"
    show sql n-plus-one --ops 200
}

heap_part() {
    echo "## heap"
    show heap n-plus-one --rows 5000 --ops 200 --top 3
    show leaks leaky-cache --rows 5000
    show leaks bounded-cache --rows 5000
    show leaks mixed --soak 60s
}

scale_part() {
    echo "## scale"
    show sweep point-read --threads 1,2,4
    show sweep search-like --rows 1k,10k,100k
    show sweep search-indexed --rows 1k,10k,100k
    show run stall --rate 1000/s --duration 2s
    show run point-read --rate 20k/s --duration 2s
    show stress point-read --slo 'p99<50us' --duration 500ms
}

reports_part() {
    echo "## reports: same code twice, then the twins"
    "$PK" profile --scale 0.2 >/dev/null 2>&1
    show check --budget "$REPO/profkit.toml" | tail -3 || true
    "$PK" baseline save main >/dev/null
    show profile --scale 0.2 --baseline main | grep -A4 '^point-read'
    show compare "$(newest n-plus-one-batched)" "$(newest n-plus-one)" | head -8
    echo
    echo "## reports: a 15-workload session and comparison"
    local session; session=$(newest profile)
    echo "report --format html of $session: $(seconds report "$session" --format html -o r.html) s, $(stat -c %s r.html) bytes"
    echo "report --format md: $(seconds report "$session" --format md -o r.md) s, $(stat -c %s r.md) bytes"
    echo "compare main $session (bootstrap included): $(seconds compare main "$session") s wall"
}

# The example shop as a plain server on a free loopback port, three of its
# endpoints loaded by curl loops (and its blocking one every 0.1 s) for
# 13 s; meanwhile a 5 s window of /debug/profkit/endpoints (summarised: one
# line per endpoint, then the findings), then a 5 s CPU profile whose pprof
# tags `go tool pprof` lists.
service_part() {
    echo "## service: examples/async_service.rs served, four endpoints under load"
    local port; port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$SHOP" serve-app --listen "127.0.0.1:$port" --database-url "sqlite:$WORK/shop.db" >shop.log 2>&1 &
    local shop=$!
    local base="http://127.0.0.1:$port"
    for _ in $(seq 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.2; done
    local end=$(($(date +%s) + 13)) pids=()
    load() { while [ "$(date +%s)" -lt "$end" ]; do curl -s -o /dev/null "$base$1$((RANDOM % 1900))"; done; }
    load "/orders/recent?from=" & pids+=($!)
    load "/customers/" & pids+=($!)
    load "/orders/" & pids+=($!)
    (while [ "$(date +%s)" -lt "$end" ]; do curl -s -o /dev/null "$base/reports/forecast"; sleep 0.1; done) & pids+=($!)
    sleep 1
    # One CPU profile at a time per process: the window's, then pprof's.
    curl -s "$base/debug/profkit/endpoints?seconds=5" >endpoints.json
    curl -s -o pprof.pb.gz "$base/debug/pprof/profile?seconds=5"
    wait "${pids[@]}"
    kill "$shop"
    wait "$shop" 2>/dev/null || true
    python3 - endpoints.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r.get("cpu") or {}
print(f"cpu: {c.get('samples', 0)} samples, {c.get('attributed', 0)} matched to a request, sampler \"{c.get('sampler', '-')}\"")
ms = lambda ns: f"{ns / 1e6:5.1f} ms"
for e in r["endpoints"]:
    print(f"{e['endpoint']:22} {e['requests']:4} requests  p50 {ms(e['p50'])}  p95 {ms(e['p95'])}  "
          f"busy {e['busy'] / 1e9:.2f} s  idle {e['idle'] / 1e9:.2f} s  {e['cpu_samples']:3} CPU samples  "
          f"{e['statements_per_request']:.0f} statements/request")
print("findings:")
for f in r["findings"]:
    print(f["message"])
PY
    if command -v go >/dev/null; then
        echo "\$ go tool pprof -tags pprof.pb.gz"
        go tool pprof -tags pprof.pb.gz 2>/dev/null
    else
        echo "(go not installed: no pprof tags)"
    fi
}

for part in "${parts[@]}"; do
    case "$part" in
        profile | no-heap | tour | cpu | sql | heap | scale | reports | service) "${part}_part" ;;
        *)
            echo "no README part '$part'" >&2
            exit 2
            ;;
    esac
    echo
done
