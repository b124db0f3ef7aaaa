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

jit_checks!();

#[test]
fn tables_are_deregistered_before_the_code_is_freed() {
    eh_tests::jit::tables_are_deregistered_before_the_code_is_freed(eh_tests::jit::unwinder_finds);
}

#[test]
fn eight_threads_throw_while_modules_register_and_deregister() {
    eh_tests::jit::concurrent_throws_while_modules_register(
        "concurrency-llvm-libunwind",
        std::time::Duration::from_secs(10),
    );
}
