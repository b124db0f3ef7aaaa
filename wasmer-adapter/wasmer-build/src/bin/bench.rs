//! Stock Wasmer 7.5 Cranelift against `generic-lsda`, one table.
//!
//! Built twice (`bench-stock`, `bench-generic-lsda`, next to each other in
//! one target directory). `--measure` measures this build once and prints
//! `name value` lines. Without it, the binary runs both builds' `--measure`
//! in turns (stock, generic-lsda, stock, ...) for `--rounds` rounds, each a
//! fresh process, the throw figures also under LLVM libunwind
//! (`LD_PRELOAD`), and prints every figure's min / median / max per build
//! with the ratio of the medians and its range (the smallest and largest
//! ratio the two spreads allow): a range that straddles 1 is noise.
//! `--smoke` makes every part brief; `--write-docs FILE` puts the table
//! between the `wasmer-bench` markers of FILE.

use clap::Parser;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;
use wasmer::{Instance, Module, Store, Value, imports};
use wasmer_compiler::types::function::Compilation;
use wasmer_compiler::types::module::CompileModuleInfo;
use wasmer_compiler::types::relocation::RelocationTarget;
use wasmer_compiler::types::section::SectionIndex;
use wasmer_compiler::{Compiler, ModuleEnvironment};
use wasmer_compiler_cranelift::{Cranelift, CraneliftCompiler};
use wasmer_eh_runner::engine;
use wasmer_types::entity::PrimaryMap;
use wasmer_types::target::Triple;
use wasmer_types::{Features, LocalFunctionIndex};

#[derive(Parser)]
#[command(about = "Wasmer 7.5 exception handling: stock against generic-lsda")]
struct Args {
    /// Measure this build once; print `name value` lines.
    #[arg(long)]
    measure: bool,
    /// With --measure: the throw figures only (the LLVM libunwind runs).
    #[arg(long)]
    throws_only: bool,
    /// Every part briefly (CI).
    #[arg(long)]
    smoke: bool,
    /// Runs of each build; every figure's min / median / max is over them.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The spec test data (`../shared/testsuite`): every module of its
    /// `.wast` files is compiled by both builds, one corpus ratio.
    #[arg(long)]
    testsuite: Option<PathBuf>,
    /// LLVM libunwind, preloaded for the throw figures' second runs.
    #[arg(long, default_value = "/usr/lib/x86_64-linux-gnu/libunwind.so.1")]
    llvm_libunwind: PathBuf,
    /// Write the table into this Markdown file, between
    /// `<!-- wasmer-bench -->` and `<!-- /wasmer-bench -->`.
    #[arg(long)]
    write_docs: Option<PathBuf>,
    /// Fail unless the byte rows (deterministic) this Markdown file quotes
    /// are this run's; a file with the `<!-- wasmer-bench -->` table must
    /// have all of them. May be given more than once.
    #[arg(long)]
    check_docs: Vec<PathBuf>,
}

/// Clauses per `try_table` in the size figures.
const CLAUSES: [usize; 3] = [1, 4, 16];
/// Frames between the throw and its `try_table`.
const DEPTHS: [i32; 3] = [1, 10, 100];
/// The module of many functions: functions, `try_table`s per function,
/// clauses per `try_table`.
const MANY_FUNCTIONS: (usize, usize, usize) = (100, 4, 4);

