//! Itanium-ABI exception tables for Cranelift's `try_call`.
//!
//! Cranelift compiles `try_call` and records each call site's handlers.
//! With these tables, the system unwinder and a personality routine
//! (`__gxx_personality_v0`, `rust_eh_personality`, Wasmer's) find the
//! handlers in Cranelift frames:
//!
//! 1. [`ClausePolicy`]: the embedder says what each `ExceptionTag` means
//!    (a catch of a type-table entry, a cleanup, or an ordered clause set)
//!    and which selector its personality delivers.
//! 2. [`check_landing_pad_form`] (or the landing-pad legalization) puts the
//!    IR into landing-pad form, one clause-set item per call, and fixes the
//!    function's [`TypeTable`] so selectors are known before encoding.
//! 3. [`tables_for_compiled`] turns the compiled call sites into an
//!    [`Lsda`], laid out in the encodings of [`LsdaEncoding`], which
//!    [`Lsda::write`] appends to a `.gcc_except_table` through gimli's
//!    `Writer` (type entries via `write_eh_pointer`, so a relocating writer
//!    such as [`RelocatedSection`] records their relocations), and
//!    [`EhFrameBuilder`] gives the functions with an LSDA a CIE that names
//!    the personality, next to the plain one.
//! 4. [`decode_lsda`], written independently of the encoder, turns LSDA
//!    bytes back into a typed, printable table.
//!
//! # This crate
//!
//! The modules above are written as they live in Cranelift
//! (`cranelift_codegen::isa::unwind::lsda`, moved there by the series in
//! `cranelift-patches/upstream/`), `no_std` with `alloc` as cranelift-codegen
//! is. The rest is the glue the series puts in other crates:
//! `legalize_landing_pads` (cranelift-frontend's `Switch`), and
//! [`LsdaObjectModule`] / [`LsdaJitModule`], which do all of it inside
//! `define_function`, as cranelift-object and cranelift-jit do with the
//! setting on, and write or register `.eh_frame` with a personality.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

/// Items of the codegen part: compiled from this crate, or with
/// `--cfg cranelift_lsda_upstream` taken from the patched cranelift-codegen, where the
/// series (`cranelift-patches/upstream/`) moves them, so the glue and every
/// test run against the moved code.
macro_rules! codegen_part {
    ($($item:item)*) => {
        $(
            #[cfg(not(cranelift_lsda_upstream))]
            $item
        )*
    };
}

codegen_part! {
    mod compiled;
    mod decode;
    mod eh_frame;
    mod encode;
    mod error;
    mod landing_pad;
    mod policy;

    pub use compiled::{CompiledTables, call_sites_from_compiled, tables_for_compiled};
    pub use decode::{
        DecodedAction, DecodedCallSite, DecodedLsda, DecodedTypeEntry, decode_lsda, encoding_name,
    };
    pub use eh_frame::{
        EhFrameBuilder, EhFrameEncoding, RelocatedSection, SymbolIndex, endian_of, unwind_info_of,
    };
    pub use encode::{
        ActionTable, CallSite, CallSiteEncoding, CallSiteRecord, CallSiteTable, LandingPad,
        LengthWriter, Lsda, LsdaEncoding, TypeEncoding,
    };
    pub use error::{
        DecodeError, EncodeError, FormError, LsdaError, LsdaResult, Malformation, NotLandingPad,
        PolicyError, UnsupportedTarget,
    };
    pub use landing_pad::{
        LANDING_PAD_ARGS, PreparedFunction, TryCallForm, TryCallReport, analyze_landing_pads,
        call_conv_has_landing_pads, catch_items, check_isa, check_landing_pad_form,
        is_landing_pad_args, try_call_clauses, type_table_of,
    };
    pub use policy::{
        CLAUSE_SET_TAG_BASE, Clause, ClauseList, ClausePolicy, DefaultAction, SelectorConvention,
        TypeEntry, TypeTable, normalize_clauses,
    };
}

#[cfg(cranelift_lsda_upstream)]
pub use cranelift_codegen::isa::unwind::lsda::*;

#[cfg(all(feature = "jit", target_os = "linux"))]
mod jit;
#[cfg(all(feature = "jit", target_os = "linux", not(cranelift_lsda_upstream)))]
mod jit_arenas;
#[cfg(all(feature = "jit", target_os = "linux", not(cranelift_lsda_upstream)))]
mod jit_tables;
// With `--cfg cranelift_lsda_upstream`, the pass is cranelift-frontend's, where the series moves it.
#[cfg(all(feature = "legalize", not(cranelift_lsda_upstream)))]
mod legalize;
mod module;
// With `--cfg cranelift_lsda_upstream`, cranelift-object's, where the series moves them.
#[cfg(feature = "object")]
mod object;
#[cfg(all(feature = "object", not(cranelift_lsda_upstream)))]
mod object_tables;
#[cfg(all(feature = "object", not(cranelift_lsda_upstream)))]
mod output;

#[cfg(all(feature = "legalize", cranelift_lsda_upstream))]
pub use cranelift_frontend::legalize_landing_pads;
#[cfg(all(feature = "jit", target_os = "linux", cranelift_lsda_upstream))]
pub use cranelift_jit::{
    FrameRegistrar, JitTables, Registration, RegistrationError, RegistrationResult, SymbolResolver,
    Unwinder, detect_unwinder,
};
#[cfg(all(
    feature = "jit",
    target_os = "linux",
    target_env = "gnu",
    not(cranelift_lsda_upstream)
))]
pub use cranelift_jit_arenas::{ArenaConfig, ArenaError, LoaderArenas};
#[cfg(cranelift_lsda_upstream)]
pub use cranelift_object::{ObjectTables, OutputError, OutputResult};
#[cfg(all(feature = "jit", target_os = "linux"))]
pub use jit::LsdaJitModule;
#[cfg(all(feature = "jit", target_os = "linux", not(cranelift_lsda_upstream)))]
pub use jit_arenas::jit_tables_in_arenas;
#[cfg(all(feature = "jit", target_os = "linux", not(cranelift_lsda_upstream)))]
pub use jit_tables::{
    FrameRegistrar, JitTables, Registration, RegistrationError, RegistrationResult, SymbolResolver,
    Unwinder, detect_unwinder,
};
#[cfg(all(feature = "legalize", not(cranelift_lsda_upstream)))]
pub use legalize::legalize_landing_pads;
pub use module::{LandingPads, enable_unwind_lsda, prepare_function};
#[cfg(feature = "object")]
pub use object::LsdaObjectModule;
#[cfg(all(feature = "object", not(cranelift_lsda_upstream)))]
pub use object_tables::ObjectTables;
#[cfg(all(feature = "object", not(cranelift_lsda_upstream)))]
pub use output::{OutputError, OutputResult};
