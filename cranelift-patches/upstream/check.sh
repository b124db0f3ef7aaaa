#!/usr/bin/env bash
# What CI proves about the upstream series, on the Wasmtime snapshot:
#  1. the committed series is what generate.sh makes from the steps;
#  2. it applies to the snapshot with `git am`;
#  3. the patched tree's `clif-util test` passes the whole filetest corpus,
#     upstream's and this project's (placed by the series), and the patched
#     crates' own tests pass (cranelift-codegen, -frontend, -object, -jit);
#  4. with the new setting off (its default), every function of both
#     corpora compiles to the same code and unwind info as before the
#     series (identity.sh).
# Prints one line per stage with its time. The build shares
# target/wasmtime of the project, so reruns are incremental.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tarball=${WASMTIME_TARBALL:-$root/../shared/upstream/wasmtime-e6b33de.tar.gz}
if [[ ! -f $tarball ]]; then
    echo "upstream: the Wasmtime snapshot $tarball is missing (../shared/upstream)" >&2
    exit 1
fi
export WASMTIME_TARBALL=$tarball
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
stage() {
    local name=$1 start=$SECONDS
    shift
    "$@"
    echo "upstream: $name passed in $((SECONDS - start)) s (total $((SECONDS - t0)) s)"
}

generated() {
    bash "$here/generate.sh" "$work/series" >/dev/null
    if ! diff -ru "$here/series" "$work/series"; then
        echo "upstream: the committed series differs from the generated one;" \
            "run cranelift-patches/upstream/generate.sh and commit series/" >&2
        return 1
    fi
}

applies() {
    tree=$(bash "$here/unpack.sh" "$tarball" "$work")
    git -C "$tree" -c user.name=ci -c user.email=ci@invalid am -q "$here"/series/*.patch
    echo "upstream: $(ls "$here"/series/*.patch | wc -l) patches applied to wasmtime e6b33de"
}

export CARGO_TARGET_DIR=$root/target/wasmtime
clif_util_corpus() {
    (cd "$tree" && cargo build -q -p cranelift-tools --ignore-rust-version)
    local log=$work/clif-util.log
    if ! "$CARGO_TARGET_DIR/debug/clif-util" test "$tree/cranelift/filetests/filetests" \
        >"$log" 2>&1; then
        grep -E "FAIL" "$log" | head -20 >&2
        return 1
    fi
    echo "upstream: clif-util test: $(grep -E '^[0-9]+ tests$' "$log") of the corpus pass" \
        "(upstream's and this project's)"
}

# This project's filetests as the series places them (isa/<arch>/lsda-*,
# legalize-eh-*), run alone for their count.
clif_util_ours() {
    local log=$work/clif-util-ours.log
    local files=("$tree"/cranelift/filetests/filetests/isa/*/{lsda,legalize-eh}-*.clif)
    if ! "$CARGO_TARGET_DIR/debug/clif-util" test "${files[@]}" >"$log" 2>&1; then
        grep -E "FAIL" "$log" | head -20 >&2
        return 1
    fi
    echo "upstream: clif-util test: $(grep -E '^[0-9]+ tests$' "$log") of this project's" \
        "filetests pass (test lsda, test legalize-eh)"
}

patched_crate_tests() {
    local log=$work/crate-tests.log status=0
    (cd "$tree" && cargo test -p cranelift-codegen -p cranelift-frontend -p cranelift-object -p cranelift-jit \
        --ignore-rust-version >"$log" 2>&1) || status=$?
    grep -E "FAILED|panicked" "$log" | head -20 >&2 || true
    awk '/^test result:/ { p += $4; f += $6 } END {
        printf "upstream: cranelift-codegen, -frontend, -object, -jit tests: %d passed, %d failed\n", p, f }' "$log"
    return "$status"
}

stage "generated series matches the committed one" generated
stage "series applies" applies
stage "clif-util test over the whole corpus" clif_util_corpus
stage "clif-util test over this project's filetests" clif_util_ours
stage "patched crates' tests" patched_crate_tests

# The tree before the series, beside the patched one.
identity() {
    local patches
    patches=$(ls "$here"/series/*.patch | wc -l)
    git -C "$tree" worktree add -q --detach "$work/base" "HEAD~$patches"
    bash "$here/identity.sh" "$work/base" "$tree"
}
stage "setting off: identical code and unwind info" identity
