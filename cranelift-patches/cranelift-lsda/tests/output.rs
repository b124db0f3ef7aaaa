//! Object and JIT output refuse what they cannot write correctly, with
//! typed errors and their messages; a failed JIT registration leaves the
//! tables pending rather than silently unregistered.

use cranelift_codegen::Context;
use cranelift_codegen::ir::{ExceptionTag, Function};
use cranelift_lsda::{
    Clause, ClausePolicy, DefaultAction, EncodeError, JitTables, LandingPads, LsdaEncoding,
    LsdaObjectModule, ObjectTables, OutputError, RegistrationError, SelectorConvention, TypeEntry,
    check_landing_pad_form,
};
use cranelift_module::{Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule, ObjectProduct};
use eh_test_support::parse_clif as parse;

const CATCH_INT: &str = "
set unwind_info=true
target x86_64
function %f(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    fn0 = %g sig0
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ tag1: block2(exn0, exn1) ]
block1(v1: i64):
    return v1
block2(v2: i64, v3: i64):
    return v3
}";

fn policy() -> ClausePolicy {
    let mut policy = ClausePolicy::new(DefaultAction::CatchAll, SelectorConvention::TypeFilter);
    let int = Clause::Catch(TypeEntry::symbol("_ZTIi"));
    policy.define(ExceptionTag::from_u32(1), int).unwrap();
    policy
}

/// `%f` of `CATCH_INT` declared as `f` and `%g` as an import `g`.
fn declare(module: &mut impl Module, func: &mut Function) -> cranelift_module::FuncId {
    let id = module
        .declare_function("f", Linkage::Export, &func.signature)
        .unwrap();
    let sig = func.dfg.signatures[func.dfg.ext_funcs.values().next().unwrap().signature].clone();
    let g = module.declare_function("g", Linkage::Import, &sig).unwrap();
    let name = func.declare_imported_user_function(cranelift_codegen::ir::UserExternalName::new(
        0,
        g.as_u32(),
    ));
    let fref = func.dfg.ext_funcs.keys().next().unwrap();
    func.dfg.ext_funcs[fref].name = cranelift_codegen::ir::ExternalName::User(name);
    func.name = cranelift_codegen::ir::UserFuncName::user(0, id.as_u32());
    id
}

#[test]
fn objects_refuse_absptr_type_entries() {
    let (_, isa) = parse(CATCH_INT);
    let tables = ObjectTables::new(&*isa, "__gxx_personality_v0").unwrap();
    let err = tables
        .with_lsda_encoding(LsdaEncoding::jit())
        .err()
        .unwrap();
    assert_eq!(err, OutputError::AbsptrTypeTableInObject);
    assert_eq!(
        err.to_string(),
        "objects need PC-relative type entries (pcrel or indirect|pcrel), not absptr"
    );
}

#[test]
fn an_existing_eh_frame_is_an_error_not_a_second_one() {
    let (mut func, isa) = parse(CATCH_INT);
    let mut builder = ObjectBuilder::new(isa.clone(), "t", default_libcall_names()).unwrap();
    builder.unwind_info(true);
    let mut module = ObjectModule::new(builder);
    let id = declare(&mut module, &mut func);
    let policy = policy();
    let prepared = check_landing_pad_form(&func, &*isa, &policy).unwrap();
    let mut ctx = Context::for_function(func);
    module.define_function(id, &mut ctx).unwrap();
    let mut tables = ObjectTables::new(&*isa, "__gxx_personality_v0").unwrap();
    let size = tables.add_function(&*isa, id, &ctx, &policy, &prepared);
    assert!(matches!(size, Ok(Some(_))), "{size:?}");
    let mut product = module.finish();
    let err = tables.finish(&mut product).unwrap_err();
    assert_eq!(err, OutputError::EhFrameAlreadyWritten);
    assert_eq!(
        err.to_string(),
        "the object already has an .eh_frame: turn off ObjectBuilder::unwind_info or use \
         LsdaObjectModule"
    );
}

/// With the patched cranelift-codegen, compile with the setting that checks
/// `try_call`s; released Cranelift has none.
const UNWIND_LSDA: &str = if cfg!(cranelift_lsda_upstream) {
    "set unwind_lsda=true\n"
} else {
    ""
};

