#!/usr/bin/env bash
# From an empty crate to its first profile, with profkit's `service`
# feature on (the default) and off (default-features = false): crates in
# the dependency tree, release build time from an empty target directory,
# and the `profile` run. Both builds run one after the other in this one
# script run, so they see the same machine; each gets a cold target
# directory and `-j2` (JOBS to change it); the load average is printed
# before and after each build (the machine is shared). Usage:
# [MODES="service harness-only"] [JOBS=2] scripts/bench-harness-only.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
for mode in ${MODES:-service harness-only}; do
    dir="$work/$mode"
    rm -rf "$dir"
    cp -r "$root/tests/fixtures/harness-only" "$dir"
    sed -i "s|path = \"../../..\"|path = \"$root\"|" "$dir/Cargo.toml"
    if [ "$mode" = service ]; then
        sed -i 's|, default-features = false }| }|' "$dir/Cargo.toml"
    fi
    cp "$root/Cargo.lock" "$dir/Cargo.lock"
    crates=$(cd "$dir" && cargo tree -e normal --prefix none --offline 2>/dev/null | sort -u | wc -l)
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    (cd "$dir" && CARGO_TARGET_DIR="$dir/target" CARGO_INCREMENTAL=0 cargo build --release --offline --quiet -j "${JOBS:-2}")
    built=$(date +%s.%N)
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    (cd "$dir" && "$dir/target/release/harness-only" profile --no-heap --ops 2000 --out "$dir/profiles" >"$dir/profile.log" 2>&1) || echo "$mode: profile failed: $(tail -1 "$dir/profile.log")"
    done_=$(date +%s.%N)
    printf '%s: %s crates, build %.0f s, first profile %.1f s, total %.0f s (load %s before, %s after the build)\n' "$mode" "$crates" \
        "$(echo "$built - $start" | bc)" "$(echo "$done_ - $built" | bc)" "$(echo "$done_ - $start" | bc)" "$load_before" "$load_after"
    rm -rf "$dir/target"
done
