//! The JIT checks with nongnu libunwind (libunwind.so.8) as the unwinder:
//! it has no `__register_frame`, so the tables go through `_U_dyn_register`.

// Links this package's library, which carries libunwind.so.8.
extern crate eh_tests_nongnu_libunwind as _;

use eh_tests::jit_checks;

use clif_eh::module::jit_file;
use eh_tests::Escaped;

fn symbol(name: &str) -> *mut libc::c_void {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: looks a symbol up.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

#[test]
fn runs_under_nongnu_libunwind() {
    assert_eq!(
        cranelift_lsda::detect_unwinder(),
        cranelift_lsda::Unwinder::NongnuLibunwind
    );
    let library = eh_tests::jit::raise_exception_library();
    assert!(library.contains("libunwind.so.8"), "{library}");
}

jit_checks!();

/// Whether nongnu libunwind has unwind info for `pc`
/// (`unw_get_proc_info_by_ip` on the local address space).
fn libunwind_finds(pc: *const u8) -> bool {
    let arch = std::env::consts::ARCH;
    let get = symbol(&format!("_UL{arch}_get_proc_info_by_ip"));
    let space = symbol(&format!("_UL{arch}_local_addr_space"));
    assert!(!get.is_null() && !space.is_null());
    type Get = unsafe extern "C" fn(*mut libc::c_void, u64, *mut u64, *mut libc::c_void) -> i32;
    // SAFETY: `unw_get_proc_info_by_ip(unw_addr_space_t, unw_word_t,
    // unw_proc_info_t *, void *)`; the buffer is larger than
    // unw_proc_info_t; the address space is the library's local one.
    unsafe {
        let get: Get = std::mem::transmute(get);
        let mut info = [0u64; 32];
        let space = *(space as *const *mut libc::c_void);
        get(space, pc as u64, info.as_mut_ptr(), std::ptr::null_mut()) == 0
    }
}

#[test]
fn tables_are_deregistered_before_the_code_is_freed() {
    let file = clif_eh::parse_file(&eh_tests::cxx_suite()).unwrap();
    for _ in 0..3 {
        let jit = jit_file(&file, &[]).unwrap();
        let pc = jit.function_ptr("catch_base").unwrap().wrapping_add(1);
        assert!(libunwind_finds(pc), "registered table not found");
        assert_eq!(jit.call("catch_base", 2).unwrap().escaped, Escaped::Nothing);
        // SAFETY: no pointer into the module is used after this (`pc` is
        // only looked up).
        unsafe { jit.module.free_memory() };
        assert!(!libunwind_finds(pc), "table still registered after free");
    }
}
