//! Runner for the exception-table filetests, in the format of Cranelift's
//! `cranelift/filetests` with precise output.
//!
//! A filetest is a CLIF file with one `test` command, `set` lines, one or
//! more `target` lines, clause-policy directives in comments, and
//! functions. The expected output of each function is the block of `;`
//! comment lines after its closing `}`:
//!
//! ```text
//! function %f() system_v {
//!     ...
//! }
//!
//! ; function %f: 64 code bytes
//! ;   no LSDA (no handlers)
//! ```
//!
//! Lines starting with `;;` are descriptions and never part of an
//! expectation; lines `; eh-...:` are directives. Subtests:
//!
//! * `test lsda`: legalize, compile and encode each function for each
//!   target; the output is [`clif_eh::CompiledFunction`]'s text (selectors
//!   and the decoded LSDA).
//! * `test legalize-eh`: the IR after landing-pad legalization, followed by
//!   the function's type table and the meaning of each clause-set tag the
//!   legalized IR uses.
//!
//! A function that fails has the output `error: <message>`, so bad inputs
//! are tested by their error text. With several `target` lines, each
//! target's output is preceded by `target <triple>`.
//!
//! Directives (see `clif_eh::parse_policy` for the policy ones):
//!
//! ```text
//! ; eh-selectors: type-filter | always-zero | catch-all-zero-typed-one
//! ; eh-default: catch-all | cleanup
//! ; eh-tag: tagN = catch <symbol>[+addend] | catch 0x<addr> | catch-all | cleanup, ...
//! ; eh-encoding: [uleb128 | udata4] [pcrel | absptr | indirect]
//! ```

use clif_eh::compile::{FiletestKind, error_lines, filetest_lines};
use clif_eh::{directive_word, parse_encoding, parse_policy};
use cranelift_reader::{IsaSpec, ParseOptions, parse_test};
use eh_test_support::Escaped;
use similar::TextDiff;
use std::path::{Path, PathBuf};

/// The subtest of a `test` command.
fn subtest_of(name: &str) -> Option<FiletestKind> {
    match name {
        "lsda" => Some(FiletestKind::Lsda),
        "legalize-eh" => Some(FiletestKind::LegalizeEh),
        _ => None,
    }
}

/// The actual output of one function of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionOutput {
    /// The function's name, e.g. `%f`.
    pub name: String,
    /// 1-based line of the `function` keyword.
    pub line: usize,
    /// The output lines (without the `; ` prefix).
    pub lines: Vec<String>,
}

/// Compute the actual output of every function of a filetest.
///
/// Fails (for the whole file) only when the file cannot be run at all: it
/// does not parse as CLIF, has no or an unknown `test` command, or has no
/// `target`. A bad policy or encoding directive is not such a failure: it
/// becomes every function's output, so that it can be tested.
pub fn run_text(text: &str) -> Result<Vec<FunctionOutput>, String> {
    let test =
        parse_test(text, ParseOptions::default()).map_err(|e| format!("parse error: {e}"))?;
    let mut subtest = None;
    for command in &test.commands {
        let Some(found) = subtest_of(command.command) else {
            return Err(format!(
                "unsupported `test {}` (this runner knows `test lsda`, `test legalize-eh` and \
                 `test run`)",
                command.command
            ));
        };
        if !command.options.is_empty() {
            return Err(format!("`test {}` takes no options", command.command));
        }
        if subtest.replace(found).is_some() {
            return Err("a filetest has exactly one `test` command".to_string());
        }
    }
    let subtest = subtest.ok_or("no `test lsda` or `test legalize-eh` line")?;
    let isas = match test.isa_spec {
        IsaSpec::Some(isas) => isas,
        IsaSpec::None(_) => return Err("no `target` line".to_string()),
    };
    if test.functions.is_empty() {
        return Err("no function".to_string());
    }

    let setup = parse_policy(text).and_then(|policy| Ok((policy, parse_encoding(text)?)));

    let mut outputs = Vec::new();
    for (func, details) in &test.functions {
        let mut lines = Vec::new();
        match &setup {
            // A directive error does not depend on the target: say it once.
            Err(e) => lines = error_lines(e),
            Ok((policy, encoding)) => {
                for isa in &isas {
                    if isas.len() > 1 {
                        lines.push(format!("target {}", isa.triple()));
                    }
                    lines.extend(filetest_lines(subtest, func, &**isa, policy, *encoding));
                }
            }
        }
        outputs.push(FunctionOutput {
            name: func.name.to_string(),
            line: details.location.line_number,
            lines,
        });
    }
    Ok(outputs)
}

