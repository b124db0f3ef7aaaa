//! Landing-pad legalization on CLIF read with cranelift-reader: the result
//! verifies, compiles to call sites with a single pad, and its pad sends
//! every selector to the original destination with the original arguments
//! (checked by following the pad's branches for each selector value).

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    Block, BlockArg, ExceptionTableItem, ExceptionTag, Function, InstructionData, Opcode, Value,
};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::{Context, FinalizedMachExceptionHandler};
use cranelift_lsda::{
    Clause, ClausePolicy, DecodedTypeEntry, DefaultAction, FormError, LsdaEncoding, LsdaError,
    PolicyError, SelectorConvention, TryCallForm, TypeEntry, UnsupportedTarget,
    check_landing_pad_form, decode_back, legalize_landing_pads, tables_for_compiled,
};
use eh_test_support::parse_clif as parse;
use std::collections::HashMap;

fn cxx_policy(default: DefaultAction) -> ClausePolicy {
    let mut p = ClausePolicy::new(default, SelectorConvention::TypeFilter);
    p.define(
        ExceptionTag::from_u32(1),
        Clause::Catch(TypeEntry::symbol("_ZTIi")),
    )
    .unwrap();
    p.define(
        ExceptionTag::from_u32(2),
        Clause::Catch(TypeEntry::symbol("_ZTI3Foo")),
    )
    .unwrap();
    p.define(
        ExceptionTag::from_u32(3),
        Clause::Catch(TypeEntry::CatchAll),
    )
    .unwrap();
    p
}

/// Where a pad goes for one selector: the destination and its arguments,
/// with `exn0` shown as "exn0" and other values by name.
#[derive(Debug, PartialEq, Eq)]
struct Reached {
    block: Block,
    args: Vec<String>,
}

/// Follow the pad's branches for `selector`. Handles what the pass emits
/// (`brif`, `br_table`, compares, `ireduce`); anything else fails the test.
/// A pad without a selector parameter ignores `selector`.
fn follow(func: &Function, pad: Block, selector: u64, original_blocks: usize) -> Reached {
    let params = func.dfg.block_params(pad);
    let mut env: HashMap<Value, u64> = HashMap::new();
    let exn0 = params.first().copied();
    if let Some(&selector_param) = params.get(1) {
        env.insert(selector_param, selector);
    }
    let mut block = pad;
    let mask = |v: Value, x: u64| -> u64 {
        let bits = func.dfg.value_type(v).bits();
        if bits >= 64 { x } else { x & ((1 << bits) - 1) }
    };
    for _ in 0..64 {
        for inst in func.layout.block_insts(block) {
            let result = func.dfg.inst_results(inst).first().copied();
            let target = match &func.dfg.insts[inst] {
                InstructionData::UnaryImm { imm, .. } => {
                    let r = result.unwrap();
                    env.insert(r, mask(r, imm.bits() as u64));
                    None
                }
                InstructionData::IntCompare { cond, args, .. } => {
                    env.insert(
                        result.unwrap(),
                        u64::from(eval(*cond, env[&args[0]], env[&args[1]])),
                    );
                    None
                }
                InstructionData::Binary {
                    opcode: op @ (Opcode::Iadd | Opcode::Isub),
                    args,
                } => {
                    let r = result.unwrap();
                    let (x, y) = (env[&args[0]], env[&args[1]]);
                    let v = if *op == Opcode::Iadd {
                        x.wrapping_add(y)
                    } else {
                        x.wrapping_sub(y)
                    };
                    env.insert(r, mask(r, v));
                    None
                }
                InstructionData::Unary {
                    opcode: Opcode::Ireduce | Opcode::Uextend,
                    arg,
                } => {
                    let r = result.unwrap();
                    env.insert(r, mask(r, env[arg]));
                    None
                }
                InstructionData::Brif { arg, blocks, .. } => {
                    Some(blocks[if env[arg] != 0 { 0 } else { 1 }])
                }
                InstructionData::Jump { destination, .. } => Some(*destination),
                InstructionData::BranchTable { arg, table, .. } => {
                    let jt = &func.dfg.jump_tables[*table];
                    let idx = env[arg] as usize;
                    Some(
                        jt.as_slice()
                            .get(idx)
                            .copied()
                            .unwrap_or(jt.default_block()),
                    )
                }
                other => panic!("unexpected instruction in pad: {other:?}"),
            };
            if let Some(call) = target {
                let dest = call.block(&func.dfg.value_lists);
                let args: Vec<String> = call
                    .args(&func.dfg.value_lists)
                    .map(|a| match a {
                        BlockArg::Value(v) if Some(v) == exn0 => "exn0".to_string(),
                        BlockArg::Value(v) if env.contains_key(&v) => format!("{}", env[&v]),
                        BlockArg::Value(v) => v.to_string(),
                        other => other.to_string(),
                    })
                    .collect();
                if (dest.as_u32() as usize) < original_blocks {
                    return Reached { block: dest, args };
                }
                assert!(args.is_empty(), "pad-internal block with arguments");
                block = dest;
                break;
            }
        }
    }
    panic!("pad dispatch did not reach an original block")
}

