//! `clif-eh`: compile CLIF with `try_call`s and show its exception tables.

use clap::{Parser, Subcommand};
use clif_eh::module::{emit_object, jit_file};
use clif_eh::{EhFile, compile_function, parse_file};
use cranelift_lsda::{CallSiteEncoding, LsdaEncoding, TypeEncoding};
use eh_test_support::Escaped;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const POLICY_HELP: &str = "\
The clause policy is read from comment directives in the file:
  ; eh-selectors: type-filter | always-zero | catch-all-zero-typed-one
  ; eh-default: catch-all | cleanup
  ; eh-tag: tag1 = catch _ZTIi, catch-all, cleanup
  ; eh-encoding: [uleb128 | udata4] [pcrel | absptr | indirect]";

/// Compile CLIF with try_call and show its exception tables.
#[derive(Parser)]
#[command(name = "clif-eh", after_help = POLICY_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Legalize every function of the file into landing-pad form, compile it
    /// for each `target` of the file, and print the decoded LSDA with the
    /// selector each clause delivers.
    Show {
        /// The CLIF file.
        file: PathBuf,
        /// Also print the IR after landing-pad legalization.
        #[arg(long)]
        ir: bool,
        /// Encode call sites as udata4 (default uleb128).
        #[arg(long)]
        udata4: bool,
        /// Type table absptr (JIT); default pcrel|sdata4 (objects).
        #[arg(long, conflicts_with = "indirect")]
        absptr: bool,
        /// Type table indirect|pcrel|sdata4.
        #[arg(long)]
        indirect: bool,
    },
    /// JIT-compile the file for the host, register its tables with the
    /// system unwinder, and call `function(arg)` (an (i64) -> i64 system_v
    /// function) for each arg through a C++ caller; print what it returned
    /// or which C++ exception escaped it.
    Run {
        /// The CLIF file.
        file: PathBuf,
        /// The function, without `%`.
        function: String,
        /// Arguments, one call each.
        #[arg(required = true, allow_negative_numbers = true, value_parser = integer)]
        args: Vec<i64>,
    },
    /// Write a relocatable object with .eh_frame and .gcc_except_table and
    /// print its tables.
    Object {
        /// The CLIF file.
        file: PathBuf,
        /// Where to write the object.
        #[arg(short)]
        o: PathBuf,
        /// The architecture of the file's `target` line to use (default: the
        /// first).
        #[arg(long)]
        target: Option<String>,
        /// The personality routine.
        #[arg(long, default_value = "__gxx_personality_v0")]
        personality: String,
    },
    /// Print the .eh_frame, .eh_frame_hdr lookups and LSDAs of any ELF file
    /// (object, executable or shared library).
    Dump {
        /// The ELF file.
        file: PathBuf,
    },
}

fn integer(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an integer argument"))
}

fn main() -> ExitCode {
    // SAFETY: restoring the default disposition of SIGPIPE before any
    // thread starts, so that `clif-eh ... | head` ends quietly like other
    // command-line tools instead of panicking on a closed stdout.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Show {
            file,
            ir,
            udata4,
            absptr,
            indirect,
        } => {
            let mut encoding = LsdaEncoding::object();
            if udata4 {
                encoding.call_sites = CallSiteEncoding::Udata4;
            }
            if absptr {
                encoding.types = TypeEncoding::Absptr;
            }
            if indirect {
                encoding.types = TypeEncoding::IndirectPcRelSdata4;
            }
            show(&file, ir, encoding)
        }
        Command::Run {
            file,
            function,
            args,
        } => run_jit(&file, &function, &args),
        Command::Object {
            file,
            o,
            target,
            personality,
        } => object(&file, &o, target.as_deref(), &personality),
        Command::Dump { file } => dump(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("clif-eh: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<EhFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn run_jit(path: &Path, function: &str, args: &[i64]) -> Result<(), String> {
    let file = read(path)?;
    let jit = jit_file(&file, &[]).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("unwinder: {:?}", cranelift_lsda::detect_unwinder());
    for &arg in args {
        let out = jit
            .call(function, arg)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match out.escaped {
            Escaped::Nothing => print!("%{function}({arg}) returned {}", out.value),
            what => print!(
                "%{function}({arg}) let a C++ {what:?} escape (value {})",
                out.value
            ),
        }
        println!("; cleanup pads run: {}", out.cleanups);
    }
    Ok(())
}

fn object(path: &Path, out: &Path, target: Option<&str>, personality: &str) -> Result<(), String> {
    let file = read(path)?;
    let isa = match target {
        None => file.isas.first(),
        Some(arch) => file
            .isas
            .iter()
            .find(|i| i.triple().architecture.to_string() == arch),
    }
    .ok_or_else(|| format!("{}: no matching `target` line", path.display()))?;
    let bytes =
        emit_object(&file, isa, personality).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "wrote {} ({} bytes, {})",
        out.display(),
        bytes.len(),
        isa.triple()
    );
    let dump = clif_eh::dump::dump_elf(&bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    print!("{dump}");
    Ok(())
}

fn dump(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dump = clif_eh::dump::dump_elf(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    print!("{dump}");
    Ok(())
}

fn show(path: &Path, show_ir: bool, encoding: LsdaEncoding) -> Result<(), String> {
    let mut file = read(path)?;
    for isa in &file.isas {
        println!("target {}", isa.triple());
        for func in &file.functions {
            let compiled = compile_function(func, &**isa, &mut file.policy, encoding)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if show_ir {
                println!("{}", compiled.legalized.display());
            }
            print!("{compiled}");
        }
    }
    Ok(())
}
