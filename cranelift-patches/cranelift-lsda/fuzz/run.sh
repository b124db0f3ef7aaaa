#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 60), from the seed corpus in
# seeds/, with libFuzzer through cargo-fuzz (installed if missing) and
# AddressSanitizer; print the executions of each. A crash fails the run
# and leaves its input in artifacts/<target>/ (make it a regression test).
#
#   usage: run.sh [SECONDS]
#
# cargo-fuzz needs nightly flags (-Zsanitizer): RUSTC_BOOTSTRAP=1 lets the
# machine's stable toolchain take them. Cranelift 0.136 declares
# rust-version 1.96, so the cargo commands cargo-fuzz runs get
# --ignore-rust-version through a wrapper.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
cd "$here"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --version 0.13.2 --locked -q
fi
wrapper=$(mktemp -d)
trap 'rm -rf "$wrapper"' EXIT
real_cargo=$(command -v cargo)
cat >"$wrapper/cargo" <<WRAP
#!/usr/bin/env bash
case \${1:-} in
build | rustc | run) cmd=\$1; shift; exec "$real_cargo" "\$cmd" --ignore-rust-version "\$@" ;;
esac
exec "$real_cargo" "\$@"
WRAP
chmod +x "$wrapper/cargo"
export PATH=$wrapper:$PATH CARGO=$wrapper/cargo RUSTC_BOOTSTRAP=1

targets=(decode roundtrip legalize)
start=$SECONDS
if ! cargo-fuzz build -O >"$wrapper/build.log" 2>&1; then
    cat "$wrapper/build.log" >&2
    exit 1
fi
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s"
for target in "${targets[@]}"; do
    corpus=$(mktemp -d)
    cp "seeds/$target"/* "$corpus/"
    log=$wrapper/$target.log
    if ! cargo-fuzz run -O "$target" "$corpus" -- -max_total_time="$seconds" >"$log" 2>&1; then
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -20 >&2
        echo "fuzz: $target FAILED: the input is in $here/artifacts/$target/" >&2
        exit 1
    fi
    echo "fuzz: $target: $(grep -E '^Done' "$log" | tail -n 1)"
    rm -rf "$corpus"
done
