//! LSDAs for functions with `try_call` (`ObjectModule::define_lsda`): what
//! the object holds, that nothing changes without them, and each refusal.

#![cfg(feature = "unwind")]

use cranelift_codegen::Context;
use cranelift_codegen::ir::ExceptionTag;
use cranelift_codegen::isa::unwind::lsda::{Action, EncodeError, TryCallError, TypeEntry};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_module::{FuncId, Linkage, Module, ModuleError, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectLsdaError, ObjectModule};
use gimli::UnwindSection as _;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

/// `u0:0` makes a plain call, then a `try_call` whose two tags go to one
/// landing pad; `u0:2` only returns; `u0:3`, after two plain calls, a
/// `try_call` with one catch.
const FUNCTIONS: &str = "
function u0:0() -> i64 system_v {
    sig0 = () system_v
    fn0 = u0:1 sig0

block0:
    v0 = iconst.i64 0
    call fn0()
    try_call fn0(), sig0, block1(), [ tag1: block2(exn0), tag2: block2(exn0) ]

block1:
    return v0

block2(v1: i64):
    return v1
}

function u0:2() system_v {
block0:
    return
}

function u0:3(i64) -> i64 system_v {
    sig0 = () system_v
    fn0 = u0:1 sig0

block0(v0: i64):
    call fn0()
    call fn0()
    try_call fn0(), sig0, block1(), [ tag1: block2(exn0) ]

block1:
    return v0

block2(v1: i64):
    return v1
}
";

/// The same `try_call` with its handlers in two blocks: no landing pad.
const DISAGREE: &str = "
function u0:0() -> i64 system_v {
    sig0 = () system_v
    fn0 = u0:1 sig0

block0:
    try_call fn0(), sig0, block1(), [ tag1: block2(exn0), tag2: block3(exn0) ]

block1:
    v0 = iconst.i64 0
    return v0

block2(v1: i64):
    return v1

block3(v2: i64):
    return v2
}
";

fn module(triple: &str, unwind_info: bool, personality: Option<&str>) -> ObjectModule {
    let mut flags = settings::builder();
    flags.enable("preserve_frame_pointers").unwrap();
    let isa = cranelift_codegen::isa::lookup_by_name(triple)
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap();
    let mut builder = ObjectBuilder::new(isa, "lsda", default_libcall_names()).unwrap();
    builder.unwind_info(unwind_info);
    if let Some(personality) = personality {
        builder.personality(personality);
    }
    ObjectModule::new(builder)
}

/// Declare `f` (`u0:0`), `thrower` (`u0:1`), `leaf` (`u0:2`) and `g`
/// (`u0:3`), define the functions of `clif` as theirs, and return the ids
/// of the functions defined.
fn define(module: &mut ObjectModule, clif: &str) -> Vec<FuncId> {
    let functions = cranelift_reader::parse_functions(clif).unwrap();
    let thrower = functions[0].dfg.signatures.values().next().unwrap().clone();
    let mut ids = Vec::new();
    for (i, name) in ["f", "thrower", "leaf", "g"].iter().enumerate() {
        let defined = functions
            .iter()
            .find(|f| f.name.to_string() == format!("u0:{i}"));
        let (signature, linkage) = match defined {
            Some(func) => (func.signature.clone(), Linkage::Export),
            None => (thrower.clone(), Linkage::Import),
        };
        ids.push(module.declare_function(name, linkage, &signature).unwrap());
    }
    let mut defined = Vec::new();
    for func in functions {
        let index = func.name.to_string()[3..].parse::<usize>().unwrap();
        let mut ctx = Context::for_function(func);
        module.define_function(ids[index], &mut ctx).unwrap();
        defined.push(ids[index]);
    }
    defined
}

/// `tag1` catches type entry 1; `tag2` is a cleanup.
fn actions(tags: &[Option<ExceptionTag>]) -> Result<Vec<Action>, ModuleError> {
    Ok(tags
        .iter()
        .map(|tag| match tag.map(|t| t.as_u32()) {
            Some(1) => Action::Catch(1),
            _ => Action::Cleanup,
        })
        .collect())
}

fn types() -> Vec<TypeEntry> {
    vec![TypeEntry::symbol("_ZTIi")]
}

fn refusal(err: ModuleError) -> ObjectLsdaError {
    match err {
        ModuleError::Backend(e) => e.downcast::<ObjectLsdaError>().unwrap(),
        other => panic!("not an LSDA refusal: {other}"),
    }
}

/// Where a relocation points: a section and an offset in it (a symbol's
/// section and address, plus the addend), or an undefined symbol's name.
#[derive(Clone, Debug, PartialEq)]
enum Place {
    At(object::SectionIndex, i64),
    Undefined(String),
}

