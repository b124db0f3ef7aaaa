#!/usr/bin/env bash
# CI stage `wasmer`: build stock and patched Wasmer 7.5, run the spec suite
# on both side by side (and on LLVM libunwind), the WAT tests on both, and
# the benchmark briefly. Fails if generic-lsda fails any directive or test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target="${WASMER_TARGET_DIR:-$root/target/wasmer}"
suite="$root/../shared/testsuite"
libunwind=/usr/lib/x86_64-linux-gnu/libunwind.so.1

t0=$SECONDS
# These sources are outside the main workspace's `cargo fmt --all`.
rustfmt --edition 2024 --check "$here"/src/lib.rs "$here"/src/wast.rs "$here"/src/bin/*.rs "$here"/tests/wat.rs
"$here/build.sh"
echo "wasmer: build $((SECONDS - t0)) s"

if [ ! -d "$suite" ]; then
    echo "wasmer: spec suite: SKIPPED, $suite is absent (the test data lives in ../shared/testsuite/)"
else
    status=0
    for side in stock generic-lsda; do
        "$target/release/wast-$side" -v "$suite" > "$target/wast-$side.log" || status=$?
        grep -v '^    skipped' "$target/wast-$side.log"
    done
    stock=$(tail -n1 "$target/wast-stock.log")
    ours=$(tail -n1 "$target/wast-generic-lsda.log")
    echo "wasmer: side by side: stock 7.5 {${stock#wast: }} | generic-lsda {${ours#wast: }}"
    # Stock may fail; generic-lsda may not.
    grep -q ' 0 failed' <<<"$ours" || { echo "wasmer: generic-lsda failed spec directives" >&2; exit 1; }
    if [ -e "$libunwind" ]; then
        LD_PRELOAD=$libunwind "$target/release/wast-generic-lsda" "$suite" | tail -n1 \
            | sed 's/^wast:/wasmer: generic-lsda under LLVM libunwind:/' | tee "$target/wast-llvm.log"
        grep -q ' 0 failed' "$target/wast-llvm.log"
    else
        echo "wasmer: LLVM libunwind run: SKIPPED, $libunwind is absent (./test.sh installs libunwind-14)"
    fi
fi

for side in stock generic-lsda; do
    (
        cd "$here/$side"
        CARGO_TARGET_DIR=$target cargo test --quiet --release --ignore-rust-version --locked --test wat 2>&1 \
            | grep -E '^test result|FAILED|panicked' | sed "s/^/wasmer: WAT tests [$side]: /"
        test "${PIPESTATUS[0]}" -eq 0
    )
done
if [ -e "$libunwind" ]; then
    (
        cd "$here/generic-lsda"
        LD_PRELOAD=$libunwind CARGO_TARGET_DIR=$target cargo test --quiet --release --ignore-rust-version --locked --test wat 2>&1 \
            | grep -E '^test result|FAILED|panicked' | sed "s/^/wasmer: WAT tests [generic-lsda, LLVM libunwind]: /"
        test "${PIPESTATUS[0]}" -eq 0
    )
fi

"$target/release/bench-generic-lsda" --smoke --rounds 1
echo "wasmer: total $((SECONDS - t0)) s"
