//! The JIT checks, shared by this crate (libgcc_s) and the per-unwinder
//! packages (LLVM libunwind, nongnu libunwind).

use crate::{
    Escaped, Outcome, cleanup_count, cxx_suite, expected_suite_outcomes, reset_cleanup_count,
};
use clif_eh::module::{JitFile, jit_file};
use pretty_assertions::assert_eq;

/// Where the JIT code goes and how its tables reach the unwinder.
#[derive(Clone)]
pub enum Placement {
    /// cranelift-jit's own memory; tables `__register_frame`d (or
    /// `_U_dyn_register`ed).
    RegisterFrame,
    /// Loader-known arenas (`cranelift-jit-arenas`).
    Arenas(cranelift_lsda::LoaderArenas),
}

impl Placement {
    /// A fresh pool of arenas of the default size.
    pub fn arenas() -> Self {
        Self::Arenas(cranelift_lsda::LoaderArenas::new().expect("an arena loads"))
    }

    /// `file` JIT-compiled and registered as this placement does it.
    pub fn jit(&self, file: &clif_eh::EhFile, extra: &[(&str, *const u8)]) -> JitFile {
        match self {
            Self::RegisterFrame => jit_file(file, extra),
            Self::Arenas(arenas) => clif_eh::module::jit_file_in_arenas(file, extra, arenas),
        }
        .unwrap()
    }
}

/// libstdc++ catches in JIT frames: the whole suite.
pub fn libstdcxx_catches_in_jit_frames(placement: &Placement) {
    let text = cxx_suite();
    let file = clif_eh::parse_file(&text).unwrap();
    let jit = placement.jit(&file, &[]);
    let mut actual = Vec::new();
    for expected in expected_suite_outcomes() {
        let out = jit.call(&expected.function, expected.kind).unwrap();
        actual.push(Outcome {
            function: expected.function.clone(),
            kind: expected.kind,
            value: out.value,
            escaped: out.escaped.code(),
            cleanups: out.cleanups,
        });
    }
    assert_eq!(actual, expected_suite_outcomes());
    // SAFETY: no pointer into the module is used after this.
    unsafe { jit.module.free_memory() };
}

extern "C-unwind" fn rust_may_panic(x: i64) -> i64 {
    if x == 1 {
        panic!("a Rust panic crossing Cranelift frames");
    }
    x + 1
}

const RUST_PANIC: &str = "
set unwind_info=true
target x86_64
target aarch64
; eh-tag: tag4 = cleanup

function %through_rust(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    sig1 = () system_v
    sig2 = (i64) system_v
    fn0 = %rust_may_panic sig0
    fn1 = %eh_note_cleanup sig1
    fn2 = %_Unwind_Resume sig2
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ tag4: block2(exn0) ]
block1(v1: i64):
    return v1
block2(v2: i64):
    call fn1()
    call fn2(v2)
    trap user1
}

function %outer(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    sig1 = () system_v
    sig2 = (i64) system_v
    fn0 = %through_rust sig0
    fn1 = %eh_note_cleanup sig1
    fn2 = %_Unwind_Resume sig2
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ tag4: block2(exn0) ]
block1(v1: i64):
    return v1
block2(v2: i64):
    call fn1()
    call fn2(v2)
    trap user1
}
";

/// A Rust panic runs two Cranelift cleanup pads and reaches catch_unwind.
pub fn rust_panic_runs_cranelift_cleanups_and_reaches_catch_unwind(placement: &Placement) {
    let file = clif_eh::parse_file(RUST_PANIC).unwrap();
    let jit = placement.jit(&file, &[("rust_may_panic", rust_may_panic as *const u8)]);
    let code = jit.function_ptr("outer").unwrap();
    // SAFETY: `outer` is a finalized (i64) -> i64 system_v function whose
    // tables are registered; it may unwind, hence "C-unwind".
    let outer: extern "C-unwind" fn(i64) -> i64 = unsafe { std::mem::transmute(code) };

    reset_cleanup_count();
    assert_eq!(std::panic::catch_unwind(|| outer(5)).unwrap(), 6);
    assert_eq!(cleanup_count(), 0);

    let caught = std::panic::catch_unwind(|| outer(1)).unwrap_err();
    assert_eq!(
        caught.downcast_ref::<&str>().copied(),
        Some("a Rust panic crossing Cranelift frames")
    );
    assert_eq!(cleanup_count(), 2, "both frames' cleanup pads ran");
    // SAFETY: `outer` is not called after this.
    unsafe { jit.module.free_memory() };
}

