#!/usr/bin/env bash
# What the main job (`profkit profile`, default sizes) writes to disk, two
# builds side by side: runs alternate A, B, A, B … each in an empty scratch
# folder under /usr/bin/time -v, and print "File system outputs" (512-byte
# blocks: pages the job and its heap children dirtied on a disk; a tmpfs
# does not count) and the wall time (BENCHMARKS.md, "What the main job
# writes to disk").
#
#   scripts/bench-writes.sh OLD_PROFKIT NEW_PROFKIT [RUNS]   (default 1 each)
#   ARGS="--workloads populate,mixed" scripts/bench-writes.sh …   other flags
#   WORK=DIR scripts/bench-writes.sh …   scratch folders there (default: the
#       folder the system's temporary files go to, which must be a disk)
#
# A build that knows PROFKIT_LOG_WRITES (passes::writes) also prints, for
# its last run, where the bytes went: per workload and pass, the setup
# (copy of the populated template; the first one also builds it) and the
# pass itself, in MB. Then, for each workload that wrote rows, its figures
# per run of each build (ops/s, p50, p95, rows/s as bench.json has them;
# the CPU pass's samples, top self frames and the top findings), so that a
# change of how the writers are run can be judged against run-to-run noise.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,21p "$0"; exit 2; }
A=$(realpath "$1")
B=$(realpath "$2")
RUNS=${3:-1}
SCRATCH=$(mktemp -d "${WORK:-${TMPDIR:-/tmp}}/bench-writes.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

python3 - "$A" "$B" "$RUNS" "$SCRATCH" "${ARGS:-}" <<'PY'
import collections, os, re, shlex, statistics, subprocess, sys

a, b, runs, work, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]