fn main() -> ExitCode {
    let args = Args::parse();
    if args.measure {
        measure(&args);
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

fn measure(args: &Args) {
    let scale = if args.smoke { 20 } else { 1 };
    // First, while nothing has thrown in this process.
    println!("first_throw_us {:.1}", first_throw_us());
    for depth in DEPTHS {
        // About the same time per depth: fewer throws for deeper stacks.
        let n = 20_000 / scale / (1 + depth / 10);
        println!("throw_ns_depth_{depth} {:.1}", throw_latency(depth, n));
    }
    if args.throws_only {
        return;
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
        for layout in [Layout::OneScope, Layout::ScopePerCall] {
            let small = compile_sizes(&layout.module(k, 32));
            let large = compile_sizes(&layout.module(k, 64));
            let name = layout.name();
            let per_site = |a: usize, b: usize| (b as f64 - a as f64) / 32.0;
            println!(
                "lsda_bytes_per_site_{name}_k{k} {:.2}",
                per_site(small.lsda, large.lsda)
            );
            println!(
                "code_bytes_per_site_{name}_k{k} {:.2}",
                per_site(small.function_code, large.function_code)
            );
        }
    }
    let (functions, scopes, k) = MANY_FUNCTIONS;
    let sizes = compile_sizes(&many_functions_module(functions, scopes, k));
    println!("module_code_bytes {}", sizes.code);
    println!("module_eh_frame_bytes {}", sizes.eh_frame);
    println!("module_lsda_bytes {}", sizes.lsda);
    println!("module_other_section_bytes {}", sizes.other_sections);
    println!(
        "module_eh_bytes {}",
        sizes.eh_frame + sizes.lsda + sizes.other_sections
    );
    let ms = compile_ms(&Layout::OneScope.module(4, 1000));
    println!("compile_ms_1000_sites {ms:.2}");
    let count = if args.smoke { 50 } else { 1000 };
    let many = many_modules(count);
    println!("many_modules_compile_us_per_module {:.1}", many.compile_us);
    println!(
        "many_modules_instantiate_us_per_module {:.1}",
        many.instantiate_us
    );
    println!("many_modules_rss_kib_per_module {:.1}", many.rss_kib);
    if let Some(dir) = &args.testsuite {
        let modules = testsuite_modules(dir);
        let store = Store::new(engine());
        let start = Instant::now();
        for wasm in &modules {
            // Modules the suite expects to be rejected fail on both
            // builds alike (the spec runs show the same verdicts).
            let _ = Module::new(&store, wasm);
        }
        println!("testsuite_modules {}", modules.len());
        println!(
            "compile_ms_testsuite {:.2}",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// Every module of the `.wast` files under `dir` that needs no proposal
/// Wasmer 7.5's Cranelift backend lacks, as binaries.
fn testsuite_modules(dir: &Path) -> Vec<Vec<u8>> {
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

/// µs of the first throw→catch of a fresh process (depth 1): the
/// unwinder's first lookup in the module's frames.
fn first_throw_us() -> f64 {
    let mut store = Store::new(engine());
    let module = Module::new(&store, THROWER).expect("compiles");
    let instance = Instance::new(&mut store, &module, &imports! {}).expect("links");
    let run = instance.exports.get_function("run").unwrap().clone();
    let start = Instant::now();
    let out = run
        .call(&mut store, &[Value::I32(1), Value::I32(1)])
        .expect("the throw is caught");
    assert_eq!(out[0], Value::I32(1), "the throw was caught");
    start.elapsed().as_secs_f64() * 1e6
}

/// `run(n, depth)` throws `n` times across `depth` frames to its own
/// `try_table` and returns how many it caught.
const THROWER: &str = r#"(module
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

/// ns per throw→catch across `depth` Wasm frames, `n` throws.
fn throw_latency(depth: i32, n: i32) -> f64 {
    let mut store = Store::new(engine());
    let module = Module::new(&store, THROWER).expect("compiles");
    let instance = Instance::new(&mut store, &module, &imports! {}).expect("links");
    let run = instance.exports.get_function("run").unwrap().clone();
    // The first throws pay for the unwinder's caches; not measured.
    run.call(&mut store, &[Value::I32(10), Value::I32(depth)])
        .expect("every throw is caught");
    let start = Instant::now();
    let out = run
        .call(&mut store, &[Value::I32(n), Value::I32(depth)])
        .expect("every throw is caught");
    assert_eq!(out[0], Value::I32(n), "every throw was caught");
    start.elapsed().as_nanos() as f64 / f64::from(n)
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
        let start = Instant::now();
        let out = f.call(&mut store, &[Value::I32(n)]).expect("runs");
        assert_eq!(out[0], Value::I32(n));
        start.elapsed().as_nanos() as f64 / f64::from(n)
    };
    // Interleaved, so frequency drift hits both alike; the best of three
    // pairs, as the round-to-round spread is what the table shows.
    let mut plain = f64::MAX;
    let mut in_try = f64::MAX;
    for _ in 0..3 {
        plain = plain.min(time("plain"));
        in_try = in_try.min(time("in_try_table"));
    }
    (plain, in_try)
}

/// Where the calls of the size figures sit.
enum Layout {
    /// N calls in one `try_table`: one call-site record for all of them.
    OneScope,
    /// Each call in a `try_table` of its own, with its own handler block:
    /// a record (and a landing pad) per call.
    ScopePerCall,
}

impl Layout {
    fn name(&self) -> &'static str {
        match self {
            Layout::OneScope => "one_scope",
            Layout::ScopePerCall => "scope_per_call",
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Layout::OneScope => "N calls in one try_table",
            Layout::ScopePerCall => "each call in its own try_table",
        }
    }

    /// A module whose function 1 (`f`) has `calls` calls laid out so, each
    /// `try_table` with `clauses` clauses.
    fn module(&self, clauses: usize, calls: usize) -> Vec<u8> {
        let tags: String = (0..clauses).map(|i| format!("(tag $t{i}) ")).collect();
        let body = match self {
            Layout::OneScope => scope(clauses, 0, &"(call $callee) ".repeat(calls)),
            Layout::ScopePerCall => (0..calls)
                .map(|i| scope(clauses, i, "(call $callee)"))
                .collect(),
        };
        wat(&format!(
            "(module {tags} (func $callee) (func (export \"f\") {body}))"
        ))
    }
}

/// A `try_table` of `clauses` clauses around `body`, in a block (`$h{id}`)
/// that all of them branch to.
fn scope(clauses: usize, id: usize, body: &str) -> String {
    let catches: String = (0..clauses)
        .map(|t| format!("(catch $t{t} $h{id}) "))
        .collect();
    format!("(block $h{id} (try_table {catches} {body})) ")
}

/// `functions` functions, each with `scopes` `try_table`s of `clauses`
/// clauses around one call.
fn many_functions_module(functions: usize, scopes: usize, clauses: usize) -> Vec<u8> {
    let tags: String = (0..clauses).map(|i| format!("(tag $t{i}) ")).collect();
    let body: String = (0..scopes)
        .map(|i| scope(clauses, i, "(call $callee)"))
        .collect();
    let funcs = format!("(func {body}) ").repeat(functions);
    wat(&format!("(module {tags} (func $callee) {funcs})"))
}

fn wat(text: &str) -> Vec<u8> {
    wasmer::wat2wasm(text.as_bytes())
        .expect("valid WAT")
        .into_owned()
}

/// Byte counts of one module's compiled output.
struct Sizes {
    /// Function 1's code.
    function_code: usize,
    /// Every function's code.
    code: usize,
    eh_frame: usize,
    /// The sections `.eh_frame` points to (both builds reach their LSDAs
    /// from the FDEs).
    lsda: usize,
    /// Every other custom section (tag data, personality pointers, ...).
    other_sections: usize,
}

/// What `CraneliftCompiler::compile_module` makes of `wasm` for this host.
fn compile_sizes(wasm: &[u8]) -> Sizes {
    let env = ModuleEnvironment::new()
        .translate(wasm)
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
    // The host's triple with baseline CPU features, not the host's: the
    // byte figures must not depend on the machine.
    let target = wasmer_eh_runner::baseline_target(Triple::host());
    let compilation = CraneliftCompiler::new(Cranelift::new())
        .compile_module(
            &target,
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
    let eh_frame_index = compilation.unwind_info.eh_frame.expect("CFI");
    let eh_frame = &compilation.custom_sections[eh_frame_index];
    let mut lsda_sections: Vec<SectionIndex> = eh_frame
        .relocations
        .iter()
        .filter_map(|r| match r.reloc_target {
            RelocationTarget::CustomSection(i) => Some(i),
            _ => None,
        })
        .collect();
    lsda_sections.sort();
    lsda_sections.dedup();
    let mut sizes = Sizes {
        function_code: compilation.functions[LocalFunctionIndex::from_u32(1)]
            .body
            .body
            .len(),
        code: compilation
            .functions
            .values()
            .map(|f| f.body.body.len())
            .sum(),
        eh_frame: eh_frame.bytes.len(),
        lsda: 0,
        other_sections: 0,
    };
    for (index, section) in compilation.custom_sections.iter() {
        if index == eh_frame_index {
            continue;
        }
        if lsda_sections.contains(&index) {
            sizes.lsda += section.bytes.len();
        } else {
            sizes.other_sections += section.bytes.len();
        }
    }
    sizes
}

/// ms to compile (`Module::new`) `wasm` once.
fn compile_ms(wasm: &[u8]) -> f64 {
    let store = Store::new(engine());
    let start = Instant::now();
    Module::new(&store, wasm).expect("compiles");
    start.elapsed().as_secs_f64() * 1e3
}

struct ManyModules {
    compile_us: f64,
    instantiate_us: f64,
    rss_kib: f64,
}

/// `count` different modules (each a `try_table` around a throw of its own
/// payload), compiled, instantiated in one store and run once, all kept
/// alive: µs per module for each step, and the resident memory they add.
fn many_modules(count: usize) -> ManyModules {
    let wasms: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            wat(&format!(
                r#"(module (tag $t (param i32))
                     (func (export "run") (result i32)
                       (block $h (result i32)
                         (try_table (result i32) (catch $t $h) (throw $t (i32.const {i}))))))"#
            ))
        })
        .collect();
    let mut store = Store::new(engine());
    let rss_before = resident_kib();
    let start = Instant::now();
    let modules: Vec<Module> = wasms
        .iter()
        .map(|w| Module::new(&store, w).expect("compiles"))
        .collect();
    let compiled = start.elapsed();
    let start = Instant::now();
    let instances: Vec<Instance> = modules
        .iter()
        .map(|m| Instance::new(&mut store, m, &imports! {}).expect("links"))
        .collect();
    let instantiated = start.elapsed();
    for (i, instance) in instances.iter().enumerate() {
        let run = instance.exports.get_function("run").unwrap();
        let out = run.call(&mut store, &[]).expect("the throw is caught");
        assert_eq!(
            out[0],
            Value::I32(i as i32),
            "module {i} caught its own throw"
        );
    }
    let rss_after = resident_kib();
    let per_module = |d: std::time::Duration| d.as_secs_f64() * 1e6 / count as f64;
    ManyModules {
        compile_us: per_module(compiled),
        instantiate_us: per_module(instantiated),
        rss_kib: (rss_after - rss_before) / count as f64,
    }
}

/// This process's resident memory (`/proc/self/statm`), KiB.
fn resident_kib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux: /proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's second field is the resident page count");
    pages * 4.0
}

// ---- comparing the two builds ----

/// Every round's value of each figure.
type Figures = BTreeMap<String, Vec<f64>>;

/// One `--measure` run of `side`; `llvm_libunwind` preloads it and measures
/// the throws only, their names prefixed `llvm_`.
fn run_side(side: &str, args: &Args, llvm_libunwind: bool) -> Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(format!("bench-{side}"));
    let mut cmd = Command::new(&path);
    cmd.arg("--measure");
    if args.smoke {
        cmd.arg("--smoke");
    }
    if llvm_libunwind {
        cmd.arg("--throws-only")
            .env("LD_PRELOAD", &args.llvm_libunwind);
    } else if let Some(dir) = &args.testsuite {
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
            "{} --measure{} failed: {}",
            path.display(),
            if llvm_libunwind {
                " under LLVM libunwind"
            } else {
                ""
            },
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    let prefix = if llvm_libunwind { "llvm_" } else { "" };
    let mut figures = Figures::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (name, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("bad line from {side}: {line}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("bad value from {side}: {line}"))?;
        figures.insert(format!("{prefix}{name}"), vec![value]);
    }
    Ok(figures)
}

fn append(all: &mut Figures, run: Figures) {
    for (name, values) in run {
        all.entry(name).or_default().extend(values);
    }
}

/// min, median, max.
#[derive(Clone, Copy)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Spread {
            min: sorted[0],
            median,
            max: sorted[n - 1],
        })
    }

    fn show(&self, unit: &str) -> String {
        if self.min == self.max {
            format!("{:.2} {unit}", self.median)
        } else {
            format!(
                "{:.2} / {:.2} / {:.2} {unit}",
                self.min, self.median, self.max
            )
        }
    }
}

