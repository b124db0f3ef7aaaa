#!/usr/bin/env bash
# Setting off changes nothing: build identity/main.rs against the Wasmtime
# tree before the series (BASE) and after it (PATCHED), compile every
# function of upstream's filetest corpus (from BASE) and of this project's
# filetests with each, and require identical code bytes, unwind info and
# errors for every function. Prints the function count.
#
#   usage: identity.sh BASE PATCHED
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base=$1
patched=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR=$root/target/identity

for side in base patched; do
    tree=${!side}
    crate=$work/$side
    mkdir -p "$crate"
    cp "$tree/Cargo.lock" "$crate/"
    cat >"$crate/Cargo.toml" <<TOML
[package]
name = "lsda-identity-$side"
version = "0.0.0"
edition = "2024"
publish = false

[[bin]]
name = "lsda-identity-$side"
path = "$here/identity/main.rs"

[dependencies]
cranelift-codegen = { path = "$tree/cranelift/codegen", features = ["all-arch"] }
cranelift-reader = { path = "$tree/cranelift/reader" }

[workspace]
TOML
    (cd "$crate" && cargo build -q --release --ignore-rust-version)
    "$CARGO_TARGET_DIR/release/lsda-identity-$side" \
        "$base/cranelift/filetests/filetests" "$root/filetests/filetests" \
        >"$work/$side.txt" 2>"$work/$side.err"
done
if ! diff -u "$work/base.txt" "$work/patched.txt" >"$work/diff.txt"; then
    head -40 "$work/diff.txt" >&2
    echo "identity: code, unwind info or errors differ with the series applied" >&2
    exit 1
fi
echo "identity: $(wc -l <"$work/base.txt") (file, target, function) triples identical before" \
    "and after the series ($(sed 's/^identity: //' "$work/patched.err"))"
