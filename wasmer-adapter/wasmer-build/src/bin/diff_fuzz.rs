//! Differential fuzzing, stock vs generic-lsda: `diff-run-stock` and
//! `diff-run-generic-lsda` (next to this binary) run the same generated
//! modules; every outcome line must be equal, except where the only
//! difference is stock's documented misreading of multi-field payloads
//! ([`diff::as_stock_reads`], counted apart). A divergence is written out
//! as `SEED.wasm` with both lines and fails the run.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use wasmer_eh_runner::{biased, diff};

#[derive(Parser)]
#[command(about = "Compare stock and generic-lsda on generated modules")]
struct Args {
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Stop after this many modules...
    #[arg(long)]
    modules: Option<u64>,
    /// ...or after this many seconds (checked between batches).
    #[arg(long)]
    seconds: Option<u64>,
    /// Modules per runner process.
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// `smith` (wasm-smith) or `biased` (exceptions everywhere).
    #[arg(long, default_value = "smith")]
    generator: diff::Generator,
    /// Where divergent modules are written.
    #[arg(long, default_value = "diff-fuzz-divergences")]
    out: PathBuf,
}

/// The outcome lines of `count` seeds from `first` on one build; a seed
/// after which the runner stopped early gets `crashed: STATUS`.
fn run(
    runner: &Path,
    generator: diff::Generator,
    first: u64,
    count: u64,
) -> Result<Vec<(u64, String)>, String> {
    let output = Command::new(runner)
        .args(["--first", &first.to_string(), "--count", &count.to_string()])
        .args(["--generator", &generator.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", runner.display()))?;
    let mut lines: Vec<(u64, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let (seed, rest) = l.split_once(' ')?;
            Some((seed.parse().ok()?, rest.to_string()))
        })
        .collect();
    let next = lines.last().map_or(first, |(seed, _)| seed + 1);
    if next < first + count {
        lines.push((next, format!("crashed: {}", output.status)));
    }
    Ok(lines)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.modules.is_none() && args.seconds.is_none() {
        eprintln!("diff-fuzz: give --modules or --seconds");
        return ExitCode::from(2);
    }
    let dir = match std::env::current_exe() {
        Ok(exe) => exe.parent().map(Path::to_path_buf).unwrap_or_default(),
        Err(e) => {
            eprintln!("diff-fuzz: {e}");
            return ExitCode::from(2);
        }
    };
    let stock = dir.join("diff-run-stock");
    let ours = dir.join("diff-run-generic-lsda");
    let start = Instant::now();
    let deadline = args.seconds.map(|s| start + Duration::from_secs(s));
    let (mut seed, mut compared, mut divergent) = (args.first, 0u64, 0u64);
    let (mut with_exceptions, mut stock_misreads) = (0u64, 0u64);
    let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
    loop {
        let remaining = args.modules.map_or(u64::MAX, |m| m - compared);
        if remaining == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let count = args.batch.min(remaining);
        let (a, b) = match (
            run(&stock, args.generator, seed, count),
            run(&ours, args.generator, seed, count),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("diff-fuzz: {e}");
                return ExitCode::from(2);
            }
        };
        // Compared up to the first seed either side did not reach.
        let reached = a.len().min(b.len());
        for ((s, left), (_, right)) in a.iter().zip(&b).take(reached) {
            compared += 1;
            *kinds.entry(kind(right)).or_default() += 1;
            if right.starts_with("eh:") && !right.starts_with("eh:0 ") {
                with_exceptions += 1;
            }
            // The biased generator makes valid modules by construction.
            if args.generator == diff::Generator::Biased && right.starts_with("not generated") {
                eprintln!("diff-fuzz: seed {s}: {right}");
                return ExitCode::from(2);
            }
            if left.starts_with("crashed") && left == right {
                eprintln!("diff-fuzz: seed {s} crashes both builds alike: {left}");
            }
            // Every biased throw derives its payload's fields from one
            // value: a field read wrong shows even where stock's line
            // cannot be compared (the fields its misreading zeroes).
            if args.generator == diff::Generator::Biased
                && !diff::uncaught_payloads(right)
                    .is_some_and(|p| p.iter().all(|p| biased::payload_is_consistent(p)))
            {
                divergent += 1;
                eprintln!("diff-fuzz: seed {s}: generic-lsda's payload is not the one thrown");
                report(&args.out, args.generator, *s, left, right);
                continue;
            }
            if left == right {
                continue;
            }
            if diff::as_stock_reads(right).as_deref() == Some(left.as_str()) {
                // Stock's documented payload misreading, and nothing else.
                stock_misreads += 1;
            } else {
                divergent += 1;
                report(&args.out, args.generator, *s, left, right);
            }
        }
        seed = a[reached - 1].0 + 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "diff-fuzz: {} generator: {compared} modules (seeds {}..{seed}; {with_exceptions} with try_table, throw or throw_ref) in {:.0} s: {divergent} divergent, {stock_misreads} differing only by stock's misread multi-field payloads ({})",
        args.generator,
        args.first,
        start.elapsed().as_secs_f64(),
        kinds.join(", ")
    );
    if divergent > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What kind of outcome a line is, for the summary.
fn kind(line: &str) -> &'static str {
    let line = line
        .strip_prefix("eh:")
        .and_then(|l| l.split_once(' '))
        .map_or(line, |(_, rest)| rest);
    if line.starts_with("not generated") {
        "not generated"
    } else if line.starts_with("compile error") {
        "compile errors"
    } else if line.starts_with("instantiate error") {
        "instantiation errors"
    } else if line.starts_with("crashed") {
        "crashes"
    } else if line.contains("exception(") {
        "with uncaught exceptions"
    } else {
        "run"
    }
}

/// Print a divergence and write its module.
fn report(out: &Path, generator: diff::Generator, seed: u64, stock: &str, ours: &str) {
    eprintln!("diff-fuzz: seed {seed} diverges\n  stock:        {stock}\n  generic-lsda: {ours}");
    let written = std::fs::create_dir_all(out).and_then(|()| {
        let generated = diff::generate(generator, seed).map_err(std::io::Error::other)?;
        if let Some(helper) = generated.helper {
            std::fs::write(out.join(format!("{seed}.helper.wasm")), helper)?;
        }
        std::fs::write(out.join(format!("{seed}.wasm")), generated.main)?;
        std::fs::write(
            out.join(format!("{seed}.txt")),
            format!("stock: {stock}\ngeneric-lsda: {ours}\n"),
        )
    });
    if let Err(e) = written {
        eprintln!("diff-fuzz: cannot write seed {seed}'s module: {e}");
    }
}
