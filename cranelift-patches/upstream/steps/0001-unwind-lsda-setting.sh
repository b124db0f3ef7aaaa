#!/usr/bin/env bash
# Step 1 (its commit message: the .msg file beside it): the shared setting `unwind_lsda` (default off), appended after the
# last shared setting as `enable_compact_unwind_abi` was (#13586), with the
# wiring a new shared setting needs: the `display_default` expectation and
# fuzzgen's list of semantics-preserving flags. Runs in the tree's root.
set -euo pipefail
edit="$(dirname "$0")/edit.py"

python3 "$edit" cranelift/codegen/meta/src/shared/settings.rs --before '
    // When adding new settings please check if they can also be added
    // in cranelift/fuzzgen/src/lib.rs for fuzzing.' '
    settings.add_bool(
        "unwind_lsda",
        "Generate Itanium-ABI exception tables for `try_call`.",
        r#"
            With `unwind_info`, describe every function whose `try_call`s have
            handlers with an LSDA (a `.gcc_except_table` entry) and give its
            FDE a CIE that names a personality routine, so that the system
            unwinder (libgcc, LLVM libunwind) and a personality such as
            `__gxx_personality_v0` or `rust_eh_personality` find the handlers
            in Cranelift frames. The `try_call`s must be in landing-pad form:
            every handler goes to one block that takes `exn0, exn1`. Off,
            nothing changes: no byte of code or of unwind information.
        "#,
        false,
    );
'
python3 "$edit" cranelift/codegen/src/settings.rs --after 'enable_compact_unwind_abi = false
' 'unwind_lsda = false
'
# The setting changes tables, never code: as safe to fuzz as `unwind_info`.
python3 "$edit" cranelift/fuzzgen/src/lib.rs --after '            "enable_compact_unwind_abi",
' '            "unwind_lsda",
'
