//! Part 2: what compiling with exception tables costs against what a user
//! would otherwise run, stock Cranelift on the same natural IR.
//!
//! * **ours**: legalization into landing-pad form, `Context::compile` of
//!   the legalized function, its LSDA (`tables_for_compiled`, written
//!   through the relocating writer) and FDE under the personality CIE;
//!   `.eh_frame` written once per module.
//! * **stock**: `Context::compile` of the natural IR (one edge per tag),
//!   and its FDE as cranelift-object writes it (`create_unwind_info`,
//!   gimli's `FrameTable`); no LSDA, which stock cannot write.
//!
//! Both sides compile the same parsed functions with the same flags
//! (`opt_level=speed`, verifier off, `is_pic`, as objects are compiled),
//! cloning each function first; ours legalizes with the case's clause
//! policy, one per module as an embedder keeps it, set up before counting. Instruction counts (callgrind, the
//! deterministic figure, gated) come from worker processes that collect
//! inside the one compile of the case, not its parsing and set-up; times are the median (min–max) of interleaved rounds in
//! this process. The per-phase counts of a few cases show where the cost
//! is; the heap row is the peak of compiling the 10,000-function module.

use crate::shapes::{self, Shape};
use crate::{Mode, Row, geomean};
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_lsda::{
    CallSiteEncoding, ClausePolicy, EhFrameBuilder, EhFrameEncoding, LsdaEncoding,
    RelocatedSection, TypeEncoding, endian_of, legalize_landing_pads, tables_for_compiled,
};
use gimli::write::{Address, EhFrame, FrameTable, Writer};
use std::time::{Duration, Instant};

const PART: &str = "2 compile";
/// The module of many small functions: copies of this shape.
const MODULE_SHAPE: &str = "10 calls, cleanup then catch";
const MODULE_FUNCTIONS: usize = 10_000;
/// Functions of the module the instruction counts compile (the count per
/// function does not depend on the module's size).
const MODULE_COUNTED: usize = 100;

/// What a worker compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Ours,
    Stock,
    /// Ours up to legalization.
    Legalize,
    /// Ours up to `Context::compile` of the legalized function.
    LegalizeCompile,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Stock => "stock",
            Self::Legalize => "legalize",
            Self::LegalizeCompile => "legalize+compile",
        }
    }

    fn parse(name: &str) -> Self {
        [
            Self::Ours,
            Self::Stock,
            Self::Legalize,
            Self::LegalizeCompile,
        ]
        .into_iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("unknown side `{name}`"))
    }
}

/// A case: functions compiled as one module, under one clause policy (an
/// embedder keeps one per module; clause sets are interned into it).
struct Case {
    name: String,
    functions: Vec<Function>,
    policy: ClausePolicy,
    isa: OwnedTargetIsa,
}

fn case(shape: &Shape, copies: usize, name: String) -> Case {
    let mut file = clif_eh::parse_file(&shapes::clif(shape)).expect("a generated shape parses");
    let isa = clif_eh::module::object_isa(&file.isas[0]).expect("a generated shape's target");
    let func = file.functions.remove(0);
    Case {
        name,
        functions: (0..copies).map(|_| func.clone()).collect(),
        policy: file.policy,
        isa,
    }
}

/// How many cases there are: the shapes, then the module.
fn case_count() -> usize {
    shapes::compile_cases().len() + 1
}

/// Case `index`: a shape, or (the last) the module.
fn case_at(index: usize, mode: Mode) -> Case {
    let shapes = shapes::compile_cases();
    if let Some(shape) = shapes.get(index) {
        return case(shape, 1, shape.name.clone());
    }
    let module = shapes.iter().find(|s| s.name == MODULE_SHAPE).unwrap();
    let copies = match mode {
        Mode::Full => MODULE_FUNCTIONS,
        Mode::Smoke => MODULE_COUNTED,
    };
    case(
        module,
        copies,
        format!("module of {copies} functions ({MODULE_SHAPE})"),
    )
}

/// Compile `case` as `side` does, ours with `policy` (the case's, fresh);
/// the bytes written, so nothing is optimized away.
fn compile(case: &Case, side: Side, policy: &mut ClausePolicy) -> usize {
    let isa = &*case.isa;
    match side {
        Side::Stock => stock(case, isa),
        _ => ours(case, isa, side, policy),
    }
}

