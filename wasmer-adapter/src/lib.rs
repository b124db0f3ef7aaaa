//! Wasmer's WebAssembly exception handling (`try_table`, `throw`,
//! `throw_ref`) on the generic LSDA layer of `cranelift-lsda`.
//!
//! What Wasmer's Cranelift translator calls:
//!
//! * [`WasmerTagPolicy`]: module-local tags as LSDA type entries pointing to
//!   `u32` slots of a per-module tag data section; catch-all null and last;
//!   no cleanups (wasmer-vm's stage 1 terminates on them).
//! * [`TryTableLowering`]: one clause-set item per call inside a
//!   `try_table` ([`TryTableLowering::call`], [`TryTableLowering::call_indirect`]),
//!   `throw` / `throw_ref`, and one landing pad per scope that runs stage 2
//!   (`wasmer_eh_personality2`) only when stage 1 asks for it and dispatches
//!   its answer with `cranelift_frontend::Switch`.
//! * [`VmBuiltins`]: the personality2 / throw / exnref builtins, loaded from
//!   `vmctx` through wasmer-types 7.5 `VMOffsets`.
//!
//! Each function is then put in landing-pad form by
//! `cranelift_lsda::legalize_landing_pads` and its tables come from
//! `cranelift_lsda::tables_for_compiled`, both with
//! [`WasmerTagPolicy::policy`]; the CIE's personality is
//! `wasmer_eh_personality`. wasmer-compiler-cranelift's `generic-lsda`
//! feature (`wasmer-build/generic-lsda.patch`) does exactly that. See
//! `docs/wasmer.md` for the runtime contract.

#![deny(missing_docs)]

mod builtins;
mod lowering;
mod policy;

pub use builtins::{
    Builtin, CATCH_ALL_SELECTOR, EXNREF_TYPE, NO_MATCH_SELECTOR, TAG_TYPE, VmBuiltins,
};
pub use lowering::{
    CatchKind, CatchTarget, LoweringError, TRAP_UNREACHABLE, TryTableLowering, payload_layout,
};
pub use policy::{TAG_DATA_SYMBOL, WasmClause, WasmerTagPolicy};