/// Where a function's expectation sits in the file's lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// 0-based index of the line holding the function's closing `}`.
    pub close: usize,
    /// 0-based index one past the last line the expectation (and the blank
    /// lines around it) occupies; the lines `close + 1 .. end` are replaced
    /// when blessing.
    pub end: usize,
    /// The expected lines, without their `; ` prefix; `None` when the
    /// function has no expectation block.
    pub lines: Option<Vec<String>>,
}

/// Whether `line` belongs to an expectation block: a `;` comment that is
/// neither a `;;` description nor a `; eh-...:` directive.
fn is_expectation_line(line: &str) -> bool {
    line.starts_with(';') && !line.starts_with(";;") && directive_word(line).is_none()
}

/// Find the expectation of the function whose `function` keyword is on
/// 1-based line `line`.
pub fn find_expectation(lines: &[&str], line: usize) -> Result<Expectation, String> {
    let start = line.saturating_sub(1);
    let close = (start..lines.len())
        .find(|&i| {
            let code = lines[i].split(';').next().unwrap_or("");
            code.trim() == "}"
        })
        .ok_or_else(|| format!("no closing `}}` after line {line}"))?;
    let mut i = close + 1;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let block_start = i;
    while i < lines.len() && is_expectation_line(lines[i]) {
        i += 1;
    }
    let expected = (i > block_start).then(|| {
        lines[block_start..i]
            .iter()
            .map(|l| {
                let text = l.strip_prefix("; ").or_else(|| l.strip_prefix(';'));
                text.unwrap_or(l).trim_end().to_string()
            })
            .collect()
    });
    if expected.is_some() {
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
    } else {
        // No block: only the blank lines after `}` are replaced.
        i = block_start;
    }
    Ok(Expectation {
        close,
        end: i,
        lines: expected,
    })
}

