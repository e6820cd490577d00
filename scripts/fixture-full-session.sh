#!/bin/sh
# Makes tests/data/session-full/ from a main-job session: the default
# `profkit profile` (full size, no --scale), keeping only what the HTML
# report reads, each file gzipped (tests/report_size.rs unpacks them).
# Usage: scripts/fixture-full-session.sh profiles/<ts>-profile
set -eu
session=${1:?usage: $0 profiles/<ts>-profile}
out=tests/data/session-full
rm -rf "$out"
mkdir -p "$out"
gzip -9n < "$session/index.json" > "$out/index.json.gz"
for id in $(sed -n 's/.*"run_id": "\([^"]*\)".*/\1/p' "$session/index.json"); do
  run=$(dirname "$session")/$id
  mkdir -p "$out/$id"
  for f in manifest.json bench.json findings.json sql.json sql.folded cpu.folded alloc.json leaks.json; do
    if [ -f "$run/$f" ]; then gzip -9n < "$run/$f" > "$out/$id/$f.gz"; fi
  done
done
du -sh "$out"