/// Eight threads call the whole suite through their own JIT modules (each
/// call throws, or not, as the suite says) while another thread compiles,
/// registers, runs and frees modules, for `duration`. Every outcome must be
/// the expected one; the figures are reported under `topic`.
pub fn concurrent_throws_while_modules_register(
    placement: &Placement,
    topic: &str,
    duration: std::time::Duration,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    const THREADS: usize = 8;
    let file = clif_eh::parse_file(&cxx_suite()).unwrap();
    let expected = expected_suite_outcomes();
    let stop = AtomicBool::new(false);
    let start = std::time::Instant::now();
    let (calls, wrong, registrations) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    let jit = placement.jit(&file, &[]);
                    let (mut calls, mut wrong) = (0u64, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        for e in &expected {
                            let out = jit.call(&e.function, e.kind).unwrap();
                            let actual = (out.value, out.escaped.code(), out.cleanups);
                            if actual != (e.value, e.escaped, e.cleanups) {
                                wrong.push(format!("{}({}): {actual:?}", e.function, e.kind));
                            }
                            calls += 1;
                        }
                    }
                    (calls, wrong)
                })
            })
            .collect();
        let registrar = scope.spawn(|| {
            let mut registrations = 0u64;
            while start.elapsed() < duration {
                let jit = placement.jit(&file, &[]);
                assert_eq!(jit.call("catch_int", 1).unwrap().value, 1007);
                // SAFETY: nothing of the module is used after this.
                unsafe { jit.module.free_memory() };
                registrations += 1;
            }
            stop.store(true, Ordering::Relaxed);
            registrations
        });
        let registrations = registrar.join().unwrap();
        let (mut calls, mut wrong) = (0, Vec::new());
        for worker in workers {
            let (c, w) = worker.join().unwrap();
            calls += c;
            wrong.extend(w);
        }
        (calls, wrong, registrations)
    });
    let seconds = start.elapsed().as_secs_f64();
    let throwing = expected.iter().filter(|e| e.kind != 0).count() as f64 / expected.len() as f64;
    crate::report_figure(
        topic,
        &format!(
            "{THREADS} threads, {seconds:.1} s: {calls} calls ({:.0} throws/s), {} wrong; \
             {registrations} modules registered and freed meanwhile",
            calls as f64 * throwing / seconds,
            wrong.len()
        ),
    );
    assert!(
        wrong.is_empty(),
        "wrong outcomes: {:?}",
        &wrong[..wrong.len().min(10)]
    );
    assert!(registrations > 0 && calls > 0);
}

/// One function, `catch_int(kind)`: throws as `eh_throw` does, catches a C++
/// int in the Cranelift frame (`catch_int(1)` is 7).
pub const ONE_CATCH: &str = "
set unwind_info=true
target x86_64
target aarch64
; eh-tag: tag1 = catch _ZTIi

function %catch_int(i64) -> i64 system_v {
    sig0 = (i64) -> i64 system_v
    sig1 = () system_v
    fn0 = %eh_throw sig0
    fn1 = %__cxa_begin_catch sig0
    fn2 = %__cxa_end_catch sig1
    fn3 = %eh_int_value sig0
block0(v0: i64):
    try_call fn0(v0), sig0, block1(ret0), [ tag1: block2(exn0) ]
block1(v1: i64):
    return v1
block2(v2: i64):
    v3 = call fn1(v2)
    v4 = call fn3(v3)
    call fn2()
    return v4
}
";

/// Bytes the heap holds (`mallinfo2`: in use from the arena and mmapped)
/// and how many mappings the process has.
pub fn memory_in_use() -> (usize, usize) {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    (info.uordblks + info.hblkhd, maps.lines().count())
}

