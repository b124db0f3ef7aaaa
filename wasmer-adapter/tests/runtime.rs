//! The adapter against the real wasmer-vm 7.5 runtime.
//!
//! Functions are built with the adapter exactly as Wasmer's translator
//! would (scopes entered and left, one item per call), JIT-compiled, and
//! their tables registered with `wasmer_eh_personality` as the CIE
//! personality. Exceptions are raised with wasmer-vm's own `throw`
//! (`_Unwind_RaiseException` on a `UwExceptionWrapper`), and pads free them
//! with wasmer-vm's own `wasmer_vm_exception_into_exnref`.
//!
//! Stage 2 (`wasmer_eh_personality2`) needs a full `VMInstance` (it finds
//! the instance by offset from `vmctx`), so the vmctx builtin slot holds a
//! stub that follows its contract: it reads the tag list stage 1 stored in
//! the exception (`CurrentFrameInfo`) and answers the matching tag,
//! `i32::MAX` for catch-all or `i32::MAX - 1`. The stub records the list,
//! which is how the tests see what stage 1 found in our LSDA.
//!
//! Test convention: exception `exnref` carries tag `exnref - 1`.

use cranelift_codegen::ir::{
    AbiParam, BlockArg, ExceptionTableData, ExceptionTableItem, InstBuilder, InstructionData,
    Signature, Type, UserFuncName, types,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_lsda::{JitTables, Registration, check_landing_pad_form};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use std::cell::RefCell;
use wasmer_eh_adapter::{
    Builtin, CatchKind, CatchTarget, TAG_DATA_SYMBOL, TRAP_UNREACHABLE, TryTableLowering,
    VmBuiltins, WasmerTagPolicy,
};
use wasmer_types::{ModuleInfo, VMOffsets};

/// Mirrors wasmer-vm's private `#[repr(C)] CurrentFrameInfo`.
#[repr(C)]
struct FrameInfoMirror {
    catch_tags: Vec<u32>,
    has_catch_all: bool,
}

/// Offsets in wasmer-vm's `#[repr(C)] UwExceptionWrapper` (x86_64 / aarch64).
const EXNREF_OFFSET: usize = 40;
const FRAME_INFO_OFFSET: usize = 48;

struct Log {
    stage2: Vec<(Vec<u32>, bool)>,
    rethrows: u32,
    payload: [u8; 64],
}

impl Default for Log {
    fn default() -> Self {
        Self {
            stage2: Vec::new(),
            rethrows: 0,
            payload: [0; 64],
        }
    }
}

thread_local! {
    static LOG: RefCell<Log> = RefCell::new(Log::default());
    static STORE: &'static wasmer_vm::StoreObjects = Box::leak(Box::default());
}

extern "C-unwind" fn host_raise(exnref: i32) {
    let store = STORE.with(|s| *s);
    // SAFETY: raises a Wasmer exception; every test catches it in JIT frames.
    unsafe { wasmer_vm::libcalls::throw(store, exnref as u32) }
}

extern "C" fn personality2_stub(_vmctx: *mut u8, exn: *mut u8) -> i32 {
    // SAFETY: `exn` is the live UwExceptionWrapper stage 1 handed to the
    // pad; stage 1 stored Some(frame info) before asking for stage 2.
    let (exnref, info) = unsafe {
        let exnref = *(exn.add(EXNREF_OFFSET) as *const u32);
        let info = &*(exn.add(FRAME_INFO_OFFSET) as *const Option<Box<FrameInfoMirror>>);
        (
            exnref,
            info.as_ref()
                .expect("stage 1 asked for stage 2 without frame info"),
        )
    };
    LOG.with(|l| {
        l.borrow_mut()
            .stage2
            .push((info.catch_tags.clone(), info.has_catch_all))
    });
    let thrown = exnref - 1;
    if info.catch_tags.contains(&thrown) {
        thrown as i32
    } else if info.has_catch_all {
        i32::MAX
    } else {
        i32::MAX - 1
    }
}

extern "C" fn read_exnref_stub(_vmctx: *mut u8, _exnref: i32) -> *const u8 {
    LOG.with(|l| l.borrow().payload.as_ptr())
}

extern "C-unwind" fn throw_stub(_vmctx: *mut u8, exnref: i32) {
    LOG.with(|l| l.borrow_mut().rethrows += 1);
    host_raise(exnref)
}

fn isa() -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.enable("unwind_info").unwrap();
    cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

/// A catch clause of a scope, as a test writes it.
#[derive(Clone)]
enum Clause {
    Catch(u32, Vec<Type>),
    CatchRef(u32, Vec<Type>),
    All,
    AllRef,
}

struct Harness {
    module: JITModule,
    tables: JitTables,
    policy: WasmerTagPolicy,
    builtins: VmBuiltins,
    offsets: VMOffsets,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    raise: FuncId,
    next: u32,
}

fn sig(params: &[Type], returns: &[Type]) -> Signature {
    let mut s = Signature::new(CallConv::SystemV);
    s.params.extend(params.iter().map(|t| AbiParam::new(*t)));
    s.returns.extend(returns.iter().map(|t| AbiParam::new(*t)));
    s
}

impl Harness {
    fn new() -> Self {
        let mut builder = JITBuilder::with_isa(isa(), default_libcall_names());
        builder.symbol("host_raise", host_raise as *const u8);
        let mut module = JITModule::new(builder);
        let raise = module
            .declare_function("host_raise", Linkage::Import, &sig(&[types::I32], &[]))
            .unwrap();
        let offsets = VMOffsets::try_new(8, &ModuleInfo::new()).unwrap();
        let builtins = VmBuiltins::new(&offsets, types::I64, CallConv::SystemV);
        Self {
            tables: JitTables::new(wasmer_vm::libcalls::wasmer_eh_personality as *const u8),
            module,
            policy: WasmerTagPolicy::new(),
            builtins,
            offsets,
            ctx: cranelift_codegen::Context::new(),
            fctx: FunctionBuilderContext::new(),
            raise,
            next: 0,
        }
    }

    /// `f(vmctx, exnref) -> i64` whose innermost scope raises `exnref`
    /// through a host call. `scopes` are outer first; target `id` of a
    /// clause returns `id * 1_000_000 + (sum of payload) * 1000 + exnref
    /// (for _ref clauses)`.
    fn scenario(&mut self, scopes: &[Vec<(Clause, i64)>]) -> FuncId {
        self.define(|h, b, vmctx, exnref| {
            let mut lowering = TryTableLowering::new(h.builtins.clone(), vmctx, types::I64);
            let mut bodies = Vec::new();
            for scope in scopes {
                let mut catches = Vec::new();
                for (clause, id) in scope {
                    let kind = match clause {
                        Clause::Catch(tag, p) => CatchKind::Catch {
                            tag: *tag,
                            payload: p.clone(),
                        },
                        Clause::CatchRef(tag, p) => CatchKind::CatchRef {
                            tag: *tag,
                            payload: p.clone(),
                        },
                        Clause::All => CatchKind::CatchAll,
                        Clause::AllRef => CatchKind::CatchAllRef,
                    };
                    let block = b.create_block();
                    for ty in kind.target_params() {
                        b.append_block_param(block, ty);
                    }
                    bodies.push((block, kind.clone(), *id));
                    catches.push(CatchTarget { kind, block });
                }
                lowering.enter_try_table(b, &mut h.policy, catches).unwrap();
            }
            // The call, inside the innermost scope.
            let raise = h.module.declare_func_in_func(h.raise, b.func);
            let raise_sig = b.func.dfg.ext_funcs[raise].signature;
            let cont = b.create_block();
            let normal = b.func.dfg.block_call(cont, &[]);
            let items = match lowering.call_handler(b) {
                Some((tag, pad)) => {
                    let call = b.func.dfg.block_call(pad, &TryTableLowering::pad_args());
                    vec![ExceptionTableItem::Tag(tag, call)]
                }
                None => vec![],
            };
            let et = b
                .func
                .dfg
                .exception_tables
                .push(ExceptionTableData::new(raise_sig, normal, items));
            b.ins().try_call(raise, &[exnref], et);
            b.switch_to_block(cont);
            b.seal_block(cont);
            let zero = b.ins().iconst(types::I64, 0);
            b.ins().return_(&[zero]);
            for _ in scopes {
                lowering.exit_try_table(b).unwrap();
            }
            for (block, kind, id) in bodies {
                b.switch_to_block(block);
                b.seal_block(block);
                let params = b.func.dfg.block_params(block).to_vec();
                let mut sum = b.ins().iconst(types::I64, 0);
                let mut ret_exnref = b.ins().iconst(types::I64, 0);
                let payload_len = match &kind {
                    CatchKind::Catch { payload, .. } | CatchKind::CatchRef { payload, .. } => {
                        payload.len()
                    }
                    _ => 0,
                };
                for v in &params[..payload_len] {
                    let ty = b.func.dfg.value_type(*v);
                    let wide = if ty == types::I64 {
                        *v
                    } else {
                        b.ins().sextend(types::I64, *v)
                    };
                    sum = b.ins().iadd(sum, wide);
                }
                if params.len() > payload_len {
                    ret_exnref = b.ins().uextend(types::I64, params[payload_len]);
                }
                let k = b.ins().iconst(types::I64, 1000);
                let scaled = b.ins().imul(sum, k);
                let base = b.ins().iconst(types::I64, id * 1_000_000);
                let r = b.ins().iadd(base, scaled);
                let r = b.ins().iadd(r, ret_exnref);
                b.ins().return_(&[r]);
            }
        })
    }

    /// `entry(vmctx, exnref)`: calls `callee` inside a catch_all_ref scope
    /// that returns 999_000_000 + exnref, so nothing escapes into Rust.
    fn entry(&mut self, callee: FuncId) -> FuncId {
        self.define(|h, b, vmctx, exnref| {
            let mut lowering = TryTableLowering::new(h.builtins.clone(), vmctx, types::I64);
            let all = b.create_block();
            b.append_block_param(all, types::I32);
            lowering
                .enter_try_table(
                    b,
                    &mut h.policy,
                    vec![CatchTarget {
                        kind: CatchKind::CatchAllRef,
                        block: all,
                    }],
                )
                .unwrap();
            let callee = h.module.declare_func_in_func(callee, b.func);
            let callee_sig = b.func.dfg.ext_funcs[callee].signature;
            let cont = b.create_block();
            b.append_block_param(cont, types::I64);
            let normal = b.func.dfg.block_call(cont, &[BlockArg::TryCallRet(0)]);
            let (tag, pad) = lowering.call_handler(b).unwrap();
            let call = b.func.dfg.block_call(pad, &TryTableLowering::pad_args());
            let et = b.func.dfg.exception_tables.push(ExceptionTableData::new(
                callee_sig,
                normal,
                [ExceptionTableItem::Tag(tag, call)],
            ));
            b.ins().try_call(callee, &[vmctx, exnref], et);
            b.switch_to_block(cont);
            b.seal_block(cont);
            let ret = b.func.dfg.block_params(cont)[0];
            b.ins().return_(&[ret]);
            lowering.exit_try_table(b).unwrap();
            b.switch_to_block(all);
            b.seal_block(all);
            let exnref = b.func.dfg.block_params(all)[0];
            let wide = b.ins().uextend(types::I64, exnref);
            let base = b.ins().iconst(types::I64, 999_000_000);
            let r = b.ins().iadd(base, wide);
            b.ins().return_(&[r]);
        })
    }

    fn define(
        &mut self,
        body: impl FnOnce(
            &mut Self,
            &mut FunctionBuilder,
            cranelift_codegen::ir::Value,
            cranelift_codegen::ir::Value,
        ),
    ) -> FuncId {
        let signature = sig(&[types::I64, types::I32], &[types::I64]);
        let name = format!("f{}", self.next);
        self.next += 1;
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &signature)
            .unwrap();
        let mut ctx = std::mem::replace(&mut self.ctx, cranelift_codegen::Context::new());
        let mut fctx = std::mem::replace(&mut self.fctx, FunctionBuilderContext::new());
        ctx.func.signature = signature;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        self.builtins.reset();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let vmctx = b.block_params(entry)[0];
            let exnref = b.block_params(entry)[1];
            body(self, &mut b, vmctx, exnref);
            // Sealed one by one, as Wasmer's translator does: `finalize`
            // asserts that every block, the adapter's included, is sealed.
            b.seal_block(entry);
            b.finalize(self.module.isa().frontend_config());
        }
        // wasmer-compiler-cranelift rejects trap codes it does not know.
        for block in ctx.func.layout.blocks() {
            for inst in ctx.func.layout.block_insts(block) {
                if let InstructionData::Trap { code, .. } = ctx.func.dfg.insts[inst] {
                    assert_eq!(code, TRAP_UNREACHABLE, "{}", ctx.func.display());
                }
            }
        }
        let prepared = check_landing_pad_form(&ctx.func, self.module.isa(), self.policy.policy())
            .unwrap_or_else(|e| panic!("{e}\n{}", ctx.func.display()));
        self.module.define_function(id, &mut ctx).unwrap();
        self.tables
            .add_function(self.module.isa(), id, &ctx, self.policy.policy(), &prepared)
            .unwrap();
        self.module.clear_context(&mut ctx);
        self.ctx = ctx;
        self.fctx = fctx;
        id
    }

    fn finish(mut self) -> (Jit, Vec<u64>) {
        let tag_data: &'static [u32] =
            Box::leak(self.policy.tag_data().to_vec().into_boxed_slice());
        self.module.finalize_definitions().unwrap();
        let resolve = |name: &str| (name == TAG_DATA_SYMBOL).then_some(tag_data.as_ptr().cast());
        let registration = self.tables.register(&self.module, &resolve).unwrap();
        let jit = Jit {
            _registration: registration,
            module: self.module,
        };
        // A vmctx with the exception builtins at wasmer-types' offsets.
        let size = self.offsets.vmctx_builtin_functions_begin() as usize / 8 + 64;
        let mut vmctx = vec![0u64; size];
        let builtins = VmBuiltins::new(&self.offsets, types::I64, CallConv::SystemV);
        for (builtin, f) in [
            (Builtin::Personality2, personality2_stub as *const u8),
            (Builtin::ReadExnref, read_exnref_stub as *const u8),
            (Builtin::Throw, throw_stub as *const u8),
            (
                Builtin::ExceptionIntoExnref,
                wasmer_vm::libcalls::wasmer_vm_exception_into_exnref as *const u8,
            ),
        ] {
            vmctx[builtins.offset(builtin) as usize / 8] = f as u64;
        }
        (jit, vmctx)
    }
}

