//! Itanium-ABI exception tables for Cranelift's `try_call`.
//!
//! Cranelift compiles `try_call` and records each call site's handlers, but
//! writes no LSDA, so the system unwinder and a personality routine
//! (`__gxx_personality_v0`, `rust_eh_personality`, Wasmer's) cannot find the
//! handlers in Cranelift frames. This crate is the generic layer that
//! closes the gap, written as it would live upstream in
//! `cranelift_codegen::isa::unwind::lsda`:
//!
//! 1. [`ClausePolicy`]: the embedder says what each `ExceptionTag` means
//!    (a catch of a type-table entry, a cleanup, or an ordered clause set)
//!    and which selector its personality delivers.
//! 2. [`legalize_landing_pads`] (or [`check_landing_pad_form`]) puts the IR
//!    into landing-pad form, one clause-set item per call, and fixes the
//!    function's [`TypeTable`] so selectors are known before encoding.
//! 3. [`lsda_for_compiled`] turns the compiled call sites into an [`Lsda`]:
//!    bytes plus relocations, in the encodings of [`LsdaEncoding`].
//! 4. [`decode_lsda`], written independently of the encoder, turns LSDA
//!    bytes back into a typed, printable table.

#![deny(missing_docs)]

mod compiled;
mod decode;
mod eh_frame;
mod encode;
mod error;
#[cfg(feature = "jit")]
mod jit;
mod landing_pad;
#[cfg(feature = "legalize")]
mod legalize;
#[cfg(feature = "object")]
mod object;
mod policy;

pub use compiled::{
    CompiledTables, call_sites_from_compiled, lsda_for_compiled, tables_for_compiled,
};
pub use decode::{
    DecodedAction, DecodedCallSite, DecodedLsda, DecodedTypeEntry, decode_lsda, encoding_name,
};
pub use eh_frame::{EhFrameBuilder, EhFrameEncoding, unwind_info_of};
pub use encode::{
    ActionTable, CallSite, CallSiteEncoding, CallSiteRecord, CallSiteTable, LandingPad, Lsda,
    LsdaEncoding, LsdaReloc, LsdaRelocKind, TypeEncoding, encode_lsda,
};
pub use error::{LsdaError, LsdaResult};
#[cfg(feature = "jit")]
pub use jit::{JitExceptionTables, JitModuleWithTables, Unwinder, detect_unwinder};
pub use landing_pad::{
    PreparedFunction, TryCallForm, TryCallReport, analyze_landing_pads, call_conv_has_landing_pads,
    check_isa, check_landing_pad_form,
};
#[cfg(feature = "legalize")]
pub use legalize::legalize_landing_pads;
#[cfg(feature = "object")]
pub use object::ObjectExceptionTables;
pub use policy::{
    CLAUSE_SET_TAG_BASE, Clause, ClauseList, ClausePolicy, DefaultAction, SelectorConvention,
    TypeEntry, TypeTable, normalize_clauses,
};
