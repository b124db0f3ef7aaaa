//! Every error a caller can provoke through the public API, with its
//! message. (Errors provoked by CLIF input are checked by the filetests'
//! `error:` expectations; those no public input can reach are listed in
//! `docs/lsda.md`.)

use cranelift_codegen::Context;
use cranelift_codegen::ir::ExceptionTag;
use cranelift_lsda::{
    CallSite, CallSiteEncoding, Clause, ClauseList, ClausePolicy, DefaultAction, EhFrameBuilder,
    EhFrameEncoding, LandingPad, Lsda, LsdaEncoding, LsdaError, ObjectTables, OutputError,
    SelectorConvention, TypeEncoding, TypeEntry, TypeTable, check_landing_pad_form,
    check_try_calls, decode_lsda, tables_for_compiled,
};
use cranelift_module::{Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};
use eh_test_support::parse_clif as parse;
use gimli::RunTimeEndian::Little;
use pretty_assertions::assert_eq;

fn cxx_policy() -> ClausePolicy {
    let mut policy = ClausePolicy::new(DefaultAction::CatchAll, SelectorConvention::TypeFilter);
    for (tag, name) in [(1, "_ZTIi"), (2, "_ZTI4Base")] {
        let clause = Clause::Catch(TypeEntry::symbol(name));
        policy.define(ExceptionTag::from_u32(tag), clause).unwrap();
    }
    policy
}

/// A `try_call` whose handlers are `handlers` (not legalized).
fn try_call(handlers: &str) -> String {
    format!(
        "
set unwind_info=true
target x86_64
function %f(i64) -> i64 system_v {{
    sig0 = (i64) -> i64 system_v
    fn0 = %g sig0
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ {handlers} ]
block1(v1: i64):
    return v1
block2(v2: i64):
    return v2
block3(v3: i64, v4: i64):
    return v4
block4(v5: i64, v6: i64):
    return v6
}}"
    )
}

const LEAF: &str = "
set unwind_info=true
target x86_64
function %leaf(i64) -> i64 system_v {
block0(v0: i64):
    return v0
}";

#[test]
fn policy_errors() {
    let reserved = ExceptionTag::from_u32(cranelift_lsda::CLAUSE_SET_TAG_BASE);
    let err = cxx_policy().define(reserved, Clause::Cleanup).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tag2147483648 is reserved for clause sets the policy interns (tags from 0x80000000 up)"
    );
    assert_eq!(
        ClauseList::new([]).unwrap_err().to_string(),
        "a clause list must hold at least one clause"
    );
    let err = TypeTable::new()
        .filter(&TypeEntry::symbol("_ZTIi"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "type entry _ZTIi is not in the function's type table"
    );
    let wasmer = ClausePolicy::new(
        DefaultAction::CatchAll,
        SelectorConvention::CatchAllZeroTypedOne,
    );
    let err = wasmer
        .selectors(&TypeTable::new(), &[Clause::Cleanup])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "clause `cleanup` is not supported: this personality terminates on cleanups"
    );
}

#[test]
fn landing_pad_form_errors() {
    let policy = cxx_policy();
    // A pad may take a prefix of (exn0, exn1), nothing else.
    let (func, isa) = parse(&try_call("tag1: block2(exn0)"));
    check_landing_pad_form(&func, &*isa, &policy).unwrap();
    let (func, isa) = parse(&try_call("tag1: block2(exn1)"));
    let err = check_landing_pad_form(&func, &*isa, &policy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`try_call fn0(v0), sig0, block1(ret0), [ tag1: block2(exn1) ]` is not in landing-pad \
         form (block2 receives (exn1) instead of (exn0, exn1) or a prefix of them); run the \
         legalization pass first"
    );
    let (func, isa) = parse(&try_call(
        "tag1: block3(exn0, exn1), tag2: block4(exn0, exn1)",
    ));
    let err = check_landing_pad_form(&func, &*isa, &policy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`try_call fn0(v0), sig0, block1(ret0), [ tag1: block3(exn0, exn1), tag2: block4(exn0, \
         exn1) ]` is not in landing-pad form (catch items go to both block3 and block4); run \
         the legalization pass first"
    );
}

