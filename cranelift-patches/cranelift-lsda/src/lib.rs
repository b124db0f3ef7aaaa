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
//!    [`Lsda`], the in-tree encoder's table: each clause list becomes a
//!    chain of [`Action`]s over the function's type table (the one
//!    clause-to-action mapping, [`ClauseList::actions`]). [`Lsda::write`]
//!    appends it to a `.gcc_except_table` through gimli's `Writer` (type
//!    entries via `write_eh_pointer`, so a relocating writer such as
//!    [`RelocatedSection`] records their relocations), and
//!    [`EhFrameBuilder`] gives the functions with an LSDA a CIE that names
//!    the personality, next to the plain one.
//! 4. [`decode_lsda`], written independently of the encoder, turns LSDA
//!    bytes back into a typed, printable table.
//!
//! # This crate
//!
//! It is the embedder toolkit on top of the in-tree API that the series in
//! `cranelift-patches/upstream/` adds to Cranelift: the LSDA encoder
//! ([`Lsda`], [`Action`], [`TypeEntry`], [`check_try_calls`]), which knows
//! no exception model. This crate compiles that file from the series'
//! overlay tree against the released crates, or takes it from the patched
//! cranelift-codegen under `--cfg cranelift_lsda_upstream`. Everything else
//! is policy and stays here: clause policies and selector conventions, the
//! landing-pad legalization, the decoder, `.eh_frame` with a personality
//! for objects ([`LsdaObjectModule`]) and JIT code ([`LsdaJitModule`]),
//! which do all of it inside `define_function`. `no_std` with `alloc`
//! without the default features, as cranelift-codegen is.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

// The in-tree API: the file the upstream series adds to cranelift-codegen
// as `isa::unwind::lsda`, compiled here against the released crate, or with
// `--cfg cranelift_lsda_upstream` taken from the patched one. The file
// names codegen's items as `crate::...`, which these imports provide.
#[cfg(not(cranelift_lsda_upstream))]
#[path = "../../upstream/overlay/cranelift/codegen/src/isa/unwind/lsda.rs"]
mod lsda;
#[cfg(cranelift_lsda_upstream)]
use cranelift_codegen::isa::unwind::lsda;
#[cfg(not(cranelift_lsda_upstream))]
use cranelift_codegen::{Context, FinalizedMachCallSite, FinalizedMachExceptionHandler, ir};
#[cfg(all(test, not(cranelift_lsda_upstream)))]
use cranelift_codegen::{cursor, isa};

mod compiled;
mod decode;
mod eh_frame;
mod error;
mod landing_pad;
mod policy;

pub use compiled::{
    CompiledTables, actions_for_tags, call_sites_from_compiled, tables_for_compiled,
};
pub use decode::{
    DecodedAction, DecodedCallSite, DecodedLsda, DecodedTypeEntry, decode_back, decode_lsda,
    encoding_name,
};
pub use eh_frame::{
    EhFrameBuilder, EhFrameEncoding, RelocatedSection, SymbolIndex, endian_of, unwind_info_of,
};
pub use error::{
    DecodeError, FormError, LsdaError, LsdaResult, Malformation, NotLandingPad, UnsupportedTarget,
};
pub use landing_pad::{
    LANDING_PAD_ARGS, PreparedFunction, TryCallForm, TryCallReport, analyze_landing_pads,
    call_conv_has_landing_pads, catch_items, check_isa, check_landing_pad_form,
    is_landing_pad_args, try_call_clauses, type_table_of,
};
pub use lsda::{
    Action, CallSite, CallSiteEncoding, CallSiteRecord, CallSiteTable, EncodeError, HandledCalls,
    LandingPad, Lsda, LsdaEncoding, TryCallError, TypeEncoding, TypeEntry, call_sites,
    check_try_calls,
};
pub use policy::{
    CLAUSE_SET_TAG_BASE, Clause, ClauseList, ClausePolicy, DefaultAction, PolicyError,
    SelectorConvention, TypeTable, normalize_clauses,
};

#[cfg(all(feature = "jit", target_os = "linux"))]
mod jit;
#[cfg(all(feature = "jit", target_os = "linux"))]
mod jit_arenas;
#[cfg(all(feature = "jit", target_os = "linux"))]
mod jit_tables;
// The in-tree registration of JIT unwind information (cranelift-jit's
// `unwind.rs` in the series), compiled from the overlay tree against the
// released crates; `JitTables` registers through its
// `EhFrameRegistration`. Its `UnwindRegistry` is cranelift-jit's own hook,
// unused here, and it returns `ModuleResult` as cranelift-jit does.
#[cfg(all(feature = "jit", target_os = "linux", not(cranelift_lsda_upstream)))]
#[path = "../../upstream/overlay/cranelift/jit/src/unwind.rs"]
#[allow(dead_code, unreachable_pub, clippy::result_large_err)]
mod jit_unwind;
#[cfg(feature = "legalize")]
mod legalize;
mod module;
#[cfg(feature = "object")]
mod object;
#[cfg(feature = "object")]
mod object_tables;
#[cfg(feature = "object")]
mod output;

#[cfg(all(feature = "jit", target_os = "linux", target_env = "gnu"))]
pub use cranelift_jit_arenas::{ArenaConfig, ArenaError, LoaderArenas};
#[cfg(all(feature = "jit", target_os = "linux"))]
pub use jit::LsdaJitModule;
#[cfg(all(feature = "jit", target_os = "linux"))]
pub use jit_arenas::jit_tables_in_arenas;
#[cfg(all(feature = "jit", target_os = "linux"))]
pub use jit_tables::{
    FrameRegistrar, JitTables, Registration, RegistrationError, RegistrationResult, SymbolResolver,
    Unwinder, detect_unwinder,
};
#[cfg(feature = "legalize")]
pub use legalize::legalize_landing_pads;
pub use module::{LandingPads, enable_unwind_lsda, prepare_function};
#[cfg(feature = "object")]
pub use object::LsdaObjectModule;
#[cfg(feature = "object")]
pub use object_tables::ObjectTables;
#[cfg(feature = "object")]
pub use output::{OutputError, OutputResult};
