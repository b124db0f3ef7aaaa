#!/usr/bin/env bash
# Differential fuzzing, stock vs generic-lsda, with each generator (smith,
# then biased; docs/wasmer.md). The arguments go to both `diff-fuzz` runs:
#
#   fuzz.sh --seconds 40 --first SEED          (CI, check.sh)
#   fuzz.sh --modules 100000 --first 1000000000 (the long run)
#
# Builds both sides first; a divergence leaves its module(s) in
# target/wasmer/diff-fuzz-divergences and fails the run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target="${WASMER_TARGET_DIR:-$root/target/wasmer}"
"$here/build.sh" > /dev/null
for generator in smith biased; do
    "$target/release/diff-fuzz" --generator "$generator" --out "$target/diff-fuzz-divergences" "$@"
done
