//! Errors, one small enum per concern, folded into [`LsdaError`].
//!
//! [`PolicyError`] (beside the policy it refuses for): the clause policy and
//! type tables. [`FormError`]: the IR and target cannot be described by an
//! LSDA. [`EncodeError`] (the in-tree encoder's): a table does not fit its
//! encoding. [`DecodeError`]: malformed LSDA bytes. They fold into
//! [`LsdaError`], which converts into `CodegenError`. (Object and JIT output
//! have their own error, `OutputError`, as cranelift-object and cranelift-jit
//! report theirs through `ModuleError`.) Nothing in this crate panics on user
//! input or produces a table it knows to be wrong.

use crate::lsda::EncodeError;
use crate::policy::PolicyError;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use cranelift_codegen::CodegenError;
use cranelift_codegen::ir::{Block, BlockArg};
use cranelift_codegen::isa::CallConv;
use cranelift_codegen::verifier::VerifierErrors;
use gimli::constants::DwEhPe;
use target_lexicon::Architecture;

/// Why a target cannot deliver exceptions to landing pads.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsupportedTarget {
    /// The architecture has no Itanium EH data registers for payloads.
    Architecture(Architecture),
    /// Windows unwinds with SEH, not DWARF CFI.
    Windows,
    /// The ISA was configured with `unwind_info=false`.
    UnwindInfoOff,
    /// The ISA produced no System V CFI for a function.
    NoSystemVUnwindInfo,
    /// Cranelift failed to produce CFI for a function.
    CfiFailed,
}

impl fmt::Display for UnsupportedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Architecture(arch) => write!(
                f,
                "{arch} has no Itanium EH data registers for try_call payloads"
            ),
            Self::Windows => write!(f, "Windows targets unwind with SEH, not DWARF CFI"),
            Self::UnwindInfoOff => write!(
                f,
                "unwind_info is disabled (set unwind_info=true); the unwinder needs CFI to \
                 restore callee-saved registers"
            ),
            Self::NoSystemVUnwindInfo => {
                write!(f, "the function's unwind info is not System V CFI")
            }
            Self::CfiFailed => write!(f, "Cranelift could not produce the function's CFI"),
        }
    }
}

/// Why a `try_call` is not in landing-pad form.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotLandingPad {
    /// A catch item passes its block other arguments than `(exn0, exn1)`
    /// or a prefix of it.
    Arguments {
        /// The block.
        block: Block,
        /// The arguments it receives.
        args: Vec<BlockArg>,
    },
    /// Catch items go to different blocks.
    TwoPads {
        /// The first block.
        first: Block,
        /// The other block.
        second: Block,
    },
}

impl fmt::Display for NotLandingPad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Arguments { block, args } => {
                write!(f, "{block} receives (")?;
                for (i, arg) in args.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}{arg}")?;
                }
                write!(f, ") instead of (exn0, exn1) or a prefix of them")
            }
            Self::TwoPads { first, second } => {
                write!(f, "catch items go to both {first} and {second}")
            }
        }
    }
}

/// The IR or the target cannot be described by an LSDA.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormError {
    /// The target cannot deliver exceptions to landing pads.
    UnsupportedTarget(UnsupportedTarget),
    /// A `try_call`'s callee convention does not deliver payloads in the
    /// Itanium EH data registers.
    UnsupportedCallConv {
        /// The instruction, as displayed.
        inst: String,
        /// The callee's calling convention.
        call_conv: CallConv,
    },
    /// A `try_call` is not in landing-pad form and was not legalized.
    NotLandingPadForm {
        /// The instruction, as displayed.
        inst: String,
        /// Why.
        reason: NotLandingPad,
    },
    /// Clauses that go to different places receive the same selector.
    AmbiguousSelector {
        /// The instruction, as displayed.
        inst: String,
        /// The selector both clauses would receive.
        selector: i64,
    },
    /// A selector is negative and cannot be dispatched on.
    NegativeSelector(i64),
    /// A catch destination argument has no landing-pad equivalent.
    UnmappableArgument(String),
    /// The function failed the verifier before legalization.
    InvalidInput(VerifierErrors),
    /// The legalized function failed the verifier (a bug of this crate).
    InvalidOutput(VerifierErrors),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedTarget(why) => write!(f, "unsupported target for landing pads: {why}"),
            Self::UnsupportedCallConv { inst, call_conv } => write!(
                f,
                "`{inst}`: callee calling convention `{call_conv}` does not deliver exception \
                 payloads in the Itanium EH data registers (use system_v, tail, preserve_all \
                 or apple_aarch64)"
            ),
            Self::NotLandingPadForm { inst, reason } => write!(
                f,
                "`{inst}` is not in landing-pad form ({reason}); run the legalization pass first"
            ),
            Self::AmbiguousSelector { inst, selector } => write!(
                f,
                "`{inst}`: clauses with different destinations all receive selector {selector} \
                 under this policy's selector convention"
            ),
            Self::NegativeSelector(selector) => {
                write!(f, "negative selector {selector} cannot be dispatched")
            }
            Self::UnmappableArgument(arg) => write!(
                f,
                "catch destination argument `{arg}` has no landing-pad equivalent"
            ),
            Self::InvalidInput(errors) => {
                write!(
                    f,
                    "IR error: the input function fails verification: {errors}"
                )
            }
            Self::InvalidOutput(errors) => write!(
                f,
                "IR error: the legalized function fails verification: {errors}"
            ),
        }
    }
}

