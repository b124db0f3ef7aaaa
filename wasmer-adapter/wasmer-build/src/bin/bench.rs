//! Stock Wasmer 7.5 Cranelift against `generic-lsda`, one table of ratios.
//!
//! Built twice (`bench-stock`, `bench-generic-lsda`, next to each other in
//! one target directory). `--measure` measures this build and prints
//! `name value` lines; without it, the binary runs both builds' `--measure`
//! in turns (stock, generic-lsda, stock, ...), keeps each time's best, and
//! prints the side-by-side table. `--smoke` makes every part brief.

use clap::Parser;
use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::Instant;
use wasmer::{Instance, Module, Store, Value, imports};
use wasmer_compiler::types::function::Compilation;
use wasmer_compiler::types::module::CompileModuleInfo;
use wasmer_compiler::types::relocation::RelocationTarget;
use wasmer_compiler::{Compiler, ModuleEnvironment};
use wasmer_compiler_cranelift::{Cranelift, CraneliftCompiler};
use wasmer_eh_runner::engine;
use wasmer_types::entity::PrimaryMap;
use wasmer_types::target::Target;
use wasmer_types::{Features, LocalFunctionIndex};

#[derive(Parser)]
#[command(about = "Wasmer 7.5 exception handling: stock against generic-lsda")]
struct Args {
    /// Measure this build only; print `name value` lines.
    #[arg(long)]
    measure: bool,
    /// Every part briefly (CI).
    #[arg(long)]
    smoke: bool,
    /// Runs of each build (best kept).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The spec test data (`../shared/testsuite`): every module of its
    /// `.wast` files is compiled by both builds, one corpus ratio.
    #[arg(long)]
    testsuite: Option<std::path::PathBuf>,
}

const CLAUSES: [usize; 4] = [1, 4, 16, 64];

fn main() -> ExitCode {
    let args = Args::parse();
    if args.measure {
        measure(args.smoke, args.testsuite.as_deref());
        return ExitCode::SUCCESS;
    }
    match compare(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- measuring one build ----

fn measure(smoke: bool, testsuite: Option<&std::path::Path>) {
    let scale = if smoke { 20 } else { 1 };
    for depth in [1, 10] {
        let ns = throw_latency(depth, 20_000 / scale);
        println!("throw_ns_depth_{depth} {ns:.1}");
    }
    for (kind, call) in [
        ("call", "(call $callee (local.get $acc))"),
        (
            "call_indirect",
            "(call_indirect (type $sig) (local.get $acc) (i32.const 0))",
        ),
        ("call_import", "(call $imported (local.get $acc))"),
    ] {
        let (plain, in_try) = call_cost(call, 20_000_000 / scale);
        println!("{kind}_ns_plain {plain:.3}");
        println!("{kind}_ns_in_try_table {in_try:.3}");
    }
    for k in CLAUSES {
        let (lsda_32, code_32) = sizes(k, 32);
        let (lsda_64, code_64) = sizes(k, 64);
        println!("lsda_bytes_module_k{k} {lsda_64}");
        println!("code_bytes_module_k{k} {code_64}");
        println!(
            "lsda_bytes_per_site_k{k} {:.2}",
            (lsda_64 - lsda_32) as f64 / 32.0
        );
        println!(
            "code_bytes_per_site_k{k} {:.2}",
            (code_64 - code_32) as f64 / 32.0
        );
    }
    let ms = compile_ms(4, 1000, if smoke { 1 } else { 5 });
    println!("compile_ms_1000_sites {ms:.2}");
    if let Some(dir) = testsuite {
        let modules = testsuite_modules(dir);
        let ms = best_of(if smoke { 1 } else { 3 }, || {
            let store = Store::new(engine());
            let start = Instant::now();
            for wasm in &modules {
                // Modules the suite expects to be rejected fail on both
                // builds alike (the spec runs show the same verdicts).
                let _ = Module::new(&store, wasm);
            }
            start.elapsed().as_secs_f64() * 1e3
        });
        println!("testsuite_modules {}", modules.len());
        println!("compile_ms_testsuite {ms:.2}");
    }
}

/// Every module of the `.wast` files under `dir` that needs no proposal
/// Wasmer 7.5's Cranelift backend lacks, as binaries.
fn testsuite_modules(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the testsuite directory reads") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "wast") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut modules = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a .wast file reads");
        let Ok(buffer) = wast::parser::ParseBuffer::new(&text) else {
            continue;
        };
        let Ok(wast) = wast::parser::parse::<wast::Wast>(&buffer) else {
            continue;
        };
        for directive in wast.directives {
            if let wast::WastDirective::Module(mut module) = directive
                && let Ok(wasm) = module.encode()
                && wasmer_eh_runner::wast::missing_feature(&wasm).is_none()
            {
                modules.push(wasm);
            }
        }
    }
    modules
}

