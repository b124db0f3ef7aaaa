//! `clif-eh`: compile CLIF with `try_call`s and show its exception tables.

use clif_eh::{compile_function, parse_file};
use cranelift_lsda::{CallSiteEncoding, LsdaEncoding, TypeEncoding};
use std::process::ExitCode;

const USAGE: &str = "\
usage: clif-eh show <file.clif> [--ir] [--udata4] [--absptr | --indirect]

  show      legalize every function of the file into landing-pad form,
            compile it for each `target` of the file, and print the
            decoded LSDA with the selector each clause delivers
  --ir      also print the IR after landing-pad legalization
  --udata4  encode call sites as udata4 (default uleb128)
  --absptr  type table absptr (JIT); default pcrel|sdata4 (objects)
  --indirect type table indirect|pcrel|sdata4

The clause policy is read from comment directives in the file:
  ; eh-selectors: type-filter | always-zero | catch-all-zero-typed-one
  ; eh-default: catch-all | cleanup
  ; eh-tag: tag1 = catch _ZTIi, catch-all, cleanup";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("clif-eh: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    if command != "show" {
        return Err(format!("unknown command `{command}`\n{USAGE}"));
    }
    let mut path = None;
    let mut show_ir = false;
    let mut encoding = LsdaEncoding::object();
    for arg in rest {
        match arg.as_str() {
            "--ir" => show_ir = true,
            "--udata4" => encoding.call_sites = CallSiteEncoding::Udata4,
            "--absptr" => encoding.types = TypeEncoding::Absptr,
            "--indirect" => encoding.types = TypeEncoding::IndirectPcRelSdata4,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`\n{USAGE}")),
            file => path = Some(file),
        }
    }
    let path = path.ok_or(USAGE)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut file = parse_file(&text).map_err(|e| format!("{path}: {e}"))?;
    for isa in &file.isas {
        println!("target {}", isa.triple());
        for func in &file.functions {
            let compiled = compile_function(func, isa, &mut file.policy, encoding)
                .map_err(|e| format!("{path}: {e}"))?;
            if show_ir {
                println!("{}", compiled.legalized.display());
            }
            print!("{compiled}");
        }
    }
    Ok(())
}
