#!/usr/bin/env bash
# What CI proves about the upstream series, on the Wasmtime snapshot, as a
# Cranelift maintainer's CI would:
#  1. the committed series is what generate.sh makes from the steps;
#  2. it applies to the snapshot with `git am`;
#  3. `cargo fmt --all -- --check` and clippy (`-D warnings`) on the touched
#     crates pass in the patched tree;
#  4. the patched tree's `clif-util test` passes the whole filetest corpus,
#     and cranelift-codegen's, cranelift-jit's and cranelift-object's tests
#     pass;
#  5. Wasmtime, built from the patched tree, runs its exception-handling
#     wast tests (the new setting is a shared flag Wasmtime must accept);
#  6. every function of upstream's corpus and of this project's filetests
#     compiles to the same code and unwind info as before the series, with
#     the setting off, and on apart from the try_calls it refuses
#     (identity.sh).
# Prints one line per stage with its time. The builds share
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

patches=$(ls "$here"/series/*.patch | wc -l)
applies() {
    tree=$(bash "$here/unpack.sh" "$tarball" "$work")
    git -C "$tree" -c user.name=ci -c user.email=ci@invalid am -q "$here"/series/*.patch
    echo "upstream: $patches patches applied to wasmtime e6b33de"
    # The size a reviewer reads, per patch.
    local patch
    for patch in "$here"/series/*.patch; do
        git -C "$tree" apply --numstat "$patch" | awk -v name="$(basename "$patch")" \
            '{ files++; added += $1; deleted += $2 }
             END { printf "upstream: %s: %d files, +%d -%d lines\n", name, files, added, deleted }'
    done
}

export CARGO_TARGET_DIR=$root/target/wasmtime
# The crates the series touches beyond one-line list entries.
touched=(-p cranelift-codegen -p cranelift-codegen-meta -p cranelift-jit -p cranelift-object
    -p cranelift-filetests)
lint() {
    (cd "$tree" && cargo fmt --all -- --check)
    (cd "$tree" && cargo clippy -q "${touched[@]}" --all-targets --ignore-rust-version \
        -- -D warnings)
    echo "upstream: cargo fmt --all and clippy -D warnings (cranelift-codegen, -meta, -jit, -object, -filetests) clean"
}

clif_util_corpus() {
    (cd "$tree" && cargo build -q -p cranelift-tools --ignore-rust-version)
    local log=$work/clif-util.log
    if ! "$CARGO_TARGET_DIR/debug/clif-util" test "$tree/cranelift/filetests/filetests" \
        >"$log" 2>&1; then
        grep -E "FAIL" "$log" | head -20 >&2
        return 1
    fi
    echo "upstream: clif-util test: $(grep -E '^[0-9]+ tests$' "$log") of the corpus pass"
}

crate_tests() {
    local log=$work/crate-tests.log status=0
    (cd "$tree" && cargo test -p cranelift-codegen -p cranelift-jit -p cranelift-object \
        --ignore-rust-version >"$log" 2>&1) || status=$?
    grep -E "FAILED|panicked" "$log" | head -20 >&2 || true
    # The registration tests again under LLVM libunwind (preloaded through
    # cargo's runner, so that cargo and rustc do not run under it).
    local libunwind=/usr/lib/x86_64-linux-gnu/libunwind.so.1
    if [[ -e $libunwind ]]; then
        (cd "$tree" && CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="env LD_PRELOAD=$libunwind" \
            cargo test -p cranelift-jit --test unwind_registration --test lsda_registration \
            --ignore-rust-version >"$log.llvm" 2>&1) || status=$?
        grep -E "FAILED|panicked" "$log.llvm" | head -20 >&2 || true
        awk '/^test result:/ { p += $4; f += $6 } END {
            printf "upstream: cranelift-jit registration tests under LLVM libunwind: %d passed, %d failed\n", p, f }' \
            "$log.llvm"
    else
        echo "upstream: cranelift-jit registration tests under LLVM libunwind: SKIPPED, $libunwind is absent"
    fi
    local lsda
    lsda=$(cd "$tree" && cargo test -q -p cranelift-codegen --lib --ignore-rust-version \
        -- --list isa::unwind::lsda:: 2>/dev/null | grep -c ': test$' || true)
    awk -v lsda="$lsda" '/^test result:/ { p += $4; f += $6 } END {
        printf "upstream: cranelift-codegen, -jit and -object tests: %d passed (%d of isa::unwind::lsda), %d failed\n",
            p, lsda, f }' "$log"
    return "$status"
}

# Wasmtime's own exception-handling wast files that its CLI runs alone
# (the others need its test harness's imports or the component model).
wasmtime_wast() {
    (cd "$tree" && cargo build -q -p wasmtime-cli --no-default-features \
        --features wast,cranelift,gc,gc-drc --ignore-rust-version)
    local files=(many-results-with-exceptions stack-args-exceptions throw-payloads
        traps-skip-catch-all)
    for file in "${files[@]}"; do
        "$CARGO_TARGET_DIR/debug/wasmtime" wast \
            -W exceptions=y,gc=y,tail-call=y,simd=y,reference-types=y,bulk-memory=y \
            "$tree/tests/misc_testsuite/$file.wast"
    done
    echo "upstream: wasmtime wast: ${#files[@]} exception-handling files of" \
        "tests/misc_testsuite pass with the series applied"
}

# The tree before the series, beside the patched one.
identity() {
    git -C "$tree" worktree add -q --detach "$work/base" "HEAD~$patches"
    bash "$here/identity.sh" "$work/base" "$tree"
}

stage "generated series matches the committed one" generated
stage "series applies" applies
stage "fmt and clippy in the patched tree" lint
stage "clif-util test over the whole corpus" clif_util_corpus
stage "cranelift-codegen's, -jit's and -object's tests" crate_tests
stage "Wasmtime runs its exception-handling wast tests" wasmtime_wast
stage "setting off and on: identical code and unwind info" identity