fn best_of<T: PartialOrd + Copy>(runs: usize, mut f: impl FnMut() -> T) -> T {
    let mut best = f();
    for _ in 1..runs {
        let t = f();
        if t < best {
            best = t;
        }
    }
    best
}

/// ns per throw→catch across `depth` Wasm frames, `n` throws per call.
fn throw_latency(depth: i32, n: i32) -> f64 {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $t (param i32))
      (func $down (param i32)
        (if (i32.le_s (local.get 0) (i32.const 1)) (then (throw $t (local.get 0))))
        (call $down (i32.sub (local.get 0) (i32.const 1))))
      (func (export "run") (param $n i32) (param $depth i32) (result i32)
        (local $i i32) (local $sum i32)
        (loop $l
          (block $h (result i32)
            (try_table (catch $t $h) (call $down (local.get $depth)))
            (i32.const 0))
          (local.set $sum (i32.add (local.get $sum)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $sum)))"#;
    let module = Module::new(&store, wat).expect("compiles");
    let instance = Instance::new(&mut store, &module, &imports! {}).expect("links");
    let run = instance.exports.get_function("run").unwrap().clone();
    best_of(3, || {
        let start = Instant::now();
        let out = run
            .call(&mut store, &[Value::I32(n), Value::I32(depth)])
            .expect("every throw is caught");
        assert_eq!(out[0], Value::I32(n), "every throw was caught");
        start.elapsed().as_nanos() as f64 / f64::from(n)
    })
}

