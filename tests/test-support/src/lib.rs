//! What the end-to-end tests and `clif-eh run` share.
//!
//! * A C++ runtime (`cxx/eh_runtime.cpp`, built with `cc`) that throws
//!   `int`, `Derived`, `Unrelated`, `Base` and `double` from Cranelift
//!   frames and catches whatever escapes them, with typeinfo for the
//!   JIT's type entries and a cleanup counter.
//! * The scenario suite (`docs/examples/cxx-suite.clif`) and the outcome
//!   each of its calls must have, given the selectors the crate predicts.
//! * Helpers to parse CLIF and to run external tools on scratch files.

use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_reader::{IsaSpec, ParseOptions, parse_test};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first function of a CLIF text and its first `target`.
pub fn parse_clif(text: &str) -> (Function, OwnedTargetIsa) {
    let test = parse_test(text, ParseOptions::default()).unwrap();
    let IsaSpec::Some(mut isas) = test.isa_spec else {
        panic!("the CLIF text has no `target` line")
    };
    (test.functions.into_iter().next().unwrap().0, isas.remove(0))
}

unsafe extern "C" {
    fn eh_throw(kind: i64) -> i64;
    fn eh_note_cleanup();
    fn eh_cleanups() -> i64;
    fn eh_reset_cleanups();
    fn eh_int_value(object: *const u8) -> i64;
    fn eh_base_value(object: *const u8) -> i64;
    fn eh_unrelated_value(object: *const u8) -> i64;
    fn eh_typeinfo_base() -> *const u8;
    fn eh_typeinfo_unrelated() -> *const u8;
    fn eh_call(f: *const u8, arg: i64, escaped: *mut i64) -> i64;
}

/// The C++ runtime's functions, for the JIT's symbol table. (They are
/// linked into this binary but not exported dynamically.)
pub fn runtime_symbols() -> Vec<(&'static str, *const u8)> {
    vec![
        ("eh_throw", eh_throw as *const u8),
        ("eh_note_cleanup", eh_note_cleanup as *const u8),
        ("eh_cleanups", eh_cleanups as *const u8),
        ("eh_int_value", eh_int_value as *const u8),
        ("eh_base_value", eh_base_value as *const u8),
        ("eh_unrelated_value", eh_unrelated_value as *const u8),
    ]
}

/// Resolve a symbol for JIT type entries and the personality: the C++
/// runtime's typeinfo, then the process's dynamic symbols.
pub fn resolve_symbol(name: &str) -> Option<*const u8> {
    // SAFETY: the runtime's typeinfo getters only return addresses.
    match name {
        "_ZTI4Base" => return Some(unsafe { eh_typeinfo_base() }),
        "_ZTI9Unrelated" => return Some(unsafe { eh_typeinfo_unrelated() }),
        _ => {}
    }
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks
    // the symbol up.
    let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!ptr.is_null()).then_some(ptr.cast())
}

/// What escaped a function called through the C++ runtime's `eh_call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaped {
    /// It returned normally.
    Nothing,
    /// A C++ `int`.
    Int,
    /// A `Base` (or `Derived`).
    Base,
    /// An `Unrelated`.
    Unrelated,
    /// A `double`.
    Double,
    /// Something else.
    Other,
}

impl Escaped {
    /// The code `eh_call` reports (0 nothing ... 4 double).
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// The outcome of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The return value, or the escaped exception's value.
    pub value: i64,
    /// What escaped.
    pub escaped: Escaped,
    /// How many cleanup pads ran (`eh_note_cleanup` calls).
    pub cleanups: i64,
}

/// Call the `(i64) -> i64 system_v` function at `code` through the C++
/// runtime, which catches whatever escapes it.
///
/// # Safety
///
/// `code` must be such a function, whose code and exception tables stay
/// registered for the call.
pub unsafe fn call_through_cxx(code: *const u8, arg: i64) -> RunOutcome {
    let mut escaped = 0;
    // SAFETY: forwarded from the caller; `eh_call` catches every C++
    // exception the function lets escape.
    let value = unsafe {
        eh_reset_cleanups();
        eh_call(code, arg, &mut escaped)
    };
    RunOutcome {
        value,
        escaped: match escaped {
            0 => Escaped::Nothing,
            1 => Escaped::Int,
            2 => Escaped::Base,
            3 => Escaped::Unrelated,
            4 => Escaped::Double,
            _ => Escaped::Other,
        },
        cleanups: cleanup_count(),
    }
}

/// How many cleanup pads ran since the last reset (`eh_note_cleanup`).
pub fn cleanup_count() -> i64 {
    // SAFETY: reads a counter of the C++ runtime.
    unsafe { eh_cleanups() }
}

