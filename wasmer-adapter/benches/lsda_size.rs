//! LSDA and code bytes per call site inside a `try_table`: stock Wasmer 7.5
//! (wasmer-compiler-cranelift's own emitter, through its public
//! `compile_module`) against this adapter, for the same function shape: one
//! `try_table` with K catch clauses around N calls.
//!
//! Per-call figures are `(size(N = 64) - size(N = 32)) / 32`, so fixed
//! costs (headers, type tables, pads, prologues) cancel out.
//!
//!     cargo bench --ignore-rust-version -p wasmer-eh-adapter --bench lsda_size

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    AbiParam, ExceptionTableData, ExceptionTableItem, ExtFuncData, ExternalName, InstBuilder,
    Signature, UserExternalName, UserFuncName, types,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_lsda::{LsdaEncoding, check_landing_pad_form, tables_for_compiled};
use std::sync::Arc;
use wasmer_compiler::types::function::Compilation;
use wasmer_compiler::types::module::CompileModuleInfo;
use wasmer_compiler::types::relocation::RelocationTarget;
use wasmer_compiler::{Compiler, ModuleEnvironment};
use wasmer_compiler_cranelift::{Cranelift, CraneliftCompiler};
use wasmer_eh_adapter::{CatchKind, CatchTarget, TryTableLowering, VmBuiltins, WasmerTagPolicy};
use wasmer_types::entity::PrimaryMap;
use wasmer_types::target::Target;
use wasmer_types::{Features, LocalFunctionIndex, ModuleInfo, VMOffsets};

fn module_wat(clauses: usize, calls: usize) -> String {
    let tags: String = (0..clauses).map(|i| format!("(tag $t{i}) ")).collect();
    let catches: String = (0..clauses).map(|i| format!("(catch $t{i} $h) ")).collect();
    let body = "(call $callee) ".repeat(calls);
    format!(
        "(module {tags} (func $callee) \
         (func (export \"f\") (block $h (try_table {catches} {body}))))"
    )
}

/// (LSDA bytes, code bytes of `f`) as stock Wasmer 7.5 compiles the module.
fn stock(clauses: usize, calls: usize) -> (usize, usize, ModuleInfo) {
    let wasm = wat::parse_str(module_wat(clauses, calls)).unwrap();
    let env = ModuleEnvironment::new().translate(&wasm).unwrap();
    let mut features = Features::default();
    features.exceptions(true);
    let module = env.module.clone();
    let info = CompileModuleInfo {
        features,
        module: Arc::new(env.module),
        memory_styles: PrimaryMap::new(),
        table_styles: PrimaryMap::new(),
        function_max_stack_usage: PrimaryMap::new(),
    };
    let compiler = CraneliftCompiler::new(Cranelift::new());
    let compilation = compiler
        .compile_module(
            &Target::default(),
            &info,
            &[],
            env.module_translation_state.as_ref().unwrap(),
            env.function_body_inputs,
            None,
        )
        .unwrap();
    let Compilation::Rkyv { compilation, .. } = compilation else {
        panic!("expected the default (rkyv) artifact")
    };
    let eh_frame = compilation.unwind_info.eh_frame;
    // The LSDA section: what `.eh_frame`'s FDEs point into, besides code.
    let eh = &compilation.custom_sections[eh_frame.expect("an .eh_frame")];
    let lsda_sections: Vec<_> = eh
        .relocations
        .iter()
        .filter_map(|r| match r.reloc_target {
            RelocationTarget::CustomSection(i) => Some(i),
            _ => None,
        })
        .collect();
    let lsda = lsda_sections
        .first()
        .map_or(0, |&i| compilation.custom_sections[i].bytes.len());
    let f = LocalFunctionIndex::from_u32(1);
    (lsda, compilation.functions[f].body.body.len(), module)
}

fn isa() -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.enable("unwind_info").unwrap();
    flags.set("opt_level", "speed").unwrap();
    cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

/// (LSDA bytes, code bytes) of the same function built with the adapter.
fn ours(isa: &OwnedTargetIsa, module: &ModuleInfo, clauses: usize, calls: usize) -> (usize, usize) {
    let offsets = VMOffsets::try_new(8, module).unwrap();
    let mut policy = WasmerTagPolicy::new();
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    let mut func =
        cranelift_codegen::ir::Function::with_name_signature(UserFuncName::user(0, 1), sig.clone());
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let vmctx = b.block_params(entry)[0];
        let callee_sig = b.import_signature(sig.clone());
        let name = b
            .func
            .declare_imported_user_function(UserExternalName::new(0, 0));
        let callee = b.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature: callee_sig,
            colocated: true,
            patchable: false,
        });
        let handler = b.create_block();
        let builtins = VmBuiltins::new(&offsets, types::I64, CallConv::SystemV);
        let mut lowering = TryTableLowering::new(builtins, vmctx, types::I64);
        let catches = (0..clauses as u32)
            .map(|tag| CatchTarget {
                kind: CatchKind::Catch {
                    tag,
                    payload: vec![],
                },
                block: handler,
            })
            .collect();
        lowering.enter_try_table(&b, &mut policy, catches).unwrap();
        for _ in 0..calls {
            let next = b.create_block();
            let normal = b.func.dfg.block_call(next, &[]);
            let (tag, pad) = lowering.call_handler(&mut b).unwrap();
            let pad_call = b.func.dfg.block_call(pad, &TryTableLowering::pad_args());
            let et = b.func.dfg.exception_tables.push(ExceptionTableData::new(
                callee_sig,
                normal,
                [ExceptionTableItem::Tag(tag, pad_call)],
            ));
            b.ins().try_call(callee, &[vmctx], et);
            b.switch_to_block(next);
        }
        b.ins().jump(handler, &[]);
        lowering.exit_try_table(&mut b).unwrap();
        b.switch_to_block(handler);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(isa.frontend_config());
    }
    let prepared = check_landing_pad_form(&func, &**isa, policy.policy()).unwrap();
    let mut ctx = cranelift_codegen::Context::for_function(func);
    let code = ctx.compile(&**isa, &mut ControlPlane::default()).unwrap();
    let len = code.code_buffer().len();
    let tables = tables_for_compiled(
        code,
        &**isa,
        policy.policy(),
        &prepared,
        LsdaEncoding::jit(),
    );
    let lsda = tables.unwrap().lsda.map_or(0, |l| l.len());
    (lsda, len)
}

fn main() {
    let isa = isa();
    let (n1, n2): (usize, usize) = (32, 64);
    println!(
        "bytes per call site inside a try_table (N = {n1} -> {n2} calls), x86_64, Wasmer 7.5 vs adapter"
    );
    println!(
        "{:>7} | {:>12} {:>10} {:>6} | {:>12} {:>10} {:>6}",
        "clauses", "stock LSDA", "ours LSDA", "ratio", "stock code", "ours code", "ratio"
    );
    for clauses in [1, 4, 16, 64] {
        let (sl1, sc1, module) = stock(clauses, n1);
        let (sl2, sc2, _) = stock(clauses, n2);
        let (ol1, oc1) = ours(&isa, &module, clauses, n1);
        let (ol2, oc2) = ours(&isa, &module, clauses, n2);
        let per = |a: usize, b: usize| (b as f64 - a as f64) / (n2 - n1) as f64;
        let (sl, ol, sc, oc) = (per(sl1, sl2), per(ol1, ol2), per(sc1, sc2), per(oc1, oc2));
        println!(
            "{clauses:>7} | {sl:>12.2} {ol:>10.2} {:>6.3} | {sc:>12.2} {oc:>10.2} {:>6.3}",
            ol / sl,
            oc / sc
        );
    }
}
