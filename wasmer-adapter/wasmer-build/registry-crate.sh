#!/usr/bin/env bash
# Print the path of the released wasmer-compiler-cranelift 7.5.0 in cargo's
# registry, fetching it with the stock workspace first (which depends on
# it). Nothing of Wasmer's is in this repository.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=wasmer-compiler-cranelift-7.5.0
(cd "$here/stock" && cargo fetch --quiet)
for candidate in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$crate"; do
    if [ -d "$candidate" ]; then
        echo "$candidate"
        exit 0
    fi
done
echo "registry-crate.sh: $crate is not in cargo's registry" >&2
exit 1