#[test]
fn compiled_code_errors() {
    let policy = cxx_policy();
    // Handlers in two blocks: the in-tree check that the `unwind_lsda`
    // setting runs during compilation refuses them.
    let (func, isa) = parse(&try_call(
        "tag1: block3(exn0, exn1), tag2: block4(exn0, exn1)",
    ));
    let inst = func.layout.last_inst(func.layout.entry_block().unwrap());
    let err = check_try_calls(&func).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the handlers of try_call {} go to different blocks or pass different arguments, \
             but an LSDA call site has one landing pad",
            inst.unwrap()
        )
    );
    // One block with different arguments is refused too.
    let (func, _) = parse(&try_call(
        "tag1: block2(exn0, exn1), tag2: block2(exn1, exn0)",
    ));
    assert!(check_try_calls(&func).is_err());
    let (func, _) = parse(&try_call(
        "tag1: block2(exn0, exn1), tag2: block2(exn0, exn1)",
    ));
    check_try_calls(&func).unwrap();

    // Code whose handlers disagree, with another function's preparation:
    // the encoder checks the IR the context compiled, not the preparation.
    let (leaf, _) = parse(LEAF);
    let prepared = check_landing_pad_form(&leaf, &*isa, &policy).unwrap();
    let (func, _) = parse(&try_call(
        "tag1: block3(exn0, exn1), tag2: block4(exn0, exn1)",
    ));
    let mut ctx = Context::for_function(func);
    let encode = |ctx: &Context| {
        tables_for_compiled(ctx, &*isa, &policy, &prepared, LsdaEncoding::object())
            .err()
            .unwrap()
            .to_string()
    };
    assert_eq!(encode(&ctx), "the context holds no compiled code");
    ctx.compile(&*isa, &mut Default::default()).unwrap();
    let inst = ctx
        .func
        .layout
        .last_inst(ctx.func.layout.entry_block().unwrap());
    assert_eq!(
        encode(&ctx),
        format!(
            "the handlers of try_call {} go to different blocks or pass different arguments, \
             but an LSDA call site has one landing pad",
            inst.unwrap()
        )
    );
}

fn pad(offset: u32, clauses: &[Clause], types: &TypeTable) -> Option<LandingPad> {
    let list = ClauseList::new(clauses.iter().cloned()).unwrap();
    Some(LandingPad::new(offset, list.actions(types).unwrap()))
}

fn site(ret_addr: u32, landing_pad: Option<LandingPad>) -> CallSite {
    CallSite::new(ret_addr, landing_pad)
}

fn encode_error(sites: &[CallSite], code_len: u32, types: &TypeTable, address_size: u8) -> String {
    let encoding = if address_size == 8 {
        LsdaEncoding::object()
    } else {
        LsdaEncoding::jit()
    };
    Lsda::new(sites, code_len, types.entries(), encoding, address_size)
        .err()
        .unwrap()
        .to_string()
}

#[test]
fn encoding_errors() {
    let none = TypeTable::new();
    let cleanup = [Clause::Cleanup];
    assert_eq!(
        encode_error(
            &[site(8, pad(2, &cleanup, &none)), site(8, None)],
            16,
            &none,
            8
        ),
        "call site returning to 0x8 is out of order or out of range (bound 0x8)"
    );
    assert_eq!(
        encode_error(&[site(8, pad(16, &cleanup, &none))], 16, &none, 8),
        "landing pad 0x10 lies outside the function's 0x10 code bytes"
    );
    assert_eq!(
        encode_error(&[site(8, pad(0, &cleanup, &none))], 16, &none, 8),
        "a landing pad at function offset 0 cannot be encoded (0 means no landing pad)"
    );
    let wide = TypeEntry::Address(0x1_0000_0000);
    let mut types = TypeTable::new();
    types.add(&wide).unwrap();
    assert_eq!(
        encode_error(
            &[site(8, pad(10, &[Clause::Catch(wide)], &types))],
            16,
            &types,
            4
        ),
        "absolute type entry 0x100000000 does not fit its encoding"
    );

    // An indirect entry is a `DW.ref` slot holding the symbol's address.
    let vtable = TypeEntry::Symbol {
        name: "vtable".into(),
        addend: -16,
    };
    let mut types = TypeTable::new();
    types.add(&vtable).unwrap();
    let indirect = LsdaEncoding::new(CallSiteEncoding::Uleb128, TypeEncoding::IndirectPcRelSdata4);
    let sites = [site(8, pad(10, &[Clause::Catch(vtable)], &types))];
    let err = Lsda::new(&sites, 16, types.entries(), indirect, 8)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "indirect type entry vtable-16 cannot carry an addend"
    );

    // A symbol entry written to a writer that cannot relocate.
    let int = TypeEntry::symbol("_ZTIi");
    let mut types = TypeTable::new();
    types.add(&int).unwrap();
    let sites = [site(8, pad(10, &[Clause::Catch(int)], &types))];
    let lsda = Lsda::new(&sites, 16, types.entries(), LsdaEncoding::object(), 8)
        .unwrap()
        .unwrap();
    let mut plain = gimli::write::EndianVec::new(Little);
    let err = lsda
        .write(&mut plain, |_| {
            Some(gimli::write::Address::Symbol {
                symbol: 0,
                addend: 0,
            })
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "DWARF writer: The address is invalid.");
}

