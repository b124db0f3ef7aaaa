//! The driver behind the `clif-eh` command: read a CLIF file with
//! `try_call`s and a clause policy written in comments, legalize each
//! function into landing-pad form, compile it, encode its LSDA and decode it
//! back for display.
//!
//! The policy directives (comment lines anywhere in the file):
//!
//! ```text
//! ; eh-selectors: type-filter | always-zero | catch-all-zero-typed-one
//! ; eh-default: catch-all | cleanup
//! ; eh-tag: tag1 = catch _ZTIi
//! ; eh-tag: tag2 = catch-all
//! ; eh-tag: tag3 = cleanup
//! ; eh-tag: tag4 = catch _ZTIi, catch _ZTI3Foo+8, cleanup
//! ; eh-encoding: [uleb128 | udata4] [pcrel | absptr | indirect]
//! ```
//!
//! Defaults: `type-filter` selectors (libstdc++), `default` = catch-all,
//! [`LsdaEncoding::object`]. An unknown `eh-` directive, or a repeated
//! `eh-selectors` / `eh-default` / `eh-encoding`, is an error.

pub mod dump;
pub mod module;

use core::fmt;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{ExceptionTag, Function};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::{Context, print_errors::pretty_error};
use cranelift_lsda::{
    CallSiteEncoding, Clause, ClausePolicy, DecodedLsda, DefaultAction, Lsda, LsdaEncoding,
    LsdaError, OutputError, PreparedFunction, SelectorConvention, TypeEncoding, TypeEntry,
    endian_of, legalize_landing_pads, tables_for_compiled,
};
use cranelift_reader::{IsaSpec, ParseOptions, parse_test};

/// An error of the driver, with a message meant for the user.
#[derive(Debug)]
pub enum ToolError {
    /// The CLIF text did not parse.
    Parse(String),
    /// A policy directive is malformed.
    Policy {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file names no target.
    NoTarget,
    /// Building or encoding the exception tables failed.
    Lsda {
        /// The function.
        function: String,
        /// The error.
        error: LsdaError,
    },
    /// Writing the object or registering the JIT tables failed.
    Output {
        /// The function, or "module".
        function: String,
        /// The error.
        error: OutputError,
    },
    /// Cranelift failed to compile a function.
    Codegen(String),
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(msg) => write!(f, "parse error: {msg}"),
            Self::Policy { line, message } => write!(f, "line {line}: {message}"),
            Self::NoTarget => write!(
                f,
                "the file has no `target` line (e.g. `target x86_64`); add one"
            ),
            Self::Lsda { function, error } => write!(f, "{function}: {error}"),
            Self::Output { function, error } => write!(f, "{function}: {error}"),
            Self::Codegen(msg) => write!(f, "compilation failed: {msg}"),
        }
    }
}

impl std::error::Error for ToolError {}

/// A parsed input file.
pub struct EhFile {
    /// The clause policy from the file's directives.
    pub policy: ClausePolicy,
    /// The targets of the file's `target` lines.
    pub isas: Vec<OwnedTargetIsa>,
    /// The functions, as parsed.
    pub functions: Vec<Function>,
    /// The LSDA encodings from `; eh-encoding:`.
    pub encoding: LsdaEncoding,
}

const DIRECTIVES: [&str; 4] = ["eh-selectors", "eh-default", "eh-tag", "eh-encoding"];

/// The word of a `; eh-word:` directive line (`;;` lines are descriptions).
pub fn directive_word(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix(';')?;
    if rest.starts_with(';') {
        return None;
    }
    let (word, _) = rest.trim_start().split_once(':')?;
    (word.starts_with("eh-") && !word.contains(char::is_whitespace)).then_some(word)
}

