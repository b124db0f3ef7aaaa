#!/usr/bin/env bash
# Build Wasmer 7.5 into one target directory (target/wasmer): the `stock`
# workspace on the released crates, the `generic-lsda` workspace on the
# released wasmer-compiler-cranelift with generic-lsda.patch and the feature
# on, and the `patched-off` workspace's artifact writer on the same patched
# crate with the feature off. Crates the builds share with the same
# features are built once. wasmer 7.5.0 declares rust-version 1.96:
# --ignore-rust-version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR="${WASMER_TARGET_DIR:-$root/target/wasmer}"

"$here/prepare.sh"
for side in stock generic-lsda; do
    (
        cd "$here/$side"
        cargo build --quiet --release --ignore-rust-version --locked --bins
        cargo test --quiet --release --ignore-rust-version --locked --no-run --test wat
    )
done
(cd "$here/patched-off" && cargo build --quiet --release --ignore-rust-version --locked --bins)
echo "build.sh: built in $CARGO_TARGET_DIR/release"