#[test]
fn decoding_errors() {
    let cases: &[(&[u8], u8, &str)] = &[
        (
            &[],
            8,
            "malformed LSDA at byte 0: LPStart encoding: unexpected end of input",
        ),
        (
            &[0x05],
            8,
            "malformed LSDA at byte 1: unknown pointer format 0x5",
        ),
        (
            &[0x00],
            2,
            "malformed LSDA at byte 1: unsupported address size 2",
        ),
        (
            &[0xff, 0xff, 0x33, 0x00],
            8,
            "malformed LSDA at byte 2: unsupported call-site encoding 0x33",
        ),
        (
            &[0xff, 0x9b, 0x7f, 0x01, 0x00],
            8,
            "malformed LSDA at byte 3: TType base past the end",
        ),
        (
            &[0xff, 0xff, 0x01, 0x7f],
            8,
            "malformed LSDA at byte 4: call-site table past the end",
        ),
        (
            &[0xff, 0xff, 0x01, 0x02, 0x00, 0x04, 0x01, 0x05],
            8,
            "malformed LSDA at byte 8: call-site record overruns its table",
        ),
        (
            &[0xff, 0xff, 0x01, 0x04, 0x00, 0x04, 0x01, 0x01, 0x01, 0x00],
            8,
            "malformed LSDA at byte 0: catch clauses but no type table",
        ),
        (
            &[
                0xff, 0x01, 0x06, 0x01, 0x04, 0x00, 0x04, 0x01, 0x01, 0x01, 0x00,
            ],
            8,
            "malformed LSDA at byte 1: type table encoding 0x1 has no fixed size",
        ),
        (
            &[
                0xff, 0x03, 0x00, 0x01, 0x04, 0x00, 0x04, 0x01, 0x01, 0x01, 0x00,
            ],
            8,
            "malformed LSDA at byte 3: type entry 1 before the table",
        ),
        (
            &[0xff, 0xff, 0x01, 0x04, 0x00, 0x04, 0x01, 0x01, 0x00, 0x7e],
            8,
            "malformed LSDA at byte 7: action chain leaves the table or loops",
        ),
        (
            &[0xff, 0xff, 0x01, 0x04, 0x00, 0x04, 0x01, 0x05],
            8,
            "malformed LSDA at byte 12: action offset out of range",
        ),
        (
            &[
                0xff, 0xff, 0x01, 0x04, 0x00, 0x04, 0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00,
            ],
            8,
            "malformed LSDA at byte 8: type filter 4294967296 too large",
        ),
    ];
    for (bytes, address_size, message) in cases {
        let err = decode_lsda(bytes, Little, *address_size).unwrap_err();
        assert_eq!(err.to_string(), *message, "{bytes:02x?}");
    }
    // Through the crate's error type, unchanged.
    let err = LsdaError::from(decode_lsda(&[], Little, 8).unwrap_err());
    assert_eq!(
        err.to_string(),
        "malformed LSDA at byte 0: LPStart encoding: unexpected end of input"
    );
}

#[test]
fn output_errors() {
    // Pulley has no System V CFI to hang an LSDA on.
    let pulley = parse(&LEAF.replace("target x86_64", "target pulley64")).1;
    let err = ObjectTables::new(&*pulley, "__gxx_personality_v0")
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "unsupported target for landing pads: the function's unwind info is not System V CFI"
    );
    let err = EhFrameBuilder::new(
        &*pulley,
        EhFrameEncoding::jit(),
        gimli::write::Address::Constant(0),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "unsupported target for landing pads: the function's unwind info is not System V CFI"
    );

    // Tables recorded for a function the object never defines.
    let policy = cxx_policy();
    let (func, isa) = parse(&try_call("tag1: block3(exn0, exn1)"));
    let builder = ObjectBuilder::new(isa.clone(), "t", default_libcall_names()).unwrap();
    let mut module = ObjectModule::new(builder);
    // Declared as an import: its symbol is undefined in this object.
    let id = module
        .declare_function("f", Linkage::Import, &func.signature)
        .unwrap();
    let prepared = check_landing_pad_form(&func, &*isa, &policy).unwrap();
    let mut ctx = Context::for_function(func);
    ctx.compile(&*isa, &mut Default::default()).unwrap();
    let mut tables = ObjectTables::new(&*isa, "__gxx_personality_v0").unwrap();
    tables
        .add_function(&*isa, id, &ctx, &policy, &prepared)
        .unwrap();
    let err = tables.finish(&mut module.finish()).unwrap_err();
    assert!(matches!(err, OutputError::FunctionNotDefined(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "function funcid0 has tables but is not defined in this object"
    );
}
