//! What the series changes in compiled code: nothing, with the new setting
//! off or on, except that on refuses the `try_call`s an LSDA cannot
//! describe.
//!
//! `identity [--set SETTING]... PATH...` compiles every function of every
//! CLIF file under the paths, for each of the file's targets with the
//! file's settings (plus each `--set`, placed before its first `target`),
//! and prints one line per function: file, target, name, whether it has a
//! `try_call`, and hashes of its code bytes and its unwind info, or its
//! compile error (`error lsda` for `CodegenError::Lsda`).
//!
//! `identity --compare BASE PATCHED` compares two such outputs, from the
//! Wasmtime snapshot before the series (BASE) and after it: every line
//! must be the same, except a `try_call` function PATCHED refuses with
//! `error lsda`. `identity.sh` builds this file against both trees.

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_reader::{IsaSpec, ParseOptions, parse_test};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn hash(value: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn clif_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            clif_files(&entry, out);
        }
    } else if path.extension().is_some_and(|e| e == "clif") {
        out.push(path.to_path_buf());
    }
}

fn has_try_call(func: &Function) -> bool {
    func.layout.blocks().any(|block| {
        func.layout
            .last_inst(block)
            .is_some_and(|inst| func.dfg.insts[inst].exception_table().is_some())
    })
}

/// `text` with `set` lines for `settings` before its first `target` line.
fn with_settings(text: &str, settings: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending = !settings.is_empty();
    for line in text.lines() {
        if pending && line.starts_with("target ") {
            for setting in settings {
                out.push_str(&format!("set {setting}\n"));
            }
            pending = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn compile_all(settings: &[String], paths: &[String]) {
    // Panics are reported as outcomes, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let mut files = Vec::new();
    for path in paths {
        clif_files(Path::new(path), &mut files);
    }
    let (mut compiled, mut failed, mut skipped) = (0, 0, 0);
    for file in &files {
        let text = with_settings(&std::fs::read_to_string(file).unwrap(), settings);
        let Ok(test) = parse_test(&text, ParseOptions::default()) else {
            skipped += 1;
            continue;
        };
        let IsaSpec::Some(isas) = test.isa_spec else {
            skipped += 1;
            continue;
        };
        for isa in &isas {
            for (func, _) in &test.functions {
                let mut ctx = Context::for_function(func.clone());
                // Some files hold functions meant to fail (verifier tests);
                // their error text is compared too.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    match ctx.compile(&**isa, &mut ControlPlane::default()) {
                        Ok(code) => {
                            let unwind = code.create_unwind_info(&**isa);
                            Ok((hash(code.code_buffer()), hash(format!("{unwind:?}"))))
                        }
                        Err(e) => Err(format!("{:?}", e.inner)),
                    }
                }));
                let outcome = match result {
                    Ok(Ok((code, unwind))) => {
                        compiled += 1;
                        format!("code {code:016x} unwind {unwind:016x}")
                    }
                    Ok(Err(e)) if e.starts_with("Lsda(") => {
                        failed += 1;
                        "error lsda".to_string()
                    }
                    Ok(Err(e)) => {
                        failed += 1;
                        format!("error {:016x}", hash(e))
                    }
                    Err(_) => {
                        failed += 1;
                        "panic".to_string()
                    }
                };
                let kind = if has_try_call(func) {
                    "try_call"
                } else {
                    "plain"
                };
                println!(
                    "{} {} {} {kind} {outcome}",
                    file.display(),
                    isa.triple(),
                    func.name
                );
            }
        }
    }
    eprintln!(
        "{} files: {compiled} functions compiled, {failed} refused, {skipped} files without a \
         target or not parsable",
        files.len()
    );
}

/// Compare two outputs of `compile_all`; print the verdict, or the first
/// differences and fail.
fn compare(base: &str, patched: &str) -> ExitCode {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (base, patched) = (read(base), read(patched));
    let (base, patched): (Vec<_>, Vec<_>) = (base.lines().collect(), patched.lines().collect());
    if base.len() != patched.len() {
        eprintln!(
            "identity: {} functions before the series, {} after",
            base.len(),
            patched.len()
        );
        return ExitCode::FAILURE;
    }
    let (mut identical, mut refused, mut differ) = (0, 0, 0);
    for (before, after) in base.iter().zip(&patched) {
        if before == after {
            identical += 1;
        } else if before.contains(" try_call ") && after.ends_with(" try_call error lsda") {
            refused += 1;
        } else {
            differ += 1;
            if differ <= 20 {
                eprintln!("identity: before: {before}\nidentity: after:  {after}");
            }
        }
    }
    println!(
        "{} functions: {identical} identical, {refused} try_call functions refused by the check, \
         {differ} different",
        base.len()
    );
    if differ == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--compare") {
        return match &args[1..] {
            [base, patched] => compare(base, patched),
            _ => {
                eprintln!("usage: identity --compare BASE PATCHED");
                ExitCode::FAILURE
            }
        };
    }
    let mut settings = Vec::new();
    while args.first().map(String::as_str) == Some("--set") && args.len() > 1 {
        settings.push(args.remove(1));
        args.remove(0);
    }
    compile_all(&settings, &args);
    ExitCode::SUCCESS
}