fn place_of(file: &object::File, reloc: &object::Relocation) -> Place {
    let RelocationTarget::Symbol(index) = reloc.target() else {
        panic!("relocation without a symbol");
    };
    let symbol = file.symbol_by_index(index).unwrap();
    match symbol.section_index() {
        Some(section) => Place::At(section, symbol.address() as i64 + reloc.addend()),
        None => Place::Undefined(symbol.name().unwrap().to_string()),
    }
}

/// The relocations of `section`, by offset, with where they point.
fn relocations(
    file: &object::File,
    section: &str,
) -> Vec<(u64, object::RelocationKind, u8, Place)> {
    let section = file.section_by_name(section).unwrap();
    section
        .relocations()
        .map(|(offset, r)| (offset, r.kind(), r.size(), place_of(file, &r)))
        .collect()
}

/// What the slot at `place` holds: the undefined symbol its one absolute,
/// pointer-sized relocation names. Slots are read-only data.
fn slot_target(file: &object::File, place: &Place) -> String {
    let Place::At(section, offset) = place else {
        panic!("a slot is defined: {place:?}");
    };
    let section = file.section_by_index(*section).unwrap();
    assert_eq!(section.name().unwrap(), ".data.rel.ro");
    let held: Vec<_> = section
        .relocations()
        .filter(|(at, _)| *at as i64 == *offset)
        .map(|(_, r)| (r.kind(), r.size(), place_of(file, &r)))
        .collect();
    match &held[..] {
        [(object::RelocationKind::Absolute, 64, Place::Undefined(name))] => name.clone(),
        other => panic!("slot at {offset}: {other:?}"),
    }
}

fn function_place(file: &object::File, name: &str) -> Place {
    let symbol = file.symbol_by_name(name).unwrap();
    Place::At(symbol.section_index().unwrap(), symbol.address() as i64)
}

#[test]
fn functions_with_an_lsda_get_the_personality_cie_and_gcc_except_table() {
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        check_lsdas(triple);
    }
}

/// `g`'s LSDA given before `f`'s: each FDE must point at its own.
fn check_lsdas(triple: &str) {
    use object::RelocationKind::Relative;
    let mut module = module(triple, true, Some("__gxx_personality_v0"));
    let ids = define(&mut module, FUNCTIONS);
    let (f, g) = (ids[0], ids[2]);
    module.define_lsda(g, &types(), actions).unwrap();
    module.define_lsda(f, &types(), actions).unwrap();
    let bytes = module.finish().emit().unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let except_table = file.section_by_name(".gcc_except_table").unwrap();
    let except_table_index = except_table.index();
    let lsdas = except_table.data().unwrap();

    // Walk `.eh_frame`: each FDE's initial location and LSDA pointer are
    // relocations at known offsets of the section.
    let eh_frame_section = file.section_by_name(".eh_frame").unwrap();
    let data = eh_frame_section.data().unwrap();
    let eh_frame_relocations = relocations(&file, ".eh_frame");
    let at = |offset: u64| {
        let found: Vec<_> = eh_frame_relocations
            .iter()
            .filter(|r| r.0 == offset)
            .collect();
        assert_eq!(found.len(), 1, "one relocation at {offset:#x}");
        assert_eq!((found[0].1, found[0].2), (Relative, 32));
        &found[0].3
    };
    let mut eh_frame = gimli::EhFrame::new(data, gimli::LittleEndian);
    eh_frame.set_address_size(8);
    let bases = gimli::BaseAddresses::default().set_eh_frame(0);
    let mut entries = eh_frame.entries(&bases);
    let mut cies = 0;
    let mut fdes = Vec::new();
    while let Some(entry) = entries.next().unwrap() {
        match entry {
            gimli::CieOrFde::Cie(cie) => {
                cies += 1;
                // The personality CIE names its personality through a slot.
                if let Some(gimli::Pointer::Indirect(field)) = cie.personality() {
                    assert_eq!(slot_target(&file, at(field)), "__gxx_personality_v0",);
                    assert_eq!(
                        cie.lsda_encoding(),
                        Some(gimli::DwEhPe(
                            gimli::DW_EH_PE_pcrel.0 | gimli::DW_EH_PE_sdata4.0
                        ))
                    );
                } else {
                    assert!(cie.personality().is_none());
                }
            }
            gimli::CieOrFde::Fde(partial) => {
                let fde = partial
                    .parse(|_, bases, offset| eh_frame.cie_from_offset(bases, offset))
                    .unwrap();
                // With `eh_frame` at 0, a pc-relative pointer reads as the
                // offset of its field (the field holds 0 until relocated).
                let function = at(fde.initial_address());
                let lsda = fde.lsda().map(|pointer| match pointer {
                    gimli::Pointer::Direct(field) => at(field),
                    other => panic!("{other:?}"),
                });
                assert_eq!(lsda.is_some(), fde.personality().is_some());
                fdes.push((function, lsda));
            }
        }
    }
    assert_eq!(cies, 2, "{triple}");

    // `f` and `g` point at their own LSDAs (`f`'s after `g`'s, 4-aligned),
    // `leaf` at none.
    let lsda_of = |name| {
        let function = function_place(&file, name);
        let (_, lsda) = fdes.iter().find(|(at, _)| **at == function).unwrap();
        lsda.map(|place| match place {
            Place::At(section, offset) if *section == except_table_index => *offset,
            other => panic!("{name}'s LSDA pointer: {other:?}"),
        })
    };
    assert_eq!(fdes.len(), 3);
    assert_eq!(lsda_of("leaf"), None);
    let (f_lsda, g_lsda) = (lsda_of("f").unwrap(), lsda_of("g").unwrap());
    assert_eq!(g_lsda, 0, "{triple}");
    assert!(f_lsda > g_lsda && f_lsda % 4 == 0, "{triple}: {f_lsda}");
    for lsda in [f_lsda, g_lsda] {
        // LPStart omitted, type entries indirect|pcrel|sdata4.
        assert_eq!(lsdas[lsda as usize..][..2], [0xff, 0x9b]);
    }

    // Each LSDA's one type entry is `_ZTIi`, through its slot (one for the
    // object); landing pads are offsets, so nothing else is relocated.
    let type_entries = relocations(&file, ".gcc_except_table");
    assert_eq!(type_entries.len(), 2);
    for (_, kind, size, place) in &type_entries {
        assert_eq!((*kind, *size), (Relative, 32));
        assert_eq!(slot_target(&file, place), "_ZTIi");
    }
    assert_eq!(type_entries[0].3, type_entries[1].3, "one slot per symbol");
    for name in ["_ZTIi", "__gxx_personality_v0"] {
        assert!(file.symbol_by_name(name).unwrap().is_undefined());
    }
}

