//! Compile every function of every CLIF file under the given paths, for
//! each of the file's targets with the file's settings, and print one line
//! per function: file, target, name, and hashes of its code bytes and its
//! unwind info (or the compile error). `identity.sh` builds this against
//! the Wasmtime snapshot before and after the series and compares the two
//! outputs: with the new setting off, nothing may change.

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_reader::{IsaSpec, ParseOptions, parse_test};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

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

fn main() {
    // Panics are reported as outcomes, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        clif_files(Path::new(&arg), &mut files);
    }
    let (mut compiled, mut failed, mut skipped) = (0, 0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
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
                    Ok(Err(e)) => {
                        failed += 1;
                        format!("error {:016x}", hash(e))
                    }
                    Err(_) => {
                        failed += 1;
                        "panic".to_string()
                    }
                };
                println!("{} {} {} {outcome}", file.display(), isa.triple(), func.name);
            }
        }
    }
    eprintln!(
        "identity: {} files: {compiled} functions compiled, {failed} refused, {skipped} files \
         without a target or not parsable",
        files.len()
    );
}