fn ours(case: &Case, isa: &dyn TargetIsa, side: Side, policy: &mut ClausePolicy) -> usize {
    let encoding = LsdaEncoding::new(CallSiteEncoding::Uleb128, TypeEncoding::IndirectPcRelSdata4);
    let symbol = |symbol| Address::Symbol { symbol, addend: 0 };
    let mut frames = EhFrameBuilder::new(isa, EhFrameEncoding::object(), symbol(0)).unwrap();
    let mut except_table = RelocatedSection::new(endian_of(isa));
    let mut written = 0;
    for (i, func) in case.functions.iter().enumerate() {
        let mut func = func.clone();
        let prepared = legalize_landing_pads(&mut func, isa, policy).unwrap();
        if side == Side::Legalize {
            written += func.dfg.num_insts();
            continue;
        }
        let mut ctx = Context::for_function(func);
        let code = ctx.compile(isa, &mut ControlPlane::default()).unwrap();
        if side == Side::LegalizeCompile {
            written += code.code_buffer().len();
            continue;
        }
        let tables = tables_for_compiled(&ctx, isa, policy, &prepared, encoding).unwrap();
        let lsda = tables.lsda.as_ref().map(|lsda| {
            let offset = lsda.write(&mut except_table, |_| Some(symbol(1))).unwrap();
            Address::Symbol {
                symbol: 1,
                addend: offset as i64,
            }
        });
        frames
            .add_function(symbol(2 + i), &tables.unwind, lsda)
            .unwrap();
    }
    if side == Side::Ours {
        let mut eh_frame = EhFrame(RelocatedSection::new(endian_of(isa)));
        frames.write(&mut eh_frame).unwrap();
        written += eh_frame.0.len() + except_table.len();
    }
    written
}

/// Stock Cranelift on the natural IR, `.eh_frame` as cranelift-object
/// writes it.
fn stock(case: &Case, isa: &dyn TargetIsa) -> usize {
    let mut table = FrameTable::default();
    let cie = table.add_cie(isa.create_systemv_cie().expect("a System V target"));
    for (i, func) in case.functions.iter().enumerate() {
        let mut ctx = Context::for_function(func.clone());
        let code = ctx.compile(isa, &mut ControlPlane::default()).unwrap();
        if let Some(UnwindInfo::SystemV(info)) = code.create_unwind_info(isa).unwrap() {
            table.add_fde(
                cie,
                info.to_fde(Address::Symbol {
                    symbol: i,
                    addend: 0,
                }),
            );
        }
    }
    let mut eh_frame = EhFrame(RelocatedSection::new(endian_of(isa)));
    table.write_eh_frame(&mut eh_frame).unwrap();
    eh_frame.0.len()
}

/// What the instructions of case `index` were counted on, the same in
/// both modes: the module's counted functions, not the module timed.
fn counted_name(index: usize, case: &Case) -> String {
    if index == case_count() - 1 {
        format!("module of {MODULE_COUNTED} functions ({MODULE_SHAPE})")
    } else {
        case.name.clone()
    }
}

/// The one compile a worker's instructions are counted in (callgrind
/// collects inside this function only).
#[inline(never)]
fn counted_compile(case: &Case, side: Side, policy: &mut ClausePolicy) -> usize {
    compile(case, side, policy)
}

/// The worker under callgrind: `<side> <case index>`, the module with its
/// counted functions.
pub fn worker(args: &[String]) {
    let [side, index] = args else {
        panic!("compile worker: expected <side> <case>")
    };
    let case = case_at(index.parse().unwrap(), Mode::Smoke);
    let mut policy = case.policy.clone();
    std::hint::black_box(counted_compile(&case, Side::parse(side), &mut policy));
}

/// Instructions of one compile of case `index` as `side`.
fn instructions(side: Side, index: usize) -> Option<f64> {
    crate::callgrind(
        &["compile".into(), side.name().into(), index.to_string()],
        Some("*counted_compile*"),
    )
}

/// `f` for every item, two at a time (the machine has two cores; callgrind
/// runs one thread per process).
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    results.lock().unwrap().push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mega(ir: f64) -> String {
    if ir >= 1e6 {
        format!("{:.2} M Ir", ir / 1e6)
    } else {
        format!("{:.0} k Ir", ir / 1e3)
    }
}

/// Times of both sides over interleaved rounds.
fn times(case: &Case, rounds: usize) -> ([Duration; 3], [Duration; 3]) {
    // Small cases are repeated to make each sample about a millisecond.
    let start = Instant::now();
    compile(case, Side::Ours, &mut case.policy.clone());
    let reps = (1e-3 / start.elapsed().as_secs_f64())
        .ceil()
        .clamp(1.0, 1000.0) as u32;
    let sample = |side| {
        let mut policies = vec![case.policy.clone(); reps as usize];
        let start = Instant::now();
        for policy in &mut policies {
            std::hint::black_box(compile(case, side, policy));
        }
        start.elapsed() / reps
    };
    let (mut ours, mut stock) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(sample(Side::Ours));
        stock.push(sample(Side::Stock));
    }
    (crate::spread(&mut ours), crate::spread(&mut stock))
}

