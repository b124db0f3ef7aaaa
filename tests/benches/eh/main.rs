//! The benchmark of issue 10: exception tables, throw latency, JIT
//! registration, the normal path and dispatch, each side by side with what
//! users trust (g++, clang++, one-entry-per-call tables, plain calls), as
//! ratios measured in this one run.
//!
//!     cargo bench --ignore-rust-version -p eh-tests --bench eh            # the table
//!     cargo bench --ignore-rust-version -p eh-tests --bench eh -- --smoke # CI: every part, briefly
//!
//! Absolute times are for orientation only; the targets are ratios. The
//! LLVM libunwind figures come from this binary re-run with
//! `LD_PRELOAD=libunwind.so.1`, which puts LLVM's unwinder ahead of
//! libgcc_s for every `_Unwind_*` and `__register_frame` call (the worker
//! checks that it is the unwinder in use). Instruction counts, steadier
//! than times here (the machine has no hardware counters), come from
//! worker runs under `valgrind --tool=callgrind`.

mod compile_time;
mod dispatch;
mod registration;
mod shapes;
mod size;
mod throw;

use std::fmt::Write as _;

/// How long the measured parts run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The whole table.
    Full,
    /// A few iterations of everything, to keep it from rotting (CI).
    Smoke,
}

impl Mode {
    /// `full` iterations, or a hundredth of them (at least 1) in smoke mode.
    pub fn iterations(self, full: usize) -> usize {
        match self {
            Self::Full => full,
            Self::Smoke => (full / 100).max(1),
        }
    }
}

/// One row of the table.
pub struct Row {
    pub part: &'static str,
    pub case: String,
    pub ours: String,
    pub baseline: String,
    /// ours / baseline.
    pub ratio: Option<f64>,
    /// The target the ratio must meet (`ratio <= target`), if any.
    pub target: Option<f64>,
}

impl Row {
    pub fn new(part: &'static str, case: impl Into<String>) -> Self {
        Self {
            part,
            case: case.into(),
            ours: String::new(),
            baseline: String::new(),
            ratio: None,
            target: None,
        }
    }

    pub fn values(mut self, ours: impl Into<String>, baseline: impl Into<String>) -> Self {
        self.ours = ours.into();
        self.baseline = baseline.into();
        self
    }

    pub fn ratio(mut self, ours: f64, baseline: f64) -> Self {
        self.ratio = Some(ours / baseline);
        self
    }

    pub fn target(mut self, target: f64) -> Self {
        self.target = Some(target);
        self
    }
}

/// The geometric mean of `values`.
pub fn geomean(values: &[f64]) -> f64 {
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

fn print_table(rows: &[Row]) -> usize {
    let mut out = String::new();
    writeln!(
        out,
        "| part | case | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|---|"
    )
    .unwrap();
    let mut missed = 0;
    for row in rows {
        let ratio = row.ratio.map(|r| format!("{r:.2}×")).unwrap_or_default();
        let target = row.target.map(|t| format!("≤ {t:.2}×")).unwrap_or_default();
        let met = match (row.ratio, row.target) {
            (Some(r), Some(t)) if r <= t => "yes",
            (Some(_), Some(_)) => {
                missed += 1;
                "**no**"
            }
            _ => "",
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {ratio} | {target} | {met} |",
            row.part, row.case, row.ours, row.baseline
        )
        .unwrap();
    }
    print!("{out}");
    missed
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--worker") {
        // A part re-run in a child process (e.g. under LLVM libunwind):
        // prints its rows as `row\t...` lines for the parent.
        let part = args.get(at + 1).expect("--worker needs a part name");
        let mode = if args.iter().any(|a| a == "--smoke") {
            Mode::Smoke
        } else {
            Mode::Full
        };
        match part.as_str() {
            "throw-jit" => throw::worker(mode),
            "registration" => registration::worker(mode),
            "count" => dispatch::count_worker(&args[at + 2..]),
            other => panic!("unknown worker part `{other}`"),
        }
        return;
    }
    // `cargo bench` passes `--bench`; anything else unknown is a mistake.
    let mut mode = Mode::Full;
    for arg in &args {
        match arg.as_str() {
            "--smoke" => mode = Mode::Smoke,
            "--bench" => {}
            other => {
                eprintln!("eh bench: unknown argument `{other}` (expected --smoke)");
                std::process::exit(2);
            }
        }
    }
    let start = std::time::Instant::now();
    let mut rows = Vec::new();
    type Part = fn(Mode) -> Vec<Row>;
    let parts: [(&str, Part); 5] = [
        ("LSDA size", size::rows),
        ("compile time", compile_time::rows),
        ("throw latency", throw::rows),
        ("registration", registration::rows),
        ("normal path and dispatch", dispatch::rows),
    ];
    for (name, part) in parts {
        let part_start = std::time::Instant::now();
        rows.extend(part(mode));
        eprintln!(
            "eh bench: {name} in {:.1} s",
            part_start.elapsed().as_secs_f64()
        );
    }
    println!();
    let missed = print_table(&rows);
    println!(
        "\neh bench: {} rows, {} with a target, {missed} missed, in {:.0} s ({mode:?})",
        rows.len(),
        rows.iter().filter(|r| r.target.is_some()).count(),
        start.elapsed().as_secs_f64()
    );
}
