//! The JIT checks of `tests/tests/jit_cxx.rs`, with LLVM libunwind as the
//! unwinder: `__register_frame` takes one FDE per call here.

// Links this package's library, which carries libunwind.so.1.
extern crate eh_tests_llvm_libunwind as _;

use eh_tests::jit_checks;

#[test]
fn runs_under_llvm_libunwind() {
    assert_eq!(
        cranelift_lsda::detect_unwinder(),
        cranelift_lsda::Unwinder::LlvmLibunwind
    );
    let library = eh_tests::jit::raise_exception_library();
    assert!(library.contains("libunwind.so.1"), "{library}");
}

jit_checks!(eh_tests::jit::unwinder_finds);

#[test]
fn eight_threads_throw_while_modules_register_and_deregister() {
    eh_tests::jit::concurrent_throws_while_modules_register(
        &eh_tests::jit::Placement::RegisterFrame,
        "concurrency-llvm-libunwind",
        std::time::Duration::from_secs(10),
    );
}
#[test]
fn eight_threads_throw_while_modules_are_placed_in_arenas_and_freed() {
    eh_tests::jit::concurrent_throws_while_modules_register(
        &eh_tests::jit::Placement::arenas(),
        "concurrency-llvm-libunwind-arenas",
        std::time::Duration::from_secs(10),
    );
}