fn eval(cond: IntCC, a: u64, b: u64) -> bool {
    match cond {
        IntCC::Equal => a == b,
        IntCC::NotEqual => a != b,
        IntCC::UnsignedLessThan => a < b,
        IntCC::UnsignedLessThanOrEqual => a <= b,
        IntCC::UnsignedGreaterThan => a > b,
        IntCC::UnsignedGreaterThanOrEqual => a >= b,
        IntCC::SignedLessThan => (a as i64) < (b as i64),
        IntCC::SignedLessThanOrEqual => (a as i64) <= (b as i64),
        IntCC::SignedGreaterThan => (a as i64) > (b as i64),
        IntCC::SignedGreaterThanOrEqual => (a as i64) >= (b as i64),
    }
}

/// The one catch item of every `try_call` of `func`: its tag (`None` for
/// `default`), pad and arguments; a `context` item or a second item fails.
fn catch_items(func: &Function) -> Vec<(Option<ExceptionTag>, Block, Vec<BlockArg>)> {
    let mut out = Vec::new();
    for block in func.layout.blocks() {
        let inst = func.layout.last_inst(block).unwrap();
        let Some(et) = func.dfg.insts[inst].exception_table() else {
            continue;
        };
        let items: Vec<_> = func.dfg.exception_tables[et].items().collect();
        assert_eq!(items.len(), 1, "{}", func.display());
        let (tag, call) = match items[0] {
            ExceptionTableItem::Tag(tag, call) => (Some(tag), call),
            ExceptionTableItem::Default(call) => (None, call),
            ExceptionTableItem::Context(_) => panic!("a context item survived"),
        };
        let pool = &func.dfg.value_lists;
        out.push((tag, call.block(pool), call.args(pool).collect()));
    }
    out
}

/// The single catch item of a legalized try_call: (tag, pad block), the
/// pad taking `(exn0, exn1)`.
fn single_item(func: &Function) -> Vec<(ExceptionTag, Block)> {
    catch_items(func)
        .into_iter()
        .map(|(tag, pad, args)| {
            assert_eq!(args, [BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)]);
            (tag.expect("a tag item"), pad)
        })
        .collect()
}

/// Compile and return (code length, per try_call the number of handlers).
fn compile(func: &Function, isa: &OwnedTargetIsa) -> (u32, Vec<usize>) {
    let mut ctx = Context::for_function(func.clone());
    let code = ctx.compile(&**isa, &mut ControlPlane::default()).unwrap();
    let handlers = code
        .buffer
        .call_sites()
        .filter(|s| !s.exception_handlers.is_empty())
        .map(|s| {
            s.exception_handlers
                .iter()
                .filter(|h| !matches!(h, FinalizedMachExceptionHandler::Context(_)))
                .count()
        })
        .collect();
    (code.code_buffer().len() as u32, handlers)
}

const THREE_WAY: &str = "
set unwind_info=true
target x86_64
function %f(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    fn0 = %g sig0
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ context v0, tag1: block2(exn0), tag2: block3(v0, exn0), default: block4(exn0, exn1) ]
block1(v1: i64):
    return v1
block2(v2: i64):
    return v2
block3(v3: i64, v4: i64):
    return v4
block4(v5: i64, v6: i64):
    return v6
}";