def one(exe, n):
    d = os.path.join(work, f"run{n}")
    os.makedirs(d)
    timing = os.path.join(work, f"time{n}.txt")
    load = os.getloadavg()[0]
    env = dict(os.environ, PROFKIT_LOG_WRITES="1")
    p = subprocess.run(["/usr/bin/time", "-v", "-o", timing, exe, "profile", *shlex.split(extra)],
                       cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    t = open(timing).read()
    blocks = int(re.search(r"File system outputs: (\d+)", t).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    figures = writer_figures(d)
    subprocess.run(["rm", "-rf", d])
    return {"blocks": blocks, "wall": secs, "load": load, "stderr": p.stderr, "figures": figures}

def writer_figures(d):
    """Per workload that wrote rows: the figures the main job reports."""
    import glob, json
    out = {}
    for bench_path in glob.glob(os.path.join(d, "profiles", "*", "bench.json")):
        run = os.path.dirname(bench_path)
        b = json.load(open(bench_path))
        written = b.get("metrics", {}).get("rows_written", 0)
        if not written:
            continue
        f = {"ops/s": b["throughput"], "p50 ms": b["latency"]["p50"] / 1e6,
             "p95 ms": b["latency"]["p95"] / 1e6, "rows/s": written / (b["elapsed"] / 1e9)}
        try:
            c = json.load(open(os.path.join(run, "cpu.json")))
            f["samples"] = c["samples"]
            f["top self"] = ", ".join(f"{t['function'][-40:]} {t['percent']:.0f}%"
                                      for t in c["top_self"][:4])
        except OSError:
            pass
        try:
            fs = json.load(open(os.path.join(run, "findings.json")))
            f["findings"] = " / ".join(x["title"][:70] for x in fs["findings"][:3])
        except OSError:
            pass
        out[b["workload"]] = f
    return out

def breakdown(stderr):
    """MB per (workload, column) from the PROFKIT_LOG_WRITES lines."""
    rows = collections.defaultdict(lambda: collections.defaultdict(float))
    pending = []  # the parent's setup lines, owned by the pass that follows
    line_re = re.compile(r"^profkit: writes: (.+?): ([\d.]+) MB( \(heap child\))?$")
    for line in stderr.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        what, mb, child = m.group(1), float(m.group(2)), m.group(3)
        if child:
            rows[what.rsplit(" ", 1)[0]]["heap child"] += mb
            continue
        if what.endswith(" setup"):
            pending.append(mb)
            continue
        parts = what.rsplit(" ", 1)
        if len(parts) == 2 and parts[1] in ("bench", "cpu", "sql", "sweep"):
            w, kind = parts
            rows[w][kind + " copy"] += sum(pending)
            rows[w][kind] += mb
        else:
            rows["(" + what + ")"]["other"] += mb + sum(pending)
        pending = []
    return rows

res = {a: [], b: []}
for i in range(runs):
    for exe in (a, b):
        r = one(exe, len(res[a]) + len(res[b]))
        res[exe].append(r)
        print(f"{exe} run {i + 1}: {r['blocks']:,} blocks ({r['blocks'] * 512 / 1e9:.2f} GB), "
              f"wall {r['wall']:.1f} s, load {r['load']:.1f}", flush=True)
for name, exe in (("A", a), ("B", b)):
    bl = statistics.median(r["blocks"] for r in res[exe])
    wa = statistics.median(r["wall"] for r in res[exe])
    print(f"{name} {exe}: median {bl:,.0f} blocks ({bl * 512 / 1e9:.2f} GB), wall {wa:.1f} s")
ba = statistics.median(r["blocks"] for r in res[a])
bb = statistics.median(r["blocks"] for r in res[b])
wa = statistics.median(r["wall"] for r in res[a])
wb = statistics.median(r["wall"] for r in res[b])
print(f"B / A blocks: {bb / max(ba, 1):.2f}x, wall: {wb / wa:.2f}x")
cols = ["bench copy", "bench", "cpu copy", "cpu", "sql copy", "sql", "sweep copy", "sweep",
        "heap child", "other"]
for name, exe in (("A", a), ("B", b)):
    rows = breakdown(res[exe][-1]["stderr"])
    if not rows:
        continue
    print(f"\n{name}'s last run, MB written (PROFKIT_LOG_WRITES):")
    print("| workload | " + " | ".join(cols) + " | total |")
    print("|---|" + "---:|" * (len(cols) + 1))
    total = collections.defaultdict(float)
    for w, r in rows.items():
        for c in cols:
            total[c] += r.get(c, 0.0)
        print(f"| {w} | " + " | ".join(f"{r.get(c, 0.0):.0f}" for c in cols)
              + f" | {sum(r.values()):.0f} |")
    print("| all | " + " | ".join(f"{total[c]:.0f}" for c in cols) + f" | {sum(total.values()):.0f} |")
writers = sorted({w for exe in (a, b) for r in res[exe] for w in r["figures"]})
for w in writers:
    print(f"\n{w}: figures per run (A = {os.path.basename(a)}, B = {os.path.basename(b)})")
    for name, exe in (("A", a), ("B", b)):
        for i, r in enumerate(res[exe]):
            f = r["figures"].get(w)
            if f:
                nums = ", ".join(f"{k} {f[k]:.{3 if 'ms' in k else 0}f}"
                                 for k in ("ops/s", "p50 ms", "p95 ms", "rows/s", "samples") if k in f)
                print(f"  {name}{i + 1}: {nums}")
                print(f"      top self: {f.get('top self', '-')}")
                print(f"      findings: {f.get('findings', '-')}")
    for k in ("ops/s", "p50 ms", "p95 ms", "rows/s", "samples"):
        sides = []
        for exe in (a, b):
            v = [r["figures"][w][k] for r in res[exe] if w in r["figures"] and k in r["figures"][w]]
            sides.append(f"median {statistics.median(v):.4g} ({min(v):.4g}-{max(v):.4g})" if v else "-")
        print(f"  {k}: A {sides[0]}; B {sides[1]}")
PY