/// A finalized module and its registered tables (deregistered first).
struct Jit {
    _registration: Option<Registration>,
    module: JITModule,
}

impl Jit {
    fn get_finalized_function(&self, id: FuncId) -> *const u8 {
        self.module.get_finalized_function(id)
    }
}

/// Call `entry(vmctx, exnref)` with `payload` in the exception's buffer;
/// returns the result and what stage 2 saw.
fn run(
    jit: &Jit,
    vmctx: &mut [u64],
    entry: FuncId,
    exnref: i32,
    payload: &[u8],
) -> (i64, Vec<(Vec<u32>, bool)>, u32) {
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        l.stage2.clear();
        l.rethrows = 0;
        l.payload = [0; 64];
        l.payload[..payload.len()].copy_from_slice(payload);
    });
    let code = jit.get_finalized_function(entry);
    // SAFETY: `entry` is a finalized (i64, i32) -> i64 system_v function
    // of a registered module; every exception it raises is caught inside.
    let f: extern "C-unwind" fn(*mut u64, i32) -> i64 = unsafe { std::mem::transmute(code) };
    let result = f(vmctx.as_mut_ptr(), exnref);
    let (stage2, rethrows) = LOG.with(|l| {
        let l = l.borrow();
        (l.stage2.clone(), l.rethrows)
    });
    (result, stage2, rethrows)
}

