#!/usr/bin/env bash
# CI stage `wasmer`: build stock and patched Wasmer 7.5, run the spec suite
# on both side by side (and generic-lsda under LLVM libunwind), the WAT
# tests on both, compare artifacts for targets left to the stock path,
# fuzz both differentially (40 s per generator), and run the benchmark
# briefly, its byte figures held to docs/wasmer.md's. Fails
# if generic-lsda fails any directive or test, if the builds diverge, or if
# the spec data is absent (set WASMER_EH_ALLOW_NO_SUITE=1 to run without
# it, reported as skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target="${WASMER_TARGET_DIR:-$root/target/wasmer}"
suite="$root/../shared/testsuite"
libunwind=/usr/lib/x86_64-linux-gnu/libunwind.so.1
# Test binaries run under LLVM libunwind through cargo's runner, so that
# cargo and rustc themselves do not.
llvm_runner_var=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER

t0=$SECONDS
# The lines the docs quote (samples named wasmer*), checked at the end.
summary="$target/summary.log"
mkdir -p "$target"
: > "$summary"
# These sources are outside the main workspace's `cargo fmt --all`.
rustfmt --edition 2024 --check "$here"/src/lib.rs "$here"/src/wast.rs "$here"/src/bin/*.rs "$here"/tests/wat.rs
find "$here/overlay" -name '*.rs' -exec rustfmt --edition 2024 --check {} +
# Both forms of the change are what generate.sh makes from the real files.
generated=$(mktemp -d)
"$here/generate.sh" "$generated"
if ! diff -r "$here/series" "$generated/series" ||
    ! diff "$here/generic-lsda.patch" "$generated/generic-lsda.patch"; then
    echo "wasmer: the committed patch differs from the generated one;" \
        "run wasmer-adapter/wasmer-build/generate.sh and commit" >&2
    exit 1
fi
rm -rf "$generated"
"$here/build.sh"
echo "wasmer: build $((SECONDS - t0)) s"
# The patched crate, hooks included, is formatted as Wasmer's CI wants.
rustfmt --edition 2024 --check "$root/target/wasmer-src/wasmer-compiler-cranelift-7.5.0/src/lib.rs"

# wast_run SIDE LOG [ENV...]: run the suite, keep its exit status.
wast_run() {
    local side=$1 log=$2
    shift 2
    local status=0
    env "$@" "$target/release/wast-$side" -v "$suite" > "$log" || status=$?
    sed '/^    skipped/d' "$log"
    return "$status"
}

if [ ! -d "$suite" ]; then
    echo "wasmer: spec suite: $suite is absent (the test data lives in ../shared/testsuite/)"
    [ "${WASMER_EH_ALLOW_NO_SUITE:-0}" = 1 ] || exit 1
    echo "wasmer: spec suite: SKIPPED"
else
    # Stock may fail directives; its exit status is reported, not fatal.
    stock_status=0
    wast_run stock "$target/wast-stock.log" || stock_status=$?
    wast_run generic-lsda "$target/wast-generic-lsda.log"
    stock=$(grep '^wast: ' "$target/wast-stock.log" || echo "wast: no summary (exit $stock_status)")
    ours=$(grep '^wast: ' "$target/wast-generic-lsda.log")
    echo "wasmer: side by side: stock 7.5 {${stock#wast: }} | generic-lsda {${ours#wast: }}" | tee -a "$summary"
    if [ -e "$libunwind" ]; then
        wast_run generic-lsda "$target/wast-llvm.log" LD_PRELOAD="$libunwind" > /dev/null
        echo "wasmer: generic-lsda under LLVM libunwind: $(grep '^wast: ' "$target/wast-llvm.log" | cut -c7-)" | tee -a "$summary"
    else
        echo "wasmer: LLVM libunwind run: SKIPPED, $libunwind is absent (./test.sh installs libunwind-14)"
    fi
fi

# wat_tests SIDE LABEL [ENV...]: the WAT tests, the full log on failure.
wat_tests() {
    local side=$1 label=$2
    shift 2
    local log="$target/wat-$label.log"
    if ! (cd "$here/$side" && env "$@" CARGO_TARGET_DIR="$target" \
        cargo test --release --ignore-rust-version --locked --test wat > "$log" 2>&1); then
        cat "$log"
        echo "wasmer: WAT tests [$label] FAILED" >&2
        return 1
    fi
    echo "wasmer: WAT tests [$label]: $(grep '^test result' "$log")"
}
wat_tests stock stock
wat_tests generic-lsda generic-lsda
if [ -e "$libunwind" ]; then
    wat_tests generic-lsda "generic-lsda, LLVM libunwind" "$llvm_runner_var=env LD_PRELOAD=$libunwind"
fi

# Compilations generic-lsda leaves to the stock path give stock's artifact
# byte for byte (macOS keeps compact unwind; Linux on ISAs other than
# x86_64; the ELF artifact format); on the Linux x86_64 host it takes its
# own path, so there the artifacts differ. The patched crate with the
# feature off gives stock's artifact for every target, the host's too.
artifacts=$(mktemp -d)
artifact() {
    local side=$1 name=$2
    shift 2
    "$target/release/artifact-$side" "$here/tests/handlers.wat" -o "$artifacts/$name.$side" "$@" > /dev/null
}
for case in aarch64-apple-darwin x86_64-apple-darwin aarch64-unknown-linux-gnu \
    "x86_64-unknown-linux-gnu --elf" x86_64-unknown-linux-gnu; do
    read -r triple flag <<< "$case"
    name=$triple${flag:+-elf}
    artifact stock "$name" --target "$triple" $flag
    artifact generic-lsda "$name" --target "$triple" $flag
    artifact patched-off "$name" --target "$triple" $flag
    if ! cmp -s "$artifacts/$name.stock" "$artifacts/$name.patched-off"; then
        echo "wasmer: with the feature off, the patched crate's artifact for $case differs from stock's" >&2
        exit 1
    fi
    if cmp -s "$artifacts/$name.stock" "$artifacts/$name.generic-lsda"; then
        verdict="identical to stock"
    else
        verdict="differs from stock"
    fi
    echo "wasmer: artifact for $triple${flag:+ $flag}: $verdict (feature off: identical to stock)"
    expected="identical to stock"
    [ "$case" = x86_64-unknown-linux-gnu ] && expected="differs from stock"
    if [ "$verdict" != "$expected" ]; then
        echo "wasmer: the artifact for $case should be $expected" >&2
        exit 1
    fi
done
rm -rf "$artifacts"

# Differential fuzzing: generated modules with exceptions run on both
# builds, every outcome compared (docs/wasmer.md), with each generator. A
# new seed range each run; a divergence leaves its module in
# $target/diff-fuzz-divergences.
"$here/fuzz.sh" --seconds "${WASMER_DIFF_FUZZ_SECONDS:-40}" \
    --first "$(( $(date +%s) % 1000000 * 100000 ))" | tee -a "$summary"

# The benchmark briefly; the byte rows docs/wasmer.md's table and the
# README quote must be this run's.
bench=("$target/release/bench-generic-lsda" --smoke --rounds 1 --check-docs "$root/docs/wasmer.md" --check-docs "$root/README.md")
if [ -d "$suite" ]; then
    "${bench[@]}" --testsuite "$suite"
else
    "${bench[@]}"
fi
# The docs quote these lines (samples named wasmer*): they must still hold.
if [ -d "$suite" ]; then
    (cd "$root" && EH_SAMPLE_OUTPUT=$summary cargo test -q --ignore-rust-version -p clif-eh \
        --test docs -- --ignored samples_of_the_wasmer_stage)
fi
echo "wasmer: total $((SECONDS - t0)) s"