/// ns per non-throwing `call` (WAT of one call taking and giving `$acc`):
/// outside any try_table, and inside one.
fn call_cost(call: &str, n: i32) -> (f64, f64) {
    let mut store = Store::new(engine());
    let exporter = Module::new(
        &store,
        r#"(module (func (export "callee") (param i32) (result i32)
             (i32.add (local.get 0) (i32.const 1))))"#,
    )
    .expect("compiles");
    let exporter = Instance::new(&mut store, &exporter, &imports! {}).expect("links");
    let imported = exporter.exports.get_function("callee").unwrap().clone();
    let wat = r#"(module
      (import "env" "callee" (func $imported (param i32) (result i32)))
      (tag $t)
      (type $sig (func (param i32) (result i32)))
      (table 1 funcref)
      (elem (i32.const 0) $callee)
      (func $callee (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
      (func (export "plain") (param $n i32) (result i32)
        (local $i i32) (local $acc i32)
        (loop $l
          (local.set $acc CALL)
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $acc))
      (func (export "in_try_table") (param $n i32) (result i32)
        (local $i i32) (local $acc i32)
        (block $h
          (try_table (catch $t $h)
            (loop $l
              (local.set $acc CALL)
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (local.get $n))))))
        (local.get $acc)))"#
        .replace("CALL", call);
    let module = Module::new(&store, wat).expect("compiles");
    let imports = imports! { "env" => { "callee" => imported } };
    let instance = Instance::new(&mut store, &module, &imports).expect("links");
    let mut time = |name: &str| {
        let f = instance.exports.get_function(name).unwrap().clone();
        best_of(5, || {
            let start = Instant::now();
            let out = f.call(&mut store, &[Value::I32(n)]).expect("runs");
            assert_eq!(out[0], Value::I32(n));
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
    };
    // Interleaved, so frequency drift hits both alike.
    let mut plain = f64::MAX;
    let mut in_try = f64::MAX;
    for _ in 0..3 {
        plain = plain.min(time("plain"));
        in_try = in_try.min(time("in_try_table"));
    }
    (plain, in_try)
}

fn module_wat(clauses: usize, calls: usize) -> String {
    let tags: String = (0..clauses).map(|i| format!("(tag $t{i}) ")).collect();
    let catches: String = (0..clauses).map(|i| format!("(catch $t{i} $h) ")).collect();
    let body = "(call $callee) ".repeat(calls);
    format!(
        "(module {tags} (func $callee) \
         (func (export \"f\") (block $h (try_table {catches} {body}))))"
    )
}

/// LSDA bytes of the module, and code bytes of the function with the
/// `try_table` (K clauses around `calls` calls), from the compiler's output.
fn sizes(clauses: usize, calls: usize) -> (usize, usize) {
    let text = module_wat(clauses, calls);
    let wasm = wasmer::wat2wasm(text.as_bytes()).expect("valid WAT");
    let env = ModuleEnvironment::new()
        .translate(&wasm)
        .expect("translates");
    let mut features = Features::default();
    features.exceptions(true);
    let info = CompileModuleInfo {
        features,
        module: std::sync::Arc::new(env.module),
        memory_styles: PrimaryMap::new(),
        table_styles: PrimaryMap::new(),
        function_max_stack_usage: PrimaryMap::new(),
    };
    let compilation = CraneliftCompiler::new(Cranelift::new())
        .compile_module(
            &Target::default(),
            &info,
            &[],
            env.module_translation_state.as_ref().expect("translated"),
            env.function_body_inputs,
            None,
        )
        .expect("compiles");
    let Compilation::Rkyv { compilation, .. } = compilation else {
        panic!("expected the default (rkyv) artifact")
    };
    // Both backends point FDEs at their LSDA section from `.eh_frame`.
    let eh_frame = &compilation.custom_sections[compilation.unwind_info.eh_frame.expect("CFI")];
    let lsda = eh_frame
        .relocations
        .iter()
        .find_map(|r| match r.reloc_target {
            RelocationTarget::CustomSection(i) => Some(compilation.custom_sections[i].bytes.len()),
            _ => None,
        })
        .unwrap_or(0);
    let code = compilation.functions[LocalFunctionIndex::from_u32(1)]
        .body
        .body
        .len();
    (lsda, code)
}

/// ms to compile (`Module::new`) a module of one `try_table` with
/// `clauses` clauses around `calls` calls, best of `runs`.
fn compile_ms(clauses: usize, calls: usize, runs: usize) -> f64 {
    let text = module_wat(clauses, calls);
    let wasm = wasmer::wat2wasm(text.as_bytes()).expect("valid WAT");
    best_of(runs, || {
        let store = Store::new(engine());
        let start = Instant::now();
        Module::new(&store, &wasm).expect("compiles");
        start.elapsed().as_secs_f64() * 1e3
    })
}

// ---- comparing the two builds ----

type Figures = BTreeMap<String, f64>;

fn run_side(side: &str, args: &Args) -> Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(format!("bench-{side}"));
    let mut cmd = Command::new(&path);
    cmd.arg("--measure");
    if args.smoke {
        cmd.arg("--smoke");
    }
    if let Some(dir) = &args.testsuite {
        cmd.arg("--testsuite").arg(dir);
    }
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run {} ({e}); build both sides first (wasmer-adapter/wasmer-build/bench.sh)",
            path.display()
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut figures = Figures::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (name, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("bad line from {side}: {line}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("bad value from {side}: {line}"))?;
        figures.insert(name.to_string(), value);
    }
    Ok(figures)
}

fn keep_best(best: &mut Figures, run: Figures) {
    for (name, value) in run {
        best.entry(name)
            .and_modify(|b| *b = b.min(value))
            .or_insert(value);
    }
}

fn compare(args: &Args) -> Result<(), String> {
    let (mut stock, mut ours) = (Figures::new(), Figures::new());
    for _ in 0..args.rounds.max(1) {
        keep_best(&mut stock, run_side("stock", args)?);
        keep_best(&mut ours, run_side("generic-lsda", args)?);
    }
    let get = |f: &Figures, name: &str| {
        f.get(name)
            .copied()
            .ok_or_else(|| format!("no figure `{name}`"))
    };
    println!("| measure | stock 7.5 | generic-lsda | ratio | target |");
    println!("|---|---|---|---|---|");
    let row = |label: &str, name: &str, unit: &str, target: Option<f64>| -> Result<(), String> {
        let (s, o) = (get(&stock, name)?, get(&ours, name)?);
        let ratio = o / s;
        let verdict = match target {
            None => String::from("—"),
            Some(t) if ratio <= t + 1e-9 => format!("≤ {t:.2}: met"),
            Some(t) => format!("≤ {t:.2}: **missed**"),
        };
        println!("| {label} | {s:.2} {unit} | {o:.2} {unit} | {ratio:.3} | {verdict} |");
        Ok(())
    };
    row("throw→catch, depth 1", "throw_ns_depth_1", "ns", Some(1.0))?;
    row(
        "throw→catch, depth 10",
        "throw_ns_depth_10",
        "ns",
        Some(1.0),
    )?;
    for kind in ["call", "call_indirect", "call_import"] {
        row(
            &format!("{kind}, no try_table"),
            &format!("{kind}_ns_plain"),
            "ns",
            None,
        )?;
        row(
            &format!("{kind} inside try_table"),
            &format!("{kind}_ns_in_try_table"),
            "ns",
            None,
        )?;
    }
    for k in CLAUSES {
        row(
            &format!("LSDA per module, K = {k}"),
            &format!("lsda_bytes_module_k{k}"),
            "B",
            None,
        )?;
        row(
            &format!("LSDA per call site, K = {k}"),
            &format!("lsda_bytes_per_site_k{k}"),
            "B",
            Some(0.3),
        )?;
        row(
            &format!("code per module, K = {k}"),
            &format!("code_bytes_module_k{k}"),
            "B",
            None,
        )?;
        let code_target = if k == 1 { 1.0 } else { 0.5 };
        row(
            &format!("code per call site, K = {k}"),
            &format!("code_bytes_per_site_k{k}"),
            "B",
            Some(code_target),
        )?;
    }
    row(
        "compile, 1,000 call sites (K = 4)",
        "compile_ms_1000_sites",
        "ms",
        Some(1.0),
    )?;
    if args.testsuite.is_some() {
        let count = get(&stock, "testsuite_modules")?;
        if count != get(&ours, "testsuite_modules")? {
            return Err("the two builds read different testsuite modules".into());
        }
        row(
            &format!("compile, every module of the spec testsuite ({count} modules)"),
            "compile_ms_testsuite",
            "ms",
            None,
        )?;
    } else {
        println!("| compile, spec testsuite | skipped: no --testsuite | | | — |");
    }
    // The in-try_table call against the same call outside, within each build.
    for kind in ["call", "call_indirect", "call_import"] {
        for (side, f) in [("stock 7.5", &stock), ("generic-lsda", &ours)] {
            let ratio =
                get(f, &format!("{kind}_ns_in_try_table"))? / get(f, &format!("{kind}_ns_plain"))?;
            let verdict = if side == "generic-lsda" {
                if ratio <= 1.05 {
                    "≤ 1.05: met"
                } else {
                    "≤ 1.05: **missed**"
                }
            } else {
                "—"
            };
            println!("| {kind} inside try_table ÷ outside, {side} | | | {ratio:.3} | {verdict} |");
        }
    }
    Ok(())
}
