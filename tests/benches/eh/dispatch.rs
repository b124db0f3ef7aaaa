//! Parts 5 and 6: the normal path and the dispatch in the pad.
//!
//! * A loop of `try_call`s against the same loop of plain calls (JIT, the
//!   callee a Cranelift function returning its argument).
//! * Code bytes of 10 `try_call`s with K clauses each, in landing-pad form
//!   (one item, one shared pad dispatching on the selector) against the
//!   natural per-tag form (one edge per clause and call site).
//! * The pad's dispatch alone, for 1, 8 and 64 clauses: the
//!   `cranelift_frontend::Switch` legalization emits against a compare
//!   chain (stock Wasmer's `brif` chain), on pseudo-random selectors, in
//!   nanoseconds and TSC ticks per dispatch.

use crate::{Mode, Row};
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, types};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Switch};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_lsda::legalize_landing_pads;
use cranelift_module::{Linkage, Module, default_libcall_names};
use std::fmt::Write as _;
use std::time::Instant;

const NORMAL: &str = "5 normal path";
const DISPATCH: &str = "6 dispatch";

const LOOPS: &str = "set unwind_info=true
set opt_level=speed
target x86_64

; eh-tag: tag1 = catch _ZTIi

function %id(i64) -> i64 system_v {
block0(v0: i64):
    return v0
}

function %loop_call(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    fn0 = %id sig0

block0(v0: i64):
    v1 = iconst.i64 0
    jump block1(v0, v1)

block1(v2: i64, v3: i64):
    v4 = call fn0(v3)
    v10 = iconst.i64 1
    v5 = iadd v4, v10
    v6 = isub v2, v10
    brif v6, block1(v6, v5), block2(v5)

block2(v7: i64):
    return v7
}

function %loop_try(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    fn0 = %id sig0

block0(v0: i64):
    v1 = iconst.i64 0
    jump block1(v0, v1)

block1(v2: i64, v3: i64):
    try_call fn0(v3), sig0, block3(ret0), [ tag1: block4(exn0) ]

block3(v4: i64):
    v10 = iconst.i64 1
    v5 = iadd v4, v10
    v6 = isub v2, v10
    brif v6, block1(v6, v5), block2(v5)

block4(v8: i64):
    v9 = iconst.i64 -1
    return v9

block2(v7: i64):
    return v7
}
";

type Entry = unsafe extern "C" fn(i64) -> i64;

/// The normal-path loops, JIT-compiled with their tables registered.
fn loops() -> clif_eh::module::JitFile {
    let file = clif_eh::parse_file(LOOPS).unwrap();
    clif_eh::module::jit_file(&file, &[]).unwrap()
}

fn loop_entry(jit: &clif_eh::module::JitFile, name: &str) -> Entry {
    // SAFETY: the loops are finalized `(i64) -> i64 system_v` functions of
    // `jit`, which the caller keeps.
    unsafe { std::mem::transmute::<*const u8, Entry>(jit.function_ptr(name).unwrap()) }
}

/// The worker under callgrind: run loop `name` (`loop_call`, `loop_try`)
/// for `n` iterations.
pub fn count_worker(args: &[String]) {
    let [name, n] = args else {
        panic!("count worker: expected <loop> <iterations>")
    };
    let jit = loops();
    let n: i64 = n.parse().unwrap();
    // SAFETY: the loop calls `%id` n times and returns n.
    assert_eq!(unsafe { loop_entry(&jit, name)(n) }, n);
}

/// Instructions per iteration of loop `name`, from two callgrind runs
/// whose difference is 10,000 iterations (set-up cancels out).
fn instructions_per_iteration(name: &str) -> Option<f64> {
    let run = |n: i64| crate::callgrind(&["count".into(), name.into(), n.to_string()], None);
    Some((run(11_000)? - run(1_000)?) / 10_000.0)
}

fn normal_path(mode: Mode) -> Vec<Row> {
    let jit = loops();
    let (call, try_call) = (loop_entry(&jit, "loop_call"), loop_entry(&jit, "loop_try"));
    let n = mode.iterations(20_000_000) as i64;
    let time = |f: Entry| {
        let start = Instant::now();
        // SAFETY: the loop calls `%id` n times and returns n.
        assert_eq!(unsafe { f(n) }, n);
        start.elapsed().as_secs_f64() * 1e9 / n as f64
    };
    let (mut calls, mut tries) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        calls.push(time(call));
        tries.push(time(try_call));
    }
    // The code is deterministic: noise only adds, so the best run counts.
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (call_ns, try_ns) = (best(&calls), best(&tries));
    let mut rows = vec![
        Row::new(NORMAL, "loop of try_call vs call (JIT, best of 11)")
            .values(
                format!("{try_ns:.2} ns/iter"),
                format!("{call_ns:.2} ns/iter"),
            )
            .ratio(try_ns, call_ns)
            .target(1.02),
    ];
    match (
        instructions_per_iteration("loop_try"),
        instructions_per_iteration("loop_call"),
    ) {
        (Some(try_ir), Some(call_ir)) => rows.push(
            Row::new(NORMAL, "the same loops, instructions (callgrind)")
                .values(
                    format!("{try_ir:.2} Ir/iter"),
                    format!("{call_ir:.2} Ir/iter"),
                )
                .ratio(try_ir, call_ir)
                .target(1.02)
                .gated("normal-path-ir/loop of try_call", try_ir)
                .headline(),
        ),
        _ => rows.push(
            Row::new(NORMAL, "the same loops, instructions (callgrind)")
                .values("skipped: valgrind did not run", ""),
        ),
    }
    rows
}

