//! A function JIT-compiled into an arena, its `.eh_frame` registered with
//! `ArenaTables::register`, seen independently: by glibc's
//! `_dl_find_object` (libgcc's route), by `dl_iterate_phdr` (LLVM
//! libunwind's), by libgcc's `_Unwind_Find_FDE` and `_Unwind_Backtrace`,
//! and by elfutils reading a copy of the live image.

mod common;

use common::*;
use cranelift_jit_arenas::{ArenaConfig, LoaderArenas};
use std::ffi::{c_int, c_void};

/// Small arenas: a copy of the image is a couple of MiB.
fn small_arenas() -> LoaderArenas {
    LoaderArenas::with_config(ArenaConfig {
        code_capacity: 1 << 20,
        eh_frame_capacity: 1 << 20,
    })
    .unwrap()
}

/// Reads a `usize` at `address` (inside an unwind table).
fn read_usize(address: *const u8) -> usize {
    // SAFETY: callers pass addresses inside a mapped table segment.
    unsafe { address.cast::<usize>().read_unaligned() }
}

#[test]
fn the_loader_and_libgcc_find_a_registered_fde_and_lose_it_when_dropped() {
    let isa = isa();
    let arenas = small_arenas();
    let (module, tables, f, p) = finalized_f(&arenas);
    let (first, middle, last) = (p.address, p.address + p.len / 2, p.address + p.len - 1);

    // The loader knows the arena from the start; libgcc finds no FDE for
    // code whose own is not registered (its entry points at the
    // placeholder, which covers nothing).
    let object = dl_find_object(middle).expect("_dl_find_object knows the arena");
    let (map_start, map_end) = (object.dlfo_map_start as usize, object.dlfo_map_end as usize);
    assert!(
        (map_start..map_end).contains(&first) && (map_start..map_end).contains(&last),
        "{object:?} does not hold {first:#x}..={last:#x}"
    );
    assert!(find_fde(middle).is_none(), "an FDE before registration");

    // Both loader views agree on where the arena's .eh_frame_hdr is.
    let hdr = object.dlfo_eh_frame as usize;
    let (phdr_base, phdr_hdr) = phdr_eh_frame_hdr(middle).expect("dl_iterate_phdr sees the arena");
    assert_eq!(phdr_hdr, Some(hdr), "PT_GNU_EH_FRAME vs dlfo_eh_frame");
    let (name, base) = dladdr(middle).expect("dladdr knows the arena");
    assert_eq!(base, phdr_base);
    assert_eq!(base, map_start, "the image is mapped from its load base");
    assert!(name.starts_with("/proc/self/fd/"), "{name}");
    // SAFETY: the header of the arena's .eh_frame_hdr, which is mapped.
    let header = unsafe { std::slice::from_raw_parts(hdr as *const u8, 12) };
    // Version 1; .eh_frame pcrel|sdata4; count udata4; table datarel|sdata4.
    assert_eq!(header[..4], [1, 0x1b, 0x03, 0x3b]);
    assert_eq!(u32::from_ne_bytes(header[8..].try_into().unwrap()), 1);

    let registration = register(&tables, &eh_frame(&*isa, &[(&f, p.address as u64)])).unwrap();
    for pc in [first, middle, last] {
        let (fde, bases) = find_fde(pc).unwrap_or_else(|| panic!("no FDE for {pc:#x}"));
        assert_eq!(bases[2], p.address, "dwarf_eh_bases.func for {pc:#x}");
        // The FDE is the copy in the arena's .eh_frame, after its
        // .eh_frame_hdr, with the absolute start and length written.
        assert!(
            (hdr..map_end).contains(&(fde as usize)),
            "{fde:?} outside the arena"
        );
        assert_eq!(read_usize(fde.wrapping_add(8)), p.address);
        assert_eq!(read_usize(fde.wrapping_add(16)), p.len);
    }
    assert!(find_fde(p.address + p.len).is_none(), "past the function");

    drop(registration);
    for pc in [first, middle, last] {
        assert!(
            find_fde(pc).is_none(),
            "FDE for {pc:#x} after unregistering"
        );
    }
    // The function is still there, and so is the arena.
    assert_eq!(dl_find_object(middle).unwrap().dlfo_eh_frame as usize, hdr);
    // SAFETY: nothing of the module is used after this.
    unsafe { module.free_memory() };
    assert!(find_fde(middle).is_none());
}

