#!/usr/bin/env bash
# Heap profiling costs, measured side by side in one script run:
#  1. profkit's allocator installed, heap profiling off, vs the plain system
#     allocator: alloc-churn at 1 and 2 threads (target ≤ 1.01×).
#  2. Slowdown of heap profiling (profkit heap: every allocation through
#     profkit's allocator, SQLite's included) on
#     database workloads, next to heaptrack's slowdown on the same run
#     (target ≤ 3× and below heaptrack's).
#  3. SQLite memory visibility: dhat-rs totals vs valgrind --tool=dhat on the
#     same workload (target within 10 %).
#  4. Sampled heap profiling (issue 15): profkit run vs profkit heap --sampled
#     vs profkit heap (exact, profkit's allocator) vs heaptrack profkit run vs
#     profkit heap --dhat (dhat-rs), whole command, median of alternating
#     runs (targets: sampled ≤ 1.10× on random-emails and point-read, exact
#     no slower than heaptrack). SECTIONS=4 runs this section only.
# Needs: cargo, valgrind, heaptrack (apt-get install -y heaptrack).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-7}
SECTIONS=${SECTIONS:-1234}
if [[ $SECTIONS == 4 ]]; then
  cargo build --release --quiet --bin profkit
else
  cargo build --release --quiet --bin profkit --example heap_churn --example heap_churn_profkit
fi
T=${CARGO_TARGET_DIR:-target}
P=$(realpath -m "$T/release/profkit")
EX=$(realpath -m "$T/release/examples")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
spread() { sort -g | awk '{a[NR]=$1} END {printf "%.0f..%.0f", a[1], a[NR]}'; }

if [[ $SECTIONS == *1* ]]; then
echo "## 1. Allocator overhead with heap profiling off (alloc-churn, ops/s, $REPEATS interleaved runs)"
for t in 1 2; do
  : > "$work/sys"; : > "$work/pk"
  for _ in $(seq "$REPEATS"); do
    "$EX/heap_churn" "$t" 200000 1 >> "$work/sys"
    "$EX/heap_churn_profkit" "$t" 200000 1 >> "$work/pk"
  done
  s=$(median < "$work/sys"); p=$(median < "$work/pk")
  printf "threads=%d  system %.0f ops/s (%s)  profkit-alloc %.0f ops/s (%s)  time ratio %.3fx\n" \
    "$t" "$s" "$(spread < "$work/sys")" "$p" "$(spread < "$work/pk")" "$(echo "$s / $p" | bc -l)"
done

fi

if [[ $SECTIONS == *2* ]]; then
echo
echo "## 2. Heap profiling slowdown (wall time of the whole command, median of 3)"
wall() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
for spec in "point-read 20000" "random-emails 300" "n-plus-one 300" "concurrent-write 300"; do
  set -- $spec; w=$1; ops=$2
  flags=(--rows 5000 --ops "$ops" --seed 7 --out "$work/profiles")
  # Build the template once so setup costs are alike.
  "$P" run "$w" "${flags[@]}" > /dev/null 2>&1
  : > "$work/base"; : > "$work/dhat"; : > "$work/ht"
  for _ in 1 2 3; do
    wall "$P" run "$w" "${flags[@]}" >> "$work/base"
    wall "$P" heap "$w" "${flags[@]}" >> "$work/dhat"
    if command -v heaptrack > /dev/null; then
      (cd "$work" && wall heaptrack -o "$work/ht-$w" "$P" run "$w" "${flags[@]}") >> "$work/ht"
      rm -f "$work"/ht-"$w"*
    fi
  done
  b=$(median < "$work/base"); d=$(median < "$work/dhat")
  if [ -s "$work/ht" ]; then h=$(median < "$work/ht"); hr=$(printf "%.2fx" "$(echo "$h / $b" | bc -l)"); else hr="n/a"; fi
  printf "%-17s base %.2fs  profkit heap %.2fs (%.2fx)  heaptrack %s\n" "$w" "$b" "$d" "$(echo "$d / $b" | bc -l)" "$hr"
