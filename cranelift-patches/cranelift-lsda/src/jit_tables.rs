//! Exception tables for JIT code compiled with `cranelift-jit`, registered
//! with the system unwinder, honouring each unwinder's contract:
//!
//! * libgcc: `__register_frame` takes a whole zero-terminated section;
//! * LLVM libunwind: `__register_frame` takes one FDE per call (both by the
//!   in-tree `EhFrameRegistration` of the series' cranelift-jit patch);
//! * nongnu libunwind: no `__register_frame`; `_U_dyn_register` takes a
//!   search table like `.eh_frame_hdr`'s (`UNW_INFO_FORMAT_IP_OFFSET`).
//!
//! [`JitTables`] records each function's CFI and LSDA as it is defined;
//! [`JitTables::register`] writes one `.eh_frame` with absolute addresses
//! for the functions finalized since, and registers it. The returned
//! [`Registration`] deregisters on drop, so its owner drops it before the
//! code is freed.
//!
//! An embedder that registers unwind info its own way (for example by
//! placing JIT code where the dynamic loader knows it) supplies a
//! [`FrameRegistrar`] ([`JitTables::with_registrar`]).

use crate::{
    ClausePolicy, CompiledTables, DecodeError, EhFrameBuilder, EhFrameEncoding, EncodeError, Lsda,
    LsdaEncoding, LsdaError, Malformation, PreparedFunction, endian_of, tables_for_compiled,
};
use cranelift_codegen::Context;
use cranelift_codegen::gimli;
use cranelift_codegen::gimli::RunTimeEndian;
use cranelift_codegen::gimli::write::{Address, EhFrame, EndianVec, Writer};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module};
use std::boxed::Box;
use std::vec;
use std::vec::Vec;

/// Registering JIT exception tables failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Building, encoding or reading back the tables failed.
    Lsda(LsdaError),
    /// The process has no usable registration entry point.
    NoRegistration(&'static str),
    /// The embedder's [`FrameRegistrar`] refused the tables.
    Registrar(Box<dyn std::error::Error + Send + Sync>),
    /// The in-tree registration refused the `.eh_frame` this module wrote.
    EhFrame(EhFrameError),
}

impl std::fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lsda(err) => err.fmt(f),
            Self::NoRegistration(what) => write!(f, "cannot register JIT unwind info: {what}"),
            Self::Registrar(err) => write!(f, "the registrar refused the tables: {err}"),
            Self::EhFrame(err) => write!(f, "cannot register JIT unwind info: {err}"),
        }
    }
}

impl std::error::Error for RegistrationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Registrar(err) => Some(&**err),
            _ => None,
        }
    }
}

impl<E: Into<LsdaError>> From<E> for RegistrationError {
    fn from(err: E) -> Self {
        Self::Lsda(err.into())
    }
}

/// As cranelift-jit reports its own failures: a backend error, from which
/// the [`RegistrationError`] can be downcast.
impl From<RegistrationError> for cranelift_module::ModuleError {
    fn from(err: RegistrationError) -> Self {
        cranelift_module::ModuleError::Backend(anyhow::Error::new(err))
    }
}

/// Registers a module's `.eh_frame` some other way than the process's
/// unwinder API (for example in memory the dynamic loader knows).
pub trait FrameRegistrar: Send {
    /// Register `eh_frame`: CIEs and FDEs with absolute pointers, ended by
    /// a zero length, as `__register_frame` takes it. Dropping the result
    /// deregisters it.
    ///
    /// # Safety
    ///
    /// As for `__register_frame`: the FDEs must describe code that stays
    /// alive and unmoved, and their personality and LSDAs must stay valid,
    /// until the result is dropped.
    unsafe fn register(&self, eh_frame: &[u8]) -> RegistrationResult<Box<dyn Send>>;
}

/// Shorthand for results of JIT registration.
pub type RegistrationResult<T> = Result<T, RegistrationError>;

#[cfg(not(cranelift_lsda_upstream))]
use crate::jit_unwind::{EhFrameError, EhFrameRegistration};
#[cfg(cranelift_lsda_upstream)]
use cranelift_jit::{EhFrameError, EhFrameRegistration};

/// The unwinder the process uses, as far as registration is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unwinder {
    /// libgcc_s (GNU): registers whole `.eh_frame` sections.
    Libgcc,
    /// LLVM libunwind: registers one FDE at a time.
    LlvmLibunwind,
    /// nongnu libunwind (libunwind.so.8): registers search tables with
    /// `_U_dyn_register`.
    NongnuLibunwind,
}

