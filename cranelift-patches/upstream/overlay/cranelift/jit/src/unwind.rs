//! Registration of JIT code's unwind information with the system unwinder,
//! so that panics, C++ exceptions and backtraces pass through JIT frames
//! (part of #5574).
//!
//! With `JITBuilder::register_unwind_info(true)`, each
//! `finalize_definitions` writes one `.eh_frame` with absolute addresses
//! for the functions it finalized and registers it the way the process's
//! unwinder takes it: libgcc's `__register_frame` takes a whole section
//! ended by a zero length, LLVM libunwind's one FDE per call, as Wasmtime's
//! `unwind.rs` does. LLVM libunwind is assumed where it is linked
//! statically and exports nothing to look up (static musl, Android, OpenHarmony)
//! and on Apple targets, and recognised elsewhere by an exported
//! `__unw_add_dynamic_fde`. `free_memory` deregisters it before the code
//! goes; dropping the module leaks it with the code.
//!
//! The FDEs carry no personality or LSDA: frames unwind, but `try_call`
//! handlers are not entered by the system unwinder. Only on Unix (not
//! 32-bit ARM, whose GNU toolchains lack `__register_frame`); elsewhere
//! nothing is registered.

use core::fmt;
use cranelift_codegen::CompiledCode;
use cranelift_codegen::gimli::RunTimeEndian;
use cranelift_codegen::gimli::write::{Address, EhFrame, EndianVec, FrameTable, Writer};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_codegen::isa::unwind::systemv::UnwindInfo as SystemVUnwindInfo;
use cranelift_module::{FuncId, ModuleError, ModuleResult};
use std::boxed::Box;
use std::vec;
use std::vec::Vec;

/// The unwind information of a module's functions: recorded as they are
/// defined, registered when they are finalized.
pub(crate) struct UnwindRegistry {
    enabled: bool,
    pending: Vec<(FuncId, SystemVUnwindInfo)>,
    registrations: Vec<EhFrameRegistration>,
}

impl UnwindRegistry {
    /// A registry that registers unwind information if `enabled` and the
    /// platform's unwinder takes `.eh_frame` sections.
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled: enabled && sys::SUPPORTED,
            pending: Vec::new(),
            registrations: Vec::new(),
        }
    }

    /// The unwind information to register for `code`, if any: computed
    /// before the code is stored, so a failure leaves nothing defined.
    pub(crate) fn unwind_info(
        &self,
        isa: &dyn TargetIsa,
        code: &CompiledCode,
    ) -> ModuleResult<Option<SystemVUnwindInfo>> {
        if !self.enabled || !isa.flags().unwind_info() {
            return Ok(None);
        }
        match code.create_unwind_info(isa)? {
            Some(UnwindInfo::SystemV(info)) => Ok(Some(info)),
            _ => Ok(None),
        }
    }

    /// Record `info` for `id`, now stored in the module.
    pub(crate) fn add_function(&mut self, id: FuncId, info: Option<SystemVUnwindInfo>) {
        if let Some(info) = info {
            self.pending.push((id, info));
        }
    }

    /// Register the unwind information recorded since the last call, for
    /// functions now at `address_of(id)`.
    pub(crate) fn register(
        &mut self,
        isa: &dyn TargetIsa,
        address_of: impl Fn(FuncId) -> Option<*const u8>,
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
            if let Some(code) = address_of(id) {
                table.add_fde(cie, info.to_fde(Address::Constant(code as u64)));
            }
        }
        // JIT code runs here: the host's byte order.
        let mut eh_frame = EhFrame(EndianVec::new(RunTimeEndian::default()));
        let write_error = |e| ModuleError::Backend(anyhow::anyhow!("writing .eh_frame: {e}"));
        table.write_eh_frame(&mut eh_frame).map_err(write_error)?;
        eh_frame.0.write_u32(0).map_err(write_error)?;
        // SAFETY: the FDEs describe functions of this module, which stay
        // where they are until `deregister_all`, called before they are
        // freed, or forever when the module is dropped.
        let registration = unsafe { EhFrameRegistration::register(eh_frame.0.slice()) }
            .map_err(|e| ModuleError::Backend(anyhow::anyhow!(e)))?;
        self.registrations.push(registration);
        Ok(())
    }

    /// Undo every registration, the latest first (libgcc before GCC 13
    /// searches its list from the latest); the code may be freed afterwards.
    pub(crate) fn deregister_all(&mut self) {
        while let Some(registration) = self.registrations.pop() {
            drop(registration);
        }
    }
}

