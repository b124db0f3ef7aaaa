//! With a personality, `JITModule::define_lsda` gives a function an LSDA
//! that the system unwinder hands the personality when it unwinds through
//! that function, and through which the personality enters the function's
//! landing pad.
#![cfg(all(unix, not(target_arch = "arm")))]

use cranelift_codegen::Context;
use cranelift_codegen::ir::{
    AbiParam, BlockArg, BlockCall, ExceptionTableData, ExceptionTableItem, ExceptionTag,
    InstBuilder, UserFuncName, types,
};
use cranelift_codegen::isa::unwind::lsda::{Action, EncodeError, TypeEntry};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule, JitLsdaError};
use cranelift_module::{FuncId, Linkage, Module, ModuleError, default_libcall_names};
use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

unsafe extern "C-unwind" {
    fn _Unwind_GetLanguageSpecificData(context: *mut c_void) -> *const u8;
    fn _Unwind_GetRegionStart(context: *mut c_void) -> usize;
    fn _Unwind_GetIP(context: *mut c_void) -> usize;
    fn _Unwind_SetIP(context: *mut c_void, ip: usize);
    fn _Unwind_SetGR(context: *mut c_void, index: i32, value: usize);
    fn _Unwind_RaiseException(exception: *mut UnwindException) -> i32;
}

/// `struct _Unwind_Exception`: a class, a cleanup, and the unwinder's
/// private words.
#[repr(C, align(16))]
struct UnwindException {
    class: u64,
    cleanup: Option<extern "C" fn(i32, *mut UnwindException)>,
    private: [usize; 6],
}

/// What `entering_personality` hands the landing pad as the selector.
const SELECTOR: usize = 5;

/// The exception `raise` throws: foreign to Rust, so no Rust frame catches
/// it, and entering a landing pad with it leaves no panic in flight.
const FOREIGN_CLASS: u64 = u64::from_be_bytes(*b"CLIFtest");

/// Throws a foreign exception; returns only if nothing catches it.
extern "C-unwind" fn raise(x: i64) -> i64 {
    let exception = Box::leak(Box::new(UnwindException {
        class: FOREIGN_CLASS,
        cleanup: None,
        private: [0; 6],
    }));
    // SAFETY: a valid, leaked exception object.
    let code = unsafe { _Unwind_RaiseException(exception) };
    panic!("_Unwind_RaiseException returned {code} for {x}: no handler");
}

/// A personality that enters the landing pad the LSDA gives for the call
/// being unwound: `_URC_HANDLER_FOUND` (6) in the search phase, then the
/// pad with the exception and selector 1 (`_URC_INSTALL_CONTEXT`, 7).
extern "C" fn entering_personality(
    _version: i32,
    actions: i32,
    _class: u64,
    exception: *mut c_void,
    context: *mut c_void,
) -> i32 {
    const SEARCH_PHASE: i32 = 1;
    // SAFETY: the unwinder's context for a frame with this personality,
    // whose LSDA `LsdaEncoding::jit()` wrote.
    unsafe {
        let lsda = _Unwind_GetLanguageSpecificData(context);
        let start = _Unwind_GetRegionStart(context);
        let offset = _Unwind_GetIP(context) - 1 - start;
        let Some(pad) = landing_pad(lsda, offset) else {
            return 8; // _URC_CONTINUE_UNWIND
        };
        if actions & SEARCH_PHASE != 0 {
            return 6;
        }
        // `__builtin_eh_return_data_regno(0)` and `(1)`: rax and rdx on
        // x86_64, x0 and x1 on aarch64, a0 and a1 on riscv64.
        // r6 and r7 on s390x.
        let (exn_reg, selector_reg) = if cfg!(target_arch = "riscv64") {
            (10, 11)
        } else if cfg!(target_arch = "s390x") {
            (6, 7)
        } else {
            (0, 1)
        };
        _Unwind_SetGR(context, exn_reg, exception as usize);
        _Unwind_SetGR(context, selector_reg, SELECTOR);
        _Unwind_SetIP(context, start + pad);
        7
    }
}

