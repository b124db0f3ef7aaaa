//! The JIT checks with nongnu libunwind (libunwind.so.8) as the unwinder:
//! it has no `__register_frame`, so the tables go through `_U_dyn_register`.

// Links this package's library, which carries libunwind.so.8.
extern crate eh_tests_nongnu_libunwind as _;

use eh_tests::jit_checks;

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

jit_checks!(crate::libunwind_finds);

/// Whether nongnu libunwind has unwind info for `pc`
/// (`unw_get_proc_info_by_ip` on the local address space).
fn libunwind_finds(pc: usize) -> bool {
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