/// 10 `try_call`s with the same `clauses` catch clauses, to one handler
/// block per clause, each using the exception and the function's argument:
/// a `try_table` with K catches around 10 calls.
fn many_clauses(clauses: u32) -> String {
    let mut text = String::from("set unwind_info=true\nset opt_level=speed\ntarget x86_64\n");
    for tag in 1..=clauses {
        writeln!(text, "; eh-tag: tag{tag} = catch _ZTI2T{tag}").unwrap();
    }
    text.push_str(
        "function %f(i64) -> i64 system_v {\n    sig0 = (i64) -> i64 system_v\n    \
         fn0 = %g sig0\nblock0(v0: i64):\n    jump block1(v0)\n",
    );
    // Calls in blocks 1..=10, their continuation 11, handlers from 100.
    let items: Vec<String> = (1..=clauses)
        .map(|tag| format!("tag{tag}: block{}(exn0)", 100 + tag))
        .collect();
    for call in 1..=10 {
        writeln!(
            text,
            "block{call}(v{call}: i64):\n    try_call fn0(v{call}), sig0, block{}(ret0), [ {} ]",
            call + 1,
            items.join(", ")
        )
        .unwrap();
    }
    writeln!(text, "block11(v11: i64):\n    return v11").unwrap();
    for tag in 1..=clauses {
        let handler = 100 + tag;
        // The handler uses the payload and a value live across the calls.
        writeln!(
            text,
            "block{handler}(v{handler}: i64):\n    v{} = iadd v{handler}, v0\n    return v{}",
            1000 + handler,
            1000 + handler
        )
        .unwrap();
    }
    text.push_str("}\n");
    text
}

fn code_bytes(clauses: u32) -> Row {
    let file = clif_eh::parse_file(&many_clauses(clauses)).unwrap();
    let isa = &*file.isas[0];
    let compile = |func| {
        let mut ctx = Context::for_function(func);
        let code = ctx.compile(isa, &mut ControlPlane::default()).unwrap();
        code.code_buffer().len()
    };
    let per_tag = compile(file.functions[0].clone());
    let mut legalized = file.functions[0].clone();
    let mut policy = file.policy.clone();
    legalize_landing_pads(&mut legalized, isa, &mut policy).unwrap();
    let landing_pad = compile(legalized);
    Row::new(
        NORMAL,
        format!("code bytes, 10 try_calls × {clauses} clause(s)"),
    )
    .values(
        format!("{landing_pad} B landing-pad form"),
        format!("{per_tag} B per-tag edges"),
    )
    .ratio(landing_pad as f64, per_tag as f64)
    .gated(
        format!("code-bytes/10 try_calls × {clauses} clause(s)"),
        landing_pad as f64,
    )
}