fn uleb128(at: &mut *const u8) -> usize {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        // SAFETY: callers read inside an LSDA.
        let byte = unsafe { **at };
        // SAFETY: as above.
        *at = unsafe { at.add(1) };
        value |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return value;
        }
    }
}

/// The landing pad (from the function start) of the call-site record of
/// the LSDA at `lsda` that covers `offset`.
///
/// # Safety
///
/// `lsda` points at an LSDA written with `LsdaEncoding::jit()`.
unsafe fn landing_pad(lsda: *const u8, offset: usize) -> Option<usize> {
    // SAFETY: per the contract, every read is inside the LSDA.
    unsafe {
        let mut at = lsda.add(2);
        uleb128(&mut at); // the type table's base
        assert_eq!(*at, 0x01, "ULEB128 call sites");
        at = at.add(1);
        let len = uleb128(&mut at);
        let end = at.add(len);
        while at < end {
            let (start, size, pad) = (uleb128(&mut at), uleb128(&mut at), uleb128(&mut at));
            uleb128(&mut at); // the action
            if (start..start + size).contains(&offset) {
                return (pad != 0).then_some(pad);
            }
        }
        None
    }
}

/// The LSDA the unwinder last handed `personality`, and how often it
/// called it.
static SEEN_LSDA: AtomicUsize = AtomicUsize::new(0);
static PERSONALITY_CALLS: AtomicUsize = AtomicUsize::new(0);
/// Held by the tests that read those: tests run on parallel threads.
static PERSONALITY_OBSERVED: Mutex<()> = Mutex::new(());

/// Records the LSDA of the frame and lets the exception pass
/// (`_URC_CONTINUE_UNWIND`, 8 in libgcc and LLVM libunwind alike).
extern "C" fn personality(
    _version: i32,
    _actions: i32,
    _class: u64,
    _exception: *mut c_void,
    context: *mut c_void,
) -> i32 {
    // SAFETY: `context` is the unwinder's context for the frame whose
    // personality this is.
    let lsda = unsafe { _Unwind_GetLanguageSpecificData(context) };
    SEEN_LSDA.store(lsda as usize, Ordering::SeqCst);
    PERSONALITY_CALLS.fetch_add(1, Ordering::SeqCst);
    8
}

/// What the type table names: its address is the entry.
static CAUGHT_TYPE: u64 = 0;

/// What the JIT functions call before their `try_call`: a plain call.
extern "C-unwind" fn identity(x: i64) -> i64 {
    x
}

/// Panics on 13: what the JIT function calls.
extern "C-unwind" fn host(x: i64) -> i64 {
    if x == 13 {
        panic!("unlucky");
    }
    x + 1
}

fn module(personality_name: Option<&str>) -> JITModule {
    module_registering(personality_name, true)
}

/// A module whose unwind information is registered if `register`.
fn module_registering(personality_name: Option<&str>, register: bool) -> JITModule {
    let mut flags = settings::builder();
    flags.set("is_pic", "false").unwrap();
    let isa = cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap();
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    builder.symbol("host", host as *const u8);
    builder.symbol("identity", identity as *const u8);
    builder.symbol("raise", raise as *const u8);
    builder.symbol("personality", personality as *const u8);
    builder.symbol("entering_personality", entering_personality as *const u8);
    builder.symbol("caught_type", &CAUGHT_TYPE as *const u64 as *const u8);
    builder.register_unwind_info(register);
    if let Some(name) = personality_name {
        builder.personality(name);
    }
    JITModule::new(builder)
}

/// `name(x)`: `callee(x)` in a `try_call` whose `tag1` and default
/// handlers both go to one landing pad returning the selector it receives;
/// defined in `module` (not finalized).
fn define_try_call(module: &mut JITModule, name: &str, callee: &str) -> FuncId {
    define(module, name, callee, true)
}

