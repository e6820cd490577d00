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
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(profile no-heap tour cpu sql heap scale reports)

cargo build --release --quiet --bin profkit
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

for part in "${parts[@]}"; do
    case "$part" in
        profile | no-heap | tour | cpu | sql | heap | scale | reports) "${part}_part" ;;
        *)
            echo "no README part '$part'" >&2
            exit 2
            ;;
    esac
    echo
done