fn payload(values: &[(u32, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    for (offset, bytes) in values {
        buf[*offset as usize..*offset as usize + bytes.len()].copy_from_slice(bytes);
    }
    buf
}

#[test]
fn one_scope_catch_catch_ref_and_catch_all_ref() {
    let mut h = Harness::new();
    let f = h.scenario(&[vec![
        (Clause::Catch(3, vec![types::I32, types::I64]), 1),
        (Clause::CatchRef(5, vec![types::I32]), 2),
        (Clause::AllRef, 3),
    ]]);
    let entry = h.entry(f);
    let (jit, mut vmctx) = h.finish();

    // Tag 3 with payload (i32 7, i64 100): one 16-byte RawValue slot each.
    let p = payload(&[(0, &7i32.to_le_bytes()), (16, &100i64.to_le_bytes())]);
    let (r, stage2, _) = run(&jit, &mut vmctx, entry, 3 + 1, &p);
    assert_eq!(r, 1_000_000 + 107 * 1000);
    assert_eq!(
        stage2,
        [(vec![3, 5], true)],
        "stage 1 found tags 3, 5 and a catch-all"
    );

    let p = payload(&[(0, &9i32.to_le_bytes())]);
    let (r, _, _) = run(&jit, &mut vmctx, entry, 5 + 1, &p);
    assert_eq!(
        r,
        2_000_000 + 9 * 1000 + 6,
        "catch_ref gets the payload and the exnref"
    );

    let (r, stage2, rethrows) = run(&jit, &mut vmctx, entry, 8 + 1, &[]);
    assert_eq!(
        (r, stage2.len(), rethrows),
        (3_000_000 + 9, 1, 0),
        "catch_all_ref"
    );
}

#[test]
fn nested_scopes_share_the_inner_pad_and_duplicates_go_inner() {
    let mut h = Harness::new();
    // Outer: catch 1 -> 7, catch 2 -> 8; inner: catch 1 -> 9.
    let f = h.scenario(&[
        vec![(Clause::Catch(1, vec![]), 7), (Clause::Catch(2, vec![]), 8)],
        vec![(Clause::Catch(1, vec![]), 9)],
    ]);
    let entry = h.entry(f);
    let (jit, mut vmctx) = h.finish();

    let (r, stage2, _) = run(&jit, &mut vmctx, entry, 1 + 1, &[]);
    assert_eq!(r, 9_000_000, "the inner clause wins for a duplicate tag");
    assert_eq!(
        stage2,
        [(vec![1, 2], false)],
        "the inner pad lists the outer clauses too, once"
    );
    let (r, _, _) = run(&jit, &mut vmctx, entry, 2 + 1, &[]);
    assert_eq!(r, 8_000_000, "an outer clause reached from the inner pad");

    // No clause matches: the pad rethrows, and the caller's catch_all_ref
    // (another frame, another LSDA) catches it.
    let (r, stage2, rethrows) = run(&jit, &mut vmctx, entry, 3 + 1, &[]);
    assert_eq!((r, rethrows), (999_000_000 + 4, 1));
    assert_eq!(
        stage2.len(),
        1,
        "the entry's pad is catch-all only: no stage 2 there"
    );
}

#[test]
fn nested_scope_with_outer_catch_all() {
    let mut h = Harness::new();
    let f = h.scenario(&[
        vec![(Clause::Catch(2, vec![types::I64]), 4), (Clause::All, 5)],
        vec![(Clause::Catch(1, vec![]), 6)],
    ]);
    let entry = h.entry(f);
    let (jit, mut vmctx) = h.finish();
    let (r, stage2, _) = run(&jit, &mut vmctx, entry, 1 + 1, &[]);
    assert_eq!((r, stage2), (6_000_000, vec![(vec![1, 2], true)]));
    let p = payload(&[(0, &55i64.to_le_bytes())]);
    assert_eq!(
        run(&jit, &mut vmctx, entry, 2 + 1, &p).0,
        4_000_000 + 55_000
    );
    assert_eq!(run(&jit, &mut vmctx, entry, 7 + 1, &[]).0, 5_000_000);
}

#[test]
fn catch_all_only_never_calls_stage_two() {
    let mut h = Harness::new();
    let f = h.scenario(&[vec![(Clause::All, 10)]]);
    let entry = h.entry(f);
    let (jit, mut vmctx) = h.finish();
    for tag in [0, 5, 1000] {
        let (r, stage2, _) = run(&jit, &mut vmctx, entry, tag + 1, &[]);
        assert_eq!(r, 10_000_000);
        assert!(
            stage2.is_empty(),
            "stage 1 delivered selector 0: no stage 2"
        );
    }
}

#[test]
fn sixty_four_clauses() {
    let mut h = Harness::new();
    let clauses: Vec<(Clause, i64)> = (0..64)
        .map(|t| (Clause::Catch(t, vec![types::I32]), 100 + i64::from(t)))
        .collect();
    let f = h.scenario(&[clauses]);
    let entry = h.entry(f);
    let (jit, mut vmctx) = h.finish();
    for tag in [0u32, 42, 63] {
        let p = payload(&[(0, &(tag as i32).to_le_bytes())]);
        let (r, stage2, _) = run(&jit, &mut vmctx, entry, tag as i32 + 1, &p);
        assert_eq!(
            r,
            (100 + i64::from(tag)) * 1_000_000 + i64::from(tag) * 1000
        );
        assert_eq!(stage2, [((0..64).collect::<Vec<u32>>(), false)]);
    }
    // Tag 64 is not caught here: rethrown, caught by the entry.
    let (r, _, rethrows) = run(&jit, &mut vmctx, entry, 64 + 1, &[]);
    assert_eq!((r, rethrows), (999_000_000 + 65, 1));
}
