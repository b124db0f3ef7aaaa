//! Run every `filetests/**/*.clif` and compare each function's output with
//! the expectation after it. `CRANELIFT_TEST_BLESS=1` rewrites the
//! expectations instead. Arguments that do not start with `-` filter the
//! files by substring of their path.

use cranelift_lsda_filetests::{Outcome, check_text, collect_files};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("filetests");
    let bless = std::env::var("CRANELIFT_TEST_BLESS").is_ok_and(|v| v == "1");
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();

    let files = match collect_files(&dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("filetests: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let (mut passed, mut failed, mut blessed_files) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for path in files {
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if !filters.is_empty() && !filters.iter().any(|f| shown.contains(f.as_str())) {
            continue;
        }
        let result = match std::fs::read_to_string(&path) {
            Ok(text) => check_text(&text, bless),
            Err(e) => {
                println!("FAIL {shown}: {e}");
                failed += 1;
                failures.push(shown);
                continue;
            }
        };
        let mut file_failed = false;
        for (_, outcome) in &result.functions {
            match outcome {
                Outcome::Pass | Outcome::Blessed => passed += 1,
                Outcome::Fail(msg) => {
                    failed += 1;
                    file_failed = true;
                    println!("FAIL {shown}: {msg}");
                }
            }
        }
        if let Some(text) = result.blessed {
            if let Err(e) = std::fs::write(&path, text) {
                println!("FAIL {shown}: cannot write the blessed file: {e}");
                failed += 1;
                file_failed = true;
            } else {
                println!("blessed {shown}");
                blessed_files += 1;
            }
        }
        if file_failed {
            failures.push(shown);
        } else {
            let n = result.functions.len();
            println!(
                "ok   {shown} ({n} function{})",
                if n == 1 { "" } else { "s" }
            );
        }
    }
    if passed + failed == 0 && filters.is_empty() {
        println!("FAIL no filetest found under {}", dir.display());
        failed += 1;
    }
    if !failures.is_empty() {
        println!("\nfailed files:");
        for f in &failures {
            println!("    {f}");
        }
    }
    if blessed_files > 0 {
        println!("blessed {blessed_files} files");
    }
    println!("filetests: {passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