/// Reset the cleanup counter.
pub fn reset_cleanup_count() {
    // SAFETY: writes a counter of the C++ runtime.
    unsafe { eh_reset_cleanups() }
}

/// Report a measured figure: printed to stderr (shown with `--nocapture`)
/// and, when `EH_FIGURES_DIR` is set (as `./test.sh` sets it), appended to
/// the file `<EH_FIGURES_DIR>/<topic>` so that the test command can print
/// every figure after the run.
pub fn report_figure(topic: &str, line: &str) {
    eprintln!("{topic}: {line}");
    if let Some(dir) = std::env::var_os("EH_FIGURES_DIR") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(&dir).join(topic))
            .unwrap();
        writeln!(file, "{line}").unwrap();
    }
}

/// What valgrind's memcheck said about one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memcheck {
    /// The program's standard output.
    pub stdout: String,
    /// Memory errors (invalid reads, writes, frees, uninitialised uses).
    pub errors: u64,
    /// Bytes definitely lost.
    pub definitely_lost: u64,
    /// Bytes indirectly lost.
    pub indirectly_lost: u64,
    /// Bytes possibly lost.
    pub possibly_lost: u64,
    /// Bytes still reachable at exit.
    pub still_reachable: u64,
}

impl std::fmt::Display for Memcheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} errors; definitely lost {} B, indirectly lost {} B, possibly lost {} B, \
             still reachable {} B",
            self.errors,
            self.definitely_lost,
            self.indirectly_lost,
            self.possibly_lost,
            self.still_reachable
        )
    }
}

/// Run `program args` under valgrind's memcheck with a full leak check.
/// The program must exit with 0 (its stderr is shown otherwise).
pub fn memcheck(program: &Path, args: &[&str]) -> Memcheck {
    let out = Command::new("valgrind")
        // Leaks are reported below, not counted as errors.
        .args(["--leak-check=full", "--errors-for-leak-kinds=none"])
        // A Rust panic's backtrace would fill the symbolizer's cache, which
        // lives until exit and is reported as still reachable.
        .env("RUST_BACKTRACE", "0")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("valgrind: {e} (install Debian's valgrind, as ./test.sh does)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} under memcheck:\n{stderr}",
        program.display()
    );
    // "==pid==    definitely lost: 1,024 bytes in 2 blocks"
    let bytes = |label: &str| -> u64 {
        stderr
            .lines()
            .find_map(|line| line.split_once(label).map(|(_, rest)| rest))
            .map(|rest| {
                let number = rest.split_whitespace().next().unwrap_or_default();
                number.replace(',', "").parse().unwrap()
            })
            .unwrap_or(0)
    };
    let errors = stderr
        .lines()
        .find_map(|line| line.split_once("ERROR SUMMARY: "))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap().replace(',', ""))
        .expect("memcheck's ERROR SUMMARY")
        .parse()
        .unwrap();
    Memcheck {
        stdout: String::from_utf8(out.stdout).unwrap(),
        errors,
        definitely_lost: bytes("definitely lost: "),
        indirectly_lost: bytes("indirectly lost: "),
        possibly_lost: bytes("possibly lost: "),
        still_reachable: bytes("still reachable: "),
    }
}

/// Write `bytes` to a fresh file under the target directory.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eh-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Run a tool, failing the test with a clear message if it is missing.
pub fn run_tool(tool: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}); install it (Debian: see .ci/run) to run this test")
        });
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The C++ runtime's source, for tests that link it into executables.
pub const RUNTIME_CPP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cxx/eh_runtime.cpp");
/// The directory of its header, `eh_runtime.h`.
pub const RUNTIME_INCLUDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cxx");

/// Run a C++ compiler driver (`g++`, or a cross one such as
/// `aarch64-linux-gnu-g++` from Debian's `debian_package`), requiring
/// success and no diagnostics at all.
pub fn compile_cxx(compiler: &str, debian_package: &str, args: &[&str]) {
    let out = Command::new(compiler)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e} (install Debian's {debian_package})"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{compiler} {args:?}:\n{stderr}"
    );
}

/// Run g++ as [`compile_cxx`] does.
pub fn gxx(args: &[&str]) {
    compile_cxx("g++", "g++", args);
}

/// The scenario suite shared by the JIT and linked-object tests, found
/// from whichever workspace package runs the test.
pub fn cxx_suite() -> String {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("docs/examples/cxx-suite.clif");
        if candidate.exists() {
            return std::fs::read_to_string(candidate).unwrap();
        }
        dir = dir
            .parent()
            .expect("docs/examples/cxx-suite.clif above the package");
    }
}

