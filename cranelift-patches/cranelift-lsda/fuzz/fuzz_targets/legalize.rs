//! Legalization on arbitrary functions with `try_call`s: the pass either
//! refuses with a typed error, or its result verifies, compiles, and its
//! LSDA decodes, call site by call site, to each `try_call`'s original
//! clause list.

#![no_main]

use arbitrary::Arbitrary;
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{
    AbiParam, BlockArg, ExceptionTableData, ExceptionTableItem, ExceptionTag, ExternalName,
    Function, InstBuilder, Signature, UserFuncName,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_lsda::{
    Clause, ClauseList, ClausePolicy, DefaultAction, LsdaEncoding, SelectorConvention, TypeEntry,
    decode_back, legalize_landing_pads, tables_for_compiled, try_call_clauses,
};
use gimli::RunTimeEndian;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Item {
    /// `None`: a `default` item; else tag 1 to 4.
    tag: Option<u8>,
    destination: u8,
    /// What each of the destination's parameters receives: exn0, exn1, v0.
    args: [u8; 2],
}

#[derive(Arbitrary, Debug)]
struct Case {
    /// Per tag 1 to 4: its clause seeds.
    tags: [Vec<u8>; 4],
    convention: u8,
    default_cleanup: bool,
    /// Per destination block: how many i64 parameters (0 to 2).
    destinations: Vec<u8>,
    calls: Vec<Vec<Item>>,
    aarch64: bool,
}

fn isa(aarch64: bool) -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.enable("unwind_info").unwrap();
    let name = if aarch64 { "aarch64" } else { "x86_64" };
    cranelift_codegen::isa::lookup_by_name(name)
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

fn clause(seed: u8) -> Clause {
    match seed % 6 {
        0 => Clause::Cleanup,
        1 => Clause::Catch(TypeEntry::CatchAll),
        n => Clause::Catch(TypeEntry::symbol(format!("_ZTI{n}"))),
    }
}

fn policy(case: &Case) -> Option<ClausePolicy> {
    let convention = match case.convention % 3 {
        0 => SelectorConvention::TypeFilter,
        1 => SelectorConvention::AlwaysZero,
        _ => SelectorConvention::CatchAllZeroTypedOne,
    };
    let default = if case.default_cleanup {
        DefaultAction::Cleanup
    } else {
        DefaultAction::CatchAll
    };
    let mut policy = ClausePolicy::new(default, convention);
    for (i, seeds) in case.tags.iter().enumerate() {
        let clauses: Vec<Clause> = seeds.iter().take(4).map(|&s| clause(s)).collect();
        if clauses.is_empty() {
            continue;
        }
        policy
            .define_clause_set(ExceptionTag::from_u32(i as u32 + 1), clauses)
            .ok()?;
    }
    Some(policy)
}

/// `f(v0) = try_call g(v0)` for each call in turn; every catch item goes
/// to one of the destination blocks, which return.
fn function(case: &Case, isa: &OwnedTargetIsa) -> Option<Function> {
    let destinations: Vec<usize> = case
        .destinations
        .iter()
        .take(6)
        .map(|&n| usize::from(n % 3))
        .collect();
    let calls: Vec<&Vec<Item>> = case.calls.iter().take(4).collect();
    if destinations.is_empty() || calls.is_empty() {
        return None;
    }
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I64));
    let mut func = Function::with_name_signature(UserFuncName::testcase("f"), sig.clone());
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let callee_sig = b.import_signature(sig);
    let callee_name = b
        .func
        .declare_imported_user_function(cranelift_codegen::ir::UserExternalName::new(0, 1));
    let callee = b.import_function(cranelift_codegen::ir::ExtFuncData {
        name: ExternalName::user(callee_name),
        signature: callee_sig,
        colocated: false,
        patchable: false,
    });
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    let dest_blocks: Vec<_> = destinations
        .iter()
        .map(|&params| {
            let block = b.create_block();
            for _ in 0..params {
                b.append_block_param(block, I64);
            }
            block
        })
        .collect();
    b.switch_to_block(entry);
    let v0 = b.block_params(entry)[0];
    let mut current = entry;
    for items in calls {
        let next = b.create_block();
        b.append_block_param(next, I64);
        let normal = b.func.dfg.block_call(next, &[BlockArg::TryCallRet(0)]);
        let mut table = Vec::new();
        for item in items.iter().take(5) {
            let d = usize::from(item.destination) % dest_blocks.len();
            let args: Vec<BlockArg> = (0..destinations[d])
                .map(|p| match item.args[p] % 3 {
                    0 => BlockArg::TryCallExn(0),
                    1 => BlockArg::TryCallExn(1),
                    _ => BlockArg::Value(v0),
                })
                .collect();
            let call = b.func.dfg.block_call(dest_blocks[d], &args);
            table.push(match item.tag {
                None => ExceptionTableItem::Default(call),
                Some(t) => {
                    ExceptionTableItem::Tag(ExceptionTag::from_u32(u32::from(t % 4) + 1), call)
                }
            });
        }
        let et = b
            .func
            .dfg
            .exception_tables
            .push(ExceptionTableData::new(callee_sig, normal, table));
        b.ins().try_call(callee, &[v0], et);
        b.seal_block(current);
        b.switch_to_block(next);
        current = next;
    }
    let result = b.block_params(current)[0];
    b.ins().return_(&[result]);
    b.seal_block(current);
    for (&block, &params) in dest_blocks.iter().zip(&destinations) {
        b.switch_to_block(block);
        let value = if params > 0 {
            b.block_params(block)[params - 1]
        } else {
            v0
        };
        b.ins().return_(&[value]);
        b.seal_block(block);
    }
    b.finalize(isa.frontend_config());
    Some(func)
}

fuzz_target!(|case: Case| {
    let isa = isa(case.aarch64);
    let (Some(mut policy), Some(mut func)) = (policy(&case), function(&case, &isa)) else {
        return;
    };
    if cranelift_codegen::verify_function(&func, &*isa).is_err() {
        return;
    }
    // Each try_call's clauses before legalization, in layout order.
    let original: Vec<ClauseList> = func
        .layout
        .blocks()
        .filter_map(|block| func.layout.last_inst(block))
        .filter_map(|inst| try_call_clauses(&func, inst, &policy).ok().flatten())
        .collect();
    let Ok(prepared) = legalize_landing_pads(&mut func, &*isa, &mut policy) else {
        return;
    };
    cranelift_codegen::verify_function(&func, &*isa).expect("the legalized function verifies");
    let mut ctx = Context::for_function(func);
    ctx.compile(&*isa, &mut ControlPlane::default())
        .expect("it compiles");
    let tables = tables_for_compiled(&ctx, &*isa, &policy, &prepared, LsdaEncoding::object())
        .expect("its tables encode");
    let Some(lsda) = tables.lsda else {
        assert!(original.is_empty());
        return;
    };
    let decoded = decode_back(&lsda, RunTimeEndian::Little).unwrap();
    let code = ctx.compiled_code().expect("compiled above");
    let pads: Vec<Vec<Clause>> = code
        .buffer
        .call_sites()
        .filter(|site| !site.exception_handlers.is_empty())
        .map(|site| {
            let record = decoded
                .lookup(u64::from(site.ret_addr) - 1)
                .expect("covered");
            assert_ne!(record.landing_pad, 0);
            decoded.clauses(record).expect("chains name table entries")
        })
        .collect();
    let expected: Vec<Vec<Clause>> = original.iter().map(|l| l.clauses().to_vec()).collect();
    assert_eq!(pads, expected);
});