/// Rewrite `text` so that each function's expectation is its actual
/// output. `blocks` pairs each expectation with its new lines.
pub fn bless(text: &str, blocks: &[(Expectation, Vec<String>)]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut next = 0;
    let mut sorted: Vec<&(Expectation, Vec<String>)> = blocks.iter().collect();
    sorted.sort_by_key(|(e, _)| e.close);
    for (exp, new) in sorted {
        for line in &lines[next..=exp.close] {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        for line in new {
            if line.is_empty() {
                out.push_str(";\n");
            } else {
                out.push_str("; ");
                out.push_str(line);
                out.push('\n');
            }
        }
        if exp.end < lines.len() {
            out.push('\n');
        }
        next = exp.end;
    }
    for line in &lines[next..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The result of running one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The output matched.
    Pass,
    /// The expectation was rewritten (bless mode).
    Blessed,
    /// The output did not match, or there was no expectation; the message
    /// says how.
    Fail(String),
}

/// The result of running one file.
#[derive(Debug)]
pub struct FileResult {
    /// Each function's name and outcome; a file that could not be run at
    /// all has a single entry named `(file)`.
    pub functions: Vec<(String, Outcome)>,
    /// The new file text, when blessing changed it.
    pub blessed: Option<String>,
}

fn file_error(msg: String) -> FileResult {
    FileResult {
        functions: vec![("(file)".to_string(), Outcome::Fail(msg))],
        blessed: None,
    }
}

/// One `; run:` directive: `%f(arg) == value`, or
/// `%f(arg) throws <int|base|unrelated|double> <value>`, either optionally
/// followed by `cleanups <n>` (how many cleanup pads must run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDirective {
    /// The function, without `%`.
    pub function: String,
    /// Its argument.
    pub arg: i64,
    /// What must escape (`Nothing` for a normal return).
    pub escaped: Escaped,
    /// The return value, or the escaped exception's value.
    pub value: i64,
    /// Cleanup pads that must run, if given.
    pub cleanups: Option<i64>,
}

/// Parse the text after `; run:`.
pub fn parse_run_directive(text: &str) -> Result<RunDirective, String> {
    let bad = || {
        format!(
            "`run: {text}` is not `%f(arg) == value` or `%f(arg) throws <int|base|unrelated|double> \
             <value>` [cleanups <n>]"
        )
    };
    let (call, rest) = text.split_once(')').ok_or_else(bad)?;
    let (function, arg) = call.trim().split_once('(').ok_or_else(bad)?;
    let function = function.strip_prefix('%').ok_or_else(bad)?.to_string();
    let arg = arg.trim().parse().map_err(|_| bad())?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (escaped, value, tail) = match words.as_slice() {
        ["==", value, tail @ ..] => (Escaped::Nothing, value, tail),
        ["throws", kind, value, tail @ ..] => {
            let escaped = match *kind {
                "int" => Escaped::Int,
                "base" => Escaped::Base,
                "unrelated" => Escaped::Unrelated,
                "double" => Escaped::Double,
                _ => return Err(bad()),
            };
            (escaped, value, tail)
        }
        _ => return Err(bad()),
    };
    let value = value.parse().map_err(|_| bad())?;
    let cleanups = match tail {
        [] => None,
        ["cleanups", n] => Some(n.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok(RunDirective {
        function,
        arg,
        escaped,
        value,
        cleanups,
    })
}

/// `test run`: JIT-compile the file for the host, register its tables with
/// the system unwinder, and check every `; run:` directive by calling the
/// function through the C++ runtime (`tests/test-support/cxx/eh_runtime.cpp`), which
/// reports what escaped. Each directive is one test.
fn check_run(text: &str) -> FileResult {
    let file = match clif_eh::parse_file(text) {
        Ok(file) => file,
        Err(e) => return file_error(e.to_string()),
    };
    let jit = match clif_eh::module::jit_file(&file, &[]) {
        Ok(jit) => jit,
        Err(e) => return file_error(e.to_string()),
    };
    let mut functions = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(directive) = line
            .trim()
            .strip_prefix(';')
            .and_then(|l| l.trim().strip_prefix("run:"))
        else {
            continue;
        };
        let name = format!("line {}: run:{directive}", i + 1);
        let outcome = match parse_run_directive(directive.trim()) {
            Err(msg) => Outcome::Fail(format!("{name}: {msg}")),
            Ok(run) => match jit.call(&run.function, run.arg) {
                Err(e) => Outcome::Fail(format!("{name}: {e}")),
                Ok(out)
                    if out.escaped == run.escaped
                        && out.value == run.value
                        && run.cleanups.is_none_or(|n| n == out.cleanups) =>
                {
                    Outcome::Pass
                }
                Ok(out) => Outcome::Fail(format!(
                    "{name}: got {}{} (cleanup pads run: {})",
                    match out.escaped {
                        Escaped::Nothing => "== ".to_string(),
                        other => format!("throws {} ", format!("{other:?}").to_lowercase()),
                    },
                    out.value,
                    out.cleanups
                )),
            },
        };
        functions.push((name, outcome));
    }
    // SAFETY: nothing calls into the module after this.
    unsafe { jit.module.free_memory() };
    if functions.is_empty() {
        return file_error("a `test run` file needs `; run:` directives".to_string());
    }
    FileResult {
        functions,
        blessed: None,
    }
}

/// Run one filetest's text; `bless` rewrites mismatching expectations.
pub fn check_text(text: &str, bless_mode: bool) -> FileResult {
    if text.lines().any(|l| l.trim() == "test run") {
        return match std::panic::catch_unwind(|| check_run(text)) {
            Ok(result) => result,
            Err(_) => file_error("panicked while running".to_string()),
        };
    }
    // Cranelift panics on some inputs (e.g. a tail call without frame
    // pointers on x86_64): fail the file, not the whole run.
    let outputs = match std::panic::catch_unwind(|| run_text(text)) {
        Ok(Ok(outputs)) => outputs,
        Ok(Err(msg)) => return file_error(msg),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            return file_error(format!("panicked: {msg}"));
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut functions = Vec::new();
    let mut rewrites = Vec::new();
    for output in outputs {
        let exp = match find_expectation(&lines, output.line) {
            Ok(exp) => exp,
            Err(msg) => return file_error(msg),
        };
        let outcome = match &exp.lines {
            Some(expected) if *expected == output.lines => Outcome::Pass,
            _ if bless_mode => Outcome::Blessed,
            None => Outcome::Fail(format!(
                "function {} (line {}): no expected output; run with CRANELIFT_TEST_BLESS=1",
                output.name, output.line
            )),
            Some(expected) => Outcome::Fail(format!(
                "function {} (line {}): output does not match the expectation\n{}\
                 (run with CRANELIFT_TEST_BLESS=1 to accept the actual output)",
                output.name,
                output.line,
                diff(expected, &output.lines)
            )),
        };
        if outcome == Outcome::Blessed {
            rewrites.push((exp, output.lines));
        }
        functions.push((output.name, outcome));
    }
    let blessed = (!rewrites.is_empty()).then(|| bless(text, &rewrites));
    FileResult { functions, blessed }
}

/// A unified diff from `expected` to `actual`.
pub fn diff(expected: &[String], actual: &[String]) -> String {
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    let actual: Vec<&str> = actual.iter().map(String::as_str).collect();
    TextDiff::from_slices(&expected, &actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

/// Every `.clif` file under `dir`, sorted.
pub fn collect_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "clif") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
test lsda
set unwind_info=true
target x86_64
;; description
; eh-default: cleanup

function %a() system_v {
block0:
    return
}

; old line
;
; more

;; next function
function %b() system_v {
block0:
    return
}
";

    #[test]
    fn expectations_are_found_between_close_and_next_code() {
        let lines: Vec<&str> = FILE.lines().collect();
        let a = find_expectation(&lines, 7).unwrap();
        assert_eq!(a.close, 9);
        assert_eq!(a.end, 15);
        assert_eq!(
            a.lines,
            Some(vec![
                "old line".to_string(),
                String::new(),
                "more".to_string()
            ])
        );
        let b = find_expectation(&lines, 17).unwrap();
        assert_eq!(b.close, 19);
        assert_eq!(b.end, 20);
        assert_eq!(b.lines, None);
    }

    #[test]
    fn bless_replaces_blocks_and_keeps_everything_else() {
        let lines: Vec<&str> = FILE.lines().collect();
        let a = find_expectation(&lines, 7).unwrap();
        let b = find_expectation(&lines, 17).unwrap();
        let new = bless(
            FILE,
            &[
                (b, vec!["B".to_string()]),
                (a, vec!["A".to_string(), String::new()]),
            ],
        );
        assert!(new.contains("}\n\n; A\n;\n\n;; next function\n"), "{new}");
        assert!(new.ends_with("    return\n}\n\n; B\n"), "{new}");
        // Blessing is idempotent: the new text's expectations read back.
        let lines: Vec<&str> = new.lines().collect();
        let a = find_expectation(&lines, 7).unwrap();
        assert_eq!(a.lines, Some(vec!["A".to_string(), String::new()]));
    }

    const LEAF: &str = "function %f() system_v {\nblock0:\n    return\n}\n";

    #[test]
    fn files_that_cannot_run_fail_as_a_whole() {
        let run = |head: &str| run_text(&format!("{head}{LEAF}")).unwrap_err();
        assert!(run("test compile\ntarget x86_64\n").contains("unsupported `test compile`"));
        assert!(run("target x86_64\n").contains("no `test lsda`"));
        assert!(run("test lsda\n").contains("no `target` line"));
        assert!(run("test lsda\ntest legalize-eh\ntarget x86_64\n").contains("exactly one"));
        let result = check_text(&format!("test lsda\ntarget x86_64\n{LEAF}"), false);
        assert!(
            matches!(&result.functions[..], [(_, Outcome::Fail(m))] if m.contains("no expected"))
        );
    }

    #[test]
    fn a_cranelift_panic_fails_only_its_file() {
        // x86_64 tail calls need frame pointers; Cranelift panics without.
        let text = "test lsda\nset unwind_info=true\ntarget x86_64\n\
            function %t(i64) -> i64 tail {\n    sig0 = (i64) -> i64 tail\n    \
            fn0 = %g sig0\nblock0(v0: i64):\n    return_call fn0(v0)\n}\n";
        let result = check_text(text, false);
        assert!(
            matches!(&result.functions[..], [(_, Outcome::Fail(m))] if m.starts_with("panicked")),
            "{:?}",
            result.functions
        );
    }

    #[test]
    fn unknown_directives_are_errors() {
        let err = parse_policy("; eh-selector: always-zero\n").unwrap_err();
        assert!(err.to_string().contains("unknown directive `eh-selector:`"));
        assert!(parse_policy(";; eh-whatever: x\n; eh-tag: tag1 = cleanup\n").is_ok());
        let err = parse_policy("; eh-default: cleanup\n; eh-default: catch-all\n").unwrap_err();
        assert!(err.to_string().contains("already given on line 1"), "{err}");
        let enc = parse_encoding("; eh-encoding: udata4 absptr\n").unwrap();
        assert_eq!(enc.call_sites, cranelift_lsda::CallSiteEncoding::Udata4);
        assert_eq!(enc.types, cranelift_lsda::TypeEncoding::Absptr);
        assert!(parse_encoding("; eh-encoding: sdata8\n").is_err());
    }

    #[test]
    fn run_directives_parse_or_explain() {
        let run = parse_run_directive("%f(2) throws base 11 cleanups 1").unwrap();
        assert_eq!(
            run,
            RunDirective {
                function: "f".into(),
                arg: 2,
                escaped: Escaped::Base,
                value: 11,
                cleanups: Some(1),
            }
        );
        assert_eq!(parse_run_directive("%f(-1) == 42").unwrap().value, 42);
        for bad in [
            "f(1) == 2",
            "%f(x) == 2",
            "%f(1) = 2",
            "%f(1) throws char 1",
            "%f(1) == 2 x",
        ] {
            assert!(
                parse_run_directive(bad).unwrap_err().contains("is not"),
                "{bad}"
            );
        }
    }
}
