//! Creating an arena when the process is out of descriptors or of address
//! space: a typed error, no panic, nothing left open or mapped, and the
//! next pool after the limit is lifted works. Alone in its test binary:
//! resource limits are process-wide (and its tests take turns).

mod common;

use common::arena_mappings;
use cranelift_jit::{BranchProtection, JITMemoryKind, JITMemoryProvider};
use cranelift_jit_arenas::{ArenaConfig, ArenaError, LoaderArenas};
use std::sync::Mutex;

/// One test at a time changes the limits.
static LIMITS: Mutex<()> = Mutex::new(());

/// Sets `resource`'s soft limit for the duration of `run`.
fn with_soft_limit<T>(
    resource: libc::__rlimit_resource_t,
    soft: u64,
    run: impl FnOnce() -> T,
) -> T {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(resource, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(resource, &new), 0, "setrlimit({soft})");
    }
    let result = run();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(resource, &old) }, 0);
    result
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A pool works: an arena is created and takes code.
fn a_pool_works(config: ArenaConfig) {
    let arenas = LoaderArenas::with_config(config).expect("a pool after the limit is lifted");
    let (mut memory, _tables) = arenas.memory();
    memory.allocate(64, 16, JITMemoryKind::Executable).unwrap();
    memory.finalize(BranchProtection::None).unwrap();
    // SAFETY: nothing placed is used.
    unsafe { memory.free_memory() };
}

#[test]
fn out_of_descriptors_memfd_create_fails_with_an_os_error() {
    let _turn = LIMITS.lock().unwrap_or_else(|poison| poison.into_inner());
    let (fds, maps) = (open_descriptors(), arena_mappings());
    // The lowest free descriptor is the next one: a limit of its number
    // leaves none.
    // SAFETY: duplicates standard error to the lowest free descriptor.
    let lowest = unsafe { libc::fcntl(2, libc::F_DUPFD, 0) };
    assert!(lowest > 2);
    // SAFETY: closes the descriptor just opened.
    unsafe { libc::close(lowest) };
    let result = with_soft_limit(libc::RLIMIT_NOFILE, lowest as u64, LoaderArenas::new);
    let error = result.err().expect("a pool with no descriptor left");
    match &error {
        ArenaError::Os { what, error } => {
            assert_eq!(*what, "memfd_create");
            assert_eq!(error.raw_os_error(), Some(libc::EMFILE), "{error}");
        }
        other => panic!("not an OS error: {other:?}"),
    }
    let message = error.to_string();
    println!("limit {lowest} descriptors: {message}");
    assert!(message.starts_with("memfd_create failed: "), "{message}");
    assert!(std::error::Error::source(&error).is_some());
    assert_eq!((open_descriptors(), arena_mappings()), (fds, maps));

    a_pool_works(ArenaConfig::default());
    assert_eq!((open_descriptors(), arena_mappings()), (fds, maps));
}

/// Bytes of address space the process has mapped (`VmSize`).
fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    kib << 10
}

#[test]
fn out_of_address_space_a_big_arena_fails_with_an_error() {
    const GIB: u64 = 1 << 30;
    let _turn = LIMITS.lock().unwrap_or_else(|poison| poison.into_inner());
    // About the largest arena whose search-table offsets fit 32 bits: the
    // image spans about 2 GiB of address space (512 MiB of search table,
    // 448 MiB of .eh_frame, 1 GiB of code), and its tables are mapped a
    // second time (960 MiB).
    let big = ArenaConfig {
        code_capacity: GIB,
        eh_frame_capacity: 448 << 20,
    };
    // The big pool works with room enough (else this test shows nothing).
    a_pool_works(big);
    let (fds, maps) = (open_descriptors(), arena_mappings());

    let mut failures = Vec::new();
    // Room for part of the image; room for the image but not its second
    // mapping of the tables.
    for headroom in [GIB, 5 * GIB / 2] {
        let result = with_soft_limit(libc::RLIMIT_AS, address_space() + headroom, || {
            LoaderArenas::with_config(big)
        });
        let error = result
            .err()
            .unwrap_or_else(|| panic!("a 3 GiB arena in {headroom} bytes of address space"));
        assert!(
            matches!(
                &error,
                ArenaError::Loader { .. }
                    | ArenaError::Os {
                        what: "mapping the arena's tables",
                        ..
                    }
            ),
            "{error:?}"
        );
        assert_eq!(
            (open_descriptors(), arena_mappings()),
            (fds, maps),
            "left open or mapped after: {error}"
        );
        println!("{headroom} bytes of headroom: {error}");
        failures.push(error.to_string());
    }
    // Each limit fails at its own step: dlopen first, then the tables.
    assert!(
        failures[0].starts_with("dlopen of the arena image failed: "),
        "{failures:?}"
    );
    assert!(
        failures[1].starts_with("mapping the arena's tables failed: "),
        "{failures:?}"
    );

    a_pool_works(big);
    a_pool_works(ArenaConfig::default());
    assert_eq!((open_descriptors(), arena_mappings()), (fds, maps));
}