unsafe extern "C" {
    fn _Unwind_Backtrace(
        trace: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
        data: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(context: *mut c_void) -> usize;
}

std::thread_local! {
    static WALK: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

unsafe extern "C" fn record(context: *mut c_void, _: *mut c_void) -> c_int {
    // SAFETY: `context` is the unwinder's context for this frame.
    let ip = unsafe { _Unwind_GetIP(context) };
    WALK.with_borrow_mut(|walk| walk.push(ip));
    0 // _URC_NO_REASON: go on.
}

/// Called from JIT code: walks the stack with libgcc, then returns `2x`.
extern "C-unwind" fn walk_and_double(x: i64) -> i64 {
    WALK.with_borrow_mut(Vec::clear);
    // SAFETY: `record` matches `_Unwind_Trace_Fn` and only reads the context.
    unsafe { _Unwind_Backtrace(record, std::ptr::null_mut()) };
    2 * x
}

/// Calls `f` (in JIT code) and returns where the walk from its callee
/// found it and how many frames the walk went on past it.
fn walk_through(f: Caller, p: Placed, add: i64) -> (usize, usize) {
    assert_eq!(f(20, walk_and_double), 40 + add);
    WALK.with_borrow(|walk| {
        let at = walk
            .iter()
            .position(|&ip| ip > p.address && ip <= p.address + p.len)
            .unwrap_or_else(|| panic!("the walk {walk:x?} misses the JIT frame {p:x?}"));
        (walk[at], walk.len() - at - 1)
    })
}

#[test]
fn a_backtrace_crosses_a_jit_frame_only_while_its_fde_is_registered() {
    let isa = isa();
    let arenas = small_arenas();
    let (module, tables, f, p) = finalized_f(&arenas);
    // SAFETY: `f` is a finalized function of this signature; it unwinds
    // only through the walk, which does not unwind.
    let call: Caller = unsafe { std::mem::transmute(p.address) };

    let (_, past) = walk_through(call, p, 1);
    assert_eq!(past, 0, "libgcc found a way past an unregistered frame");

    let registration = register(&tables, &eh_frame(&*isa, &[(&f, p.address as u64)])).unwrap();
    let (ip, past) = walk_through(call, p, 1);
    assert!(
        past > 0,
        "the walk stops at the registered JIT frame {ip:#x}"
    );
    // The frame past the JIT one is this test's, in this executable.
    let next = WALK.with_borrow(|walk| walk[walk.iter().position(|&i| i == ip).unwrap() + 1]);
    let (name, _) = dladdr(next - 1).expect("the caller's frame is in a loaded object");
    let me = std::env::current_exe().unwrap();
    assert_eq!(std::fs::canonicalize(&name).unwrap(), me, "{next:#x}");

    drop(registration);
    let (_, past) = walk_through(call, p, 1);
    assert_eq!(past, 0, "libgcc still unwinds an unregistered frame");
    // SAFETY: `call` is not used after this.
    unsafe { module.free_memory() };
}

#[test]
fn two_modules_sharing_an_arena_are_registered_and_freed_independently() {
    let isa = isa();
    let arenas = small_arenas();
    let (mut a, a_tables) = module_in(&arenas);
    let fa = define_caller(&mut a, "fa", 1);
    a.finalize_definitions().unwrap();
    let (mut b, b_tables) = module_in(&arenas);
    let fb = define_caller(&mut b, "fb", 2);
    b.finalize_definitions().unwrap();
    let (pa, pb) = (placed(&a, &fa), placed(&b, &fb));
    let (oa, ob) = (
        dl_find_object(pa.address).unwrap(),
        dl_find_object(pb.address).unwrap(),
    );
    assert_eq!(oa.dlfo_map_start, ob.dlfo_map_start, "one arena");
    assert_eq!(arenas.open_arenas(), 1);
    assert!(pb.address > pa.address, "leased in address order");

    let ra = register(&a_tables, &eh_frame(&*isa, &[(&fa, pa.address as u64)])).unwrap();
    assert!(find_fde(pb.address).is_none(), "b's FDE before b registers");
    let rb = register(&b_tables, &eh_frame(&*isa, &[(&fb, pb.address as u64)])).unwrap();
    assert_eq!(find_fde(pa.address).unwrap().1[2], pa.address);
    assert_eq!(find_fde(pb.address).unwrap().1[2], pb.address);

    drop(ra);
    // SAFETY: nothing of `a` is used after this.
    unsafe { a.free_memory() };
    assert!(find_fde(pa.address).is_none(), "a's FDE after a is freed");
    assert_eq!(find_fde(pb.address).unwrap().1[2], pb.address);
    // SAFETY: `fb` is finalized with this signature and registered.
    let call: Caller = unsafe { std::mem::transmute(pb.address) };
    let (_, past) = walk_through(call, pb, 2);
    assert!(past > 0, "b's frame no longer unwinds after a is freed");

    drop(rb);
    // SAFETY: nothing of `b` is used after this.
    unsafe { b.free_memory() };
    assert!(find_fde(pb.address).is_none());
}

#[test]
fn eu_readelf_reads_our_search_table_from_a_copy_of_the_live_image() {
    let isa = isa();
    let arenas = small_arenas();
    let (mut module, tables) = module_in(&arenas);
    let defined: Vec<_> = (0..3)
        .map(|i| define_caller(&mut module, &format!("f{i}"), i))
        .collect();
    module.finalize_definitions().unwrap();
    let placed: Vec<_> = defined.iter().map(|d| placed(&module, d)).collect();
    let fdes: Vec<_> = defined
        .iter()
        .zip(&placed)
        .map(|(d, p)| (d, p.address as u64))
        .collect();
    let registration = register(&tables, &eh_frame(&*isa, &fdes)).unwrap();

    let (_, base) = dladdr(placed[0].address).unwrap();
    let registered = copy_of_image(placed[0].address, "registered");
    drop(registration);
    let unregistered = copy_of_image(placed[0].address, "unregistered");
    // SAFETY: nothing of the module is used after this.
    unsafe { module.free_memory() };

    let Some(frames) = eu_readelf_frames(&registered) else {
        println!("skipped: eu-readelf absent");
        eprintln!("skipped: eu-readelf absent");
        return;
    };
    let text = &frames.text;
    // The search table lists each function at its address in the image.
    let relative: Vec<u64> = placed.iter().map(|p| (p.address - base) as u64).collect();
    let starts: Vec<u64> = frames.table.iter().map(|&(start, _)| start).collect();
    assert_eq!(starts, relative, "search table vs functions\n{text}");
    // Each entry points at its function's FDE: absolute initial location,
    // the function's length.
    for (&(_, fde), p) in frames.table.iter().zip(&placed) {
        assert_eq!(
            frames.fdes.get(&fde),
            Some(&(p.address as u64, p.len as u64)),
            "FDE at [{fde:x}] for {p:x?}\n{text}"
        );
    }

    // Unregistered: the entries stay, all pointing at one placeholder FDE
    // that covers nothing, and the function's FDEs cover nothing either.
    let after = eu_readelf_frames(&unregistered).unwrap();
    let text = &after.text;
    let starts: Vec<u64> = after.table.iter().map(|&(start, _)| start).collect();
    assert_eq!(starts, relative, "{text}");
    let placeholder = after.table[0].1;
    assert!(
        after.table.iter().all(|&(_, fde)| fde == placeholder),
        "{text}"
    );
    assert_eq!(after.fdes[&placeholder].1, 0, "{text}");
    for &(_, fde) in &frames.table {
        assert_ne!(fde, placeholder, "{text}");
        assert_eq!(
            after.fdes[&fde].1, 0,
            "FDE [{fde:x}] still covers code\n{text}"
        );
    }
    std::fs::remove_file(registered).unwrap();
    std::fs::remove_file(unregistered).unwrap();
}
