#!/usr/bin/env bash
# Do profkit's top-5 self frames agree with `perf record --call-graph dwarf`?
# (issue 24, item 4)
#
# One populated database file; `profkit cpu WORKLOAD` on it, then
# `perf record --call-graph dwarf` of `profkit run WORKLOAD` on the same file,
# both for DURATION. Only the workers' samples count (threads `pk-worker-*`,
# so set-up and population are left out on both sides). A perf sample's self
# frame is its innermost user-space frame, inlined functions included (as
# profkit names them): kernel frames are folded into their user caller, and
# profkit's allocator hooks into one frame `profkit: allocator hook` (as
# profkit folds them). Names are compared without linker suffixes
# (`@@GLIBC_2.2.5`, `.constprop.0`, `.isra.0`, `.part.0`) and without the
# vDSO's `__vdso_` alias prefix.
#
#   scripts/perf-agree.sh WORKLOAD            (PK=path/to/profkit, DURATION=5s, ROWS=)
#   SAME_RUN=1 scripts/perf-agree.sh WORKLOAD  both samplers on one `profkit cpu` run
#                                              (the run-to-run part of a disagreement goes)
#
# Prints both top-5 lists with their shares and "agree: k/5". Exits 0 with a
# one-line reason when perf is missing or the kernel refuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:?usage: scripts/perf-agree.sh WORKLOAD}
PK=${PK:-${CARGO_TARGET_DIR:-target}/release/profkit}
DURATION=${DURATION:-5s}
ROWS_ARG=()
if [ -n "${ROWS:-}" ]; then ROWS_ARG=(--rows "$ROWS"); fi
if ! command -v perf >/dev/null; then
    echo "## perf-agree $W: perf is not installed (apt-get install linux-perf); skipped"
    exit 0
fi
if ! perf record -q -o /dev/null -- true 2>/dev/null; then
    echo "## perf-agree $W: perf record refused (kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')); skipped"
    exit 0
fi
OUT=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then trap 'mkdir -p "$KEEP" && cp "$OUT"/perf.txt "$OUT"/runs/*/cpu.folded "$KEEP"/ 2>/dev/null; rm -rf "$OUT"' EXIT
else trap 'rm -rf "$OUT"' EXIT; fi
DB="$OUT/$W.db"
"$PK" run "$W" "${ROWS_ARG[@]}" --ops 200 --db "$DB" --out "$OUT/runs" >/dev/null
if [ -n "${SAME_RUN:-}" ]; then
    # Both samplers on one run: perf records the `profkit cpu` run itself,
    # so what differs is the samplers, not the runs.
    perf record -q -F 997 --call-graph dwarf,32768 -o "$OUT/perf.data" -- \
        "$PK" cpu "$W" "${ROWS_ARG[@]}" --duration "$DURATION" --db "$DB" --out "$OUT/runs" >/dev/null 2>&1
    FOLDED=$(ls "$OUT"/runs/*-"$W"*/cpu.folded | tail -1)
else
    "$PK" cpu "$W" "${ROWS_ARG[@]}" --duration "$DURATION" --db "$DB" --out "$OUT/runs" >/dev/null 2>&1
    # A run folder started in the same second as the one before gets a suffix (-1).
    FOLDED=$(ls "$OUT"/runs/*-"$W"*/cpu.folded | tail -1)
    perf record -q -F 997 --call-graph dwarf,32768 -o "$OUT/perf.data" -- \
        "$PK" run "$W" "${ROWS_ARG[@]}" --duration "$DURATION" --db "$DB" --out "$OUT/runs" >/dev/null 2>&1
fi
perf script -i "$OUT/perf.data" -F comm,ip,sym,dso 2>/dev/null >"$OUT/perf.txt"
python3 - "$W" "$FOLDED" "$OUT/perf.txt" <<'PY'
import collections, os, re, sys
workload, folded, perf = sys.argv[1:]
HOOK = "profkit: allocator hook"