fn lookup(name: &core::ffi::CStr) -> *mut libc::c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks
    // the symbol up.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// The unwinder this process's `_Unwind_RaiseException` belongs to: nongnu
/// libunwind's is also exported as `__libunwind_Unwind_RaiseException`;
/// LLVM libunwind exports `__unw_add_dynamic_fde`; otherwise libgcc.
pub fn detect_unwinder() -> Unwinder {
    let raise = lookup(c"_Unwind_RaiseException");
    if !raise.is_null() && raise == lookup(c"__libunwind_Unwind_RaiseException") {
        Unwinder::NongnuLibunwind
    } else if !lookup(c"__unw_add_dynamic_fde").is_null() {
        Unwinder::LlvmLibunwind
    } else {
        Unwinder::Libgcc
    }
}

struct PendingFunction {
    func_id: FuncId,
    code_len: u32,
    unwind: UnwindInfo,
    lsda: Option<Lsda>,
}

/// Resolves type-entry symbols of JIT LSDAs to addresses.
pub type SymbolResolver = Box<dyn Fn(&str) -> Option<*const u8> + Send + Sync>;

/// The tables of JIT functions defined but not yet registered.
pub struct JitTables {
    personality: u64,
    pending: Vec<PendingFunction>,
    /// How tables are registered, when not with the process's unwinder.
    registrar: Option<Box<dyn FrameRegistrar>>,
}

impl JitTables {
    /// Tables whose functions with handlers use the personality routine at
    /// `personality` (e.g. the address of `__gxx_personality_v0`).
    pub fn new(personality: *const u8) -> Self {
        Self {
            personality: personality as u64,
            pending: Vec::new(),
            registrar: None,
        }
    }

    /// As [`JitTables::new`], with the tables registered by `registrar`
    /// instead of the process's unwinder API.
    pub fn with_registrar(personality: *const u8, registrar: Box<dyn FrameRegistrar>) -> Self {
        Self {
            registrar: Some(registrar),
            ..Self::new(personality)
        }
    }

    /// Record the tables of `func_id`, compiled in `ctx` from IR that was
    /// checked or legalized into landing-pad form. Returns the size of its
    /// LSDA, if any.
    pub fn add_function(
        &mut self,
        isa: &dyn TargetIsa,
        func_id: FuncId,
        ctx: &Context,
        policy: &ClausePolicy,
        prepared: &PreparedFunction,
    ) -> RegistrationResult<Option<usize>> {
        let CompiledTables {
            unwind,
            lsda,
            code_len,
        } = tables_for_compiled(ctx, isa, policy, prepared, LsdaEncoding::jit())?;
        let size = lsda.as_ref().map(Lsda::len);
        self.pending.push(PendingFunction {
            func_id,
            code_len,
            unwind,
            lsda,
        });
        Ok(size)
    }

    /// Register the tables of the functions added since the last call,
    /// which `module` has finalized, resolving type-entry symbols with
    /// `resolve`. `None` when there was nothing to register.
    pub fn register(
        &mut self,
        module: &JITModule,
        resolve: &dyn Fn(&str) -> Option<*const u8>,
    ) -> RegistrationResult<Option<Registration>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        // Kept until registered: a failure (e.g. an unresolved type entry)
        // leaves them pending, never silently unregistered.
        let pending = &self.pending;
        let isa = module.isa();
        let endian = endian_of(isa);
        // LSDAs first: the FDEs need their final addresses.
        let mut except_table = EndianVec::new(endian);
        let mut lsda_offsets = Vec::new();
        for f in pending {
            let offset = f
                .lsda
                .as_ref()
                .map(|lsda| {
                    lsda.write(&mut except_table, |name| {
                        resolve(name).map(|p| Address::Constant(p as u64))
                    })
                })
                .transpose()?;
            lsda_offsets.push(offset);
        }
        let lsdas = AlignedBytes::new(except_table.slice());

