//! Part 4: JIT registration at scale. Modules of `bench-throw.clif` are
//! compiled and registered one by one (`JitTables::register`, timed apart
//! from compiling); with 1, 100 and 10,000 registered, the throw→catch
//! latency through the first and the last module's frames (10 frames,
//! caught in Cranelift) is measured; then every registration is dropped
//! (deregistration, timed). Under libgcc in this process, under LLVM
//! libunwind in a worker.

use crate::throw::{Entry, GxxHalf, gxx_library, llvm_libunwind_worker};
use crate::{Mode, Row};
use cranelift_codegen::isa::TargetIsa;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_lsda::{JitTables, PreparedFunction, Registration, legalize_landing_pads};
use cranelift_module::default_libcall_names;
use std::path::Path;
use std::time::{Duration, Instant};

const PART: &str = "4 registration";

struct Registered {
    // Dropped first: deregistered before the module's code goes.
    registration: Option<Registration>,
    module: JITModule,
    catch: Entry,
}

/// The measurements at one module count.
struct Step {
    modules: usize,
    throw_first_ns: f64,
    throw_last_ns: f64,
    register_us: f64,
}

/// Prints `modules<TAB>first ns<TAB>last ns<TAB>register µs` lines and a
/// final `deregister<TAB>µs` line.
fn measure(mode: Mode, library: &Path) -> String {
    let gxx = GxxHalf::load(library);
    let thrower = gxx.thrower;
    let throws = mode.iterations(2_000) as i64;
    // Best of 4, the first a warm-up: the unwinder sorts new tables lazily.
    let throw_ns = |catch: Entry| {
        // SAFETY: `catch` is a `clif_catch` of bench-throw.clif, which
        // catches the int `bench_thrower` throws 10 frames down.
        unsafe { gxx.best_ns(Some(catch), None, 10, throws, 4) }
    };

    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("cxx/bench-throw.clif"))
            .unwrap();
    let mut file = clif_eh::parse_file(&text).unwrap();
    let host = cranelift_native::builder().unwrap();
    let isa = host.finish(file.isas[0].flags().clone()).unwrap();
    let mut policy = file.policy.clone();
    let prepared: Vec<PreparedFunction> = file
        .functions
        .iter_mut()
        .map(|func| legalize_landing_pads(func, &*isa, &mut policy).unwrap())
        .collect();
    let personality = eh_test_support::resolve_symbol("__gxx_personality_v0").unwrap();

    let counts: &[usize] = match mode {
        Mode::Full => &[1, 100, 10_000],
        Mode::Smoke => &[1, 10, 100],
    };
    let mut modules: Vec<Registered> = Vec::new();
    let mut register_time = Duration::ZERO;
    let mut out = String::new();
    for &count in counts {
        let before = modules.len();
        while modules.len() < count {
            let mut builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
            builder.symbol("bench_thrower", thrower);
            let mut module = JITModule::new(builder);
            let mut tables = JitTables::new(personality);
            let isa: &dyn TargetIsa = &*isa;
            let defined = clif_eh::module::define_all_then(&mut module, &file, |i, id, code| {
                tables
                    .add_function(isa, id, code, &policy, &prepared[i])
                    .map(|_| ())
                    .map_err(|e| clif_eh::ToolError::Codegen(e.to_string()))
            })
            .unwrap();
            module.finalize_definitions().unwrap();
            let start = Instant::now();
            let registration = tables
                .register(&module, &eh_test_support::resolve_symbol)
                .unwrap();
            register_time += start.elapsed();
            let id = defined.iter().find(|f| f.name == "clif_catch").unwrap().id;
            // SAFETY: a finalized `(i64) -> i64 system_v` function of
            // `module`, which is kept with it.
            let catch = unsafe {
                std::mem::transmute::<*const u8, Entry>(module.get_finalized_function(id))
            };
            modules.push(Registered {
                registration,
                module,
                catch,
            });
        }
        let added = (modules.len() - before).max(1);
        let step = Step {
            modules: count,
            throw_first_ns: throw_ns(modules[0].catch),
            throw_last_ns: throw_ns(modules.last().unwrap().catch),
            register_us: register_time.as_secs_f64() * 1e6 / added as f64,
        };
        register_time = Duration::ZERO;
        out += &format!(
            "{}\t{:.1}\t{:.1}\t{:.2}\n",
            step.modules, step.throw_first_ns, step.throw_last_ns, step.register_us
        );
    }
    let count = modules.len();
    let start = Instant::now();
    for registered in &mut modules {
        registered.registration.take();
    }
    let deregister = start.elapsed().as_secs_f64() * 1e6 / count as f64;
    out += &format!("deregister\t{deregister:.2}\n");
    for registered in modules {
        // SAFETY: its tables are deregistered and none of its code runs.
        unsafe { registered.module.free_memory() };
    }

    // The remedy the crate offers for unwinders whose lookup walks every
    // registration: one registration per finalization, however many
    // functions it covers. The same functions, all in one module, alone.
    let copies = *counts.last().unwrap();
    let batched = batched_file(&file, copies);
    let mut builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
    builder.symbol("bench_thrower", thrower);
    let mut module = JITModule::new(builder);
    let mut tables = JitTables::new(personality);
    let defined = clif_eh::module::define_all_then(&mut module, &batched, |i, id, code| {
        tables
            .add_function(&*isa, id, code, &policy, &prepared[i % prepared.len()])
            .map(|_| ())
            .map_err(|e| clif_eh::ToolError::Codegen(e.to_string()))
    })
    .unwrap();
    module.finalize_definitions().unwrap();
    let start = Instant::now();
    let registration = tables
        .register(&module, &eh_test_support::resolve_symbol)
        .unwrap();
    let register_us = start.elapsed().as_secs_f64() * 1e6;
    let catch_of = |copy: usize| {
        let name = format!("clif_catch_{copy}");
        let id = defined.iter().find(|f| f.name == name).unwrap().id;
        // SAFETY: a finalized `(i64) -> i64 system_v` function of `module`.
        unsafe { std::mem::transmute::<*const u8, Entry>(module.get_finalized_function(id)) }
    };
    out += &format!(
        "batched\t{copies}\t{:.1}\t{:.1}\t{register_us:.2}\n",
        throw_ns(catch_of(0)),
        throw_ns(catch_of(copies - 1))
    );
    drop(registration);
    // SAFETY: deregistered, and none of its code runs.
    unsafe { module.free_memory() };

    out
}

