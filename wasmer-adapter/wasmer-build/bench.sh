#!/usr/bin/env bash
# The Wasmer benchmark: stock Wasmer 7.5 Cranelift against generic-lsda,
# measured in turns in one run, printed as one table of ratios.
# Arguments go to the driver (`--smoke`, `--rounds N`); the spec testsuite,
# when ../shared/testsuite is there, is compiled by both builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target="${WASMER_TARGET_DIR:-$root/target/wasmer}"
"$here/build.sh" >/dev/null
suite=("--testsuite" "$root/../shared/testsuite")
[ -d "${suite[1]}" ] || suite=()
exec "$target/release/bench-generic-lsda" "${suite[@]}" "$@"
