//! The benchmark of issue 10: exception tables, throw latency, JIT
//! registration, the normal path and dispatch, each side by side with what
//! users trust (g++, clang++, one-entry-per-call tables, plain calls), as
//! ratios measured in this one run.
//!
//!     cargo bench --ignore-rust-version -p eh-tests --bench eh            # the table
//!     cargo bench --ignore-rust-version -p eh-tests --bench eh -- --smoke --check # CI
//!     cargo bench --ignore-rust-version -p eh-tests --bench eh -- --write-docs    # the docs' tables
//!
//! `--smoke` runs every part briefly, every deterministic figure in full;
//! `--check` holds those figures to the committed ones, `--write-docs`
//! commits this run's (see `report.rs`).
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
mod report;
mod shapes;
mod size;
mod throw;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A deterministic figure of ours (bytes, instructions): `--check` holds
/// it to its committed value.
pub struct Gate {
    pub key: String,
    pub value: f64,
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
    pub gate: Option<Gate>,
    /// Shown among the README's headline figures.
    pub headline: bool,
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
            gate: None,
            headline: false,
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

    /// Hold `value`, a deterministic figure of ours, to its committed value.
    pub fn gated(mut self, key: impl Into<String>, value: f64) -> Self {
        self.gate = Some(Gate {
            key: key.into(),
            value,
        });
        self
    }

    pub fn headline(mut self) -> Self {
        self.headline = true;
        self
    }

    /// Whether the ratio meets the target, when the row has both.
    pub fn met(&self) -> Option<bool> {
        Some(self.ratio? <= self.target?)
    }
}

/// Instructions this binary executes as `--worker ARGS...` under
/// `valgrind --tool=callgrind` (the machine has no hardware counters), or
/// only inside the functions matching `inside`; `None` when valgrind does
/// not run.
pub fn callgrind(worker_args: &[String], inside: Option<&str>) -> Option<f64> {
    let mut command = std::process::Command::new("valgrind");
    command.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"]);
    if let Some(pattern) = inside {
        command.args([
            "--collect-atstart=no",
            &format!("--toggle-collect={pattern}"),
        ]);
    }
    let out = command
        .arg(std::env::current_exe().unwrap())
        .arg("--worker")
        .args(worker_args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let collected = stderr.lines().find_map(|l| l.split("Collected :").nth(1))?;
    collected.trim().parse().ok()
}

/// The system allocator, counting the bytes live and their peak.
struct CountingAllocator;

static HEAP_LIVE: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

fn heap_grew(size: usize) {
    let live = HEAP_LIVE.fetch_add(size, Ordering::Relaxed) + size;
    HEAP_PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            heap_grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        HEAP_LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            HEAP_LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            heap_grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The most heap `f` held at once beyond what was live before it (run it
/// alone: other threads' allocations count too).
pub fn heap_peak_during(f: impl FnOnce()) -> usize {
    let before = HEAP_LIVE.load(Ordering::Relaxed);
    HEAP_PEAK.store(before, Ordering::Relaxed);
    f();
    HEAP_PEAK.load(Ordering::Relaxed) - before
}

/// Min, median and max of `samples` (sorted in place).
pub fn spread<T: Copy + PartialOrd>(samples: &mut [T]) -> [T; 3] {
    samples.sort_by(|a, b| a.partial_cmp(b).expect("no NaN among the samples"));
    [
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
    ]
}

/// The geometric mean of `values`.
pub fn geomean(values: &[f64]) -> f64 {
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
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
            "registration" => registration::worker(
                mode,
                args.get(at + 2).expect("--worker registration REGISTRAR"),
            ),
            "count" => dispatch::count_worker(&args[at + 2..]),
            "compile" => compile_time::worker(&args[at + 2..]),
            other => panic!("unknown worker part `{other}`"),
        }
        return;
    }
    // `cargo bench` passes `--bench`; anything else unknown is a mistake.
    let (mut mode, mut check, mut write_docs, mut accept_worse) = (Mode::Full, false, false, false);
    let mut only: Option<String> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => mode = Mode::Smoke,
            "--check" => check = true,
            "--write-docs" => write_docs = true,
            "--accept-worse" => accept_worse = true,
            "--part" => only = args.next().cloned(),
            "--bench" => {}
            other => {
                eprintln!(
                    "eh bench: unknown argument `{other}` \
                     (expected --smoke, --check, --write-docs [--accept-worse], --part NAME)"
                );
                std::process::exit(2);
            }
        }
    }
    if write_docs && mode == Mode::Smoke {
        eprintln!("eh bench: --write-docs needs the full run (its times go into the docs)");
        std::process::exit(2);
    }
    if only.is_some() && (write_docs || check) {
        eprintln!("eh bench: --part runs one part, and the docs and the gate need them all");
        std::process::exit(2);
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
        if only
            .as_ref()
            .is_some_and(|only| !name.contains(only.as_str()))
        {
            continue;
        }
        let part_start = std::time::Instant::now();
        rows.extend(part(mode));
        eprintln!(
            "eh bench: {name} in {:.1} s",
            part_start.elapsed().as_secs_f64()
        );
    }
    let (table, missed) = report::table(&rows);
    println!("\n{table}");
    let summary = format!(
        "eh bench: {} rows, {} with a target, {missed} missed, {} deterministic figures, in {:.0} s ({mode:?})",
        rows.len(),
        rows.iter().filter(|r| r.target.is_some()).count(),
        rows.iter().filter(|r| r.gate.is_some()).count(),
        start.elapsed().as_secs_f64()
    );
    println!("{summary}");
    for row in rows.iter().filter(|r| r.met() == Some(false)) {
        println!("eh bench: missed: {} | {}", row.part, row.case);
    }
    if write_docs {
        // Committing a worse deterministic figure is a decision, not a
        // side effect of regenerating the tables.
        let worse = report::worse_than_committed(&rows);
        if !worse.is_empty() && !accept_worse {
            for figure in &worse {
                eprintln!("eh bench: worse than committed: {figure}");
            }
            eprintln!("eh bench: docs not written; --accept-worse records them anyway");
            std::process::exit(1);
        }
        if let Err(e) = report::write_docs(&rows, &summary) {
            eprintln!("eh bench: {e}");
            std::process::exit(1);
        }
        println!(
            "eh bench: wrote docs/benchmark.md, README.md and {}",
            report::GATE_FILE
        );
    }
    if check {
        match report::check(&rows, mode) {
            Ok(notes) => {
                for note in notes {
                    println!("eh bench: gate: {note}");
                }
                println!(
                    "eh bench: gate: deterministic figures within {:.0} % of {}",
                    report::TOLERANCE * 100.0,
                    report::GATE_FILE
                );
            }
            Err(failures) => {
                for failure in failures {
                    eprintln!("eh bench: gate FAILED: {failure}");
                }
                std::process::exit(1);
            }
        }
    }
}