/// `copies` copies of `file`'s functions, the calls between them renamed
/// to stay within each copy (`clif_rec_3` calls `clif_rec_3`).
fn batched_file(file: &clif_eh::EhFile, copies: usize) -> clif_eh::EhFile {
    use cranelift_codegen::ir::{ExternalName, UserFuncName};
    let own: Vec<String> = file
        .functions
        .iter()
        .map(clif_eh::module::clif_name)
        .collect();
    let mut functions = Vec::new();
    for copy in 0..copies {
        for func in &file.functions {
            let mut func = func.clone();
            func.name =
                UserFuncName::testcase(format!("{}_{copy}", clif_eh::module::clif_name(&func)));
            for ext in func.dfg.ext_funcs.values_mut() {
                if let ExternalName::TestCase(name) = &ext.name {
                    let name = name.to_string().trim_start_matches('%').to_string();
                    if own.contains(&name) {
                        ext.name = ExternalName::testcase(format!("{name}_{copy}"));
                    }
                }
            }
            functions.push(func);
        }
    }
    clif_eh::EhFile {
        policy: file.policy.clone(),
        isas: file.isas.clone(),
        functions,
        encoding: file.encoding,
    }
}

/// The worker: this binary under LLVM libunwind.
pub fn worker(mode: Mode) {
    assert_eq!(
        cranelift_lsda::detect_unwinder(),
        cranelift_lsda::Unwinder::LlvmLibunwind
    );
    let library = std::env::var("EH_BENCH_LIBRARY").expect("EH_BENCH_LIBRARY");
    print!("{}", measure(mode, Path::new(&library)));
}

/// The rows of one registration step: registering `what`, and a throw
/// through its first and last module against `base` (one module alone).
fn push_step(
    rows: &mut Vec<Row>,
    what: &str,
    register: &str,
    register_how: &str,
    throws: [f64; 2],
    base: f64,
) {
    rows.push(
        Row::new(PART, format!("{what}, {register_how}")).values(format!("{register} µs"), ""),
    );
    for (which, ns) in ["first", "last"].into_iter().zip(throws) {
        rows.push(
            Row::new(PART, format!("{what}, throw through the {which}"))
                .values(
                    format!("{:.2} µs", ns / 1e3),
                    format!("1 module {:.2} µs", base / 1e3),
                )
                .ratio(ns, base)
                .target(1.5),
        );
    }
}

fn step_rows(rows: &mut Vec<Row>, unwinder: &str, text: &str) {
    let mut first_throw = None;
    let parse =
        |first: &str, last: &str| -> [f64; 2] { [first.parse().unwrap(), last.parse().unwrap()] };
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields[..] {
            ["batched", functions, first, last, register] => {
                let base = first_throw.expect("the 1-module step comes first");
                let what = format!("{unwinder}: {functions} copies in 1 module");
                push_step(
                    rows,
                    &what,
                    register,
                    "register once",
                    parse(first, last),
                    base,
                );
            }
            ["deregister", us] => rows.push(
                Row::new(PART, format!("{unwinder}: deregister, per module"))
                    .values(format!("{us} µs"), ""),
            ),
            [modules, first, last, register] => {
                let throws = parse(first, last);
                let base = *first_throw.get_or_insert(throws[0]);
                let what = format!("{unwinder}: {modules} module(s)");
                push_step(rows, &what, register, "register per module", throws, base);
            }
            _ => panic!("not a registration line: {line:?}"),
        }
    }
}

pub fn rows(mode: Mode) -> Vec<Row> {
    let library = gxx_library();
    let mut rows = Vec::new();
    step_rows(&mut rows, "libgcc", &measure(mode, library));
    let llvm = llvm_libunwind_worker("registration", mode, &[("EH_BENCH_LIBRARY", library)]);
    step_rows(&mut rows, "LLVM libunwind", &llvm);
    rows
}
