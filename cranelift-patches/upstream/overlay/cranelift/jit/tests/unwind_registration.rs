//! The unwind information of finalized functions is registered with the
//! system unwinder, and deregistered before the code is freed (#5574).
#![cfg(unix)]

use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, isa::CallConv};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

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

/// A module with `f(x) = x + 1`, finalized; `register` as the builder's
/// `register_unwind_info`.
fn module_with_f(register: bool) -> (JITModule, *const u8) {
    let mut flags = settings::builder();
    flags.set("is_pic", "false").unwrap();
    let isa = cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap();
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    builder.register_unwind_info(register);
    let mut module = JITModule::new(builder);

    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let f = module.declare_function("f", Linkage::Local, &sig).unwrap();
    let config = module.isa().frontend_config();
    let mut ctx = Context::new();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, f.as_u32());
    let mut fn_ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fn_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let x = b.block_params(entry)[0];
    let one = b.ins().iconst(types::I64, 1);
    let y = b.ins().iadd(x, one);
    b.ins().return_(&[y]);
    b.seal_all_blocks();
    b.finalize(config);
    module.define_function(f, &mut ctx).unwrap();
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(f);
    (module, code)
}

#[test]
fn finalized_code_is_found_by_the_unwinder_until_freed() {
    let (module, code) = module_with_f(true);
    assert!(unwinder_finds(code.wrapping_add(1)));
    // SAFETY: `code` is a finalized `(i64) -> i64` system_v function.
    let f: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(code) };
    assert_eq!(f(41), 42);
    // SAFETY: `f` is not called again; `code` is only looked up.
    unsafe { module.free_memory() };
    assert!(!unwinder_finds(code.wrapping_add(1)));
}

#[test]
fn nothing_is_registered_when_the_builder_says_so() {
    let (module, code) = module_with_f(false);
    assert!(!unwinder_finds(code.wrapping_add(1)));
    // SAFETY: nothing of the module is used afterwards.
    unsafe { module.free_memory() };
}
