#!/usr/bin/env bash
# The README's test command: installs what the tests need on a Debian
# machine (missing packages only; as root, or through sudo), then runs every
# test of the workspace and prints one totals line.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests need from Debian (installed if missing): tests/packages.sh.
tests/packages.sh

# cranelift 0.136.0 and wasmer 7.5.0 declare rust-version 1.96; 1.95 builds
# them cleanly (see README).
log=$(mktemp)
EH_FIGURES_DIR=$(mktemp -d)
export EH_FIGURES_DIR
set +e
cargo test --workspace --no-fail-fast --ignore-rust-version 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# cargo's last line is the doc-test run of the last crate, which may hold
# no test: sum every binary's results, and the filetests runner's.
summary=$(mktemp)
{
    awk '/^test result:/ { p += $4; f += $6 } /^filetests: [0-9]+ passed/ { p += $2; f += $4 }
         END { printf "totals: %d passed, %d failed\n", p, f }' "$log"
    # Figures the tests measured (concurrency, leaks), one line each.
    for figure in "$EH_FIGURES_DIR"/*; do
        if [[ -f $figure ]]; then
            sed "s|^|figure: $(basename "$figure"): |" "$figure"
        fi
    done
} | tee "$summary"
# The docs show this summary (samples named test-sh*): it must still read so.
if ((status == 0)); then
    EH_SAMPLE_OUTPUT=$summary cargo test -q --ignore-rust-version -p clif-eh --test docs \
        -- --ignored samples_of_test_sh >"$log" 2>&1 || {
        cat "$log"
        echo "test.sh: the docs' samples of this output are stale (docs/ci.md)" >&2
        status=1
    }
fi
rm -rf "$log" "$summary" "$EH_FIGURES_DIR"
exit "$status"
