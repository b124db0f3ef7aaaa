//! `ArenaTables::register` and `ArenaMemory` refusing what they cannot
//! take: each a typed `ArenaError` with a clear message, leaving nothing
//! half-registered (libgcc finds no FDE that the failed call carried, and
//! the same functions register afterwards).

mod common;

use common::*;
use cranelift_codegen::ir::{AbiParam, Signature, types};
use cranelift_codegen::isa::CallConv;
use cranelift_jit::{BranchProtection, JITMemoryKind, JITMemoryProvider};
use cranelift_jit_arenas::{ArenaConfig, ArenaError, LoaderArenas};
use cranelift_module::{Linkage, Module, ModuleError};
use gimli::constants::{DW_EH_PE_pcrel, DW_EH_PE_sdata4};
use gimli::write::Address;

fn arenas() -> LoaderArenas {
    LoaderArenas::with_config(ArenaConfig {
        code_capacity: 1 << 20,
        eh_frame_capacity: 1 << 20,
    })
    .unwrap()
}

fn not_jit_code() {}

#[test]
fn an_fde_for_code_this_module_did_not_place_is_refused_whole() {
    let isa = isa();
    let arenas = arenas();
    let (mut module, tables) = module_in(&arenas);
    let f = define_caller(&mut module, "f", 1);
    module.finalize_definitions().unwrap();
    let (mut other, _other_tables) = module_in(&arenas);
    let g = define_caller(&mut other, "g", 2);
    other.finalize_definitions().unwrap();
    let (pf, pg) = (placed(&module, &f), placed(&other, &g));
    let rust_code = not_jit_code as fn() as usize;

    for (address, what) in [
        (pf.address + 4, "inside one of its functions"),
        (pg.address, "another module's function in the same arena"),
        (rust_code, "code outside every arena"),
    ] {
        let error = register(
            &tables,
            &eh_frame(&*isa, &[(&f, pf.address as u64), (&g, address as u64)]),
        )
        .err()
        .unwrap_or_else(|| panic!("an FDE at {what} was registered"));
        assert!(
            matches!(error, ArenaError::NotArenaCode { address: a } if a == address),
            "{what}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("{address:#x}")) && message.contains("no function"),
            "{message}"
        );
        // The valid FDE of the same call was not registered either.
        assert!(find_fde(pf.address).is_none(), "{what}: f half-registered");
    }
    let registration = register(&tables, &eh_frame(&*isa, &[(&f, pf.address as u64)])).unwrap();
    assert_eq!(find_fde(pf.address).unwrap().1[2], pf.address);
    drop(registration);
    // SAFETY: nothing of the modules is used after this.
    unsafe {
        module.free_memory();
        other.free_memory();
    }
}

#[test]
fn a_function_is_registered_once_until_its_registration_is_dropped() {
    let isa = isa();
    let arenas = arenas();
    let (mut module, tables) = module_in(&arenas);
    let f = define_caller(&mut module, "f", 1);
    let g = define_caller(&mut module, "g", 2);
    module.finalize_definitions().unwrap();
    let (pf, pg) = (placed(&module, &f), placed(&module, &g));
    let only_f = eh_frame(&*isa, &[(&f, pf.address as u64)]);

    // Twice in one .eh_frame.
    let error = register(
        &tables,
        &eh_frame(&*isa, &[(&f, pf.address as u64), (&f, pf.address as u64)]),
    )
    .err()
    .unwrap();
    assert!(
        matches!(error, ArenaError::AlreadyRegistered { address } if address == pf.address),
        "{error:?}"
    );
    assert!(find_fde(pf.address).is_none(), "f half-registered");

    // Registered, then again with another function.
    let first = register(&tables, &only_f).unwrap();
    let error = register(
        &tables,
        &eh_frame(&*isa, &[(&g, pg.address as u64), (&f, pf.address as u64)]),
    )
    .err()
    .unwrap();
    assert!(
        matches!(error, ArenaError::AlreadyRegistered { address } if address == pf.address),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("{:#x}", pf.address)) && message.contains("already"),
        "{message}"
    );
    assert!(find_fde(pg.address).is_none(), "g half-registered");
    // The first registration still holds.
    assert_eq!(find_fde(pf.address).unwrap().1[2], pf.address);

    // Once dropped, the function registers again; g alone is fine.
    drop(first);
    let again = register(&tables, &only_f).unwrap();
    let g_alone = register(&tables, &eh_frame(&*isa, &[(&g, pg.address as u64)])).unwrap();
    assert_eq!(find_fde(pf.address).unwrap().1[2], pf.address);
    assert_eq!(find_fde(pg.address).unwrap().1[2], pg.address);
    drop((again, g_alone));
    // SAFETY: nothing of the module is used after this.
    unsafe { module.free_memory() };
}

