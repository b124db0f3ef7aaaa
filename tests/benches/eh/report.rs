//! The table as Markdown, the docs it is written into, and the gate that
//! holds the deterministic figures (bytes, instruction counts) to their
//! committed values.
//!
//! `--write-docs` rewrites what lies between `<!-- eh-bench:NAME -->` and
//! `<!-- /eh-bench:NAME -->` in `docs/benchmark.md` (`run`, `table`) and
//! `README.md` (`headline`), and the committed figures in
//! [`GATE_FILE`]. `--check` compares this run's deterministic figures with
//! that file: worse by more than [`TOLERANCE`] fails. Times are never
//! gated: they are reported.

use crate::{Mode, Row};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// The committed deterministic figures, relative to the repository root:
/// one `key<TAB>value` line each, sorted by key.
pub const GATE_FILE: &str = "docs/bench/eh-gate.tsv";
/// How much worse than committed a deterministic figure may get.
pub const TOLERANCE: f64 = 0.01;
/// The command that regenerates the docs, as the docs quote it.
pub const WRITE_DOCS: &str =
    "cargo bench --ignore-rust-version -p eh-tests --bench eh -- --write-docs";

/// What went wrong reading or writing the docs.
#[derive(Debug)]
pub enum ReportError {
    Io(PathBuf, std::io::Error),
    /// A marker pair is missing or out of order.
    Marker {
        file: PathBuf,
        name: String,
    },
    /// A line of the gate file is not `key<TAB>number`.
    GateLine {
        line: usize,
        text: String,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(path, e) => write!(f, "{}: {e}", path.display()),
            Self::Marker { file, name } => write!(
                f,
                "{}: no `<!-- eh-bench:{name} -->` ... `<!-- /eh-bench:{name} -->` pair",
                file.display()
            ),
            Self::GateLine { line, text } => {
                write!(
                    f,
                    "{GATE_FILE}:{line}: expected `key<TAB>number`, got {text:?}"
                )
            }
        }
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the eh-tests package sits in the repository")
        .to_path_buf()
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|e| ReportError::Io(path.to_path_buf(), e))
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::Io(dir.to_path_buf(), e))?;
    }
    std::fs::write(path, text).map_err(|e| ReportError::Io(path.to_path_buf(), e))
}

/// The table, and how many rows missed their target.
pub fn table<'a>(rows: impl IntoIterator<Item = &'a Row>) -> (String, usize) {
    let mut out = String::from(
        "| part | case | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
    );
    let mut missed = 0;
    for row in rows {
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => {
                missed += 1;
                "**no**"
            }
            None => "",
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {met} |",
            row.part,
            row.case,
            row.ours,
            row.baseline,
            row.ratio.map(|r| format!("{r:.2}×")).unwrap_or_default(),
            row.target.map(|t| format!("≤ {t:.2}×")).unwrap_or_default(),
        )
        .unwrap();
    }
    (out, missed)
}

/// The rows marked as headline figures, as a short table.
fn headline(rows: &[Row]) -> String {
    let mut out =
        String::from("| part | figure | ours | baseline | ratio |\n|---|---|---|---|---|\n");
    for row in rows.iter().filter(|r| r.headline) {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.part,
            row.case,
            row.ours,
            row.baseline,
            row.ratio.map(|r| format!("{r:.2}×")).unwrap_or_default()
        )
        .unwrap();
    }
    out
}

/// When and where this run happened, for the docs.
fn machine() -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|d| d.trim().to_string())
        .unwrap_or_else(|| "an unknown date".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Measured on {date}, {} Linux, {cores} cores ({cpu}).",
        std::env::consts::ARCH
    )
}

/// `text` with what lies between the `name` markers replaced by `content`.
fn replace_between(
    text: &str,
    file: &Path,
    name: &str,
    content: &str,
) -> Result<String, ReportError> {
    let open = format!("<!-- eh-bench:{name} -->\n");
    let close = format!("<!-- /eh-bench:{name} -->");
    let marker = || ReportError::Marker {
        file: file.to_path_buf(),
        name: name.into(),
    };
    let start = text.find(&open).ok_or_else(marker)? + open.len();
    let end = start + text[start..].find(&close).ok_or_else(marker)?;
    Ok(format!("{}{content}{}", &text[..start], &text[end..]))
}

