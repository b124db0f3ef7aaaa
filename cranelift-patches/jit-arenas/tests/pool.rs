//! How the pool places modules in arenas, seen from outside: which arena
//! (loaded image, by its memfd's inode) holds what, when a full arena stops
//! taking code, when an unused one is emptied for reuse or unloaded, and
//! that code cranelift-jit promises to keep valid stays valid.

mod common;

use common::*;
use cranelift_jit::{BranchProtection, JITMemoryKind, JITMemoryProvider};
use cranelift_jit_arenas::{ArenaConfig, ArenaError, LoaderArenas};

fn page() -> usize {
    // SAFETY: sysconf only reads a system value.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Arenas of 64 KiB of code and 64 KiB of `.eh_frame`.
fn tiny_arenas() -> LoaderArenas {
    LoaderArenas::with_config(ArenaConfig {
        code_capacity: 64 << 10,
        eh_frame_capacity: 64 << 10,
    })
    .unwrap()
}

fn code(memory: &mut impl JITMemoryProvider, size: usize) -> usize {
    memory
        .allocate(size, 16, JITMemoryKind::Executable)
        .unwrap() as usize
}

#[test]
fn a_full_arena_stops_taking_code_and_is_unloaded_with_its_last_module() {
    let arenas = tiny_arenas();
    let (mut memory, tables) = arenas.memory();
    let x = code(&mut memory, 40 << 10);
    let y = code(&mut memory, 40 << 10);
    let (a, b) = (arena_of(x).unwrap(), arena_of(y).unwrap());
    assert_ne!(a, b, "80 KiB in one 64 KiB arena");
    assert_eq!(
        arenas.open_arenas(),
        1,
        "the full arena is still counted as leasable"
    );
    memory.finalize(BranchProtection::None).unwrap();
    // SAFETY: nothing placed is used.
    unsafe { memory.free_memory() };
    drop((memory, tables));
    assert!(!arena_loaded(a), "the full arena outlived its last module");
    assert!(arena_loaded(b), "the pool let go of an arena it leases");

    // The emptied arena takes the next module from its start.
    let (mut memory, _tables) = arenas.memory();
    let z = code(&mut memory, page());
    assert_eq!(
        (z, arena_of(z).unwrap()),
        (y, b),
        "not reused from its start"
    );
    memory.finalize(BranchProtection::None).unwrap();
    // SAFETY: nothing placed is used.
    unsafe { memory.free_memory() };
}

#[test]
fn of_the_arenas_nobody_uses_one_is_kept_and_the_others_are_unloaded() {
    let arenas = tiny_arenas();
    // Three modules placing code at once: one arena each.
    let mut modules: Vec<_> = (0..3).map(|_| arenas.memory()).collect();
    let first: Vec<usize> = modules
        .iter_mut()
        .map(|(memory, _)| code(memory, page()))
        .collect();
    let inodes: Vec<u64> = first.iter().map(|&x| arena_of(x).unwrap()).collect();
    assert!(
        inodes[0] != inodes[1] && inodes[1] != inodes[2] && inodes[0] != inodes[2],
        "modules shared an arena while placing code: {inodes:?}"
    );
    assert_eq!(arenas.open_arenas(), 3);
    for (mut memory, tables) in modules {
        memory.finalize(BranchProtection::None).unwrap();
        // SAFETY: nothing placed is used.
        unsafe { memory.free_memory() };
        drop((memory, tables));
    }
    // Unused, but the pool decides at the next lease.
    assert_eq!(arenas.open_arenas(), 3);
    assert!(inodes.iter().all(|&inode| arena_loaded(inode)));

    let (mut memory, _tables) = arenas.memory();
    let next = code(&mut memory, page());
    assert_eq!(arenas.open_arenas(), 1);
    assert_eq!(next, first[0], "the kept arena is not emptied");
    assert!(arena_loaded(inodes[0]));
    assert!(!arena_loaded(inodes[1]) && !arena_loaded(inodes[2]));
    memory.finalize(BranchProtection::None).unwrap();
    // SAFETY: nothing placed is used.
    unsafe { memory.free_memory() };
}

extern "C-unwind" fn identity(x: i64) -> i64 {
    x
}

/// cranelift-jit's providers leak a module's memory when it is dropped
/// without `free_memory`, "to guarantee validity of function pointers"; so
/// must arenas: the arena may not be emptied for, or unloaded under, the
/// next module.
#[test]
fn code_of_a_module_dropped_without_free_memory_stays_valid() {
    let arenas = tiny_arenas();
    let (mut a, a_tables) = module_in(&arenas);
    let fa = define_caller(&mut a, "fa", 100);
    a.finalize_definitions().unwrap();
    let pa = placed(&a, &fa);
    // SAFETY: `fa` is finalized with this signature, and stays valid.
    let call: Caller = unsafe { std::mem::transmute(pa.address) };
    assert_eq!(call(5, identity), 105);
    drop((a, a_tables));

    // More modules come and go, each while another holds its own arena.
    for add in 0..3 {
        let (mut b, _b_tables) = module_in(&arenas);
        let (mut c, _c_tables) = module_in(&arenas);
        let fb = define_caller(&mut b, "fb", add);
        let fc = define_caller(&mut c, "fc", add);
        b.finalize_definitions().unwrap();
        c.finalize_definitions().unwrap();
        for p in [placed(&b, &fb), placed(&c, &fc)] {
            assert!(
                p.address >= pa.address + pa.len || p.address + p.len <= pa.address,
                "a new function at {:#x} overlaps the dropped module's at {:#x}",
                p.address,
                pa.address
            );
        }
        // SAFETY: nothing of `b` and `c` is used after this.
        unsafe {
            b.free_memory();
            c.free_memory();
        }
    }
    assert!(arena_of(pa.address).is_some(), "its arena was unloaded");
    assert_eq!(call(5, identity), 105);
}

#[test]
fn a_full_eh_frame_refuses_a_registration_and_later_modules_still_register() {
    let isa = isa();
    // 1 MiB of code, but only 64 KiB of .eh_frame: about 2,000 FDEs.
    let arenas = LoaderArenas::with_config(ArenaConfig {
        code_capacity: 1 << 20,
        eh_frame_capacity: 64 << 10,
    })
    .unwrap();
    let (mut module, tables) = module_in(&arenas);
    let first = define_caller(&mut module, "f0", 1);
    let mut defined: Vec<_> = (1..2_500)
        .map(|i| define_copy(&mut module, &format!("f{i}"), &first))
        .collect();
    defined.insert(0, first);
    module.finalize_definitions().unwrap();
    let placed: Vec<_> = defined.iter().map(|d| placed(&module, d)).collect();
    let fdes = |range: std::ops::Range<usize>| {
        let fdes: Vec<_> = range
            .map(|i| (&defined[i], placed[i].address as u64))
            .collect();
        eh_frame(&*isa, &fdes)
    };
    let all = fdes(0..defined.len());
    assert!(all.len() > 64 << 10);
    let error = register(&tables, &all).err().unwrap();
    assert!(
        matches!(error, ArenaError::Full(what) if what == ".eh_frame"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "the arena's .eh_frame is full");
    assert!(find_fde(placed[0].address).is_none(), "half-registered");
    // What fits registers, in ever smaller pieces until nothing does.
    let (mut registrations, mut next) = (Vec::new(), 0);
    for chunk in [500, 50, 1] {
        while next + chunk <= defined.len() {
            match register(&tables, &fdes(next..next + chunk)) {
                Ok(registration) => registrations.push(registration),
                Err(ArenaError::Full(_)) => break,
                Err(error) => panic!("{error}"),
            }
            next += chunk;
        }
    }
    assert!(
        (1_000..defined.len()).contains(&next),
        "{next} FDEs in 64 KiB"
    );
    assert_eq!(find_fde(placed[0].address).unwrap().1[2], placed[0].address);
    let last = placed[next - 1].address;
    assert_eq!(find_fde(last).unwrap().1[2], last);
    assert!(find_fde(placed[next].address).is_none());

    // A later module (this one still holds the arena) gets its FDEs
    // registered, in another arena if need be.
    let (mut later, later_tables) = module_in(&arenas);
    let g = define_caller(&mut later, "g", 2);
    later.finalize_definitions().unwrap();
    let pg = common::placed(&later, &g);
    let registered = register(&later_tables, &eh_frame(&*isa, &[(&g, pg.address as u64)]));
    let registered = registered.unwrap_or_else(|error| {
        panic!("a later module cannot register: {error}");
    });
    assert_eq!(find_fde(pg.address).unwrap().1[2], pg.address);
    drop((registered, registrations));
    // SAFETY: nothing of the modules is used after this.
    unsafe {
        later.free_memory();
        module.free_memory();
    }
}

/// A module whose code spans two arenas has its `.eh_frame` copied into
/// both; when the second copy does not fit, the first may not stay behind
/// covering code (LLVM libunwind scans `.eh_frame` when the search table
/// misses, so it would find it).
#[test]
fn a_registration_that_fails_in_its_second_arena_leaves_nothing_in_its_first() {
    let isa = isa();
    let arenas = tiny_arenas();
    let (mut module, tables) = module_in(&arenas);
    let first = define_caller(&mut module, "f0", 1);
    // 32 bytes apart: 2,048 a 64 KiB arena.
    let mut defined: Vec<_> = (1..2_200)
        .map(|i| define_copy(&mut module, &format!("f{i}"), &first))
        .collect();
    defined.insert(0, first);
    module.finalize_definitions().unwrap();
    let placed: Vec<_> = defined.iter().map(|d| placed(&module, d)).collect();
    let a = arena_of(placed[0].address).unwrap();
    let split = placed
        .iter()
        .position(|p| arena_of(p.address) != Some(a))
        .expect("the module spans two arenas");
    assert!(split > 1_000, "{split} functions in the first arena");

    // Fill the second arena's .eh_frame with its functions' FDEs, padded,
    // until not even an unpadded one fits.
    let mut registrations = Vec::new();
    let mut next = split;
    for pad in [1024, 32, 0] {
        loop {
            assert!(
                next + 1 < defined.len(),
                "ran out of functions to fill with"
            );
            let one = eh_frame_padded(&*isa, &[(&defined[next], placed[next].address as u64)], pad);
            match register(&tables, &one) {
                Ok(registration) => registrations.push(registration),
                Err(ArenaError::Full(_)) => break,
                Err(error) => panic!("{error}"),
            }
            next += 1;
        }
    }

    // One FDE for each arena: the first arena's copy is made, the second
    // does not fit.
    let both = eh_frame(
        &*isa,
        &[
            (&defined[0], placed[0].address as u64),
            (&defined[next], placed[next].address as u64),
        ],
    );
    let error = register(&tables, &both).err().unwrap();
    assert!(matches!(error, ArenaError::Full(_)), "{error:?}");
    assert!(find_fde(placed[0].address).is_none(), "half-registered");
    let image = copy_of_image(placed[0].address, "orphans");
    if let Some(frames) = eu_readelf_frames(&image) {
        let live: Vec<_> = frames
            .fdes
            .iter()
            .filter(|&(_, &(start, range))| start == placed[0].address as u64 && range > 0)
            .collect();
        assert!(
            live.is_empty(),
            "the failed registration left FDEs covering f0 in its arena: {live:x?}"
        );
    } else {
        println!("skipped the image check: eu-readelf absent");
    }
    std::fs::remove_file(image).unwrap();

    // The first arena has room: f0 registers there.
    let f0 = register(
        &tables,
        &eh_frame(&*isa, &[(&defined[0], placed[0].address as u64)]),
    )
    .unwrap();
    assert_eq!(find_fde(placed[0].address).unwrap().1[2], placed[0].address);
    drop((f0, registrations));
    // SAFETY: nothing of the module is used after this.
    unsafe { module.free_memory() };
}
