//! Run generated modules on this build and print one outcome line each:
//! `SEED OUTCOME`. The differential fuzzer (`diff-fuzz`) runs this binary
//! of both builds on the same seeds and compares the lines.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use wasmer::Store;
use wasmer_eh_runner::{diff, engine};

#[derive(Parser)]
#[command(about = "Run generated modules, one outcome line per seed")]
struct Args {
    /// The first seed.
    #[arg(long)]
    first: u64,
    /// How many seeds from `first`.
    #[arg(long)]
    count: u64,
    /// `smith` (wasm-smith) or `biased` (exceptions everywhere).
    #[arg(long, default_value = "smith")]
    generator: diff::Generator,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let engine = engine();
    let mut out = std::io::stdout().lock();
    for seed in args.first..args.first.saturating_add(args.count) {
        let line = match diff::generate(args.generator, seed) {
            Ok(generated) => {
                // A store per module: nothing carries over between them.
                let mut store = Store::new(engine.clone());
                let eh = diff::exception_instructions(&generated.main);
                format!("eh:{eh} {}", diff::outcome(&mut store, &generated))
            }
            Err(e) => format!("not generated: {e}"),
        };
        // Flushed per line: after a crash, the driver knows which seed.
        if writeln!(out, "{seed} {line}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
