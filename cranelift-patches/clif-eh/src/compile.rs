//! One function through the whole pipeline (legalize, compile, encode,
//! decode back) and the text the exception-table filetests expect of it.

use core::fmt;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{ExceptionTableItem, ExceptionTag, Function};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::{Context, print_errors::pretty_error};
use cranelift_lsda::legalize_landing_pads;
use cranelift_lsda::{
    ClausePolicy, DecodedLsda, Lsda, LsdaEncoding, LsdaError, PreparedFunction, decode_back,
    endian_of, tables_for_compiled,
};
use std::fmt::Write as _;

/// Why a function could not be taken through the pipeline.
#[derive(Debug)]
pub enum CompileError {
    /// Legalizing, encoding or decoding its tables failed.
    Lsda {
        /// The function's name.
        function: String,
        /// The error.
        error: LsdaError,
    },
    /// Cranelift could not compile it (the error, pretty-printed).
    Codegen(String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lsda { function, error } => write!(f, "{function}: {error}"),
            Self::Codegen(msg) => write!(f, "compilation failed: {msg}"),
        }
    }
}

impl std::error::Error for CompileError {}

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
    isa: &dyn TargetIsa,
    policy: &mut ClausePolicy,
    encoding: LsdaEncoding,
) -> Result<CompiledFunction, CompileError> {
    let name = func.name.to_string();
    let lsda_err = |error| CompileError::Lsda {
        function: name.clone(),
        error,
    };
    let mut legalized = func.clone();
    let prepared = legalize_landing_pads(&mut legalized, isa, policy).map_err(lsda_err)?;

    let mut ctx = Context::for_function(legalized.clone());
    let code = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|e| CompileError::Codegen(pretty_error(e.func, e.inner)))?
        .code_buffer()
        .to_vec();
    let tables = tables_for_compiled(&ctx, isa, policy, &prepared, encoding).map_err(lsda_err)?;
    let decoded = tables
        .lsda
        .as_ref()
        .map(|l| decode_back(l, endian_of(isa)))
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
            for (clause, selector) in row.iter() {
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

/// The IR of `func` after landing-pad legalization for `isa`, followed by
/// its type table and the meaning of each clause-set tag it uses (in order
/// of first use): the output of `test legalize-eh`.
pub fn legalized_text(
    func: &Function,
    isa: &dyn TargetIsa,
    policy: &mut ClausePolicy,
) -> Result<String, CompileError> {
    let mut legalized = func.clone();
    let prepared =
        legalize_landing_pads(&mut legalized, isa, policy).map_err(|error| CompileError::Lsda {
            function: func.name.to_string(),
            error,
        })?;
    let mut out = legalized.display().to_string();
    for (i, entry) in prepared.types().entries().iter().enumerate() {
        writeln!(out, "type #{}: {entry}", i + 1).unwrap();
    }
    let mut tags: Vec<ExceptionTag> = Vec::new();
    for block in legalized.layout.blocks() {
        let Some(inst) = legalized.layout.last_inst(block) else {
            continue;
        };
        let Some(et) = legalized.dfg.insts[inst].exception_table() else {
            continue;
        };
        for item in legalized.dfg.exception_tables[et].items() {
            if let ExceptionTableItem::Tag(tag, _) = item
                && !tags.contains(&tag)
            {
                tags.push(tag);
            }
        }
    }
    for tag in tags {
        match policy.clauses(tag) {
            Ok(list) => writeln!(out, "{tag} = {list}").unwrap(),
            Err(e) => writeln!(out, "{tag}: {e}").unwrap(),
        }
    }
    Ok(out)
}

/// What an exception-table filetest checks of one function on one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FiletestKind {
    /// `test lsda`: the compiled function's selectors and decoded LSDA.
    Lsda,
    /// `test legalize-eh`: the IR after landing-pad legalization.
    LegalizeEh,
}

/// The expected lines of one function on one target (without their `; `
/// prefix): the subtest's text, or `error: <message>`. A fresh copy of the
/// file's policy is used, so that clause sets interned for one function
/// never define tags for another.
pub fn filetest_lines(
    kind: FiletestKind,
    func: &Function,
    isa: &dyn TargetIsa,
    policy: &ClausePolicy,
    encoding: LsdaEncoding,
) -> Vec<String> {
    let mut policy = policy.clone();
    let text = match kind {
        FiletestKind::Lsda => {
            compile_function(func, isa, &mut policy, encoding).map(|c| c.to_string())
        }
        FiletestKind::LegalizeEh => legalized_text(func, isa, &mut policy),
    };
    match text {
        Ok(text) => text_lines(&text),
        Err(e) => error_lines(&e),
    }
}

/// `error: <message>` as expectation lines.
pub fn error_lines(error: &dyn fmt::Display) -> Vec<String> {
    text_lines(&format!("error: {error}"))
}

fn text_lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_string()).collect()
}