done

fi

if [[ $SECTIONS == *3* ]]; then
echo
echo "## 3. SQLite memory visible: dhat-rs vs valgrind DHAT (random-emails, setup included)"
flags=(random-emails --rows 2000 --ops 200 --warmup 0 --seed 7 --out "$work/vg")
"$P" heap "${flags[@]}" --include-setup --dhat > "$work/heap.txt" 2> "$work/heap.err"
rs=$(grep '^dhat: Total:' "$work/heap.err" | sed 's/dhat: Total: *\([0-9,]*\) bytes in \([0-9,]*\) blocks/\1 \2/' | tr -d ,)
valgrind --tool=dhat --dhat-out-file="$work/vg.json" "$P" run "${flags[@]}" > /dev/null 2> "$work/vg.err"
vg=$(grep 'Total:' "$work/vg.err" | sed 's/.*Total: *\([0-9,]*\) bytes in \([0-9,]*\) blocks/\1 \2/' | tr -d ,)
set -- $rs; rb=$1; rk=$2
set -- $vg; vb=$1; vk=$2
printf "dhat-rs (profiler span)  %d bytes in %d blocks\n" "$rb" "$rk"
printf "valgrind DHAT (process)  %d bytes in %d blocks\n" "$vb" "$vk"
printf "dhat-rs / valgrind: bytes %.3f, blocks %.3f\n" "$(echo "$rb / $vb" | bc -l)" "$(echo "$rk / $vk" | bc -l)"
fi

if [[ $SECTIONS == *4* ]]; then
echo
echo "## 4. Sampled vs exact heap profiling vs heaptrack (whole command, median of $REPEATS alternating runs)"
wall() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
for spec in "random-emails 100000 3000" "point-read 5000 20000" "alloc-churn 0 5000"; do
  set -- $spec; w=$1; rows=$2; ops=$3
  flags=(--ops "$ops" --seed 7 --out "$work/p4")
  [ "$rows" -gt 0 ] && flags+=(--rows "$rows" --db "$work/$w.db")
  # Prepare the database once, so every command below reuses it.
  "$P" run "$w" "${flags[@]}" > /dev/null 2>&1
  : > "$work/r"; : > "$work/s"; : > "$work/x"; : > "$work/h"; : > "$work/d"
  for _ in $(seq "$REPEATS"); do
    wall "$P" run "$w" "${flags[@]}" >> "$work/r"
    wall "$P" heap "$w" --sampled "${flags[@]}" >> "$work/s"
    wall "$P" heap "$w" "${flags[@]}" >> "$work/x"
    wall "$P" heap "$w" --dhat "${flags[@]}" >> "$work/d"
    if command -v heaptrack > /dev/null; then
      (cd "$work" && wall heaptrack -o "$work/ht-$w" "$P" run "$w" "${flags[@]}") >> "$work/h"
      rm -f "$work"/ht-"$w"*
    fi
    rm -rf "$work/p4"
  done
  r=$(median < "$work/r"); s=$(median < "$work/s"); x=$(median < "$work/x"); d=$(median < "$work/d")
  if [ -s "$work/h" ]; then h=$(median < "$work/h"); hs=$(printf "%.2fs (%.2fx)" "$h" "$(echo "$h / $r" | bc -l)"); xh=$(printf "%.2f" "$(echo "$x / $h" | bc -l)"); else hs="n/a"; xh="n/a"; fi
  printf "%-14s run %.2fs  sampled %.2fs (%.3fx)  exact %.2fs (%.2fx)  heaptrack %s  exact/heaptrack %s  dhat-rs %.2fs (%.2fx)\n" \
    "$w" "$r" "$s" "$(echo "$s / $r" | bc -l)" "$x" "$(echo "$x / $r" | bc -l)" "$hs" "$xh" "$d" "$(echo "$d / $r" | bc -l)"
done
fi