/// The table, one row per figure, both builds' spreads side by side.
struct Table<'a> {
    stock: &'a Figures,
    ours: &'a Figures,
    rows: Vec<String>,
    /// The rows in bytes: the same on every run.
    deterministic: Vec<String>,
}

impl Table<'_> {
    fn spread(figures: &Figures, name: &str) -> Result<Spread, String> {
        figures
            .get(name)
            .and_then(|v| Spread::of(v))
            .ok_or_else(|| format!("no figure `{name}`"))
    }

    /// A row; `target` bounds the ratio of the medians.
    fn row(
        &mut self,
        label: &str,
        name: &str,
        unit: &str,
        target: Option<f64>,
    ) -> Result<(), String> {
        let (s, o) = (
            Self::spread(self.stock, name)?,
            Self::spread(self.ours, name)?,
        );
        let ratio = if s.median == 0.0 {
            String::from("—")
        } else if s.min == s.max && o.min == o.max {
            format!("{:.3}", o.median / s.median)
        } else if s.min > 0.0 {
            format!(
                "{:.3} ({:.2}–{:.2})",
                o.median / s.median,
                o.min / s.max,
                o.max / s.min
            )
        } else {
            format!("{:.3}", o.median / s.median)
        };
        let verdict = match target {
            None => String::from("—"),
            Some(_) if s.median == 0.0 => String::from("no stock figure"),
            Some(t) if o.median / s.median <= t + 1e-9 && s.min > 0.0 && o.max / s.min > t => {
                format!("≤ {t:.2}: met (within noise)")
            }
            Some(t) if o.median / s.median <= t + 1e-9 => format!("≤ {t:.2}: met"),
            Some(t) if s.max > 0.0 && o.min / s.max <= t => {
                format!("≤ {t:.2}: **missed** (within noise)")
            }
            Some(t) => format!("≤ {t:.2}: **missed**"),
        };
        let row = format!(
            "| {label} | {} | {} | {ratio} | {verdict} |",
            s.show(unit),
            o.show(unit)
        );
        if unit == "B" {
            self.deterministic.push(row.clone());
        }
        self.rows.push(row);
        Ok(())
    }

    /// A row whose two builds could not both be measured.
    fn unmeasured(&mut self, label: &str, why: &str) {
        self.rows.push(format!("| {label} | {why} | | | — |"));
    }
}

