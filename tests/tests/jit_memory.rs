//! Memory stays flat over 10,000 JIT modules under libgcc (alone in its
//! process: the heap figures are process-wide).

#[test]
fn memory_stays_flat_over_ten_thousand_modules() {
    eh_tests::jit::memory_stays_flat_over_ten_thousand_modules("memory-libgcc");
}
