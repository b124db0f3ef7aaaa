#!/usr/bin/env bash
# Step 4 (its commit message: the .msg file beside it): cranelift-filetests
# gets `test lsda` and `test legalize-eh`. The directive parser and the
# per-function pipeline with its expected text are moved from clif-eh by
# move.py (the same code this project's filetests runner uses); the subtest
# is the glue to `SubTest`; this project's filetests are placed as upstream
# keeps them by place_filetests.py. Runs in the tree's root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
clif_eh=$here/../../clif-eh/src
filetests=$here/../../../filetests/filetests
dest=cranelift/filetests/src
python3 "$here/move.py" \
    --rewrite 'cranelift_lsda::legalize_landing_pads=cranelift_frontend::legalize_landing_pads' \
    --rewrite 'cranelift_lsda::=cranelift_codegen::isa::unwind::lsda::' \
    "$clif_eh" "$dest" directives:lsda_directives compile:lsda_compile
rustfmt --edition 2024 "$dest/lsda_directives.rs" "$dest/lsda_compile.rs"

cat >"$dest/test_lsda.rs" <<'RS'
//! Test commands `lsda` and `legalize-eh`: exception tables for `try_call`.
//!
//! The clause policy comes from `; eh-...:` directives in the file's
//! comments (see `lsda_directives`). For each function and target,
//! `test lsda` prints the compiled function's selectors and its decoded
//! LSDA, and `test legalize-eh` the IR after landing-pad legalization, or
//! `error: <message>`; the text is compared with the comments after the
//! function, as `precise-output` does (`CRANELIFT_TEST_BLESS=1` rewrites
//! them).

use crate::lsda_compile::{FiletestKind, error_lines, filetest_lines};
use crate::lsda_directives::{parse_encoding, parse_policy};
use crate::subtest::{Context, SubTest, check_precise_output};
use cranelift_codegen::ir::Function;
use cranelift_reader::TestCommand;
use std::borrow::Cow;

struct TestLsda(FiletestKind);

pub fn subtest(parsed: &TestCommand) -> anyhow::Result<Box<dyn SubTest>> {
    let kind = match parsed.command {
        "lsda" => FiletestKind::Lsda,
        "legalize-eh" => FiletestKind::LegalizeEh,
        other => anyhow::bail!("`{other}` is not an exception-table test"),
    };
    if !parsed.options.is_empty() {
        anyhow::bail!("No options allowed on {parsed}");
    }
    Ok(Box::new(TestLsda(kind)))
}

impl SubTest for TestLsda {
    fn name(&self) -> &'static str {
        match self.0 {
            FiletestKind::Lsda => "lsda",
            FiletestKind::LegalizeEh => "legalize-eh",
        }
    }

    fn is_mutating(&self) -> bool {
        false
    }

    fn needs_isa(&self) -> bool {
        true
    }

    // Legalization verifies its input and reports failures as its own
    // error, which the filetests check.
    fn needs_verifier(&self) -> bool {
        false
    }

    fn run(&self, func: Cow<Function>, context: &Context) -> anyhow::Result<()> {
        let isa = context.isa.expect("exception-table tests need an ISA");
        // Directive errors name the file's lines: read them from the file.
        let text = std::fs::read_to_string(context.file_path)?;
        let lines = match parse_policy(&text).and_then(|p| Ok((p, parse_encoding(&text)?))) {
            Err(e) => error_lines(&e),
            Ok((policy, encoding)) => filetest_lines(self.0, &func, isa, &policy, encoding),
        };
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        check_precise_output(&lines, context)
    }
}
RS

# Public, as `function_runner` is: the pipeline and the directive syntax
# are usable by other tools (clif-eh uses them so).
python3 "$here/edit.py" "$dest/lib.rs" --after 'pub mod function_runner;
' 'pub mod lsda_compile;
pub mod lsda_directives;
'
python3 "$here/edit.py" "$dest/lib.rs" --after 'mod test_interpret;
' 'mod test_lsda;
'
python3 "$here/edit.py" "$dest/lib.rs" --after '        "interpret" => test_interpret::subtest(parsed),
' '        "legalize-eh" | "lsda" => test_lsda::subtest(parsed),
'
python3 "$here/edit.py" "$dest/subtest.rs" --replace '    #[expect(dead_code, reason = "may get used later")]
    pub file_path' '    pub file_path'

corpus=cranelift/filetests/filetests/isa
python3 "$here/place_filetests.py" "$filetests/lsda" "$corpus" lsda
python3 "$here/place_filetests.py" "$filetests/legalize-eh" "$corpus" legalize-eh