fn compare(args: &Args) -> Result<(), String> {
    let (mut stock, mut ours) = (Figures::new(), Figures::new());
    let llvm = args.llvm_libunwind.exists();
    // An LLVM libunwind run that fails is a finding, not a reason to drop
    // the table: the first failure of each build is shown in its rows.
    let mut llvm_failures: BTreeMap<&str, String> = BTreeMap::new();
    for _ in 0..args.rounds.max(1) {
        append(&mut stock, run_side("stock", args, false)?);
        append(&mut ours, run_side("generic-lsda", args, false)?);
        if llvm {
            for (side, figures) in [("stock", &mut stock), ("generic-lsda", &mut ours)] {
                if llvm_failures.contains_key(side) {
                    continue;
                }
                match run_side(side, args, true) {
                    Ok(run) => append(figures, run),
                    Err(e) => {
                        llvm_failures.insert(side, e);
                    }
                }
            }
        }
    }
    let mut table = Table {
        stock: &stock,
        ours: &ours,
        rows: Vec::new(),
        deterministic: Vec::new(),
    };
    table.row(
        "first throw→catch of a process, depth 1, libgcc",
        "first_throw_us",
        "µs",
        None,
    )?;
    for depth in DEPTHS {
        table.row(
            &format!("throw→catch, depth {depth}, libgcc"),
            &format!("throw_ns_depth_{depth}"),
            "ns",
            Some(1.0),
        )?;
    }
    let llvm_rows = std::iter::once((
        "first throw→catch of a process, depth 1, LLVM libunwind".to_string(),
        "llvm_first_throw_us".to_string(),
        "µs",
    ))
    .chain(DEPTHS.iter().map(|depth| {
        (
            format!("throw→catch, depth {depth}, LLVM libunwind"),
            format!("llvm_throw_ns_depth_{depth}"),
            "ns",
        )
    }));
    for (label, name, unit) in llvm_rows {
        if !llvm {
            table.unmeasured(
                &label,
                &format!("skipped: {} is absent", args.llvm_libunwind.display()),
            );
        } else if llvm_failures.is_empty() {
            table.row(&label, &name, unit, None)?;
        } else {
            let cell = |side: &str, figures: &Figures| match llvm_failures.get(side) {
                Some(e) => format!("fails: {}", e.lines().last().unwrap_or(e)),
                None => Table::spread(figures, &name).map_or_else(|e| e, |s| s.show(unit)),
            };
            table.rows.push(format!(
                "| {label} | {} | {} | — | — |",
                cell("stock", &stock),
                cell("generic-lsda", &ours)
            ));
        }
    }
    for kind in ["call", "call_indirect", "call_import"] {
        table.row(
            &format!("{kind}, no try_table"),
            &format!("{kind}_ns_plain"),
            "ns",
            None,
        )?;
        table.row(
            &format!("{kind} inside try_table"),
            &format!("{kind}_ns_in_try_table"),
            "ns",
            None,
        )?;
    }
    for layout in [Layout::ScopePerCall, Layout::OneScope] {
        for k in CLAUSES {
            let name = layout.name();
            // With one scope, generic-lsda's calls share a pad and a
            // record: its figures there are the call alone, by
            // construction, so they get no target.
            let targeted = matches!(layout, Layout::ScopePerCall);
            table.row(
                &format!("LSDA per call site, {}, K = {k}", layout.label()),
                &format!("lsda_bytes_per_site_{name}_k{k}"),
                "B",
                targeted.then_some(0.3),
            )?;
            table.row(
                &format!("code per call site, {}, K = {k}", layout.label()),
                &format!("code_bytes_per_site_{name}_k{k}"),
                "B",
                targeted.then_some(if k == 1 { 1.0 } else { 0.5 }),
            )?;
        }
    }
    let (functions, scopes, k) = MANY_FUNCTIONS;
    let module = format!("{functions} functions × {scopes} try_tables (K = {k})");
    for (what, name) in [
        ("code", "module_code_bytes"),
        (".eh_frame", "module_eh_frame_bytes"),
        ("LSDAs", "module_lsda_bytes"),
        ("other sections (tags, ...)", "module_other_section_bytes"),
        ("all but code", "module_eh_bytes"),
    ] {
        table.row(&format!("{module}: {what}"), name, "B", None)?;
    }
    table.row(
        "compile, 1,000 call sites in one try_table (K = 4)",
        "compile_ms_1000_sites",
        "ms",
        Some(1.0),
    )?;
    let count = if args.smoke { 50 } else { 1000 };
    for (what, name, unit) in [
        ("compile", "many_modules_compile_us_per_module", "µs"),
        (
            "instantiate",
            "many_modules_instantiate_us_per_module",
            "µs",
        ),
        ("resident memory", "many_modules_rss_kib_per_module", "KiB"),
    ] {
        table.row(
            &format!("{count} modules kept alive: {what} per module"),
            name,
            unit,
            None,
        )?;
    }
    if args.testsuite.is_some() {
        let count = Table::spread(&stock, "testsuite_modules")?.max;
        if count != Table::spread(&ours, "testsuite_modules")?.max {
            return Err("the two builds read different testsuite modules".into());
        }
        table.row(
            &format!("compile, every module of the spec testsuite ({count} modules)"),
            "compile_ms_testsuite",
            "ms",
            None,
        )?;
    } else {
        table.unmeasured("compile, spec testsuite", "skipped: no --testsuite");
    }
    // The in-try_table call against the same call outside, within each
    // build, round by round.
    for kind in ["call", "call_indirect", "call_import"] {
        for (side, figures) in [("stock 7.5", &stock), ("generic-lsda", &ours)] {
            let inside = &figures[&format!("{kind}_ns_in_try_table")];
            let outside = &figures[&format!("{kind}_ns_plain")];
            let ratios: Vec<f64> = inside.iter().zip(outside).map(|(i, o)| i / o).collect();
            let r = Spread::of(&ratios).ok_or("no rounds")?;
            let verdict = match side {
                "generic-lsda" if r.median <= 1.05 => "≤ 1.05: met",
                "generic-lsda" => "≤ 1.05: **missed**",
                _ => "—",
            };
            table.rows.push(format!(
                "| {kind} inside try_table ÷ outside, {side} | | | {} | {verdict} |",
                if r.min == r.max {
                    format!("{:.3}", r.median)
                } else {
                    format!("{:.3} ({:.2}–{:.2})", r.median, r.min, r.max)
                }
            ));
        }
    }
    let mut text = String::from(
        "| measure | stock 7.5, min / median / max | generic-lsda, min / median / max | ratio of medians (range) | target |\n|---|---|---|---|---|\n",
    );
    for row in &table.rows {
        text.push_str(row);
        text.push('\n');
    }
    print!("{text}");
    println!(
        "bench: {} round(s) of each build{}",
        args.rounds.max(1),
        if args.smoke { ", smoke" } else { "" }
    );
    if let Some(path) = &args.write_docs {
        write_docs(path, &text, args.rounds.max(1))?;
    }
    for path in &args.check_docs {
        check_docs(path, &table.deterministic)?;
    }
    Ok(())
}

