#!/usr/bin/env bash
# Wall time of the main job (`profkit profile`, default sizes) and of its
# stages, two builds side by side: runs alternate A, B, A, B … in empty
# scratch folders, and the medians are printed (BENCHMARKS.md, "The main
# job's duration").
#
#   scripts/bench-profile.sh OLD_PROFKIT NEW_PROFKIT [RUNS]   (default 2 each)
#   LOGS=DIR scripts/bench-profile.sh …   also keeps each run's stderr, timed
#
# Stages come from the times stderr lines arrive: "profkit: W ..." opens a
# bench pass (phase 1), "thread sweep" lines the sweeps, and everything
# after the last sweep line is phase 2 (heap children beside the CPU and
# SQL passes). An old build, which runs every pass of a workload before the
# next, shows its per-workload time as "bench" and nothing as phase 2.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
A=$(realpath "$1")
B=$(realpath "$2")
RUNS=${3:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python3 - "$A" "$B" "$RUNS" "$WORK" <<'PY'
import os, statistics, subprocess, sys, time

a, b, runs, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def one(exe, n):
    d = os.path.join(work, f"run{n}")
    os.makedirs(d)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.Popen([exe, "profile"], cwd=d, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    lines = [(time.perf_counter() - t0, l.rstrip()) for l in p.stderr]
    p.wait()
    wall = time.perf_counter() - t0
    assert p.returncode == 0, lines[-5:]
    if os.environ.get("LOGS"):
        with open(os.path.join(os.environ["LOGS"], f"run{n}.stderr"), "w") as f:
            f.write("".join(f"{t:8.2f} {l}\n" for t, l in lines))
    sweep = [t for t, l in lines if "thread sweep" in l]
    benches = [t for t, l in lines if l.startswith("profkit: ") and l.endswith(" ...")
               and "thread sweep" not in l]
    phase1 = sweep[0] if sweep else wall
    sweeps_end = None
    # The first line after the sweep lines opens phase 2.
    after = [t for t, l in lines if sweep and t > sweep[-1]]
    sweeps_end = after[0] if after else wall
    subprocess.run(["rm", "-rf", d])
    return {"wall": wall, "bench passes": phase1,
            "sweeps": sweeps_end - phase1 if sweep else 0.0,
            "phase 2": wall - sweeps_end if sweep else 0.0, "load": load}

res = {a: [], b: []}
for i in range(runs):
    for exe in (a, b):
        r = one(exe, len(res[a]) + len(res[b]))
        res[exe].append(r)
        print(f"{os.path.basename(os.path.dirname(os.path.dirname(exe)))}/{os.path.basename(exe)}"
              f" run {i + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)
for name, exe in (("A", a), ("B", b)):
    med = {k: statistics.median(r[k] for r in res[exe]) for k in res[exe][0]}
    print(f"{name} {exe}: median " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))
wa = statistics.median(r["wall"] for r in res[a])
wb = statistics.median(r["wall"] for r in res[b])
print(f"B / A wall: {wb / wa:.2f}x")
PY