/// 10,000 JIT modules compiled, registered, thrown through (a C++ int
/// caught in the Cranelift frame) and freed, then 10,000 throws caught in
/// one module: the heap and the mappings stay flat. Must run alone in its
/// process (the heap is process-wide); figures reported under `topic`.
pub fn memory_stays_flat_over_ten_thousand_modules(topic: &str) {
    const MODULES: usize = 10_000;
    const SLACK: usize = 64 * 1024;
    let file = clif_eh::parse_file(ONE_CATCH).unwrap();
    let cycle = || {
        let jit = jit_file(&file, &[]).unwrap();
        assert_eq!(jit.call("catch_int", 1).unwrap().value, 7);
        // SAFETY: nothing of the module is used after this.
        unsafe { jit.module.free_memory() };
    };
    // Warm up: lazily allocated state of the allocator, the unwinder and
    // libstdc++ (emergency pool, per-thread globals) settles first.
    (0..100).for_each(|_| cycle());
    let before = memory_in_use();
    (0..MODULES).for_each(|_| cycle());
    let after_modules = memory_in_use();

    let jit = jit_file(&file, &[]).unwrap();
    let throws = || {
        for _ in 0..MODULES {
            assert_eq!(jit.call("catch_int", 1).unwrap().value, 7);
        }
    };
    throws();
    let before_throws = memory_in_use();
    throws();
    let after_throws = memory_in_use();
    // SAFETY: nothing of the module is used after this.
    unsafe { jit.module.free_memory() };

    let growth =
        |a: (usize, usize), b: (usize, usize)| (b.0 as i64 - a.0 as i64, b.1 as i64 - a.1 as i64);
    let (module_bytes, module_maps) = growth(before, after_modules);
    let (throw_bytes, throw_maps) = growth(before_throws, after_throws);
    crate::report_figure(
        topic,
        &format!(
            "{MODULES} modules registered, thrown through and freed: heap {module_bytes:+} B, \
             mappings {module_maps:+}; {MODULES} more throws caught in one module: heap \
             {throw_bytes:+} B, mappings {throw_maps:+}"
        ),
    );
    assert!(
        module_bytes < SLACK as i64
            && module_maps <= 0
            && throw_bytes < SLACK as i64
            && throw_maps <= 0,
        "memory grew: {before:?} -> {after_modules:?}; {before_throws:?} -> {after_throws:?}"
    );
}

unsafe extern "C" {
    fn _Unwind_Find_FDE(pc: *const u8, bases: *mut [usize; 3]) -> *const u8;
}

/// Whether `_Unwind_Find_FDE` (libgcc, LLVM libunwind) finds `pc`.
pub fn unwinder_finds(pc: usize) -> bool {
    let mut bases = [0usize; 3];
    // SAFETY: only looks `pc` up in the unwinder's registry; `bases` is a
    // writable `struct dwarf_eh_bases` (three pointers).
    !unsafe { _Unwind_Find_FDE(pc as *const u8, &mut bases) }.is_null()
}

/// The unwinder (asked through `finds`) finds the tables while they are
/// registered and not after the code is freed.
pub fn tables_are_deregistered_before_the_code_is_freed(
    placement: &Placement,
    finds: fn(usize) -> bool,
) {
    let text = cxx_suite();
    let file = clif_eh::parse_file(&text).unwrap();
    for _ in 0..3 {
        let jit = placement.jit(&file, &[]);
        let pc = jit.function_ptr("catch_base").unwrap().wrapping_add(1);
        assert!(finds(pc as usize), "registered FDE not found");
        assert_eq!(jit.call("catch_base", 2).unwrap().escaped, Escaped::Nothing);
        // SAFETY: no pointer into the module is used after this (`pc` is
        // only looked up, never dereferenced).
        unsafe { jit.module.free_memory() };
        assert!(!finds(pc as usize), "FDE still registered after free");
    }
}

/// The file of the library `_Unwind_RaiseException` resolves to in this
/// process (which unwinder libstdc++ and Rust std actually use).
pub fn raise_exception_library() -> String {
    let raise = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_Unwind_RaiseException".as_ptr()) };
    assert!(!raise.is_null());
    // SAFETY: dladdr only reads the address and fills `info`, whose
    // dli_fname it sets to a NUL-terminated path.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        assert_ne!(libc::dladdr(raise, &mut info), 0);
        std::ffi::CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned()
    }
}