/// `f(n)`: n dispatches on pseudo-random selectors in 1..=cases, by
/// `Switch` or by a compare chain; returns the sum of the case values.
fn dispatch_function(module: &mut JITModule, cases: u32, chain: bool) -> Entry {
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let name = format!("dispatch_{cases}_{chain}");
    let id = module
        .declare_function(&name, Linkage::Local, &sig)
        .unwrap();
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let config = module.isa().frontend_config();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let (entry, head, done) = (b.create_block(), b.create_block(), b.create_block());
    let (next, fallback) = (b.create_block(), b.create_block());
    b.append_block_params_for_function_params(entry);
    for block in [head, next] {
        // (remaining, xorshift state, sum)
        for _ in 0..3 {
            b.append_block_param(block, types::I64);
        }
    }
    b.append_block_param(done, types::I64);
    b.switch_to_block(entry);
    let n = b.block_params(entry)[0];
    let seed = b.ins().iconst(types::I64, 0x9E37_79B9_7F4A_7C15_u64 as i64);
    let zero = b.ins().iconst(types::I64, 0);
    b.ins().jump(head, &[n.into(), seed.into(), zero.into()]);

    b.switch_to_block(head);
    let [remaining, state, sum] = b.block_params(head)[..] else {
        unreachable!()
    };
    let mut x = state;
    for (shift, left) in [(13, true), (7, false), (17, true)] {
        let shifted = if left {
            b.ins().ishl_imm_u(x, shift)
        } else {
            b.ins().ushr_imm_u(x, shift)
        };
        x = b.ins().bxor(x, shifted);
    }
    let high = b.ins().ushr_imm_u(x, 32);
    let cases_value = b.ins().iconst(types::I64, i64::from(cases));
    let index = b.ins().urem(high, cases_value);
    let selector = b.ins().iadd_imm_s(index, 1);
    let case_blocks: Vec<_> = (0..cases).map(|_| b.create_block()).collect();
    if chain {
        for (i, &case) in case_blocks.iter().enumerate() {
            let is = b.ins().icmp_imm_s(
                cranelift_codegen::ir::condcodes::IntCC::Equal,
                selector,
                i as i64 + 1,
            );
            let otherwise = b.create_block();
            b.ins().brif(is, case, &[], otherwise, &[]);
            b.switch_to_block(otherwise);
        }
        b.ins().jump(fallback, &[]);
    } else {
        let mut switch = Switch::new();
        for (i, &case) in case_blocks.iter().enumerate() {
            switch.set_entry(i as u128 + 1, case);
        }
        switch.emit(&mut b, selector, fallback);
    }
    for (i, &case) in case_blocks.iter().enumerate() {
        b.switch_to_block(case);
        let value = b.ins().iconst(types::I64, i as i64 * 7 + 3);
        let sum = b.ins().iadd(sum, value);
        b.ins()
            .jump(next, &[remaining.into(), x.into(), sum.into()]);
    }
    b.switch_to_block(fallback);
    b.ins()
        .trap(cranelift_codegen::ir::TrapCode::unwrap_user(1));
    b.switch_to_block(next);
    let [remaining, x, sum] = b.block_params(next)[..] else {
        unreachable!()
    };
    let remaining = b.ins().iadd_imm_s(remaining, -1);
    b.ins().brif(
        remaining,
        head,
        &[remaining.into(), x.into(), sum.into()],
        done,
        &[sum.into()],
    );
    b.switch_to_block(done);
    let sum = b.block_params(done)[0];
    b.ins().return_(&[sum]);
    b.seal_all_blocks();
    b.finalize(config);
    module.define_function(id, &mut ctx).unwrap();
    module.clear_context(&mut ctx);
    module.finalize_definitions().unwrap();
    // SAFETY: a finalized `(i64) -> i64 system_v` function of `module`.
    unsafe { std::mem::transmute(module.get_finalized_function(id)) }
}

#[cfg(target_arch = "x86_64")]
fn ticks() -> u64 {
    // SAFETY: RDTSC reads the time-stamp counter and has no other effect.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn dispatch(mode: Mode) -> Vec<Row> {
    use cranelift_codegen::settings::{self, Configurable};
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").unwrap();
    let isa = cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap();
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let n = mode.iterations(10_000_000) as i64;
    let mut rows = Vec::new();
    for cases in [1, 8, 64] {
        let switch = dispatch_function(&mut module, cases, false);
        let chain = dispatch_function(&mut module, cases, true);
        let measure = |f: Entry| {
            let (start, t0) = (Instant::now(), ticks());
            // SAFETY: the function only computes; it traps on no selector,
            // which cannot happen for selectors in 1..=cases.
            let sum = unsafe { f(n) };
            let (ns, tsc) = (start.elapsed().as_secs_f64() * 1e9, ticks() - t0);
            (sum, ns / n as f64, tsc as f64 / n as f64)
        };
        let (mut s, mut c) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let (sum_s, ns_s, tsc_s) = measure(switch);
            let (sum_c, ns_c, tsc_c) = measure(chain);
            assert_eq!(sum_s, sum_c, "both dispatch alike");
            s.push((ns_s, tsc_s));
            c.push((ns_c, tsc_c));
        }
        // The code is deterministic: noise only adds, so the best run counts.
        let best = |v: &Vec<(f64, f64)>| {
            let min = |f: fn(&(f64, f64)) -> f64| v.iter().map(f).fold(f64::INFINITY, f64::min);
            (min(|p| p.0), min(|p| p.1))
        };
        let ((ns_s, tsc_s), (ns_c, tsc_c)) = (best(&s), best(&c));
        rows.push(
            Row::new(
                DISPATCH,
                format!("{cases} clause(s): Switch vs compare chain, per dispatch (best of 7)"),
            )
            .values(
                format!("{ns_s:.2} ns ({tsc_s:.1} ticks)"),
                format!("{ns_c:.2} ns ({tsc_c:.1} ticks)"),
            )
            .ratio(ns_s, ns_c),
        );
    }
    rows
}

pub fn rows(mode: Mode) -> Vec<Row> {
    let mut rows = normal_path(mode);
    for clauses in [1, 8, 64] {
        rows.push(code_bytes(clauses));
    }
    rows.extend(dispatch(mode));
    rows
}
