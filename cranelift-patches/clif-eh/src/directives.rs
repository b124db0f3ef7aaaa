//! The clause-policy directives of exception-table filetests and `clif-eh`
//! input, written in CLIF comments so that any CLIF reader accepts the file:
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

use core::fmt;
use cranelift_codegen::ir::ExceptionTag;
use cranelift_lsda::{
    CallSiteEncoding, Clause, ClausePolicy, DefaultAction, LsdaEncoding, SelectorConvention,
    TypeEncoding, TypeEntry,
};

/// A malformed directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectiveError {
    /// 1-based line number in the file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for DirectiveError {}

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
fn directives(text: &str) -> Result<Vec<(usize, &str, &str)>, DirectiveError> {
    let mut out: Vec<(usize, &str, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(word) = directive_word(line) else {
            continue;
        };
        let line_no = i + 1;
        if !DIRECTIVES.contains(&word) {
            return Err(DirectiveError {
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
            return Err(DirectiveError {
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
pub fn parse_encoding(text: &str) -> Result<LsdaEncoding, DirectiveError> {
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
                    return Err(DirectiveError {
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
pub fn parse_policy(text: &str) -> Result<ClausePolicy, DirectiveError> {
    let mut selectors = SelectorConvention::TypeFilter;
    let mut default = DefaultAction::CatchAll;
    let mut tags = Vec::new();
    for (line_no, word, value) in directives(text)? {
        let err = |message: String| DirectiveError {
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
            .map_err(|e| DirectiveError {
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
