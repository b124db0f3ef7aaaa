//! The driver behind the `clif-eh` command: read a CLIF file with
//! `try_call`s and a clause policy written in comments, legalize each
//! function into landing-pad form, compile it, encode its LSDA and decode it
//! back for display.
//!
//! The clause policy is written in comment directives ([`directives`]).

pub mod compile;
pub mod directives;
pub mod dump;
pub mod module;

pub use compile::{CompileError, CompiledFunction, compile_function};
pub use directives::{DirectiveError, directive_word, parse_encoding, parse_policy};

use core::fmt;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_lsda::{ClausePolicy, LsdaEncoding, LsdaError, OutputError, RegistrationError};
use cranelift_reader::{IsaSpec, ParseOptions, parse_test};

/// An error of the driver, with a message meant for the user.
#[derive(Debug)]
pub enum ToolError {
    /// The CLIF text did not parse.
    Parse(String),
    /// A policy directive is malformed.
    Directive(DirectiveError),
    /// The file names no target.
    NoTarget,
    /// Building or encoding the exception tables failed.
    Lsda {
        /// The function.
        function: String,
        /// The error.
        error: LsdaError,
    },
    /// Writing the object failed.
    Output {
        /// The function, or "module".
        function: String,
        /// The error.
        error: OutputError,
    },
    /// Registering the JIT tables with the unwinder failed.
    Registration {
        /// The function, or "module".
        function: String,
        /// The error.
        error: RegistrationError,
    },
    /// Cranelift failed to compile a function.
    Codegen(String),
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(msg) => write!(f, "parse error: {msg}"),
            Self::Directive(e) => write!(f, "{e}"),
            Self::NoTarget => write!(
                f,
                "the file has no `target` line (e.g. `target x86_64`); add one"
            ),
            Self::Lsda { function, error } => write!(f, "{function}: {error}"),
            Self::Output { function, error } => write!(f, "{function}: {error}"),
            Self::Registration { function, error } => write!(f, "{function}: {error}"),
            Self::Codegen(msg) => write!(f, "compilation failed: {msg}"),
        }
    }
}

impl std::error::Error for ToolError {}

impl From<DirectiveError> for ToolError {
    fn from(e: DirectiveError) -> Self {
        Self::Directive(e)
    }
}

impl From<CompileError> for ToolError {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::Lsda { function, error } => Self::Lsda { function, error },
            CompileError::Codegen(msg) => Self::Codegen(msg),
        }
    }
}

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
