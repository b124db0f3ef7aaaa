//! Run `.wast` files (or directories of them) on this build's Wasmer
//! Cranelift backend: one line per file, then
//! `wast: N passed, M failed[, K skipped]`.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wasmer_eh_runner::{BACKEND, wast::run_file};

#[derive(Parser)]
#[command(about = "Run .wast files on Wasmer 7.5's Cranelift backend")]
struct Args {
    /// `.wast` files, or directories searched for them (sorted).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Also list every failure and every skipped directive with its reason.
    #[arg(short, long)]
    verbose: bool,
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|e| e == "wast") {
                collect(&entry, files)?;
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut files = Vec::new();
    for path in &args.paths {
        if !path.exists() {
            eprintln!(
                "wast: {} does not exist (the spec test data is expected in ../shared/testsuite/)",
                path.display()
            );
            return ExitCode::from(2);
        }
        if let Err(e) = collect(path, &mut files) {
            eprintln!("wast: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if files.is_empty() {
        eprintln!("wast: no .wast files under the given paths");
        return ExitCode::from(2);
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for file in &files {
        match run_file(file) {
            Err(e) => {
                failed += 1;
                println!("{} [{BACKEND}]: {e}", file.display());
            }
            Ok(report) => {
                println!("{} [{BACKEND}]: {report}", file.display());
                if args.verbose {
                    for (line, reason) in report.failures.iter().skip(1) {
                        println!("    failed, line {line}: {reason}");
                    }
                    for (line, reason) in &report.skipped {
                        println!("    skipped, line {line}: {reason}");
                    }
                }
                passed += report.passed;
                failed += report.failed;
                skipped += report.skipped.len();
            }
        }
    }
    if skipped > 0 {
        println!("wast: {passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("wast: {passed} passed, {failed} failed");
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