/// A type entry the module defines: its slot points at it. With
/// `per_function_section`, one `.gcc_except_table` serves the object.
#[test]
fn a_defined_type_entry_and_function_sections() {
    let mut flags = settings::builder();
    flags.enable("preserve_frame_pointers").unwrap();
    let isa = cranelift_codegen::isa::lookup_by_name("x86_64-unknown-linux-gnu")
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap();
    let mut builder = ObjectBuilder::new(isa, "lsda", default_libcall_names()).unwrap();
    builder
        .unwind_info(true)
        .personality("__gxx_personality_v0")
        .per_function_section(true);
    let mut module = ObjectModule::new(builder);
    let typeinfo = module
        .declare_data("typeinfo", Linkage::Local, false, false)
        .unwrap();
    let mut description = cranelift_module::DataDescription::new();
    description.define(vec![7; 16].into_boxed_slice());
    module.define_data(typeinfo, &description).unwrap();
    let ids = define(&mut module, FUNCTIONS);
    let types = [TypeEntry::symbol("typeinfo")];
    module.define_lsda(ids[0], &types, actions).unwrap();
    module.define_lsda(ids[2], &types, actions).unwrap();
    let bytes = module.finish().emit().unwrap();
    let file = object::File::parse(&*bytes).unwrap();

    let typeinfo = file.symbol_by_name("typeinfo").unwrap();
    let typeinfo = Place::At(typeinfo.section_index().unwrap(), typeinfo.address() as i64);
    let type_entries = relocations(&file, ".gcc_except_table");
    assert_eq!(type_entries.len(), 2);
    for (_, _, _, slot) in &type_entries {
        let Place::At(section, offset) = slot else {
            panic!("{slot:?}");
        };
        let section = file.section_by_index(*section).unwrap();
        let held: Vec<_> = section
            .relocations()
            .filter(|(at, _)| *at as i64 == *offset)
            .map(|(_, r)| place_of(&file, &r))
            .collect();
        assert_eq!(
            held,
            [typeinfo.clone()],
            "the slot holds the module's typeinfo"
        );
    }
    // Each function in its own section; both LSDA pointers into the one
    // `.gcc_except_table`.
    let except_table = file.section_by_name(".gcc_except_table").unwrap().index();
    let lsda_pointers = relocations(&file, ".eh_frame")
        .into_iter()
        .filter(|(_, _, _, place)| matches!(place, Place::At(s, _) if *s == except_table))
        .count();
    assert_eq!(lsda_pointers, 2);
    let f = file.symbol_by_name("f").unwrap().section_index();
    let g = file.symbol_by_name("g").unwrap().section_index();
    assert_ne!(f, g);
}