/// What was malformed in LSDA bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformation {
    /// A field could not be read.
    Read {
        /// The field.
        field: &'static str,
        /// gimli's reason.
        error: gimli::Error,
    },
    /// A pointer format this decoder does not know.
    UnknownPointerFormat(DwEhPe),
    /// An `absptr` of a size other than 4 or 8 bytes.
    UnsupportedAddressSize(u8),
    /// The call-site encoding is omitted or not a plain format.
    UnsupportedCallSiteEncoding(DwEhPe),
    /// The TType base lies past the end of the bytes.
    TypeBasePastEnd,
    /// The call-site table runs past the end of the bytes.
    CallSiteTablePastEnd,
    /// A call-site record runs past the end of its table.
    CallSiteRecordOverruns,
    /// Catch clauses, but no type table.
    NoTypeTable,
    /// The type-table encoding has no fixed size.
    TypeEncodingNotFixed(DwEhPe),
    /// A type entry would lie before the type table.
    TypeEntryBeforeTable(usize),
    /// An action chain leaves the action table or loops.
    ChainLeavesTable,
    /// An action offset or displacement overflows.
    ActionOutOfRange,
    /// A type filter does not fit 32 bits.
    TypeFilterTooLarge(i64),
}

impl fmt::Display for Malformation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { field, error } => write!(f, "{field}: {error}"),
            Self::UnknownPointerFormat(pe) => write!(f, "unknown pointer format {:#x}", pe.0),
            Self::UnsupportedAddressSize(size) => write!(f, "unsupported address size {size}"),
            Self::UnsupportedCallSiteEncoding(pe) => {
                write!(f, "unsupported call-site encoding {:#x}", pe.0)
            }
            Self::TypeBasePastEnd => write!(f, "TType base past the end"),
            Self::CallSiteTablePastEnd => write!(f, "call-site table past the end"),
            Self::CallSiteRecordOverruns => write!(f, "call-site record overruns its table"),
            Self::NoTypeTable => write!(f, "catch clauses but no type table"),
            Self::TypeEncodingNotFixed(pe) => {
                write!(f, "type table encoding {:#x} has no fixed size", pe.0)
            }
            Self::TypeEntryBeforeTable(index) => {
                write!(f, "type entry {index} before the table")
            }
            Self::ChainLeavesTable => write!(f, "action chain leaves the table or loops"),
            Self::ActionOutOfRange => write!(f, "action offset out of range"),
            Self::TypeFilterTooLarge(filter) => write!(f, "type filter {filter} too large"),
        }
    }
}

/// Malformed LSDA bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset within the LSDA where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub what: Malformation,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed LSDA at byte {}: {}", self.offset, self.what)
    }
}

/// An error raised while building, encoding or decoding exception tables.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LsdaError {
    /// The clause policy or a type table.
    Policy(PolicyError),
    /// The IR or the target.
    Form(FormError),
    /// An encoding limit.
    Encode(EncodeError),
    /// Malformed LSDA bytes.
    Decode(DecodeError),
}

impl fmt::Display for LsdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Policy(e) => e.fmt(f),
            Self::Form(e) => e.fmt(f),
            Self::Encode(e) => e.fmt(f),
            Self::Decode(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for LsdaError {}

/// Shorthand for results of this crate.
pub type LsdaResult<T> = Result<T, LsdaError>;

macro_rules! fold_into_lsda_error {
    ($($variant:ident($error:ty)),*) => {$(
        impl From<$error> for LsdaError {
            fn from(err: $error) -> Self {
                Self::$variant(err)
            }
        }
    )*};
}

fold_into_lsda_error!(
    Policy(PolicyError),
    Form(FormError),
    Encode(EncodeError),
    Decode(DecodeError)
);

impl From<gimli::write::Error> for LsdaError {
    fn from(err: gimli::write::Error) -> Self {
        Self::Encode(EncodeError::Write(err))
    }
}

impl From<UnsupportedTarget> for LsdaError {
    fn from(why: UnsupportedTarget) -> Self {
        Self::Form(FormError::UnsupportedTarget(why))
    }
}

/// How `CodegenError` carries the toolkit's errors: verifier failures as
/// verifier errors, encoding limits as implementation limits, the rest as
/// `Unsupported`. (The series gives `CodegenError` a variant for the
/// `TryCallError` that compilation raises under the `unwind_lsda`
/// setting; policy errors are the embedder's, not codegen's.)
impl From<LsdaError> for CodegenError {
    fn from(err: LsdaError) -> Self {
        match err {
            LsdaError::Form(FormError::InvalidInput(errors) | FormError::InvalidOutput(errors)) => {
                CodegenError::Verifier(errors)
            }
            LsdaError::Encode(EncodeError::DoesNotFit { .. }) => CodegenError::ImplLimitExceeded,
            other => CodegenError::Unsupported(alloc::string::ToString::to_string(&other)),
        }
    }
}