#[test]
fn three_destinations_become_one_pad_with_a_branch_table() {
    let (mut func, isa) = parse(THREE_WAY);
    let original_blocks = func.dfg.num_blocks();
    let mut policy = cxx_policy(DefaultAction::Cleanup);
    let before = check_landing_pad_form(&func, &*isa, &policy);
    assert!(
        matches!(
            before,
            Err(LsdaError::Form(FormError::NotLandingPadForm { .. }))
        ),
        "{before:?}"
    );

    let prepared = legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap();
    cranelift_codegen::verify_function(&func, &*isa).unwrap();
    let items = single_item(&func);
    let (tag, pad) = items[0];
    assert_eq!(
        policy.clauses(tag).unwrap().clauses(),
        [
            Clause::Catch(TypeEntry::symbol("_ZTIi")),
            Clause::Catch(TypeEntry::symbol("_ZTI3Foo")),
            Clause::Cleanup
        ]
    );
    assert!(matches!(prepared.reports()[0].form, TryCallForm::LandingPad(b) if b == pad));

    // Selector 1 = _ZTIi, 2 = _ZTI3Foo, 0 = cleanup (libstdc++ convention).
    let b = |n| Block::from_u32(n);
    assert_eq!(
        follow(&func, pad, 1, original_blocks),
        Reached {
            block: b(2),
            args: vec!["exn0".into()]
        }
    );
    assert_eq!(
        follow(&func, pad, 2, original_blocks),
        Reached {
            block: b(3),
            args: vec!["v0".into(), "exn0".into()]
        }
    );
    assert_eq!(
        follow(&func, pad, 0, original_blocks),
        Reached {
            block: b(4),
            args: vec!["exn0".into(), "0".into()]
        }
    );

    // The compiled call site has one handler, hence one landing pad.
    let (code_len, handlers) = compile(&func, &isa);
    assert_eq!(handlers, [1]);
    let mut ctx = Context::for_function(func.clone());
    let code = ctx.compile(&*isa, &mut ControlPlane::default()).unwrap();
    assert_eq!(code.code_buffer().len() as u32, code_len);
    let tables = tables_for_compiled(&ctx, &*isa, &policy, &prepared, LsdaEncoding::object());
    let lsda = tables.unwrap().lsda.unwrap();
    let decoded = decode_back(&lsda, gimli::RunTimeEndian::Little).unwrap();
    let symbols = decoded
        .type_entries
        .iter()
        .filter(|e| matches!(e, DecodedTypeEntry::Symbol { .. }))
        .count();
    assert_eq!(symbols, 2);
}

#[test]
fn a_try_call_already_in_landing_pad_form_keeps_its_pad() {
    let text = "
set unwind_info=true
target aarch64
function %f(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    fn0 = %g sig0
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ tag1: block2(exn0, exn1), tag3: block2(exn0, exn1) ]
block1(v1: i64):
    return v1
block2(v2: i64, v3: i64):
    return v3
}";
    let (mut func, isa) = parse(text);
    let mut policy = cxx_policy(DefaultAction::CatchAll);
    assert!(check_landing_pad_form(&func, &*isa, &policy).is_ok());
    let blocks = func.dfg.num_blocks();
    legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap();
    assert_eq!(func.dfg.num_blocks(), blocks, "no pad block needed");
    assert_eq!(single_item(&func)[0].1, Block::from_u32(2));
    assert_eq!(compile(&func, &isa).1, [1]);
}