/// `%f` of `CATCH_INT` compiled for `target` by an `LsdaObjectModule` whose
/// builder has `unwind_info` on.
fn object_module_finish(target: &str) -> Result<ObjectProduct, OutputError> {
    let text = UNWIND_LSDA.to_string() + &CATCH_INT.replace("target x86_64", target);
    let (mut func, isa) = parse(&text);
    let mut builder = ObjectBuilder::new(isa, "t", default_libcall_names()).unwrap();
    builder.unwind_info(true);
    let personality = "__gxx_personality_v0";
    let mut module = LsdaObjectModule::new(builder, personality, policy(), LandingPads::Check)?;
    let id = declare(&mut module, &mut func);
    let mut ctx = Context::for_function(func);
    module.define_function(id, &mut ctx).unwrap();
    module.finish()
}

#[test]
fn the_object_module_takes_over_eh_frame_even_with_unwind_info_on() {
    let bytes = object_module_finish("target x86_64")
        .unwrap()
        .emit()
        .unwrap();
    use object::{Object, ObjectSection};
    let file = object::File::parse(&*bytes).unwrap();
    let eh_frame = file.section_by_name(".eh_frame").unwrap();
    // One personality CIE and one FDE: nothing from cranelift-object's own
    // `.eh_frame` writer, which would add a plain CIE and a second FDE.
    let data = eh_frame.data().unwrap();
    let section = gimli::EhFrame::new(data, gimli::LittleEndian);
    // Addresses are irrelevant to the count; PC-relative pointers need a base.
    let bases = gimli::BaseAddresses::default().set_eh_frame(0);
    let mut entries = gimli::UnwindSection::entries(&section, &bases);
    let mut kinds = Vec::new();
    while let Some(entry) = entries.next().unwrap() {
        kinds.push(match entry {
            gimli::CieOrFde::Cie(cie) => match cie.personality() {
                Some(_) => "personality CIE",
                None => "plain CIE",
            },
            gimli::CieOrFde::Fde(_) => "FDE",
        });
    }
    assert_eq!(kinds, ["personality CIE", "FDE"]);
    assert!(file.section_by_name(".gcc_except_table").is_some());
}

#[test]
fn non_elf_objects_are_refused() {
    let err = object_module_finish("target x86_64-apple-darwin")
        .err()
        .unwrap();
    assert_eq!(
        err,
        OutputError::UnsupportedFormat(target_lexicon::BinaryFormat::Macho)
    );
    assert_eq!(
        err.to_string(),
        "macho objects: only ELF `.eh_frame`/`.gcc_except_table` are written"
    );
}

#[test]
fn a_failed_jit_registration_leaves_the_tables_pending() {
    let (mut func, isa) = parse(CATCH_INT);
    let mut builder = cranelift_jit::JITBuilder::with_isa(isa.clone(), default_libcall_names());
    extern "C" fn g(x: i64) -> i64 {
        x
    }
    builder.symbol("g", g as *const u8);
    let mut module = cranelift_jit::JITModule::new(builder);
    let id = declare(&mut module, &mut func);
    let policy = policy();
    let prepared = check_landing_pad_form(&func, &*isa, &policy).unwrap();
    let mut ctx = Context::for_function(func);
    module.define_function(id, &mut ctx).unwrap();
    module.finalize_definitions().unwrap();

    let mut tables = JitTables::new(g as *const u8);
    tables
        .add_function(&*isa, id, &ctx, &policy, &prepared)
        .unwrap();
    let err = tables.register(&module, &|_| None).err().unwrap();
    assert_eq!(
        format!("{err:?}"),
        format!(
            "{:?}",
            RegistrationError::from(EncodeError::UnresolvedSymbol("_ZTIi".into()))
        )
    );
    assert_eq!(
        err.to_string(),
        "type entry symbol `_ZTIi` cannot be resolved"
    );
    // Still pending: the next registration, with the symbol resolved, has
    // the function, and then nothing is left.
    let typeinfo = 0x1000usize as *const u8;
    let registration = tables.register(&module, &|_| Some(typeinfo)).unwrap();
    assert!(registration.is_some());
    assert!(tables.register(&module, &|_| None).unwrap().is_none());
    drop(registration);
}