        let mut frames = EhFrameBuilder::new(
            isa,
            EhFrameEncoding::jit(),
            Address::Constant(self.personality),
        )?;
        let mut ranges = Vec::new();
        for (f, lsda_offset) in pending.iter().zip(&lsda_offsets) {
            let code = module.get_finalized_function(f.func_id) as u64;
            let lsda = lsda_offset.map(|o| Address::Constant(lsdas.address(o) as u64));
            frames.add_function(Address::Constant(code), &f.unwind, lsda)?;
            ranges.push((code, code + u64::from(f.code_len)));
        }
        let mut eh_frame = EhFrame(EndianVec::new(endian));
        frames.write(&mut eh_frame)?;
        // libgcc walks the section until a zero length.
        eh_frame.0.write_u32(0)?;
        // Each way of registering keeps the copy it needs.
        let eh_frame = eh_frame.0.slice();
        let registered = match &self.registrar {
            // SAFETY: the FDEs describe functions of `module` as compiled,
            // the personality is the caller's, and the LSDAs are `lsdas`,
            // which the registration owns and drops after this.
            Some(registrar) => Registered::External {
                _registration: unsafe { registrar.register(eh_frame)? },
            },
            None => Registered::with_unwinder(eh_frame, detect_unwinder(), endian, &ranges)?,
        };
        self.pending.clear();
        Ok(Some(Registration {
            registered,
            _lsdas: lsdas,
        }))
    }
}

/// Heap bytes at an 8-aligned address that never moves.
struct AlignedBytes {
    storage: Box<[u64]>,
    len: usize,
}