/// Every byte row `path` quotes must be one of `rows`, with the same
/// figures; the file with the full table must quote them all.
fn check_docs(path: &Path, rows: &[String]) -> Result<(), String> {
    let doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let full_table = doc.contains("<!-- wasmer-bench -->");
    // A row's label is its first cell.
    let label = |row: &str| row.split(" | ").next().unwrap_or_default().to_string();
    let mut stale = Vec::new();
    let mut quoted = 0;
    for row in rows {
        let label = label(row);
        let lines: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with(&format!("{label} |")))
            .collect();
        if lines.is_empty() && !full_table {
            continue;
        }
        quoted += 1;
        if lines.is_empty() || lines.iter().any(|l| l != row) {
            stale.push(format!("  this run: {row}"));
        }
    }
    if stale.is_empty() {
        println!(
            "bench: the {quoted} byte rows {} quotes are this run's",
            path.display()
        );
        return Ok(());
    }
    Err(format!(
        "{}'s benchmark table is stale (rerun wasmer-adapter/wasmer-build/bench.sh --write-docs {}):\n{}",
        path.display(),
        path.display(),
        stale.join("\n")
    ))
}

/// Replace the table between the markers of `path`.
fn write_docs(path: &Path, table: &str, rounds: usize) -> Result<(), String> {
    const BEGIN: &str = "<!-- wasmer-bench -->\n";
    const END: &str = "<!-- /wasmer-bench -->";
    let doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(format!(
            "{} has no `<!-- wasmer-bench -->` ... `<!-- /wasmer-bench -->` block",
            path.display()
        ));
    };
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let block = format!(
        "{table}\nMeasured on {date}, {} {}, {cores} cores, {rounds} rounds of each build.\n",
        std::env::consts::ARCH,
        std::env::consts::OS,
    );
    let doc = format!("{}{BEGIN}{block}{}", &doc[..begin], &doc[end..]);
    std::fs::write(path, doc).map_err(|e| format!("{}: {e}", path.display()))
}
