#!/usr/bin/env bash
# From an empty crate to its first profile, with profkit's `service`
# feature on (the default) and off (default-features = false): crates in
# the dependency tree, release build time from an empty target directory,
# and the `profile` run. Both builds run one after the other in this one
# script run, so they see the same machine. Usage: scripts/bench-harness-only.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
for mode in service harness-only; do
    dir="$work/$mode"
    rm -rf "$dir"
    cp -r "$root/tests/fixtures/harness-only" "$dir"
    sed -i "s|path = \"../../..\"|path = \"$root\"|" "$dir/Cargo.toml"
    if [ "$mode" = service ]; then
        sed -i 's|, default-features = false }| }|' "$dir/Cargo.toml"
    fi
    cp "$root/Cargo.lock" "$dir/Cargo.lock"
    crates=$(cd "$dir" && cargo tree -e normal --prefix none --offline | sort -u | wc -l)
    start=$(date +%s.%N)
    (cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release --offline --quiet)
    built=$(date +%s.%N)
    (cd "$dir" && "$dir/target/release/harness-only" profile --no-heap --ops 2000 --out "$dir/profiles" >/dev/null 2>&1)
    done_=$(date +%s.%N)
    printf '%s: %s crates, build %.0f s, first profile %.1f s, total %.0f s\n' "$mode" "$crates" \
        "$(echo "$built - $start" | bc)" "$(echo "$done_ - $built" | bc)" "$(echo "$done_ - $start" | bc)"
done