#[test]
fn a_pc_relative_eh_frame_is_refused() {
    let isa = isa();
    let arenas = arenas();
    let (module, tables, f, pf) = finalized_f(&arenas);
    let pcrel = gimli::DwEhPe(DW_EH_PE_pcrel.0 | DW_EH_PE_sdata4.0);

    // As an object file's .eh_frame would be: its pointers relative to
    // where they are. (A pc-relative value must fit 32 bits, so the
    // address is a small one: the encoding alone must be refused, before
    // any address is read.)
    let refused = [
        (
            "FDE addresses",
            eh_frame_with(
                &*isa,
                &[(&f, 0x1000)],
                |cie| {
                    cie.fde_address_encoding = pcrel;
                },
                |_| {},
            ),
        ),
        (
            "the personality",
            eh_frame_with(
                &*isa,
                &[(&f, pf.address as u64)],
                |cie| {
                    cie.personality = Some((pcrel, Address::Constant(0x1000)));
                },
                |_| {},
            ),
        ),
        (
            "LSDAs",
            eh_frame_with(
                &*isa,
                &[(&f, pf.address as u64)],
                |cie| {
                    cie.lsda_encoding = Some(pcrel);
                },
                |fde| fde.lsda = Some(Address::Constant(0x1000)),
            ),
        ),
    ];
    for (what, eh_frame) in refused {
        let error = register(&tables, &eh_frame).err().unwrap();
        assert!(
            matches!(error, ArenaError::PositionDependent),
            "pc-relative {what}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("PC-relative") && message.contains("absolute"),
            "{message}"
        );
        assert!(find_fde(pf.address).is_none(), "pc-relative {what}");
    }
    let registration = register(&tables, &eh_frame(&*isa, &[(&f, pf.address as u64)])).unwrap();
    assert_eq!(find_fde(pf.address).unwrap().1[2], pf.address);
    drop(registration);
    // SAFETY: nothing of the module is used after this.
    unsafe { module.free_memory() };
}

#[test]
fn a_truncated_eh_frame_is_malformed() {
    let isa = isa();
    let arenas = arenas();
    let (module, tables, f, pf) = finalized_f(&arenas);
    let whole = eh_frame(&*isa, &[(&f, pf.address as u64)]);
    // Cut in the FDE (the terminator and the FDE's last bytes gone).
    let error = register(&tables, &whole[..whole.len() - 8]).err().unwrap();
    assert!(matches!(error, ArenaError::Malformed(_)), "{error:?}");
    assert!(
        error.to_string().starts_with("cannot read the .eh_frame"),
        "{error}"
    );
    assert!(find_fde(pf.address).is_none());
    drop(register(&tables, &whole).unwrap());
    // SAFETY: nothing of the module is used after this.
    unsafe { module.free_memory() };
}

/// The arena error inside what cranelift-jit reports.
fn arena_error(error: &ModuleError) -> &ArenaError {
    match error {
        ModuleError::Allocation { err } => err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ArenaError>())
            .unwrap_or_else(|| panic!("not an arena error: {err:?}")),
        other => panic!("not an allocation error: {other:?}"),
    }
}