/// The shapes whose phases are counted apart.
const PHASED: [&str; 4] = [
    "1000 call(s), 1 catch",
    "1000 calls, 4 catches",
    "1000 calls, 16 catches",
    MODULE_SHAPE,
];

pub fn rows(mode: Mode) -> Vec<Row> {
    let cases: Vec<Case> = (0..case_count()).map(|i| case_at(i, mode)).collect();
    let module_index = cases.len() - 1;
    // Instruction counts first, two workers at a time; nothing is timed
    // meanwhile. The module is counted on its first functions.
    let jobs: Vec<(Side, usize)> = (0..cases.len())
        .flat_map(|i| [(Side::Ours, i), (Side::Stock, i)])
        .chain(
            cases
                .iter()
                .enumerate()
                .filter(|(_, c)| PHASED.contains(&c.name.as_str()))
                .flat_map(|(i, _)| [(Side::Legalize, i), (Side::LegalizeCompile, i)]),
        )
        .collect();
    let counts = in_parallel(&jobs, |&(side, i)| instructions(side, i));
    let count = |side: Side, i: usize| {
        jobs.iter()
            .position(|&j| j == (side, i))
            .and_then(|at| counts[at])
    };

    let rounds = match mode {
        Mode::Full => 11,
        Mode::Smoke => 3,
    };
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let ([o_min, o_med, o_max], [s_min, s_med, s_max]) = times(case, rounds);
        let time_ratio = o_med.as_secs_f64() / s_med.as_secs_f64();
        let label = if i == module_index {
            format!("{} (Ir of {MODULE_COUNTED} functions)", case.name)
        } else {
            case.name.clone()
        };
        let mut row = Row::new(PART, format!("{label}: ours vs stock on the natural IR"));
        let time = |min, med, max| format!("{} ms ({}–{})", ms(med), ms(min), ms(max));
        match (count(Side::Ours, i), count(Side::Stock, i)) {
            (Some(ours), Some(stock)) => {
                ratios.push(ours / stock);
                let target = if case.name == "1000 calls, 16 catches" {
                    0.5
                } else if case.name.contains("no try_call") {
                    1.0
                } else {
                    1.02
                };
                row = row
                    .values(
                        format!(
                            "{}; {} (time {time_ratio:.2}×)",
                            mega(ours),
                            time(o_min, o_med, o_max)
                        ),
                        format!("{}; {}", mega(stock), time(s_min, s_med, s_max)),
                    )
                    .ratio(ours, stock)
                    .target(target)
                    .gated(format!("compile-ir/{}", counted_name(i, case)), ours);
            }
            _ => {
                row = row.values(
                    format!(
                        "Ir skipped: valgrind did not run; {} (time {time_ratio:.2}×)",
                        time(o_min, o_med, o_max)
                    ),
                    time(s_min, s_med, s_max),
                );
            }
        }
        rows.push(row);
    }
    if !ratios.is_empty() {
        rows.push(
            Row::new(
                PART,
                format!("geomean over {} cases, instructions", ratios.len()),
            )
            .values("", "")
            .ratio(geomean(&ratios), 1.0)
            .target(1.0)
            .headline(),
        );
    }
    for (i, case) in cases.iter().enumerate() {
        if !PHASED.contains(&case.name.as_str()) {
            continue;
        }
        let phases = (
            count(Side::Legalize, i),
            count(Side::LegalizeCompile, i),
            count(Side::Ours, i),
            count(Side::Stock, i),
        );
        if let (Some(legalize), Some(compiled), Some(ours), Some(stock)) = phases {
            rows.push(Row::new(PART, format!("{}: phases", case.name)).values(
                format!(
                    "legalize {}, compile {}, tables {}",
                    mega(legalize),
                    mega(compiled - legalize),
                    mega(ours - compiled)
                ),
                format!("stock {}", mega(stock)),
            ));
        }
    }
    rows.push(heap_row(&cases[module_index]));
    rows
}

/// Peak heap while compiling the module, ours against stock.
fn heap_row(module: &Case) -> Row {
    let mut policy = module.policy.clone();
    let ours = crate::heap_peak_during(|| {
        compile(module, Side::Ours, &mut policy);
    });
    let stock = crate::heap_peak_during(|| {
        compile(module, Side::Stock, &mut policy);
    });
    let kib = |b: usize| format!("{:.0} KiB", b as f64 / 1024.0);
    Row::new(PART, format!("peak heap, {}", module.name))
        .values(kib(ours), format!("stock {}", kib(stock)))
        .ratio(ours as f64, stock as f64)
        .target(1.05)
}
