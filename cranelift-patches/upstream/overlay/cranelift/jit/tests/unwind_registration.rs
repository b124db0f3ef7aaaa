//! With `register_unwind_info(true)`, the unwind information of finalized
//! functions is registered with the system unwinder, and deregistered
//! before the code is freed (part of #5574).
#![cfg(all(unix, not(target_arch = "arm")))]

use cranelift_codegen::Context;
use cranelift_codegen::ir::{AbiParam, InstBuilder, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{EhFrameError, EhFrameRegistration, JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};

unsafe extern "C" {
    fn _Unwind_Find_FDE(pc: *const u8, bases: *mut [usize; 3]) -> *const u8;
}

/// Whether the unwinder finds an FDE for `pc`.
fn unwinder_finds(pc: *const u8) -> bool {
    let mut bases = [0usize; 3];
    // SAFETY: only looks `pc` up; `bases` is a writable
    // `struct dwarf_eh_bases`.
    !unsafe { _Unwind_Find_FDE(pc, &mut bases) }.is_null()
}

/// Panics: what the JIT functions call.
extern "C-unwind" fn host(x: i64) -> i64 {
    if x == 13 {
        panic!("unlucky");
    }
    x + 1
}

fn module(register: bool) -> JITModule {
    let mut flags = settings::builder();
    flags.set("is_pic", "false").unwrap();
    let isa = cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap();
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    builder.symbol("host", host as *const u8);
    builder.register_unwind_info(register);
    JITModule::new(builder)
}

/// `name(x) = host(x)`, defined in `module` (not finalized).
fn define_calling_host(module: &mut JITModule, name: &str) -> FuncId {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let f = module.declare_function(name, Linkage::Local, &sig).unwrap();
    let callee = module
        .declare_function("host", Linkage::Import, &sig)
        .unwrap();
    let config = module.isa().frontend_config();
    let mut ctx = Context::new();
    ctx.func.signature = sig.clone();
    ctx.func.name = UserFuncName::user(0, f.as_u32());
    let mut fn_ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fn_ctx);
    let callee = module.declare_func_in_func(callee, b.func);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let x = b.block_params(entry)[0];
    let call = b.ins().call(callee, &[x]);
    let y = b.inst_results(call)[0];
    b.ins().return_(&[y]);
    b.seal_all_blocks();
    b.finalize(config);
    module.define_function(f, &mut ctx).unwrap();
    f
}

fn as_fn(code: *const u8) -> extern "C-unwind" fn(i64) -> i64 {
    // SAFETY: `code` is a finalized `(i64) -> i64` function of the default
    // calling convention.
    unsafe { std::mem::transmute(code) }
}

#[test]
fn a_panic_unwinds_through_jit_frames_until_the_code_is_freed() {
    let mut module = module(true);
    let f = define_calling_host(&mut module, "f");
    module.finalize_definitions().unwrap();
    // A second finalization registers its own functions.
    let g = define_calling_host(&mut module, "g");
    module.finalize_definitions().unwrap();
    let (f, g) = (
        module.get_finalized_function(f),
        module.get_finalized_function(g),
    );
    for code in [f, g] {
        assert!(unwinder_finds(code.wrapping_add(1)));
        assert_eq!(as_fn(code)(41), 42);
        let caught = std::panic::catch_unwind(|| as_fn(code)(13));
        assert!(caught.is_err(), "the panic came back through the JIT frame");
    }
    // SAFETY: nothing of the module is called again; `f` and `g` are only
    // looked up.
    unsafe { module.free_memory() };
    assert!(!unwinder_finds(f.wrapping_add(1)));
    assert!(!unwinder_finds(g.wrapping_add(1)));
}

#[test]
fn a_dropped_module_keeps_its_leaked_code_unwindable() {
    let mut module = module(true);
    let f = define_calling_host(&mut module, "f");
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(f);
    drop(module);
    assert!(unwinder_finds(code.wrapping_add(1)));
    assert!(std::panic::catch_unwind(|| as_fn(code)(13)).is_err());
}

#[test]
fn nothing_is_registered_by_default() {
    let mut module = module(false);
    let f = define_calling_host(&mut module, "f");
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(f);
    assert!(!unwinder_finds(code.wrapping_add(1)));
    // SAFETY: nothing of the module is used afterwards.
    unsafe { module.free_memory() };
}

#[test]
fn a_malformed_section_is_refused() {
    // SAFETY: refused before anything is registered.
    let empty = unsafe { EhFrameRegistration::register(&[]) };
    assert_eq!(empty.err(), Some(EhFrameError::NoTerminator));
}
