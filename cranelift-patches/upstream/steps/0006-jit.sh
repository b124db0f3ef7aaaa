#!/usr/bin/env bash
# Step 6 (its commit message: the .msg file beside it): cranelift-jit
# registers `.eh_frame` with LSDAs and a personality with the process's
# unwinder, per unwinder contract (#5574), with
# `JITBuilder::exception_tables`. `JitTables`, `Registration` and their
# error are moved from cranelift-lsda's `jit_tables.rs` by move.py; the
# hooks in `backend.rs` (record per defined function, register in
# `finalize_definitions`, deregister before `free_memory`) are the glue.
# Linux only, as the crate's. Runs in the tree's root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=$here/../../cranelift-lsda/src
dest=cranelift/jit/src
python3 "$here/move.py" \
    --rewrite 'crate::=cranelift_codegen::isa::unwind::lsda::' \
    --rewrite 'cranelift_jit::=crate::' \
    "$crate" "$dest" jit_tables:exception_tables
rustfmt --edition 2024 "$dest/exception_tables.rs"

lib=$dest/lib.rs
python3 "$here/edit.py" "$lib" --after 'mod compiled_blob;
' '#[cfg(target_os = "linux")]
mod exception_tables;
'
python3 "$here/edit.py" "$lib" --after 'pub use crate::backend::{JITBuilder, JITModule};
' '#[cfg(target_os = "linux")]
pub use crate::exception_tables::{
    FrameRegistrar, JitTables, Registration, RegistrationError, RegistrationResult,
    SymbolResolver, Unwinder, detect_unwinder,
};
'

backend=$dest/backend.rs
python3 "$here/edit.py" "$backend" --after 'use cranelift_codegen::binemit::Reloc;
' '#[cfg(target_os = "linux")]
use cranelift_codegen::isa::unwind::lsda::{
    ClausePolicy, UnsupportedTarget, check_landing_pad_form,
};
'
python3 "$here/edit.py" "$backend" --after '    memory: Option<Box<dyn JITMemoryProvider + Send>>,
' '    #[cfg(target_os = "linux")]
    exception_tables: Option<(crate::JitTables, ClausePolicy, crate::SymbolResolver)>,
'
python3 "$here/edit.py" "$backend" --after '            libcall_names,
            memory: None,
' '            #[cfg(target_os = "linux")]
            exception_tables: None,
'
python3 "$here/edit.py" "$backend" --after '    pub fn memory_provider(&mut self, provider: Box<dyn JITMemoryProvider + Send>) -> &mut Self {
        self.memory = Some(provider);
        self
    }
' '
    /// Register the exception tables of `try_call` with the process'"'"'s
    /// unwinder (libgcc, LLVM libunwind or nongnu libunwind, each by its
    /// own contract) in [`JITModule::finalize_definitions`], and deregister
    /// them before [`JITModule::free_memory`] or when the module is dropped:
    /// one `.eh_frame` per finalization, whose functions with handlers use
    /// a CIE naming the personality routine at `personality`, with their
    /// LSDAs. `policy` says what each exception tag means to that routine;
    /// `resolve` gives the addresses of type-entry symbols (e.g. C++
    /// typeinfo).
    ///
    /// Needs the `unwind_lsda` setting. Functions must be in landing-pad
    /// form (see `cranelift_frontend::legalize_landing_pads`, which interns
    /// clause sets into [`JITModule::exception_policy_mut`]). Linux only.
    #[cfg(target_os = "linux")]
    pub fn exception_tables(
        &mut self,
        policy: ClausePolicy,
        personality: *const u8,
        resolve: crate::SymbolResolver,
    ) -> crate::RegistrationResult<&mut Self> {
        if !self.isa.flags().unwind_lsda() {
            return Err(UnsupportedTarget::UnwindLsdaOff.into());
        }
        let tables = crate::JitTables::new(personality);
        self.exception_tables = Some((tables, policy, resolve));
        Ok(self)
    }
'
# Registrations first: dropped (deregistered) before anything else.
python3 "$here/edit.py" "$backend" --after 'pub struct JITModule {
' '    #[cfg(target_os = "linux")]
    registrations: Vec<crate::Registration>,
    #[cfg(target_os = "linux")]
    exception_tables: Option<(crate::JitTables, ClausePolicy, crate::SymbolResolver)>,