/// The directives of `text` as (line number, word, value), rejecting
/// unknown words and repeated single-valued ones.
fn directives(text: &str) -> Result<Vec<(usize, &str, &str)>, ToolError> {
    let mut out: Vec<(usize, &str, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(word) = directive_word(line) else {
            continue;
        };
        let line_no = i + 1;
        if !DIRECTIVES.contains(&word) {
            return Err(ToolError::Policy {
                line: line_no,
                message: format!(
                    "unknown directive `{word}:` (expected eh-selectors, eh-default, eh-tag or \
                     eh-encoding)"
                ),
            });
        }
        if word != "eh-tag"
            && let Some((first, ..)) = out.iter().find(|(_, w, _)| *w == word)
        {
            return Err(ToolError::Policy {
                line: line_no,
                message: format!("`{word}:` is already given on line {first}"),
            });
        }
        let value = line.split_once(':').map_or("", |(_, v)| v.trim());
        out.push((line_no, word, value));
    }
    Ok(out)
}

/// Read `; eh-encoding:` (default [`LsdaEncoding::object`]).
pub fn parse_encoding(text: &str) -> Result<LsdaEncoding, ToolError> {
    let mut encoding = LsdaEncoding::object();
    for (line, word, value) in directives(text)? {
        if word != "eh-encoding" {
            continue;
        }
        for item in value.split_whitespace() {
            match item {
                "uleb128" => encoding.call_sites = CallSiteEncoding::Uleb128,
                "udata4" => encoding.call_sites = CallSiteEncoding::Udata4,
                "pcrel" => encoding.types = TypeEncoding::PcRelSdata4,
                "absptr" => encoding.types = TypeEncoding::Absptr,
                "indirect" => encoding.types = TypeEncoding::IndirectPcRelSdata4,
                other => {
                    return Err(ToolError::Policy {
                        line,
                        message: format!(
                            "unknown encoding `{other}` (expected uleb128, udata4, pcrel, \
                             absptr or indirect)"
                        ),
                    });
                }
            }
        }
    }
    Ok(encoding)
}

/// Parse the clause-policy directives of a CLIF file.
pub fn parse_policy(text: &str) -> Result<ClausePolicy, ToolError> {
    let mut selectors = SelectorConvention::TypeFilter;
    let mut default = DefaultAction::CatchAll;
    let mut tags = Vec::new();
    for (line_no, word, value) in directives(text)? {
        let err = |message: String| ToolError::Policy {
            line: line_no,
            message,
        };
        match word {
            "eh-selectors" => {
                selectors = match value {
                    "type-filter" => SelectorConvention::TypeFilter,
                    "always-zero" => SelectorConvention::AlwaysZero,
                    "catch-all-zero-typed-one" => SelectorConvention::CatchAllZeroTypedOne,
                    other => {
                        return Err(err(format!(
                            "unknown selector convention `{other}` (expected type-filter, \
                             always-zero or catch-all-zero-typed-one)"
                        )));
                    }
                }
            }
            "eh-default" => {
                default = match value {
                    "catch-all" => DefaultAction::CatchAll,
                    "cleanup" => DefaultAction::Cleanup,
                    other => {
                        return Err(err(format!(
                            "unknown default action `{other}` (expected catch-all or cleanup)"
                        )));
                    }
                }
            }
            "eh-tag" => {
                let (tag, clauses) = value
                    .split_once('=')
                    .ok_or_else(|| err("expected `eh-tag: tagN = <clauses>`".to_string()))?;
                let tag = tag
                    .trim()
                    .strip_prefix("tag")
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| err(format!("`{}` is not a tag like tag1", tag.trim())))?;
                let clauses = clauses
                    .split(',')
                    .map(|c| parse_clause(c.trim()).map_err(&err))
                    .collect::<Result<Vec<_>, _>>()?;
                tags.push((line_no, tag, clauses));
            }
            _ => {}
        }
    }
    let mut policy = ClausePolicy::new(default, selectors);
    for (line, tag, clauses) in tags {
        policy
            .define_clause_set(ExceptionTag::from_u32(tag), clauses)
            .map_err(|e| ToolError::Policy {
                line,
                message: e.to_string(),
            })?;
    }
    Ok(policy)
}