/// This run's deterministic figures, by key.
fn gates(rows: &[Row]) -> BTreeMap<&str, f64> {
    rows.iter()
        .filter_map(|r| r.gate.as_ref())
        .map(|g| (g.key.as_str(), g.value))
        .collect()
}

/// Whether `value` is worse than the committed `old` beyond the tolerance
/// (lower is better for every gated figure).
fn is_worse(value: f64, old: f64) -> bool {
    value > old * (1.0 + TOLERANCE)
}

/// This run's deterministic figures that are worse than the committed
/// ones by more than [`TOLERANCE`] (a missing gate file: none).
pub fn worse_than_committed(rows: &[Row]) -> Vec<String> {
    let Ok(committed) = read(&repo_root().join(GATE_FILE)).and_then(|t| parse_gate(&t)) else {
        return Vec::new();
    };
    gates(rows)
        .into_iter()
        .filter_map(|(key, value)| {
            let old = *committed.get(key)?;
            is_worse(value, old).then(|| format!("{key}: {old} -> {value}"))
        })
        .collect()
}

/// Rewrite the docs' tables and the gate file from this run.
pub fn write_docs(rows: &[Row], summary: &str) -> Result<(), ReportError> {
    let root = repo_root();
    let (whole, _) = table(rows);
    let run = format!("{}\n\n`{summary}`\n", machine());

    // The registration rows again beside the design they measure.
    let unwinders_doc = root.join("docs/unwinders.md");
    let (registration, _) = table(rows.iter().filter(|r| r.part == crate::registration::PART));
    let text = read(&unwinders_doc)?;
    let text = replace_between(&text, &unwinders_doc, "run", &run)?;
    let text = replace_between(&text, &unwinders_doc, "registration", &registration)?;
    write(&unwinders_doc, &text)?;

    let bench_doc = root.join("docs/benchmark.md");
    let mut text = read(&bench_doc)?;
    text = replace_between(&text, &bench_doc, "run", &run)?;
    text = replace_between(&text, &bench_doc, "table", &whole)?;
    write(&bench_doc, &text)?;

    let readme = root.join("README.md");
    let text = read(&readme)?;
    let block = format!("{}\n{}\n", headline(rows), machine());
    write(
        &readme,
        &replace_between(&text, &readme, "headline", &block)?,
    )?;

    let mut gate = String::new();
    for (key, value) in gates(rows) {
        writeln!(gate, "{key}\t{value}").unwrap();
    }
    write(&root.join(GATE_FILE), &gate)
}

/// Compare this run's deterministic figures with the committed ones:
/// `Ok(notes)` when none got worse, else every failure.
pub fn check(rows: &[Row], mode: Mode) -> Result<Vec<String>, Vec<String>> {
    let path = repo_root().join(GATE_FILE);
    let committed = read(&path)
        .and_then(|text| parse_gate(&text))
        .map_err(|e| vec![e.to_string()])?;
    let ours = gates(rows);
    let (mut notes, mut failures) = (Vec::new(), Vec::new());
    for (key, &value) in &ours {
        match committed.get(*key) {
            None => failures.push(format!(
                "{key} = {value}: not in {GATE_FILE}; run `{WRITE_DOCS}` and commit it"
            )),
            Some(&old) if is_worse(value, old) => failures.push(format!(
                "{key}: {value} is worse than the committed {old} by {:.1} % (tolerance {:.0} %)",
                (value / old - 1.0) * 100.0,
                TOLERANCE * 100.0
            )),
            Some(&old) if value < old * (1.0 - TOLERANCE) => notes.push(format!(
                "{key}: {value} is better than the committed {old}; `{WRITE_DOCS}` records it"
            )),
            Some(_) => {}
        }
    }
    for key in committed.keys() {
        if !ours.contains_key(key.as_str()) {
            failures.push(format!(
                "{key}: committed in {GATE_FILE} but not measured by this run ({mode:?})"
            ));
        }
    }
    if failures.is_empty() {
        Ok(notes)
    } else {
        Err(failures)
    }
}

fn parse_gate(text: &str) -> Result<BTreeMap<String, f64>, ReportError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let bad = || ReportError::GateLine {
                line: i + 1,
                text: line.into(),
            };
            let (key, value) = line.split_once('\t').ok_or_else(bad)?;
            Ok((key.to_string(), value.trim().parse().map_err(|_| bad())?))
        })
        .collect()
}