'
python3 "$here/edit.py" "$backend" --replace '    pub unsafe fn free_memory(mut self) {
        self.memory.free_memory();' '    pub unsafe fn free_memory(mut self) {
        // Tables go before the code they describe.
        #[cfg(target_os = "linux")]
        self.registrations.clear();
        self.memory.free_memory();'
python3 "$here/edit.py" "$backend" --after '            data_objects_to_finalize: Vec::new(),
' '            #[cfg(target_os = "linux")]
            registrations: Vec::new(),
            #[cfg(target_os = "linux")]
            exception_tables: builder.exception_tables,
'
python3 "$here/edit.py" "$backend" --after '        self.memory.finalize(branch_protection)?;
' '
        #[cfg(target_os = "linux")]
        if let Some((mut tables, policy, resolve)) = self.exception_tables.take() {
            let registered = tables.register(self, &*resolve);
            self.exception_tables = Some((tables, policy, resolve));
            self.registrations.extend(registered?);
        }
'
python3 "$here/edit.py" "$backend" --replace '        // work around borrow-checker to allow reuse of ctx below
        let res = ctx.compile(self.isa(), ctrl_plane)?;' '        #[cfg(target_os = "linux")]
        let prepared = match &self.exception_tables {
            Some((_, policy, _)) => Some(
                check_landing_pad_form(&ctx.func, &*self.isa, policy)
                    .map_err(|e| ModuleError::Compilation(e.into()))?,
            ),
            None => None,
        };

        // work around borrow-checker to allow reuse of ctx below
        let res = ctx.compile(self.isa(), ctrl_plane)?;'
python3 "$here/edit.py" "$backend" --before '        let blob = self.compiled_functions[id].insert(CompiledBlob::new(
            &mut *self.memory,
            compiled_code.code_buffer(),' '        #[cfg(target_os = "linux")]
        if let (Some((tables, policy, _)), Some(prepared)) =
            (self.exception_tables.as_mut(), prepared)
        {
            tables.add_function(&*self.isa, id, compiled_code, policy, &prepared)?;
        }

'
python3 "$here/edit.py" "$backend" --before '    /// Create a new `JITModule`.' '    /// The clause policy of [`JITBuilder::exception_tables`], with the
    /// clause sets interned so far; `None` without exception tables.
    #[cfg(target_os = "linux")]
    pub fn exception_policy(&self) -> Option<&ClausePolicy> {
        self.exception_tables
            .as_ref()
            .map(|(_, policy, _)| policy)
    }

    /// The clause policy of [`JITBuilder::exception_tables`], for
    /// legalization to intern clause sets into before a function is
    /// defined; `None` without exception tables.
    #[cfg(target_os = "linux")]
    pub fn exception_policy_mut(&mut self) -> Option<&mut ClausePolicy> {
        self.exception_tables
            .as_mut()
            .map(|(_, policy, _)| policy)
    }

'

cat >cranelift/jit/tests/exception_tables.rs <<'RS'
//! `JITBuilder::exception_tables`: a legalized `try_call` is registered
//! with the process's unwinder at finalization and deregistered before the
//! code is freed.
#![cfg(target_os = "linux")]

use cranelift_codegen::ir::*;
use cranelift_codegen::isa::CallConv;
use cranelift_codegen::isa::unwind::lsda::{
    Clause, ClausePolicy, DefaultAction, LsdaError, SelectorConvention, TypeEntry,
    UnsupportedTarget,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, isa::OwnedTargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, legalize_landing_pads};
use cranelift_jit::{JITBuilder, JITModule, RegistrationError};
use cranelift_module::{Linkage, Module, default_libcall_names};

unsafe extern "C" {
    fn _Unwind_Find_FDE(pc: *const u8, bases: *mut [usize; 3]) -> *const u8;
}

/// Whether the unwinder (libgcc, or LLVM libunwind) finds an FDE for `pc`.
fn unwinder_finds(pc: *const u8) -> bool {
    let mut bases = [0usize; 3];
    // SAFETY: only looks `pc` up; `bases` is a writable
    // `struct dwarf_eh_bases`.
    !unsafe { _Unwind_Find_FDE(pc, &mut bases) }.is_null()
}

extern "C" fn add_one(x: i64) -> i64 {
    x + 1
}

fn isa(unwind_lsda: bool) -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.enable("unwind_info").unwrap();
    flags.set("is_pic", "false").unwrap();
    if unwind_lsda {
        flags.enable("unwind_lsda").unwrap();
    }
    cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

fn policy() -> ClausePolicy {
    let mut policy = ClausePolicy::new(DefaultAction::CatchAll, SelectorConvention::TypeFilter);
    let catch_int = Clause::Catch(TypeEntry::symbol("_ZTIi"));
    policy.define(ExceptionTag::from_u32(1), catch_int).unwrap();
    policy
}

#[test]
fn exception_tables_need_the_setting() {
    let mut builder = JITBuilder::with_isa(isa(false), default_libcall_names());
    let personality = add_one as *const u8;
    let err = builder
        .exception_tables(policy(), personality, Box::new(|_| None))
        .err()
        .unwrap();
    let expected = UnsupportedTarget::UnwindLsdaOff;
    assert!(
        matches!(&err, RegistrationError::Lsda(e) if *e == LsdaError::from(expected)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "unsupported target for landing pads: unwind_lsda is disabled (set unwind_lsda=true): \
         exception tables are written only with it"
    );
}

#[test]
fn tables_are_registered_at_finalization_and_gone_after_free() {
    let isa = isa(true);
    let mut builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
    builder.symbol("add_one", add_one as *const u8);
    // Never called: nothing throws here. A real embedder passes
    // `__gxx_personality_v0` or its own routine.
    let personality = add_one as *const u8;
    let typeinfo = add_one as *const () as usize;
    let resolve = Box::new(move |_: &str| Some(typeinfo as *const u8));
    builder
        .exception_tables(policy(), personality, resolve)
        .unwrap();
    let mut module = JITModule::new(builder);

    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let f = module.declare_function("f", Linkage::Local, &sig).unwrap();
    let g = module
        .declare_function("add_one", Linkage::Import, &sig)
        .unwrap();
    let mut func = Function::with_name_signature(UserFuncName::user(0, f.as_u32()), sig);
    let mut fn_ctx = FunctionBuilderContext::new();
    let mut builder = FunctionBuilder::new(&mut func, &mut fn_ctx);
    let callee = module.declare_func_in_func(g, builder.func);
    let sig0 = builder.func.dfg.ext_funcs[callee].signature;
    let (entry, normal, pad) = (
        builder.create_block(),
        builder.create_block(),
        builder.create_block(),
    );
    builder.append_block_params_for_function_params(entry);
    builder.append_block_param(normal, types::I64);
    builder.append_block_param(pad, types::I64);
    builder.switch_to_block(entry);
    let x = builder.block_params(entry)[0];
    let dfg = &mut builder.func.dfg;
    let returned = dfg.block_call(normal, &[BlockArg::TryCallRet(0)]);
    let caught = dfg.block_call(pad, &[BlockArg::TryCallExn(0)]);
    let item = ExceptionTableItem::Tag(ExceptionTag::from_u32(1), caught);
    let table = dfg
        .exception_tables
        .push(ExceptionTableData::new(sig0, returned, [item]));
    builder.ins().try_call(callee, &[x], table);
    builder.switch_to_block(normal);
    let value = builder.block_params(normal)[0];
    builder.ins().return_(&[value]);
    builder.switch_to_block(pad);
    let zero = builder.ins().iconst(types::I64, 0);
    builder.ins().return_(&[zero]);
    builder.seal_all_blocks();
    builder.finalize(isa.frontend_config());

    let policy = module.exception_policy_mut().unwrap();
    legalize_landing_pads(&mut func, &*isa, policy).unwrap();
    module
        .define_function(f, &mut Context::for_function(func))
        .unwrap();
    module.finalize_definitions().unwrap();

    let code = module.get_finalized_function(f);
    assert!(unwinder_finds(code.wrapping_add(1)), "FDE registered");
    // SAFETY: `f` is a finalized `(i64) -> i64` system_v function.
    let f: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(code) };
    assert_eq!(f(41), 42);
    // SAFETY: `f` is not called again; `code` is only looked up.
    unsafe { module.free_memory() };
    assert!(!unwinder_finds(code.wrapping_add(1)), "FDE deregistered");
}
RS
