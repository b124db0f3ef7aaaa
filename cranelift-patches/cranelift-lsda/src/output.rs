//! How writing exception tables into an object fails: one error type,
//! convertible into `ModuleError` as cranelift-object reports its own
//! failures.

use crate::LsdaError;
use gimli::constants::DwEhPe;

/// Writing exception tables into an object failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputError {
    /// Building or encoding the tables failed.
    Lsda(LsdaError),
    /// Only ELF objects get `.eh_frame` and `.gcc_except_table`.
    UnsupportedFormat(target_lexicon::BinaryFormat),
    /// Objects need PC-relative type entries: `absptr` ones would put
    /// absolute relocations (text relocations in shared libraries) into the
    /// read-only `.gcc_except_table`.
    AbsptrTypeTableInObject,
    /// A relocation with a pointer encoding objects cannot express.
    UnsupportedPointerEncoding(DwEhPe),
    /// A relocation against something that is not a symbol.
    UnsupportedRelocationTarget,
    /// A function has tables but is not defined in this object.
    FunctionNotDefined(u32),
    /// The object already has an `.eh_frame` (`ObjectBuilder::unwind_info`
    /// was left on for a module these tables do not wrap).
    EhFrameAlreadyWritten,
    /// The object writer refused a relocation.
    Object(object::write::Error),
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lsda(err) => err.fmt(f),
            Self::UnsupportedFormat(format) => write!(
                f,
                "{format} objects: only ELF `.eh_frame`/`.gcc_except_table` are written"
            ),
            Self::AbsptrTypeTableInObject => write!(
                f,
                "objects need PC-relative type entries (pcrel or indirect|pcrel), not absptr"
            ),
            Self::UnsupportedPointerEncoding(pe) => {
                write!(f, "pointer encoding {:#x} has no object relocation", pe.0)
            }
            Self::UnsupportedRelocationTarget => {
                write!(f, "exception tables relocate only against symbols")
            }
            Self::FunctionNotDefined(id) => write!(
                f,
                "function funcid{id} has tables but is not defined in this object"
            ),
            Self::EhFrameAlreadyWritten => write!(
                f,
                "the object already has an .eh_frame: turn off ObjectBuilder::unwind_info or \
                 use LsdaObjectModule"
            ),
            Self::Object(err) => write!(f, "object writer: {err}"),
        }
    }
}

impl std::error::Error for OutputError {}

impl<E: Into<LsdaError>> From<E> for OutputError {
    fn from(err: E) -> Self {
        Self::Lsda(err.into())
    }
}

/// As cranelift-object and cranelift-jit report their own failures: a
/// backend error, from which the [`OutputError`] can be downcast.
impl From<OutputError> for cranelift_module::ModuleError {
    fn from(err: OutputError) -> Self {
        cranelift_module::ModuleError::Backend(anyhow::Error::new(err))
    }
}

/// Shorthand for results of the object and JIT glue.
pub type OutputResult<T> = Result<T, OutputError>;