impl AlignedBytes {
    fn new(bytes: &[u8]) -> Self {
        let mut storage = vec![0u64; bytes.len().div_ceil(8)].into_boxed_slice();
        // SAFETY: `storage` holds at least `bytes.len()` initialized bytes,
        // and u64 has no invalid bit patterns.
        let dst = unsafe {
            core::slice::from_raw_parts_mut(storage.as_mut_ptr().cast::<u8>(), bytes.len())
        };
        dst.copy_from_slice(bytes);
        Self {
            storage,
            len: bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the storage holds `len` initialized bytes.
        unsafe { core::slice::from_raw_parts(self.storage.as_ptr().cast::<u8>(), self.len) }
    }

    fn address(&self, offset: usize) -> *const u8 {
        debug_assert!(offset <= self.len);
        self.storage.as_ptr().cast::<u8>().wrapping_add(offset)
    }
}

/// nongnu libunwind's `unw_dyn_info_t` with the remote-table union arm
/// (libunwind-dynamic.h), for 64-bit targets.
#[repr(C)]
struct UnwDynInfo {
    next: *mut UnwDynInfo,
    prev: *mut UnwDynInfo,
    start_ip: u64,
    end_ip: u64,
    gp: u64,
    format: i32,
    pad: i32,
    load_offset: u64,
    name_ptr: u64,
    segbase: u64,
    table_len: u64,
    table_data: u64,
}

/// `UNW_INFO_FORMAT_IP_OFFSET`: start offsets relative to `start_ip`, FDE
/// offsets relative to `segbase`.
const UNW_INFO_FORMAT_IP_OFFSET: i32 = 4;

/// One entry of the search table (`.eh_frame_hdr`'s layout).
#[repr(C)]
struct TableEntry {
    start_ip_offset: i32,
    fde_offset: i32,
}

type DynFn = unsafe extern "C" fn(*mut UnwDynInfo);

enum Registered {
    /// What a [`FrameRegistrar`] returned; it deregisters on drop.
    External { _registration: Box<dyn Send> },
    /// A section registered with libgcc or LLVM libunwind, by the in-tree
    /// registration (cranelift-jit's); it deregisters on drop.
    Frames(#[allow(dead_code, reason = "deregisters on drop")] EhFrameRegistration),
    /// A table passed to `_U_dyn_register`, and the section it describes.
    Dynamic {
        info: Box<UnwDynInfo>,
        _eh_frame: AlignedBytes,
        _table: Box<[TableEntry]>,
        register: DynFn,
        cancel: DynFn,
    },
}

/// Tables registered with the unwinder, deregistered on drop.
pub struct Registration {
    // First: a registration is undone when this field drops, which must
    // come before the LSDAs it points to go.
    registered: Registered,
    // Kept alive (and unmoved) while registered.
    _lsdas: AlignedBytes,
}

impl Registered {
    /// Register `eh_frame` with the process's unwinder, by its contract.
    fn with_unwinder(
        eh_frame: &[u8],
        unwinder: Unwinder,
        endian: RunTimeEndian,
        ranges: &[(u64, u64)],
    ) -> RegistrationResult<Self> {
        match unwinder {
            // SAFETY: `eh_frame` is a terminated `.eh_frame` with one CIE
            // first; its code is the module's and its LSDAs outlive this
            // value in the `Registration` that holds it.
            Unwinder::Libgcc | Unwinder::LlvmLibunwind => Ok(Self::Frames(
                unsafe { EhFrameRegistration::register(eh_frame) }
                    .map_err(RegistrationError::EhFrame)?,
            )),
            Unwinder::NongnuLibunwind => {
                let mut registered = dynamic_table(AlignedBytes::new(eh_frame), endian, ranges)?;
                if let Self::Dynamic { info, register, .. } = &mut registered {
                    // SAFETY: `info`, its table and the `.eh_frame` it points
                    // to stay alive and unmoved until `_U_dyn_cancel` in drop.
                    unsafe { register(&mut **info) };
                }
                Ok(registered)
            }
        }
    }
}

/// The `_U_dyn_register` description of a module: one table entry per FDE,
/// in address order.
fn dynamic_table(
    eh_frame: AlignedBytes,
    endian: RunTimeEndian,
    ranges: &[(u64, u64)],
) -> RegistrationResult<Registered> {
    let (register, cancel) = (lookup(c"_U_dyn_register"), lookup(c"_U_dyn_cancel"));
    if register.is_null() || cancel.is_null() {
        return Err(RegistrationError::NoRegistration(
            "nongnu libunwind without _U_dyn_register/_U_dyn_cancel",
        ));
    }
    // SAFETY: both are `void f(unw_dyn_info_t *)` (libunwind-dynamic.h).
    let (register, cancel) = unsafe {
        (
            core::mem::transmute::<*mut libc::c_void, DynFn>(register),
            core::mem::transmute::<*mut libc::c_void, DynFn>(cancel),
        )
    };
    let fdes = fde_offsets(&eh_frame, endian)?;
    let start_ip = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let end_ip = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let segbase = eh_frame.address(0) as u64;
    let fit = |v: u64| {
        i32::try_from(v).map_err(|_| EncodeError::DoesNotFit {
            what: "offset in the libunwind search table",
            value: v,
        })
    };
    // FDEs were written in the order functions were added.
    let mut table = fdes
        .iter()
        .zip(ranges)
        .map(|(&fde, &(start, _))| {
            Ok(TableEntry {
                start_ip_offset: fit(start - start_ip)?,
                fde_offset: fit(fde as u64)?,
            })
        })
        .collect::<RegistrationResult<Vec<_>>>()?;
    table.sort_by_key(|e| e.start_ip_offset);
    let table = table.into_boxed_slice();
    let info = Box::new(UnwDynInfo {
        next: core::ptr::null_mut(),
        prev: core::ptr::null_mut(),
        start_ip,
        end_ip,
        gp: 0,
        format: UNW_INFO_FORMAT_IP_OFFSET,
        pad: 0,
        load_offset: 0,
        name_ptr: 0,
        segbase,
        // In words: each entry is two i32s, one 64-bit word.
        table_len: table.len() as u64 * (size_of::<TableEntry>() as u64 / 8),
        table_data: table.as_ptr() as u64,
    });
    Ok(Registered::Dynamic {
        info,
        _eh_frame: eh_frame,
        _table: table,
        register,
        cancel,
    })
}

/// Offsets of the FDEs (not CIEs) of an `.eh_frame` this module wrote.
fn fde_offsets(eh_frame: &AlignedBytes, endian: RunTimeEndian) -> RegistrationResult<Vec<usize>> {
    let read_error = |error| DecodeError {
        offset: 0,
        what: Malformation::Read {
            field: ".eh_frame",
            error,
        },
    };
    use gimli::UnwindSection;
    let section = gimli::EhFrame::new(eh_frame.bytes(), endian);
    let bases = gimli::BaseAddresses::default();
    let mut entries = section.entries(&bases);
    let mut offsets = Vec::new();
    while let Some(entry) = entries.next().map_err(read_error)? {
        if let gimli::CieOrFde::Fde(partial) = entry {
            let fde = partial
                .parse(|section, bases, offset| section.cie_from_offset(bases, offset))
                .map_err(read_error)?;
            offsets.push(fde.offset());
        }
    }
    Ok(offsets)
}

// SAFETY: the pointers are addresses of heap memory this registration
// owns and never hands out; the unwinders' registration calls are
// thread-safe (libgcc and both libunwinds take a lock), so registering on
// one thread and deregistering on another is sound.
unsafe impl Send for Registration {}

impl Drop for Registration {
    fn drop(&mut self) {
        match &mut self.registered {
            // Deregistered by their own drop.
            Registered::Frames(_) | Registered::External { .. } => {}
            Registered::Dynamic { info, cancel, .. } => {
                // SAFETY: `info` was registered in `new` and not since.
                unsafe { cancel(&mut **info) };
            }
        }
    }
}
