//! JIT path under the default unwinder (libgcc_s): Cranelift code compiled
//! with cranelift-jit, its tables registered, caught by libstdc++'s
//! `__gxx_personality_v0`; a Rust panic crossing Cranelift frames. The same
//! checks run under LLVM libunwind in `tests/jit-llvm-libunwind`.

use eh_tests::jit_checks;

#[test]
fn runs_under_libgcc() {
    assert_eq!(
        cranelift_lsda::detect_unwinder(),
        cranelift_lsda::Unwinder::Libgcc
    );
}

jit_checks!(eh_tests::jit::unwinder_finds);

#[test]
fn eight_threads_throw_while_modules_register_and_deregister() {
    eh_tests::jit::concurrent_throws_while_modules_register(
        &eh_tests::jit::Placement::RegisterFrame,
        "concurrency-libgcc",
        std::time::Duration::from_secs(10),
    );
}
#[test]
fn eight_threads_throw_while_modules_are_placed_in_arenas_and_freed() {
    eh_tests::jit::concurrent_throws_while_modules_register(
        &eh_tests::jit::Placement::arenas(),
        "concurrency-libgcc-arenas",
        std::time::Duration::from_secs(10),
    );
}

/// This test binary re-run under valgrind's memcheck, running only the
/// libstdc++ suite and the Rust panic test, with `__register_frame` and in
/// arenas: no memory error, nothing
/// definitely or indirectly lost. (The test harness's own thread-local
/// channel context shows as 48 bytes possibly lost.)
#[test]
fn the_jit_suite_leaks_nothing_under_memcheck() {
    let me = std::env::current_exe().unwrap();
    let report = eh_tests::memcheck(
        &me,
        &[
            "--exact",
            "libstdcxx_catches_in_jit_frames",
            "rust_panic_runs_cranelift_cleanups_and_reaches_catch_unwind",
            "in_arenas::libstdcxx_catches_in_jit_frames",
            "in_arenas::rust_panic_runs_cranelift_cleanups_and_reaches_catch_unwind",
            "--test-threads=1",
        ],
    );
    eh_tests::report_figure("leaks-jit-suite", &report.to_string());
    let ran = 4;
    assert!(
        report
            .stdout
            .contains(&format!("test result: ok. {ran} passed")),
        "{}",
        report.stdout
    );
    assert_eq!(
        (
            report.errors,
            report.definitely_lost,
            report.indirectly_lost
        ),
        (0, 0, 0),
        "{report}"
    );
}