/// As [`define_try_call`], or with the two handlers going to two blocks
/// (which an LSDA cannot describe) when `one_pad` is false.
fn define(module: &mut JITModule, name: &str, callee: &str, one_pad: bool) -> FuncId {
    let mut ctx = Context::new();
    let ctx = &mut ctx;
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let f = module.declare_function(name, Linkage::Local, &sig).unwrap();
    let callee = module
        .declare_function(callee, Linkage::Import, &sig)
        .unwrap();
    ctx.func.signature = sig.clone();
    ctx.func.name = UserFuncName::user(0, f.as_u32());
    let mut fn_ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fn_ctx);
    let callee = module.declare_func_in_func(callee, b.func);
    let identity = module
        .declare_function("identity", Linkage::Import, &b.func.signature.clone())
        .unwrap();
    let identity = module.declare_func_in_func(identity, b.func);
    let sig_ref = b.import_signature(sig);
    let (entry, normal, pad, other) = (
        b.create_block(),
        b.create_block(),
        b.create_block(),
        b.create_block(),
    );
    b.append_block_params_for_function_params(entry);
    let result = b.append_block_param(normal, types::I64);
    let pointer = module.isa().pointer_type();
    b.append_block_param(pad, pointer);
    b.append_block_param(pad, pointer);
    b.append_block_param(other, pointer);
    b.append_block_param(other, pointer);
    b.switch_to_block(entry);
    // A plain call first: its call site has no landing pad.
    let x = b.block_params(entry)[0];
    let call = b.ins().call(identity, &[x]);
    let x = b.inst_results(call)[0];
    let pool = &mut b.func.dfg.value_lists;
    let normal_call = BlockCall::new(normal, [BlockArg::TryCallRet(0)], pool);
    let exn = [BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)];
    let tag_call = BlockCall::new(pad, exn, pool);
    let default_call = BlockCall::new(if one_pad { pad } else { other }, exn, pool);
    let table = b.func.dfg.exception_tables.push(ExceptionTableData::new(
        sig_ref,
        normal_call,
        [
            ExceptionTableItem::Tag(ExceptionTag::from_u32(1), tag_call),
            ExceptionTableItem::Default(default_call),
        ],
    ));
    b.ins().try_call(callee, &[x], table);
    b.switch_to_block(normal);
    b.ins().return_(&[result]);
    b.switch_to_block(pad);
    let selector = b.block_params(pad)[1];
    b.ins().return_(&[selector]);
    b.switch_to_block(other);
    let minus_one = b.ins().iconst(types::I64, -1);
    b.ins().return_(&[minus_one]);
    b.seal_all_blocks();
    b.finalize(module.isa().frontend_config());
    module.define_function(f, ctx).unwrap();
    f
}

/// `tag1` catches `caught_type` (type #1), the default handler cleans up.
fn actions(tags: &[Option<ExceptionTag>]) -> Result<Vec<Action>, EncodeError> {
    Ok(tags
        .iter()
        .map(|tag| match tag {
            Some(_) => Action::Catch(1),
            None => Action::Cleanup,
        })
        .collect())
}

fn as_fn(code: *const u8) -> extern "C-unwind" fn(i64) -> i64 {
    // SAFETY: `code` is a finalized `(i64) -> i64` function of the default
    // calling convention.
    unsafe { std::mem::transmute(code) }
}

/// The type-table entry `index` (1-based) of the LSDA at `lsda`, written
/// with `LsdaEncoding::jit()` (ULEB128 call sites, `absptr` types).
///
/// # Safety
///
/// `lsda` points at such an LSDA.
unsafe fn type_entry(lsda: *const u8, index: usize) -> usize {
    // SAFETY: per the contract, every read is inside the LSDA.
    unsafe {
        assert_eq!(*lsda, 0xff, "lpstart omitted");
        assert_eq!(*lsda.add(1), 0x00, "absptr type entries");
        let mut at = lsda.add(2);
        let base = uleb128(&mut at);
        let end = at.add(base);
        end.sub(size_of::<usize>() * index)
            .cast::<usize>()
            .read_unaligned()
    }
}

