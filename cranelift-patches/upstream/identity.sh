#!/usr/bin/env bash
# What the series changes in compiled code: build identity/main.rs against
# the Wasmtime tree before the series (BASE) and after it (PATCHED),
# compile every function of upstream's filetest corpus (from BASE) and of
# this project's filetests with each, and require, for every function,
# identical code bytes, unwind info and errors: with `unwind_lsda` off
# always, with it on unless it is a `try_call` the setting's check refuses.
# Prints the function counts.
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
done
corpus=("$base/cranelift/filetests/filetests" "$root/filetests/filetests")
"$CARGO_TARGET_DIR/release/lsda-identity-base" "${corpus[@]}" >"$work/base.txt" 2>/dev/null
"$CARGO_TARGET_DIR/release/lsda-identity-patched" "${corpus[@]}" >"$work/off.txt" 2>"$work/off.err"
"$CARGO_TARGET_DIR/release/lsda-identity-patched" --set unwind_lsda=true "${corpus[@]}" \
    >"$work/on.txt" 2>/dev/null

if ! diff -u "$work/base.txt" "$work/off.txt" >"$work/diff.txt"; then
    head -40 "$work/diff.txt" >&2
    echo "identity: with unwind_lsda off, code, unwind info or errors differ" >&2
    exit 1
fi
echo "identity: unwind_lsda off: $(wc -l <"$work/base.txt") (file, target, function) triples" \
    "identical before and after the series ($(cat "$work/off.err"))"
on=$("$CARGO_TARGET_DIR/release/lsda-identity-patched" --compare "$work/base.txt" "$work/on.txt")
echo "identity: unwind_lsda on: $on"