impl Drop for UnwindRegistry {
    fn drop(&mut self) {
        // A module dropped without `free_memory` leaks its code, which stays
        // callable: its unwind information stays registered with it.
        for registration in self.registrations.drain(..) {
            core::mem::forget(registration);
        }
    }
}

/// An `.eh_frame` section that [`EhFrameRegistration::register`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EhFrameError {
    /// A record's length field or body runs past the end.
    Truncated {
        /// Offset of the record.
        offset: usize,
    },
    /// A record uses the 64-bit DWARF format.
    Dwarf64 {
        /// Offset of the record.
        offset: usize,
    },
    /// No zero-length terminator ends the section.
    NoTerminator,
    /// The section has no FDE.
    NoFde,
}

impl fmt::Display for EhFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset } => {
                write!(f, ".eh_frame record at {offset:#x} runs past the end")
            }
            Self::Dwarf64 { offset } => {
                write!(f, ".eh_frame record at {offset:#x} is 64-bit DWARF")
            }
            Self::NoTerminator => write!(f, ".eh_frame has no zero-length terminator"),
            Self::NoFde => write!(f, ".eh_frame has no FDE"),
        }
    }
}

impl core::error::Error for EhFrameError {}

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
    /// Register a copy of `eh_frame`, a 32-bit DWARF `.eh_frame` section
    /// in the host's byte order ended by a zero length, with the process's
    /// unwinder. Malformed sections are refused; on a platform whose
    /// unwinder does not take `.eh_frame` sections, nothing is registered.
    ///
    /// # Safety
    ///
    /// The FDEs must describe code that stays alive and unmoved, with
    /// absolute (`DW_EH_PE_absptr`) or self-relative pointers, and the
    /// personality routines and LSDAs they name must stay valid, until the
    /// result is dropped.
    pub unsafe fn register(eh_frame: &[u8]) -> Result<Self, EhFrameError> {
        let fdes = fde_offsets(eh_frame)?;
        let mut storage = vec![0u64; eh_frame.len().div_ceil(8)].into_boxed_slice();
        // SAFETY: `storage` holds at least `eh_frame.len()` bytes, and any
        // bytes are valid `u64`s.
        let copy = unsafe {
            core::slice::from_raw_parts_mut(storage.as_mut_ptr().cast::<u8>(), eh_frame.len())
        };
        copy.copy_from_slice(eh_frame);
        let start = storage.as_ptr().cast::<u8>();
        let entries = if !sys::SUPPORTED {
            Vec::new()
        } else if sys::using_llvm_libunwind() {
            fdes.into_iter().map(|o| start.wrapping_add(o)).collect()
        } else {
            vec![start]
        };
        for &entry in &entries {
            // SAFETY: `entry` starts the section (libgcc) or one of its FDEs
            // (LLVM libunwind), checked above, in `storage`, which lives as
            // long as the registration; the caller keeps what it describes
            // alive.
            unsafe { sys::register_frame(entry) };
        }
        Ok(Self {
            _eh_frame: storage,
            entries,
        })
    }
}

impl Drop for EhFrameRegistration {
    fn drop(&mut self) {
        for &entry in &self.entries {
            // SAFETY: `entry` was registered by `register` and not since.
            unsafe { sys::deregister_frame(entry) };
        }
    }
}

