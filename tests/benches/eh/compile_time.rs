//! Part 2: what exception tables add to compile time. Per function:
//! landing-pad legalization, then (after Cranelift's own compile, the
//! baseline) the LSDA (`tables_for_compiled` and writing it through the
//! relocating writer) and its FDE; `.eh_frame` is written once per module.
//! Over the corpus and over a module of 10,000 functions.

use crate::shapes::{self, Shape};
use crate::{Mode, Row};
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::TargetIsa;
use cranelift_lsda::{
    ClausePolicy, EhFrameBuilder, EhFrameEncoding, LsdaEncoding, RelocatedSection, TypeEncoding,
    endian_of, legalize_landing_pads, tables_for_compiled,
};
use gimli::write::{Address, EhFrame};
use std::time::{Duration, Instant};

const PART: &str = "2 compile time";

#[derive(Default)]
struct Times {
    compile: Duration,
    legalize: Duration,
    /// `tables_for_compiled`: call sites, CFI and the LSDA's layout.
    lsda: Duration,
    /// Writing the LSDA and the FDEs, and `.eh_frame` once.
    write: Duration,
}

impl Times {
    fn tables(&self) -> Duration {
        self.legalize + self.lsda + self.write
    }

    fn add(&mut self, other: &Times) {
        self.compile += other.compile;
        self.legalize += other.legalize;
        self.lsda += other.lsda;
        self.write += other.write;
    }
}

/// Compile `functions` as one module, timing Cranelift's compile apart
/// from everything exception tables add.
fn module_times(functions: &[(Function, ClausePolicy)], isa: &dyn TargetIsa) -> Times {
    let mut times = Times::default();
    let encoding = LsdaEncoding {
        types: TypeEncoding::IndirectPcRelSdata4,
        ..LsdaEncoding::object()
    };
    let symbol = |symbol| Address::Symbol { symbol, addend: 0 };
    let mut frames = EhFrameBuilder::new(isa, EhFrameEncoding::object(), symbol(0)).unwrap();
    let mut except_table = RelocatedSection::new(endian_of(isa));
    for (i, (func, policy)) in functions.iter().enumerate() {
        let mut func = func.clone();
        let mut policy = policy.clone();
        let t0 = Instant::now();
        let prepared = legalize_landing_pads(&mut func, isa, &mut policy).unwrap();
        let t1 = Instant::now();
        let mut ctx = Context::for_function(func);
        let code = ctx.compile(isa, &mut ControlPlane::default()).unwrap();
        let t2 = Instant::now();
        let tables = tables_for_compiled(code, isa, &policy, &prepared, encoding).unwrap();
        let t3 = Instant::now();
        let lsda = match &tables.lsda {
            Some(lsda) => {
                let offset = lsda.write(&mut except_table, |_| Some(symbol(1))).unwrap();
                Some(Address::Symbol {
                    symbol: 1,
                    addend: offset as i64,
                })
            }
            None => None,
        };
        frames
            .add_function(symbol(2 + i), &tables.unwind, lsda)
            .unwrap();
        let t4 = Instant::now();
        times.legalize += t1 - t0;
        times.compile += t2 - t1;
        times.lsda += t3 - t2;
        times.write += t4 - t3;
    }
    let t0 = Instant::now();
    let mut eh_frame = EhFrame(RelocatedSection::new(endian_of(isa)));
    frames.write(&mut eh_frame).unwrap();
    times.write += t0.elapsed();
    times
}

fn parsed(
    shape: &Shape,
) -> (
    Function,
    ClausePolicy,
    cranelift_codegen::isa::OwnedTargetIsa,
) {
    let mut file = clif_eh::parse_file(&shapes::clif(shape)).expect("a generated shape parses");
    (file.functions.remove(0), file.policy, file.isas.remove(0))
}

fn row(case: String, times: &Times) -> Row {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    Row::new(PART, case)
        .values(
            format!(
                "{} for tables (legalize {}, LSDA {}, writing {})",
                ms(times.tables()),
                ms(times.legalize),
                ms(times.lsda),
                ms(times.write)
            ),
            format!("{} compiling", ms(times.compile)),
        )
        .ratio(times.tables().as_secs_f64(), times.compile.as_secs_f64())
        .target(0.02)
}

pub fn rows(mode: Mode) -> Vec<Row> {
    let corpus = shapes::corpus();
    let mut functions = Vec::new();
    let mut isa = None;
    for shape in &corpus {
        let (func, policy, shape_isa) = parsed(shape);
        functions.push((func, policy));
        isa = Some(shape_isa);
    }
    let isa = isa.unwrap();
    // The corpus is small: compile it several times, as one module each.
    let mut corpus_times = Times::default();
    let rounds = match mode {
        Mode::Full => 5,
        Mode::Smoke => 1,
    };
    for _ in 0..rounds {
        corpus_times.add(&module_times(&functions, &*isa));
    }
    let module_size = mode.iterations(10_000);
    let shape = corpus
        .iter()
        .find(|s| s.name == "10 calls, cleanup then catch")
        .unwrap();
    let (func, policy, _) = parsed(shape);
    let module: Vec<_> = (0..module_size)
        .map(|_| (func.clone(), policy.clone()))
        .collect();
    let module_times = module_times(&module, &*isa);
    vec![
        row(
            format!("corpus ({} functions)", corpus.len()),
            &corpus_times,
        ),
        row(
            format!("module of {module_size} functions ({})", shape.name),
            &module_times,
        ),
    ]
}