/// Without an LSDA, the object is byte for byte the one without a
/// personality.
#[test]
fn without_lsdas_a_personality_changes_nothing() {
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let emit = |personality| {
            let mut module = module(triple, true, personality);
            define(&mut module, FUNCTIONS);
            module.finish().emit().unwrap()
        };
        assert_eq!(emit(None), emit(Some("__gxx_personality_v0")), "{triple}");
    }
}

/// A function without handled calls needs no LSDA: nothing is written.
#[test]
fn a_function_without_handlers_gets_no_lsda() {
    let mut module = module(
        "x86_64-unknown-linux-gnu",
        true,
        Some("__gxx_personality_v0"),
    );
    let leaf = define(&mut module, FUNCTIONS)[1];
    module.define_lsda(leaf, &types(), actions).unwrap();
    let bytes = module.finish().emit().unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    assert!(file.section_by_name(".gcc_except_table").is_none());
    assert!(file.section_by_name(".data.rel.ro").is_none(), "no slot");
}

#[test]
fn refusals() {
    let linux = "x86_64-unknown-linux-gnu";

    let mut without_personality = module(linux, true, None);
    let f = define(&mut without_personality, FUNCTIONS)[0];
    let err = without_personality.define_lsda(f, &types(), actions);
    assert_eq!(refusal(err.unwrap_err()), ObjectLsdaError::NotEnabled);

    let mut without_unwind_info = module(linux, false, Some("__gxx_personality_v0"));
    let f = define(&mut without_unwind_info, FUNCTIONS)[0];
    let err = without_unwind_info.define_lsda(f, &types(), actions);
    assert_eq!(refusal(err.unwrap_err()), ObjectLsdaError::NotEnabled);

    let mut macho = module("aarch64-apple-darwin", true, Some("__gxx_personality_v0"));
    let f = define(&mut macho, FUNCTIONS)[0];
    let err = macho.define_lsda(f, &types(), actions).unwrap_err();
    assert_eq!(
        refusal(err),
        ObjectLsdaError::UnsupportedFormat(target_lexicon::BinaryFormat::Macho)
    );

    let mut module = module(linux, true, Some("__gxx_personality_v0"));
    let f = define(&mut module, FUNCTIONS)[0];
    let thrower = FuncId::from_u32(1);
    let err = module.define_lsda(thrower, &types(), actions).unwrap_err();
    assert_eq!(refusal(err), ObjectLsdaError::NoFde(thrower));
    // The embedder's own error comes back as it is.
    let err = module
        .define_lsda(f, &types(), |_| Err(anyhow::anyhow!("unknown tag")))
        .unwrap_err();
    assert_eq!(err.to_string(), "Backend error: unknown tag");
    // A catch of a type entry the table lacks.
    let err = module
        .define_lsda(f, &[], actions)
        .map_err(refusal)
        .unwrap_err();
    assert!(matches!(
        err,
        ObjectLsdaError::Encode(EncodeError::NoSuchTypeEntry { .. })
    ));
    // Symbols no slot can hold.
    let err = module.define_lsda(f, &[TypeEntry::symbol("a\0b")], actions);
    assert_eq!(
        refusal(err.unwrap_err()),
        ObjectLsdaError::InvalidSymbol("a\0b".into())
    );
    module
        .declare_data("tls", Linkage::Import, false, true)
        .unwrap();
    let err = module.define_lsda(f, &[TypeEntry::symbol("tls")], actions);
    assert_eq!(
        refusal(err.unwrap_err()),
        ObjectLsdaError::ThreadLocalSymbol("tls".into())
    );
    module.define_lsda(f, &types(), actions).unwrap();
    let err = module.define_lsda(f, &types(), actions).unwrap_err();
    assert_eq!(refusal(err), ObjectLsdaError::AlreadyDefined(f));
    // What was refused left nothing behind: one LSDA, two slots.
    let bytes = module.finish().emit().unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    assert_eq!(relocations(&file, ".gcc_except_table").len(), 1);
    assert_eq!(relocations(&file, ".data.rel.ro").len(), 2);

    // Handlers in two blocks: `define_function` accepts it as before, the
    // LSDA is refused.
    let mut disagree = self::module(linux, true, Some("__gxx_personality_v0"));
    let f = define(&mut disagree, DISAGREE)[0];
    let err = disagree.define_lsda(f, &types(), actions).unwrap_err();
    assert!(matches!(
        refusal(err),
        ObjectLsdaError::Encode(EncodeError::TryCall(TryCallError::HandlersDisagree { .. }))
    ));
}