/// Functions of the suite, as called by the tests.
pub const SUITE_FUNCTIONS: [&str; 7] = [
    "catch_int",
    "catch_base",
    "catch_all",
    "indirect",
    "cleanup",
    "rethrow",
    "depth1",
];

/// One expected outcome: (function, kind) -> (value, escaped, cleanups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub function: String,
    pub kind: i64,
    pub value: i64,
    /// 0 nothing, 1 int, 2 Base, 3 Unrelated, 4 double (as `eh_call` reports).
    pub escaped: i64,
    pub cleanups: i64,
}

/// What each suite function must do for each `eh_throw` kind 0..=5.
/// `sel(function, type)` is the selector the crate predicts for the clause
/// catching `type` (`null` for catch-all) in `function`.
pub fn expected_outcomes(sel: impl Fn(&str, &str) -> i64) -> Vec<Outcome> {
    // What escapes a frame with no matching handler, per kind.
    let escape = |kind: i64| match kind {
        1 => (7, 1),
        2 => (11, 2),
        3 => (13, 3),
        4 => (17, 2),
        5 => (2, 4),
        _ => unreachable!(),
    };
    let mut out = Vec::new();
    for function in SUITE_FUNCTIONS {
        for kind in 0..=5 {
            let (value, escaped, cleanups) = match (function, kind) {
                (_, 0) => (42, 0, 0),
                ("catch_int" | "indirect", 1) => (sel(function, "_ZTIi") * 1000 + 7, 0, 0),
                ("catch_base", 1) => (sel(function, "_ZTIi") * 1000 + 7, 0, 0),
                ("catch_base", 2) => (sel(function, "_ZTI4Base") * 1000 + 11, 0, 0),
                ("catch_base", 4) => (sel(function, "_ZTI4Base") * 1000 + 17, 0, 0),
                ("catch_all", 3) => (sel(function, "_ZTI9Unrelated") * 1000 + 13, 0, 0),
                ("catch_all", _) => (sel(function, "null") * 1000 + 99, 0, 0),
                ("cleanup", k) => (escape(k).0, escape(k).1, 1),
                ("rethrow", 1) => (7, 1, 1),
                ("depth1", 1) => (100_000 + sel("depth10", "_ZTIi") * 100 + 7, 0, 0),
                ("depth1", 2) => (50_000 + sel("depth5", "_ZTI4Base") * 100 + 11, 0, 0),
                ("depth1", 4) => (50_000 + sel("depth5", "_ZTI4Base") * 100 + 17, 0, 0),
                ("depth1", _) => (10_000 + sel("depth1", "null") * 100 + 99, 0, 0),
                (_, k) => (escape(k).0, escape(k).1, 0),
            };
            out.push(Outcome {
                function: function.to_string(),
                kind,
                value,
                escaped,
                cleanups,
            });
        }
    }
    out
}

/// Per call site: (start, length, landing pad, action type filters).
pub type Rows = Vec<(u64, u64, u64, Vec<i64>)>;

fn field(line: &str) -> Option<i64> {
    let value = line.split(':').nth(1)?.split_whitespace().next()?;
    match value.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

pub fn sleb_len(v: i64) -> i64 {
    gimli::leb128::write::sleb128_size(v) as i64
}

/// The same rows, from eu-readelf's text: its call-site table, and its
/// action table (records numbered in order, which we place at byte offsets
/// from their sizes to follow each call site's action).
pub fn readelf_rows(text: &str) -> Rows {
    let mut sites = Vec::new();
    let mut records: Vec<(i64, i64)> = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.contains("Call site start:") {
            let start = field(line).unwrap();
            let len = field(lines.next().unwrap()).unwrap();
            let pad = field(lines.next().unwrap()).unwrap();
            let action = field(lines.next().unwrap()).unwrap();
            sites.push((start, len, pad, action));
        } else if line.contains("ar_filter:") {
            let filter = field(line).unwrap();
            let disp = field(lines.next().unwrap()).unwrap();
            records.push((filter, disp));
        }
    }
    let mut offsets = Vec::new();
    let mut at = 0;
    for (filter, disp) in &records {
        offsets.push(at);
        at += sleb_len(*filter) + sleb_len(*disp);
    }
    sites
        .into_iter()
        .map(|(start, len, pad, action)| {
            let mut filters = Vec::new();
            if action != 0 {
                let mut offset = action - 1;
                loop {
                    let i = offsets.iter().position(|&o| o == offset).expect("record");
                    let (filter, disp) = records[i];
                    filters.push(filter);
                    if disp == 0 {
                        break;
                    }
                    offset = offset + sleb_len(filter) + disp;
                }
            }
            (start as u64, len as u64, pad as u64, filters)
        })
        .collect()
}
