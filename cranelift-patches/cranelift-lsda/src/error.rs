//! The one error type of the crate.
//!
//! Every bad input (to the policy, the encoder, the decoder, the landing-pad
//! check and the legalization pass) is reported through [`LsdaError`]; nothing
//! in this crate panics on user input or produces a table it knows to be wrong.

use core::fmt;

/// An error raised while building, encoding or decoding exception tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LsdaError {
    /// The policy was asked about a tag it does not define.
    UnknownTag(u32),
    /// A tag was defined twice in the policy.
    TagAlreadyDefined(u32),
    /// The tag lies in the range reserved for interned clause sets.
    ReservedTag(u32),
    /// A clause list with no clause was given where one is required.
    EmptyClauseList,
    /// The target ISA has no landing-pad support (no Itanium data registers
    /// for `try_call` payloads), or unwind info is disabled.
    UnsupportedIsa(String),
    /// A `try_call` uses a callee calling convention whose exception payload
    /// registers are not the Itanium EH data registers.
    UnsupportedCallConv {
        /// The instruction, as Cranelift displays it.
        inst: String,
        /// The callee's calling convention.
        call_conv: String,
    },
    /// A `try_call` is not in landing-pad form and was not legalized.
    NotLandingPadForm {
        /// The instruction, as Cranelift displays it.
        inst: String,
        /// Why it is not in landing-pad form.
        reason: String,
    },
    /// The handlers of one compiled call site do not agree on a landing pad,
    /// and no landing-pad-form proof from the IR was supplied.
    HandlersDisagree {
        /// Return address of the call site.
        ret_addr: u32,
    },
    /// Two clauses that go to different places receive the same selector
    /// under the policy's selector convention, so a landing pad cannot tell
    /// them apart.
    AmbiguousSelector {
        /// The instruction, as Cranelift displays it.
        inst: String,
        /// The selector value both clauses would receive.
        selector: i64,
    },
    /// The policy's personality cannot handle this clause.
    UnsupportedClause {
        /// The clause.
        clause: String,
        /// Why.
        why: &'static str,
    },
    /// A clause's type entry is missing from the function's type table.
    TypeNotInTable(String),
    /// An absolute type entry cannot be encoded position-independently.
    AbsoluteTypeEntryNeedsAbsptr(u64),
    /// Call-site return addresses are not strictly increasing, or lie
    /// outside the function.
    CallSiteOutOfOrder {
        /// The offending return address.
        ret_addr: u32,
        /// The previous return address (or the code length when too large).
        bound: u32,
    },
    /// A landing pad lies outside the function's code.
    LandingPadOutOfRange {
        /// The landing pad offset.
        pad: u32,
        /// The function's code length.
        code_len: u32,
    },
    /// A landing pad at offset 0 cannot be encoded: the LSDA uses 0 to mean
    /// "no landing pad".
    LandingPadAtFunctionStart,
    /// A value does not fit the chosen encoding.
    DoesNotFit {
        /// What was being encoded.
        what: &'static str,
        /// The value that did not fit.
        value: u64,
    },
    /// The LSDA bytes are malformed.
    Malformed {
        /// Byte offset within the LSDA where decoding failed.
        offset: usize,
        /// What was wrong.
        what: String,
    },
    /// A type-entry symbol could not be resolved to an address.
    UnresolvedSymbol(String),
    /// The underlying DWARF writer refused a value.
    Write(String),
    /// The Cranelift IR could not be rewritten (e.g. the verifier rejected
    /// the result).
    Ir(String),
}

impl fmt::Display for LsdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownTag(tag) => write!(f, "the clause policy does not define tag{tag}"),
            Self::TagAlreadyDefined(tag) => {
                write!(f, "tag{tag} is already defined in the clause policy")
            }
            Self::ReservedTag(tag) => write!(
                f,
                "tag{tag} is reserved for clause sets the policy interns (tags from {:#x} up)",
                crate::policy::CLAUSE_SET_TAG_BASE
            ),
            Self::EmptyClauseList => write!(f, "a clause list must hold at least one clause"),
            Self::UnsupportedIsa(why) => write!(f, "unsupported target for landing pads: {why}"),
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
            Self::HandlersDisagree { ret_addr } => write!(
                f,
                "the handlers of the call returning to {ret_addr:#x} have different code offsets \
                 and the IR was not checked to be in landing-pad form"
            ),
            Self::AmbiguousSelector { inst, selector } => write!(
                f,
                "`{inst}`: clauses with different destinations all receive selector {selector} \
                 under this policy's selector convention"
            ),
            Self::UnsupportedClause { clause, why } => {
                write!(f, "clause `{clause}` is not supported: {why}")
            }
            Self::TypeNotInTable(entry) => {
                write!(f, "type entry {entry} is not in the function's type table")
            }
            Self::AbsoluteTypeEntryNeedsAbsptr(addr) => write!(
                f,
                "absolute type entry {addr:#x} needs the absptr type-table encoding"
            ),
            Self::CallSiteOutOfOrder { ret_addr, bound } => write!(
                f,
                "call site returning to {ret_addr:#x} is out of order or out of range \
                 (bound {bound:#x})"
            ),
            Self::LandingPadOutOfRange { pad, code_len } => write!(
                f,
                "landing pad {pad:#x} lies outside the function's {code_len:#x} code bytes"
            ),
            Self::LandingPadAtFunctionStart => write!(
                f,
                "a landing pad at function offset 0 cannot be encoded (0 means no landing pad)"
            ),
            Self::DoesNotFit { what, value } => {
                write!(f, "{what} {value:#x} does not fit its encoding")
            }
            Self::Malformed { offset, what } => {
                write!(f, "malformed LSDA at byte {offset}: {what}")
            }
            Self::UnresolvedSymbol(name) => {
                write!(f, "type entry symbol `{name}` cannot be resolved")
            }
            Self::Write(msg) => write!(f, "DWARF writer: {msg}"),
            Self::Ir(msg) => write!(f, "IR error: {msg}"),
        }
    }
}

impl std::error::Error for LsdaError {}

/// Shorthand for results of this crate.
pub type LsdaResult<T> = Result<T, LsdaError>;

impl From<gimli::write::Error> for LsdaError {
    fn from(err: gimli::write::Error) -> Self {
        Self::Write(err.to_string())
    }
}