fn downcast(err: &ModuleError) -> &JitLsdaError {
    match err {
        ModuleError::Backend(e) => e.downcast_ref().expect("a JitLsdaError"),
        other => panic!("not a backend error: {other}"),
    }
}

#[test]
fn the_personality_receives_the_lsda_of_the_frame() {
    let _observed = PERSONALITY_OBSERVED
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut module = module(Some("personality"));
    let f = define_try_call(&mut module, "f", "host");
    // In the same finalization, a function without an LSDA.
    let g = define_try_call(&mut module, "g", "host");
    module
        .define_lsda(f, &[TypeEntry::symbol("caught_type")], actions)
        .unwrap();
    module.finalize_definitions().unwrap();
    let (f, g) = (
        module.get_finalized_function(f),
        module.get_finalized_function(g),
    );
    assert_eq!(as_fn(f)(41), 42);

    PERSONALITY_CALLS.store(0, Ordering::SeqCst);
    assert!(std::panic::catch_unwind(|| as_fn(g)(13)).is_err());
    assert_eq!(
        PERSONALITY_CALLS.load(Ordering::SeqCst),
        0,
        "g names no personality"
    );
    SEEN_LSDA.store(0, Ordering::SeqCst);
    let caught = std::panic::catch_unwind(|| as_fn(f)(13));
    assert!(caught.is_err(), "the personality let the panic pass");
    assert!(PERSONALITY_CALLS.load(Ordering::SeqCst) > 0);
    let lsda = SEEN_LSDA.load(Ordering::SeqCst) as *const u8;
    assert!(!lsda.is_null(), "the unwinder called the personality");
    // SAFETY: the unwinder handed the personality this function's LSDA,
    // written with `LsdaEncoding::jit()`; the module is still alive.
    let entry = unsafe { type_entry(lsda, 1) };
    assert_eq!(entry, &CAUGHT_TYPE as *const u64 as usize);

    // SAFETY: nothing of the module is used afterwards.
    unsafe { module.free_memory() };
}

#[test]
fn the_personality_enters_the_landing_pad() {
    let mut module = module(Some("entering_personality"));
    let f = define_try_call(&mut module, "f", "raise");
    module
        .define_lsda(f, &[TypeEntry::symbol("caught_type")], actions)
        .unwrap();
    module.finalize_definitions().unwrap();
    // A second finalization, with its own registration.
    let g = define_try_call(&mut module, "g", "raise");
    module
        .define_lsda(g, &[TypeEntry::symbol("caught_type")], actions)
        .unwrap();
    module.finalize_definitions().unwrap();
    for id in [f, g] {
        let code = module.get_finalized_function(id);
        assert_eq!(
            as_fn(code)(7),
            SELECTOR as i64,
            "the landing pad got the selector"
        );
    }
    // SAFETY: nothing of the module is used afterwards.
    unsafe { module.free_memory() };
}

#[test]
fn refusals_are_typed() {
    let mut without = module(None);
    let f = define_try_call(&mut without, "f", "host");
    let err = without.define_lsda(f, &[], actions).unwrap_err();
    assert!(matches!(downcast(&err), JitLsdaError::NotEnabled), "{err}");

    let mut module = module(Some("personality"));
    let f = define_try_call(&mut module, "f", "host");
    let types = [TypeEntry::symbol("caught_type")];
    module.define_lsda(f, &types, actions).unwrap();
    let err = module.define_lsda(f, &types, actions).unwrap_err();
    assert!(
        matches!(downcast(&err), JitLsdaError::AlreadyDefined(_)),
        "{err}"
    );
    module.finalize_definitions().unwrap();
    let g = define_try_call(&mut module, "g", "host");
    let err = module
        .define_lsda(g, &[TypeEntry::symbol("no_such_type")], actions)
        .unwrap_err();
    assert!(matches!(downcast(&err), JitLsdaError::Encode(_)), "{err}");
    assert!(
        err.to_string().contains("no_such_type") || format!("{err:?}").contains("no_such_type")
    );
    // The module still registers what follows.
    module.define_lsda(g, &types, actions).unwrap();
    module.finalize_definitions().unwrap();
    let err = module.define_lsda(f, &types, actions).unwrap_err();
    assert!(matches!(downcast(&err), JitLsdaError::NoFde(_)), "{err}");
    // SAFETY: nothing of the module is used afterwards.
    unsafe { module.free_memory() };
}

