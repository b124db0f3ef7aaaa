//! Registration of JIT code's unwind information with the system unwinder,
//! so that exceptions and backtraces pass through JIT frames (#5574).
//!
//! Each `finalize_definitions` writes one `.eh_frame` with absolute
//! addresses for the functions it finalized and registers it the way the
//! process's unwinder takes it: libgcc's `__register_frame` takes a whole
//! section ended by a zero length, LLVM libunwind's one FDE per call, as in
//! Wasmtime's `unwind.rs`. LLVM libunwind is recognised by its
//! `__unw_add_dynamic_fde`, as LLVM's `RTDyldMemoryManager` does. The
//! registrations are undone before the code is freed.
//!
//! Only on Unix, whose unwinders read `.eh_frame`; elsewhere nothing is
//! registered.

use cranelift_codegen::CompiledCode;
use cranelift_codegen::gimli::RunTimeEndian;
use cranelift_codegen::gimli::write::{Address, EhFrame, EndianVec, FrameTable, Writer};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_module::{FuncId, ModuleError, ModuleResult};
use std::boxed::Box;
use std::vec;
use std::vec::Vec;

/// The unwind information of a module's functions: recorded as they are
/// defined, registered when they are finalized.
pub(crate) struct UnwindRegistry {
    enabled: bool,
    pending: Vec<(FuncId, cranelift_codegen::isa::unwind::systemv::UnwindInfo)>,
    registrations: Vec<EhFrameRegistration>,
}

impl UnwindRegistry {
    /// A registry that registers unwind information if `enabled` and the
    /// platform's unwinder reads `.eh_frame`.
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled: enabled && cfg!(unix),
            pending: Vec::new(),
            registrations: Vec::new(),
        }
    }

    /// Record the unwind information of `id`, compiled to `code`.
    pub(crate) fn add_function(
        &mut self,
        isa: &dyn TargetIsa,
        id: FuncId,
        code: &CompiledCode,
    ) -> ModuleResult<()> {
        if !self.enabled || !isa.flags().unwind_info() {
            return Ok(());
        }
        if let Some(UnwindInfo::SystemV(info)) = code.create_unwind_info(isa)? {
            self.pending.push((id, info));
        }
        Ok(())
    }

    /// Register the unwind information recorded since the last call, for
    /// functions now at `address_of(id)`.
    pub(crate) fn register(
        &mut self,
        isa: &dyn TargetIsa,
        address_of: impl Fn(FuncId) -> *const u8,
    ) -> ModuleResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(cie) = isa.create_systemv_cie() else {
            self.pending.clear();
            return Ok(());
        };
        let mut table = FrameTable::default();
        let cie = table.add_cie(cie);
        for (id, info) in self.pending.drain(..) {
            let address = Address::Constant(address_of(id) as u64);
            table.add_fde(cie, info.to_fde(address));
        }
        // JIT code runs here: the host's byte order.
        let mut eh_frame = EhFrame(EndianVec::new(RunTimeEndian::default()));
        let write_error = |e| ModuleError::Backend(anyhow::anyhow!("writing .eh_frame: {e}"));
        table.write_eh_frame(&mut eh_frame).map_err(write_error)?;
        eh_frame.0.write_u32(0).map_err(write_error)?;
        // SAFETY: the FDEs describe functions of this module, which stay
        // where they are until `deregister_all`, called before they are
        // freed.
        let registration = unsafe { EhFrameRegistration::register(eh_frame.0.slice()) };
        self.registrations.push(registration);
        Ok(())
    }

    /// Undo every registration; the code may be freed afterwards.
    pub(crate) fn deregister_all(&mut self) {
        self.registrations.clear();
    }
}

/// An `.eh_frame` registered with the process's unwinder, deregistered on
/// drop.
pub struct EhFrameRegistration {
    // Kept alive and unmoved while registered; `u64`s for 8-byte alignment.
    _eh_frame: Box<[u64]>,
    /// What was passed to `__register_frame`.
    entries: Vec<*const u8>,
}

// SAFETY: the pointers are into the heap copy this value owns and never
// hands out; the unwinders' registration functions take a lock, so
// deregistering on another thread is sound.
unsafe impl Send for EhFrameRegistration {}

impl EhFrameRegistration {
    /// Register a copy of `eh_frame`: CIEs and FDEs with absolute pointers,
    /// one CIE first, ended by a zero length.
    ///
    /// # Safety
    ///
    /// The FDEs must describe code that stays alive and unmoved, and the
    /// personality routines and LSDAs they point to must stay valid, until
    /// the result is dropped.
    pub unsafe fn register(eh_frame: &[u8]) -> Self {
        let mut storage = vec![0u64; eh_frame.len().div_ceil(8)].into_boxed_slice();
        // SAFETY: `storage` holds at least `eh_frame.len()` bytes, and any
        // bytes are valid `u64`s.
        let copy = unsafe {
            core::slice::from_raw_parts_mut(storage.as_mut_ptr().cast::<u8>(), eh_frame.len())
        };
        copy.copy_from_slice(eh_frame);
        let start = storage.as_ptr().cast::<u8>();
        let entries = if using_llvm_libunwind() {
            // One FDE per call: every record after the CIE, up to the
            // terminator (a record's length does not count its own field).
            let mut entries = Vec::new();
            let mut offset = 0;
            while offset + 4 <= copy.len() {
                let len = u32::from_ne_bytes(copy[offset..offset + 4].try_into().unwrap());
                if len == 0 {
                    break;
                }
                if offset != 0 {
                    entries.push(start.wrapping_add(offset));
                }
                offset += 4 + len as usize;
            }
            entries
        } else {
            vec![start]
        };
        for &entry in &entries {
            // SAFETY: `entry` starts a well-formed `.eh_frame` (libgcc) or
            // FDE (LLVM libunwind) in `storage`, which lives as long as the
            // registration; the caller keeps what it describes alive.
            unsafe { sys::register_frame(entry) };
        }
        Self {
            _eh_frame: storage,
            entries,
        }
    }
}

impl Drop for EhFrameRegistration {
    fn drop(&mut self) {
        // libgcc keeps registered objects in a list it searches from the
        // most recent: deregistering in reverse finds each at the front.
        for &entry in self.entries.iter().rev() {
            // SAFETY: `entry` was registered by `register` and not since.
            unsafe { sys::deregister_frame(entry) };
        }
    }
}

fn using_llvm_libunwind() -> bool {
    cfg!(target_os = "macos") || sys::has_symbol(c"__unw_add_dynamic_fde")
}

#[cfg(unix)]
mod sys {
    unsafe extern "C" {
        fn __register_frame(begin: *const u8);
        fn __deregister_frame(begin: *const u8);
    }

    pub(super) unsafe fn register_frame(begin: *const u8) {
        // SAFETY: forwarded from the caller.
        unsafe { __register_frame(begin) }
    }

    pub(super) unsafe fn deregister_frame(begin: *const u8) {
        // SAFETY: forwarded from the caller.
        unsafe { __deregister_frame(begin) }
    }

    pub(super) fn has_symbol(name: &core::ffi::CStr) -> bool {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only
        // looks the symbol up.
        !unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }.is_null()
    }
}

#[cfg(not(unix))]
mod sys {
    pub(super) unsafe fn register_frame(_: *const u8) {}
    pub(super) unsafe fn deregister_frame(_: *const u8) {}
    pub(super) fn has_symbol(_: &core::ffi::CStr) -> bool {
        false
    }
}
