//! Compile a module for a target with this build's Cranelift backend and
//! write its serialized artifact (`Module::serialize`). `check.sh` compares
//! stock's and generic-lsda's bytes for the targets generic-lsda leaves to
//! the stock path.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use wasmer::sys::{Cranelift, EngineBuilder, Features, Triple};
use wasmer::{Module, Store};

#[derive(Parser)]
#[command(about = "Write the serialized artifact of a module compiled for a target")]
struct Args {
    /// The module, `.wat` or `.wasm`.
    module: PathBuf,
    /// The target triple, e.g. `aarch64-apple-darwin`.
    #[arg(long)]
    target: String,
    /// Use the ELF artifact format (`Cranelift::experimental_artifact`).
    #[arg(long)]
    elf: bool,
    /// Where to write the artifact.
    #[arg(long, short)]
    output: PathBuf,
}

fn run(args: &Args) -> Result<usize, String> {
    let triple = Triple::from_str(&args.target)
        .map_err(|e| format!("unknown target `{}`: {e}", args.target))?;
    let mut cranelift = Cranelift::default();
    if args.elf {
        cranelift.experimental_artifact(true);
    }
    let mut features = Features::default();
    features.exceptions(true);
    let engine: wasmer::Engine = EngineBuilder::new(cranelift)
        .set_features(Some(features))
        .set_target(Some(wasmer_eh_runner::baseline_target(triple)))
        .engine()
        .into();
    let bytes = std::fs::read(&args.module)
        .map_err(|e| format!("cannot read {}: {e}", args.module.display()))?;
    let store = Store::new(engine);
    let module = Module::new(&store, bytes).map_err(|e| format!("compiling: {e}"))?;
    let artifact = module
        .serialize()
        .map_err(|e| format!("serializing: {e}"))?;
    std::fs::write(&args.output, &artifact)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    Ok(artifact.len())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(len) => {
            println!("artifact: {} bytes for {}", len, args.target);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("artifact: {e}");
            ExitCode::FAILURE
        }
    }
}