#[test]
fn code_size_does_not_grow_with_the_clause_count() {
    let make = |clauses: usize| {
        let items: Vec<String> = (1..=clauses)
            .map(|t| format!("tag{t}: block2(exn0, exn1)"))
            .collect();
        format!(
            "set unwind_info=true
target x86_64
function %f(i64) -> i64 system_v {{
    sig0 = (i64) -> i64 system_v
    fn0 = %g sig0
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ {} ]
block1(v1: i64):
    return v1
block2(v2: i64, v3: i64):
    return v3
}}",
            items.join(", ")
        )
    };
    let mut sizes = Vec::new();
    let mut unlegalized = Vec::new();
    for clauses in [1, 8, 64] {
        let (mut func, isa) = parse(&make(clauses));
        unlegalized.push(compile(&func, &isa).0);
        let mut policy = ClausePolicy::new(DefaultAction::CatchAll, SelectorConvention::TypeFilter);
        for t in 1..=clauses as u32 {
            policy
                .define(
                    ExceptionTag::from_u32(t),
                    Clause::Catch(TypeEntry::symbol(format!("t{t}"))),
                )
                .unwrap();
        }
        legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap();
        let (len, handlers) = compile(&func, &isa);
        assert_eq!(handlers, [1]);
        sizes.push(len);
    }
    // Without legalization Cranelift emits a trampoline per item.
    assert!(unlegalized[2] > unlegalized[0], "{unlegalized:?}");
    assert_eq!(sizes, [sizes[0]; 3]);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let with = |sig: &str, table: &str| {
        format!(
            "set unwind_info=true
target x86_64
function %f(i64) -> i64 system_v {{
    sig0 = {sig}
    fn0 = %g sig0
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ {table} ]
block1(v1: i64):
    return v1
block2(v2: i64):
    return v2
block3(v3: i64):
    return v3
}}"
        )
    };
    // A callee convention without payload registers.
    let (mut func, isa) = parse(&with("(i64) -> i64 winch", "tag1: block2(v0)"));
    let mut policy = cxx_policy(DefaultAction::CatchAll);
    let err = legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap_err();
    assert!(
        matches!(err, LsdaError::Form(FormError::UnsupportedCallConv { .. })),
        "{err}"
    );

    // A tag the policy does not know.
    let (mut func, isa) = parse(&with("(i64) -> i64 system_v", "tag9: block2(exn0)"));
    let err = legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap_err();
    assert_eq!(err, PolicyError::UnknownTag(9).into());

    // Rust's personality delivers 0 for everything: two destinations
    // cannot be told apart.
    let mut rust = ClausePolicy::new(DefaultAction::CatchAll, SelectorConvention::AlwaysZero);
    rust.define(
        ExceptionTag::from_u32(1),
        Clause::Catch(TypeEntry::symbol("x")),
    )
    .unwrap();
    let (mut func, isa) = parse(&with(
        "(i64) -> i64 system_v",
        "tag1: block2(exn0), default: block3(exn0)",
    ));
    let err = legalize_landing_pads(&mut func, &*isa, &mut rust).unwrap_err();
    assert!(
        matches!(
            err,
            LsdaError::Form(FormError::AmbiguousSelector { selector: 0, .. })
        ),
        "{err}"
    );

    // Unwind info off.
    let text = with("(i64) -> i64 system_v", "tag1: block2(exn0)")
        .replace("set unwind_info=true", "set unwind_info=false");
    let (mut func, isa) = parse(&text);
    let err = legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap_err();
    assert_eq!(err, UnsupportedTarget::UnwindInfoOff.into(), "{err}");
}

#[test]
fn every_isa_with_try_call_gets_a_single_pad() {
    for target in ["x86_64", "aarch64", "riscv64", "s390x"] {
        let text = THREE_WAY.replace("target x86_64", &format!("target {target}"));
        let (mut func, isa) = parse(&text);
        let mut policy = cxx_policy(DefaultAction::Cleanup);
        legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap();
        assert_eq!(compile(&func, &isa).1, [1], "{target}");
    }
}

/// The one catch item of every `try_call` of `func`: its pad and arguments.
fn pads(func: &Function) -> Vec<(Block, Vec<BlockArg>)> {
    catch_items(func)
        .into_iter()
        .map(|(_, pad, args)| (pad, args))
        .collect()
}

/// `try_call`s with `items`, one call per entry, each returning to the
/// next; handler blocks `block100 + n(v: i64)` return their argument.
fn calls_with(items: &[&str], handlers: u32) -> String {
    let mut text = String::from(
        "set unwind_info=true\nset opt_level=speed\ntarget x86_64\n\
         function %f(i64) -> i64 system_v {\n    sig0 = (i64) -> i64 system_v\n    fn0 = %g sig0\n\
         block0(v0: i64):\n    jump block1(v0)\n",
    );
    for (i, items) in items.iter().enumerate() {
        let n = i + 1;
        text += &format!(
            "block{n}(v{n}: i64):\n    try_call fn0(v{n}), sig0, block{}(ret0), [ {items} ]\n",
            n + 1
        );
    }
    let last = items.len() + 1;
    text += &format!("block{last}(v{last}: i64):\n    return v{last}\n");
    for h in 0..handlers {
        text += &format!(
            "block{}(v{}: i64) cold:\n    return v{}\n",
            100 + h,
            100 + h,
            100 + h
        );
    }
    text + "}"
}

/// Legalize `text` under `policy`, verify it, and follow every call's pad
/// for each `(selector, block)`: it must reach `block100 + n` with exn0.
fn legalized_dispatch(text: &str, policy: &mut ClausePolicy, expect: &[(u64, u32)]) -> Function {
    let (mut func, isa) = parse(text);
    let original_blocks = func.dfg.num_blocks();
    legalize_landing_pads(&mut func, &*isa, policy).unwrap();
    cranelift_codegen::verify_function(&func, &*isa).unwrap();
    let (pad, _) = pads(&func).pop().unwrap();
    for &(selector, handler) in expect {
        assert_eq!(
            follow(&func, pad, selector, original_blocks),
            Reached {
                block: Block::from_u32(100 + handler),
                args: vec!["exn0".into()]
            },
            "selector {selector}:\n{}",
            func.display()
        );
    }
    compile(&func, &isa);
    func
}

