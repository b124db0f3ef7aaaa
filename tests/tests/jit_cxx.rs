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

jit_checks!();

#[test]
fn tables_are_deregistered_before_the_code_is_freed() {
    eh_tests::jit::tables_are_deregistered_before_the_code_is_freed(eh_tests::jit::unwinder_finds);
}

#[test]
fn eight_threads_throw_while_modules_register_and_deregister() {
    eh_tests::jit::concurrent_throws_while_modules_register(
        "concurrency-libgcc",
        std::time::Duration::from_secs(10),
    );
}