fn parse_clause(text: &str) -> Result<Clause, String> {
    match text {
        "cleanup" => Ok(Clause::Cleanup),
        "catch-all" => Ok(Clause::Catch(TypeEntry::CatchAll)),
        _ => {
            let target = text.strip_prefix("catch ").map(str::trim).ok_or_else(|| {
                format!("`{text}` is not `catch <symbol>`, `catch-all` or `cleanup`")
            })?;
            if let Some(hex) = target.strip_prefix("0x") {
                let addr = u64::from_str_radix(hex, 16)
                    .map_err(|_| format!("`{target}` is not a hex address"))?;
                return Ok(Clause::Catch(TypeEntry::Address(addr)));
            }
            let (name, addend) = match target.find(['+', '-']) {
                Some(at) => {
                    let addend = target[at..]
                        .parse::<i64>()
                        .map_err(|_| format!("bad addend in `{target}`"))?;
                    (&target[..at], addend)
                }
                None => (target, 0),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("`{target}` is not a symbol name"));
            }
            Ok(Clause::Catch(TypeEntry::Symbol {
                name: name.to_string(),
                addend,
            }))
        }
    }
}

/// Parse a CLIF file with its policy directives.
pub fn parse_file(text: &str) -> Result<EhFile, ToolError> {
    let policy = parse_policy(text)?;
    let test =
        parse_test(text, ParseOptions::default()).map_err(|e| ToolError::Parse(e.to_string()))?;
    let isas = match test.isa_spec {
        IsaSpec::Some(isas) => isas,
        IsaSpec::None(_) => return Err(ToolError::NoTarget),
    };
    Ok(EhFile {
        policy,
        encoding: parse_encoding(text)?,
        isas,
        functions: test.functions.into_iter().map(|(f, _)| f).collect(),
    })
}

/// One function, legalized, compiled and with its tables.
pub struct CompiledFunction {
    /// The function's name.
    pub name: String,
    /// The IR after landing-pad legalization.
    pub legalized: Function,
    /// The type table and per-call report.
    pub prepared: PreparedFunction,
    /// The machine code.
    pub code: Vec<u8>,
    /// The LSDA, if the function has handlers.
    pub lsda: Option<Lsda>,
    /// The LSDA decoded back.
    pub decoded: Option<DecodedLsda>,
}

/// Legalize, compile and encode one function.
pub fn compile_function(
    func: &Function,
    isa: &OwnedTargetIsa,
    policy: &mut ClausePolicy,
    encoding: LsdaEncoding,
) -> Result<CompiledFunction, ToolError> {
    let name = func.name.to_string();
    let lsda_err = |error| ToolError::Lsda {
        function: name.clone(),
        error,
    };
    let mut legalized = func.clone();
    let prepared = legalize_landing_pads(&mut legalized, &**isa, policy).map_err(lsda_err)?;

    let mut ctx = Context::for_function(legalized.clone());
    let compiled = ctx
        .compile(&**isa, &mut ControlPlane::default())
        .map_err(|e| ToolError::Codegen(pretty_error(e.func, e.inner)))?;
    let code = compiled.code_buffer().to_vec();
    let tables =
        tables_for_compiled(compiled, &**isa, policy, &prepared, encoding).map_err(lsda_err)?;
    let decoded = tables
        .lsda
        .as_ref()
        .map(|l| l.decode_back(endian_of(&**isa)))
        .transpose()
        .map_err(lsda_err)?;
    Ok(CompiledFunction {
        name,
        legalized,
        prepared,
        code,
        lsda: tables.lsda,
        decoded,
    })
}

impl fmt::Display for CompiledFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "function {}: {} code bytes", self.name, self.code.len())?;
        let rows = self.prepared.reports().iter().map(|r| &r.selectors);
        for (i, row) in rows.filter(|row| !row.is_empty()).enumerate() {
            write!(f, "  try_call #{i} selectors:")?;
            for (clause, selector) in row {
                write!(f, " {clause} => {selector};")?;
            }
            writeln!(f)?;
        }
        match &self.decoded {
            None => writeln!(f, "  no LSDA (no handlers)"),
            Some(decoded) => {
                for line in decoded.to_string().lines() {
                    writeln!(f, "  {line}")?;
                }
                Ok(())
            }
        }
    }
}