def norm(name):
    name = re.sub(r"@@?[A-Z_]+[0-9._]*$", "", name.strip())
    name = re.sub(r"@plt$", "", name)
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    # The vDSO exports each function under two names at one address
    # (clock_gettime, __vdso_clock_gettime): the loader gives profkit the
    # one, perf the other.
    name = re.sub(r"^__vdso_", "", name)
    while True:
        n = re.sub(r"\.(constprop|isra|part|cold|lto_priv)(\.\d+)?$", "", name)
        if n == name:
            return name
        name = n

def is_hook(n):
    return (n.startswith("profkit::db::sqlite_alloc::")
            or n.startswith("<profkit::alloc::ProfkitAlloc as ")
            or n == "profkit::alloc::mode")

def is_glue(n):
    m = n[len("__rustc::"):] if n.startswith("__rustc::") else n
    return (m in ("__rust_alloc", "__rust_dealloc", "__rust_realloc", "__rust_alloc_zeroed")
            or n.startswith(("core::", "<core::", "std::alloc::", "<std::alloc::System as ",
                             "std::sys::alloc::", "std::sys::pal::unix::alloc::")))

def self_frame(chain):
    """chain: user frames, leaf first."""
    if not chain:
        return "[unknown]"
    i, hook = 0, False
    while i < len(chain) and (is_hook(chain[i]) or is_glue(chain[i])):
        hook |= is_hook(chain[i])
        i += 1
    return HOOK if hook else chain[0]

ours = collections.Counter()
for line in open(folded):
    stack, _, n = line.rstrip("\n").rpartition(" ")
    frames = stack.split(";")
    if frames[0].startswith("pk-worker"):
        ours[norm(frames[-1])] += int(n)

theirs = collections.Counter()
comm, chain, kernel_only = None, [], True
def flush():
    if comm and comm.startswith("pk-worker"):
        theirs[self_frame(chain)] += 1
for line in open(perf):
    if not line.strip():
        flush(); comm, chain = None, []
        continue
    if not line.startswith(("\t", " ")):
        comm = line.split()[0]
        continue
    m = re.match(r"\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$", line)
    if not m:
        continue
    sym, dso = m.groups()
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    if "kernel.kallsyms" in dso or dso.startswith("[kernel"):
        continue
    chain.append(norm(sym) if sym != "[unknown]" else "[unknown]")
flush()

def top(c, n=5):
    tot = sum(c.values()) or 1
    return [(k, 100.0 * v / tot) for k, v in c.most_common(n)], tot

a, na = top(ours)
b, nb = top(theirs)
agree = len({k for k, _ in a} & {k for k, _ in b})
show = int(os.environ.get("SHOW", "5"))
a, _ = top(ours, show)
b, _ = top(theirs, show)
print(f"## perf-agree {workload}: profkit {na} worker samples, perf {nb}")
print(f"{'profkit':<48} {'%':>5}   {'perf --call-graph dwarf':<48} {'%':>5}")
for (ka, pa), (kb, pb) in zip(a + [("", 0)] * show, (b + [("", 0)] * show)[:show]):
    print(f"{ka[:48]:<48} {pa:5.1f}   {kb[:48]:<48} {pb:5.1f}")
print(f"agree: {agree}/5")
# Where shares tie, which frame is 5th is a coin toss: a frame of one top 5
# missing from the other also agrees if its share on the other side is
# within the two shares' 95 % sampling error of that side's 5th.
def share(c, tot, k):
    return 100.0 * c.get(k, 0) / tot
def tied(k, c, tot, fifth):
    p, q = share(c, tot, k) / 100, fifth / 100
    err = 196.0 * ((p * (1 - p) + q * (1 - q)) / tot) ** 0.5
    return abs(share(c, tot, k) - fifth) <= err
a5, b5 = top(ours)[0], top(theirs)[0]
sa, sb = {k for k, _ in a5}, {k for k, _ in b5}
loose = sum(1 for k in sa if k in sb or tied(k, theirs, nb, b5[-1][1]))
print(f"agree up to ties within sampling error: {loose}/5")
unnamed = sum(v for k, v in ours.items() if k.startswith("[profkit"))
print(f"profkit [profkit] frames: {100.0 * unnamed / na:.2f} % of worker samples")
PY