#[test]
fn an_lsda_without_registration_is_refused() {
    let mut module = module_registering(Some("personality"), false);
    let f = define_try_call(&mut module, "f", "host");
    let err = module.define_lsda(f, &[], actions).unwrap_err();
    assert!(matches!(downcast(&err), JitLsdaError::NotEnabled), "{err}");
}

#[test]
fn more_refusals_are_typed() {
    let _observed = PERSONALITY_OBSERVED
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // An unknown personality.
    let mut unknown = module(Some("no_such_personality"));
    let f = define_try_call(&mut unknown, "f", "host");
    let err = unknown.define_lsda(f, &[], actions).unwrap_err();
    assert!(
        matches!(downcast(&err), JitLsdaError::PersonalityNotFound(_)),
        "{err}"
    );

    let mut module = module(Some("personality"));
    // Handlers to two blocks: defined as ever, refused an LSDA.
    let two = define(&mut module, "two", "host", false);
    let err = module.define_lsda(two, &[], actions).unwrap_err();
    assert!(matches!(downcast(&err), JitLsdaError::Encode(_)), "{err}");
    // A function defined from bytes has no FDE.
    let sig = module.make_signature();
    let bytes = module
        .declare_function("bytes", Linkage::Local, &sig)
        .unwrap();
    // `ret` on x86_64, else aarch64's: never run, only defined.
    let ret: &[u8] = if cfg!(target_arch = "x86_64") {
        &[0xc3]
    } else {
        &[0xc0, 0x03, 0x5f, 0xd6]
    };
    module.define_function_bytes(bytes, 16, ret, &[]).unwrap();
    let err = module.define_lsda(bytes, &[], actions).unwrap_err();
    assert!(matches!(downcast(&err), JitLsdaError::NoFde(_)), "{err}");
    // A type entry naming this module's data: refused until it is defined,
    // then its address.
    let data = module
        .declare_data("module_type", Linkage::Local, false, false)
        .unwrap();
    let f = define_try_call(&mut module, "f", "host");
    let types = [TypeEntry::symbol("module_type")];
    let err = module.define_lsda(f, &types, actions).unwrap_err();
    assert!(
        matches!(downcast(&err), JitLsdaError::NotYetDefined(_)),
        "{err}"
    );
    let mut description = cranelift_module::DataDescription::new();
    description.define_zeroinit(8);
    module.define_data(data, &description).unwrap();
    module.define_lsda(f, &types, actions).unwrap();
    module.finalize_definitions().unwrap();
    let (address, _) = module.get_finalized_data(data);
    let code = module.get_finalized_function(f);
    SEEN_LSDA.store(0, Ordering::SeqCst);
    PERSONALITY_CALLS.store(0, Ordering::SeqCst);
    assert!(std::panic::catch_unwind(|| as_fn(code)(13)).is_err());
    assert!(PERSONALITY_CALLS.load(Ordering::SeqCst) > 0);
    let lsda = SEEN_LSDA.load(Ordering::SeqCst) as *const u8;
    assert!(!lsda.is_null());
    // SAFETY: f's LSDA, written with `LsdaEncoding::jit()`.
    assert_eq!(unsafe { type_entry(lsda, 1) }, address as usize);
    // SAFETY: nothing of the module is used afterwards.
    unsafe { module.free_memory() };
}