/// The offsets of the FDEs of a terminated 32-bit `.eh_frame` section: the
/// records whose CIE pointer (after the length) is not zero.
fn fde_offsets(eh_frame: &[u8]) -> Result<Vec<usize>, EhFrameError> {
    let word = |at: usize| {
        let bytes = eh_frame.get(at..at.checked_add(4)?)?;
        Some(u32::from_ne_bytes(bytes.try_into().ok()?))
    };
    let mut fdes = Vec::new();
    let mut offset = 0;
    loop {
        let len = word(offset).ok_or(if offset == eh_frame.len() {
            EhFrameError::NoTerminator
        } else {
            EhFrameError::Truncated { offset }
        })?;
        match len {
            0 => break,
            0xffff_ffff => return Err(EhFrameError::Dwarf64 { offset }),
            _ => {}
        }
        let end = (offset + 4)
            .checked_add(len as usize)
            .filter(|&end| end <= eh_frame.len() && len >= 4)
            .ok_or(EhFrameError::Truncated { offset })?;
        if word(offset + 4) != Some(0) {
            fdes.push(offset);
        }
        offset = end;
    }
    if fdes.is_empty() {
        return Err(EhFrameError::NoFde);
    }
    Ok(fdes)
}

#[cfg(all(unix, not(target_arch = "arm")))]
mod sys {
    use std::sync::OnceLock;

    pub(super) const SUPPORTED: bool = true;

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

    /// Whether `__register_frame` takes one FDE (LLVM libunwind) rather
    /// than a whole section (libgcc). A statically linked LLVM libunwind
    /// exports nothing to look up, hence the targets where it is linked so
    /// (dynamically linked musl uses libgcc_s).
    pub(super) fn using_llvm_libunwind() -> bool {
        static LLVM: OnceLock<bool> = OnceLock::new();
        *LLVM.get_or_init(|| {
            cfg!(any(
                target_vendor = "apple",
                all(target_env = "musl", target_feature = "crt-static"),
                target_os = "android",
                target_env = "ohos",
            ))
                // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name
                // only looks the symbol up.
                || !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__unw_add_dynamic_fde".as_ptr()) }
                    .is_null()
        })
    }
}

#[cfg(not(all(unix, not(target_arch = "arm"))))]
mod sys {
    pub(super) const SUPPORTED: bool = false;

    pub(super) unsafe fn register_frame(_: *const u8) {}

    pub(super) unsafe fn deregister_frame(_: *const u8) {}

    pub(super) fn using_llvm_libunwind() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CIE and an FDE record of `body` bytes each, then `tail`.
    fn section(cie_body: u32, fde_body: u32, tail: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((cie_body + 4).to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(vec![0u8; cie_body as usize]);
        out.extend((fde_body + 4).to_ne_bytes());
        out.extend(8u32.to_ne_bytes());
        out.extend(vec![0u8; fde_body as usize]);
        out.extend(tail);
        out
    }

    #[test]
    fn fdes_are_the_records_after_a_cie_pointer() {
        let terminated = section(12, 20, &0u32.to_ne_bytes());
        assert_eq!(fde_offsets(&terminated), Ok(vec![20]));
    }

    #[test]
    fn malformed_sections_are_refused() {
        assert_eq!(fde_offsets(&[]), Err(EhFrameError::NoTerminator));
        assert_eq!(
            fde_offsets(&section(12, 20, &[])),
            Err(EhFrameError::NoTerminator)
        );
        assert_eq!(
            fde_offsets(&section(12, 20, &[0, 0])),
            Err(EhFrameError::Truncated { offset: 48 })
        );
        let mut long = section(12, 20, &0u32.to_ne_bytes());
        long[20..24].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            fde_offsets(&long),
            Err(EhFrameError::Truncated { offset: 20 })
        );
        long[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(
            fde_offsets(&long),
            Err(EhFrameError::Dwarf64 { offset: 20 })
        );
        let mut cie_only = section(12, 20, &0u32.to_ne_bytes());
        cie_only[24..28].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(fde_offsets(&cie_only), Err(EhFrameError::NoFde));
    }
}
