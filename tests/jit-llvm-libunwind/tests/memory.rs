//! Memory stays flat over 10,000 JIT modules under LLVM libunwind (alone
//! in its process: the heap figures are process-wide).

// Links this package's library, which carries libunwind.so.1.
extern crate eh_tests_llvm_libunwind as _;

#[test]
fn memory_stays_flat_over_ten_thousand_modules() {
    assert_eq!(
        cranelift_lsda::detect_unwinder(),
        cranelift_lsda::Unwinder::LlvmLibunwind
    );
    eh_tests::jit::memory_stays_flat_over_ten_thousand_modules("memory-llvm-libunwind");
}
