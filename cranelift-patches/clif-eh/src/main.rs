//! `clif-eh`: compile CLIF with `try_call`s and show its exception tables.

use clif_eh::{compile_function, parse_file};
use cranelift_lsda::{CallSiteEncoding, LsdaEncoding, TypeEncoding};
use std::process::ExitCode;

const USAGE: &str = "\
usage: clif-eh show <file.clif> [--ir] [--udata4] [--absptr | --indirect]
       clif-eh run <file.clif> <function> <arg>...
       clif-eh object <file.clif> -o <out.o> [--target <arch>] [--personality <name>]
       clif-eh dump <elf file>

  show      legalize every function of the file into landing-pad form,
            compile it for each `target` of the file, and print the
            decoded LSDA with the selector each clause delivers
  --ir      also print the IR after landing-pad legalization
  --udata4  encode call sites as udata4 (default uleb128)
  --absptr  type table absptr (JIT); default pcrel|sdata4 (objects)
  --indirect type table indirect|pcrel|sdata4
  run       JIT-compile the file for the host, register its tables with the
            system unwinder, and call `function(arg)` (an (i64) -> i64
            system_v function) for each arg through a C++ caller; print what
            it returned or which C++ exception escaped it
  object    write a relocatable object with .eh_frame and .gcc_except_table
            (personality default __gxx_personality_v0) and print its tables
  dump      print the .eh_frame, .eh_frame_hdr lookups and LSDAs of any ELF
            file (object, executable or shared library)

The clause policy is read from comment directives in the file:
  ; eh-selectors: type-filter | always-zero | catch-all-zero-typed-one
  ; eh-default: catch-all | cleanup
  ; eh-tag: tag1 = catch _ZTIi, catch-all, cleanup";

fn main() -> ExitCode {
    // SAFETY: restoring the default disposition of SIGPIPE before any
    // thread starts, so that `clif-eh ... | head` ends quietly like other
    // command-line tools instead of panicking on a closed stdout.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
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
    match command.as_str() {
        "show" => show(rest),
        "run" => run_jit(rest),
        "object" => object(rest),
        "dump" => {
            let [path] = rest else {
                return Err(USAGE.to_string());
            };
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            let dump = clif_eh::dump::dump_elf(&bytes).map_err(|e| format!("{path}: {e}"))?;
            print!("{dump}");
            Ok(())
        }
        "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

fn read(path: &str) -> Result<clif_eh::EhFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse_file(&text).map_err(|e| format!("{path}: {e}"))
}

fn run_jit(args: &[String]) -> Result<(), String> {
    let [path, function, inputs @ ..] = args else {
        return Err(USAGE.to_string());
    };
    if inputs.is_empty() {
        return Err(format!(
            "give at least one argument for %{function}\n{USAGE}"
        ));
    }
    let file = read(path)?;
    let jit = clif_eh::module::jit_file(&file, &[]).map_err(|e| format!("{path}: {e}"))?;
    println!("unwinder: {:?}", cranelift_lsda::detect_unwinder());
    for input in inputs {
        let arg: i64 = input
            .parse()
            .map_err(|_| format!("`{input}` is not an integer argument"))?;
        let out = jit
            .call(function, arg)
            .map_err(|e| format!("{path}: {e}"))?;
        match out.escaped {
            clif_eh::module::Escaped::Nothing => {
                print!("%{function}({arg}) returned {}", out.value)
            }
            what => print!(
                "%{function}({arg}) let a C++ {what:?} escape (value {})",
                out.value
            ),
        }
        println!("; cleanup pads run: {}", out.cleanups);
    }
    Ok(())
}

fn object(args: &[String]) -> Result<(), String> {
    let mut path = None;
    let mut out = None;
    let mut target = None;
    let mut personality = "__gxx_personality_v0".to_string();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "-o" => out = Some(value("-o")?),
            "--target" => target = Some(value("--target")?),
            "--personality" => personality = value("--personality")?,
            flag if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`\n{USAGE}")),
            file => path = Some(file.to_string()),
        }
    }
    let (path, out) = path.zip(out).ok_or(USAGE)?;
    let file = read(&path)?;
    let isa = match &target {
        None => file.isas.first(),
        Some(arch) => file
            .isas
            .iter()
            .find(|i| i.triple().architecture.to_string() == *arch),
    }
    .ok_or_else(|| format!("{path}: no matching `target` line"))?;
    let bytes = clif_eh::module::emit_object(&file, isa, &personality)
        .map_err(|e| format!("{path}: {e}"))?;
    std::fs::write(&out, &bytes).map_err(|e| format!("{out}: {e}"))?;
    println!("wrote {out} ({} bytes, {})", bytes.len(), isa.triple());
    let dump = clif_eh::dump::dump_elf(&bytes).map_err(|e| format!("{out}: {e}"))?;
    print!("{dump}");
    Ok(())
}

fn show(rest: &[String]) -> Result<(), String> {
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