#[test]
fn a_function_larger_than_an_arena_is_refused() {
    const CAPACITY: u64 = 64 << 10;
    let isa = isa();
    let arenas = LoaderArenas::with_config(ArenaConfig {
        code_capacity: CAPACITY,
        eh_frame_capacity: 64 << 10,
    })
    .unwrap();

    // Through cranelift-jit.
    let (mut module, tables) = module_in(&arenas);
    let mut sig = Signature::new(CallConv::SystemV);
    sig.returns.push(AbiParam::new(types::I64));
    let big = module
        .declare_function("big", Linkage::Local, &sig)
        .unwrap();
    let bytes = vec![0xcc; CAPACITY as usize + 1];
    let error = module
        .define_function_bytes(big, 16, &bytes, &[])
        .err()
        .unwrap();
    let arena = arena_error(&error);
    assert!(
        matches!(
            arena,
            ArenaError::TooLarge { size, capacity: CAPACITY } if *size == bytes.len()
        ),
        "{arena:?}"
    );
    assert_eq!(
        arena.to_string(),
        format!(
            "a {}-byte function does not fit an arena's {CAPACITY}-byte code segment",
            bytes.len()
        )
    );
    // The module goes on: a function that fits is placed, runs and
    // registers.
    let f = define_caller(&mut module, "f", 1);
    module.finalize_definitions().unwrap();
    let pf = placed(&module, &f);
    extern "C-unwind" fn identity(x: i64) -> i64 {
        x
    }
    // SAFETY: `f` is finalized with this signature.
    let call: Caller = unsafe { std::mem::transmute(pf.address) };
    assert_eq!(call(41, identity), 42);
    let registration = register(&tables, &eh_frame(&*isa, &[(&f, pf.address as u64)])).unwrap();
    assert_eq!(find_fde(pf.address).unwrap().1[2], pf.address);
    drop(registration);
    // SAFETY: nothing of the module is used after this.
    unsafe { module.free_memory() };

    // Through the provider: a whole arena fits, one byte more does not.
    let (mut memory, _tables) = arenas.memory();
    let whole = memory
        .allocate(CAPACITY as usize, 16, JITMemoryKind::Executable)
        .unwrap();
    let error = memory
        .allocate(CAPACITY as usize + 1, 16, JITMemoryKind::Executable)
        .unwrap_err();
    let arena = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ArenaError>())
        .unwrap();
    assert!(
        matches!(
            arena,
            ArenaError::TooLarge {
                capacity: CAPACITY,
                ..
            }
        ),
        "{arena:?}"
    );
    // A byte more than what is left goes to another arena.
    let next = memory.allocate(1, 16, JITMemoryKind::Executable).unwrap();
    assert!(
        dl_find_object(whole as usize).unwrap().dlfo_map_start
            != dl_find_object(next as usize).unwrap().dlfo_map_start,
        "a full arena took more code"
    );
    memory.finalize(BranchProtection::None).unwrap();
    // SAFETY: nothing placed is used.
    unsafe { memory.free_memory() };
}

#[test]
fn a_function_too_large_for_what_is_left_of_an_arena_goes_to_a_fresh_one() {
    const CAPACITY: u64 = 128 << 10;
    let arenas = LoaderArenas::with_config(ArenaConfig {
        code_capacity: CAPACITY,
        eh_frame_capacity: 64 << 10,
    })
    .unwrap();
    let mut sig = Signature::new(CallConv::SystemV);
    sig.returns.push(AbiParam::new(types::I64));
    let place = |name: &str, len: usize| {
        let (mut module, _tables) = module_in(&arenas);
        let id = module.declare_function(name, Linkage::Local, &sig).unwrap();
        module
            .define_function_bytes(id, 16, &vec![0xcc; len], &[])
            .unwrap();
        module.finalize_definitions().unwrap();
        let address = module.get_finalized_function(id) as usize;
        (module, address)
    };
    // Most of the first arena, kept alive; then more than what is left of
    // it, but less than an arena: it must not be refused as too large.
    let (first, at) = place("most", 96 << 10);
    let (second, then) = place("rest", 64 << 10);
    assert_ne!(arena_of(at), arena_of(then), "{at:#x} and {then:#x}");
    // And later modules still find room (in the fresh arena or another).
    let (third, _) = place("small", 64);
    for module in [first, second, third] {
        // SAFETY: none of the code runs or is pointed to any more.
        unsafe { module.free_memory() };
    }
}