fn pad_insts(func: &Function) -> Vec<Opcode> {
    let (pad, _) = pads(func).pop().unwrap();
    func.layout
        .block_insts(pad)
        .map(|i| func.dfg.insts[i].opcode())
        .collect()
}

#[test]
fn a_cleanup_and_a_catch_are_one_brif_on_the_selector() {
    // Selectors 0 (cleanup) and 1 (_ZTIi): `brif exn1` needs no compare.
    let mut policy = cxx_policy(DefaultAction::Cleanup);
    let text = calls_with(&["tag1: block100(exn0), default: block101(exn0)"], 2);
    let func = legalized_dispatch(&text, &mut policy, &[(1, 0), (0, 1)]);
    assert_eq!(pad_insts(&func), [Opcode::Brif]);
    // Selectors 1 and 2: one compare with 2.
    let mut policy = cxx_policy(DefaultAction::Cleanup);
    let text = calls_with(&["tag1: block100(exn0), tag2: block101(exn0)"], 2);
    let func = legalized_dispatch(&text, &mut policy, &[(1, 0), (2, 1)]);
    assert_eq!(
        pad_insts(&func),
        [Opcode::Iconst, Opcode::Icmp, Opcode::Brif]
    );
}

#[test]
fn sparse_selectors_are_a_chain_of_compares() {
    // Ten types in the type table (the first call lists them all); the
    // second call catches types 1, 5 and 10: too sparse for a table.
    let mut policy = ClausePolicy::new(DefaultAction::Cleanup, SelectorConvention::TypeFilter);
    for n in 1..=10 {
        policy
            .define(
                ExceptionTag::from_u32(n),
                Clause::Catch(TypeEntry::symbol(format!("_ZTI2T{n}"))),
            )
            .unwrap();
    }
    let all: Vec<String> = (1..=10)
        .map(|n| format!("tag{n}: block103(exn0)"))
        .collect();
    let first = all.join(", ");
    let text = calls_with(
        &[
            &first,
            "tag1: block100(exn0), tag5: block101(exn0), tag10: block102(exn0)",
        ],
        4,
    );
    let func = legalized_dispatch(&text, &mut policy, &[(1, 0), (5, 1), (10, 2)]);
    assert!(
        !pad_insts(&func).contains(&Opcode::BrTable),
        "{}",
        func.display()
    );
}

#[test]
fn a_pad_with_one_destination_takes_only_the_payload_it_passes_on() {
    // Two calls land on block100(exn0): they share a forwarding pad, which
    // takes exn0 alone; the third call needs a dispatch.
    let mut policy = cxx_policy(DefaultAction::Cleanup);
    let text = calls_with(
        &[
            "tag1: block100(exn0)",
            "tag1: block100(exn0)",
            "tag1: block101(exn0), tag2: block102(exn0)",
        ],
        3,
    );
    let (mut func, isa) = parse(&text);
    legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap();
    cranelift_codegen::verify_function(&func, &*isa).unwrap();
    let pads = pads(&func);
    assert_eq!(pads[0], pads[1], "the two calls share one pad");
    assert_ne!(pads[0].0, Block::from_u32(100), "a forwarding pad");
    assert_eq!(pads[0].1, [BlockArg::TryCallExn(0)]);
    assert_eq!(func.dfg.block_params(pads[0].0).len(), 1);
    // Both share one landing pad and, in the LSDA, one call-site record.
    assert_eq!(compile(&func, &isa).1.len(), 3);
}

#[test]
fn calls_already_in_form_are_only_checked_unless_they_share_a_pad() {
    let mut policy = cxx_policy(DefaultAction::Cleanup);
    // One call, one item, its own pad: nothing to do.
    let text = calls_with(&["tag1: block100(exn0)"], 1);
    let (mut func, isa) = parse(&text);
    let before = func.display().to_string();
    legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap();
    assert_eq!(func.display().to_string(), before);
    // A `context` item is dropped, as the full pass drops it.
    let text = calls_with(&["context v1, tag1: block100(exn0)"], 1);
    let (mut func, isa) = parse(&text);
    legalize_landing_pads(&mut func, &*isa, &mut policy).unwrap();
    assert_eq!(pads(&func).len(), 1);
}
