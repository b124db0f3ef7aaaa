//! Exception tables for JIT code compiled with `cranelift-jit`, registered
//! with the system unwinder.
//!
//! `cranelift-jit` registers no unwind info. [`JitExceptionTables`] collects
//! each function's CFI and LSDA while the module is built, then
//! [`JitExceptionTables::register`] finalizes the module, writes one
//! `.eh_frame` with absolute addresses for the whole module, and registers
//! it once, honouring each unwinder's contract:
//!
//! * libgcc: `__register_frame` takes a whole zero-terminated section;
//! * LLVM libunwind: `__register_frame` takes one FDE per call;
//! * nongnu libunwind: no `__register_frame`; `_U_dyn_register` takes a
//!   search table like `.eh_frame_hdr`'s (`UNW_INFO_FORMAT_IP_OFFSET`).
//!
//! The result, [`JitModuleWithTables`], owns the module, so the tables can
//! only be deregistered before (never after) the code is freed.

use crate::compiled::{CompiledTables, tables_for_compiled};
use crate::eh_frame::{EhFrameBuilder, EhFrameEncoding};
use crate::encode::{Lsda, LsdaEncoding, LsdaRelocKind};
use crate::error::{LsdaError, LsdaResult};
use crate::landing_pad::PreparedFunction;
use crate::policy::ClausePolicy;
use cranelift_codegen::Context;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module};
use gimli::write::{Address, EhFrame, EndianVec, Writer};

unsafe extern "C" {
    fn __register_frame(begin: *const u8);
    fn __deregister_frame(begin: *const u8);
}

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

/// The tables of a JIT module being built.
pub struct JitExceptionTables {
    personality: usize,
    functions: Vec<PendingFunction>,
}

impl JitExceptionTables {
    /// Tables whose functions with handlers use the personality routine at
    /// `personality` (e.g. the address of `__gxx_personality_v0`).
    pub fn new(personality: *const u8) -> Self {
        Self {
            personality: personality as usize,
            functions: Vec::new(),
        }
    }

    /// Record the tables of `func_id`, just compiled in `ctx` by
    /// `JITModule::define_function` from IR that was checked or legalized
    /// into landing-pad form. Returns the size of its LSDA, if any.
    pub fn add_function(
        &mut self,
        isa: &dyn TargetIsa,
        func_id: FuncId,
        ctx: &Context,
        policy: &ClausePolicy,
        prepared: &PreparedFunction,
    ) -> LsdaResult<Option<usize>> {
        let encoding = LsdaEncoding {
            endian: endian_of(isa),
            address_size: isa.pointer_bytes(),
            ..LsdaEncoding::jit()
        };
        let CompiledTables {
            unwind,
            lsda,
            code_len,
        } = tables_for_compiled(ctx, isa, policy, prepared, encoding)?;
        let size = lsda.as_ref().map(|l| l.bytes.len());
        self.functions.push(PendingFunction {
            func_id,
            code_len,
            unwind,
            lsda,
        });
        Ok(size)
    }

    /// Finalize `module`, resolve type-entry symbols with `resolve`, write
    /// the module's `.eh_frame` and register it with the unwinder.
    pub fn register(
        self,
        mut module: JITModule,
        resolve: impl Fn(&str) -> Option<*const u8>,
    ) -> LsdaResult<JitModuleWithTables> {
        module
            .finalize_definitions()
            .map_err(|e| LsdaError::Ir(format!("finalizing the JIT module: {e}")))?;
        let isa = module.isa();
        let endian = endian_of(isa);
        let address_size = isa.pointer_bytes();

        // LSDAs first: the FDEs need their final addresses.
        let mut lsda_offsets = Vec::new();
        let mut lsda_bytes = Vec::new();
        for f in &self.functions {
            let Some(lsda) = &f.lsda else {
                lsda_offsets.push(None);
                continue;
            };
            while !lsda_bytes.len().is_multiple_of(4) {
                lsda_bytes.push(0);
            }
            let base = lsda_bytes.len();
            lsda_bytes.extend_from_slice(&lsda.bytes);
            for reloc in &lsda.relocs {
                let address = resolve(&reloc.symbol)
                    .ok_or_else(|| LsdaError::UnresolvedSymbol(reloc.symbol.clone()))?;
                if reloc.kind != LsdaRelocKind::Abs {
                    return Err(LsdaError::Ir(format!(
                        "JIT LSDAs need absolute type entries, got {:?}",
                        reloc.kind
                    )));
                }
                let value = (address as u64).wrapping_add_signed(reloc.addend);
                let mut w = EndianVec::new(endian);
                w.write_udata(value, address_size)?;
                let at = base + reloc.offset as usize;
                lsda_bytes[at..at + w.len()].copy_from_slice(w.slice());
            }
            lsda_offsets.push(Some(base));
        }
        let lsdas = AlignedBytes::new(&lsda_bytes);

        let mut frames = EhFrameBuilder::new(
            isa,
            EhFrameEncoding::jit(),
            Address::Constant(self.personality as u64),
        )?;
        for (f, lsda_offset) in self.functions.iter().zip(&lsda_offsets) {
            let code = module.get_finalized_function(f.func_id) as u64;
            let lsda = lsda_offset.map(|o| Address::Constant(lsdas.address(o) as u64));
            frames.add_function(Address::Constant(code), &f.unwind, lsda)?;
        }
        let mut eh_frame = EhFrame(EndianVec::new(endian));
        frames.write(&mut eh_frame)?;
        // libgcc walks the section until a zero length.
        eh_frame.0.write_u32(0)?;
        let eh_frame = AlignedBytes::new(eh_frame.0.slice());

        let ranges: Vec<(u64, u64)> = self
            .functions
            .iter()
            .map(|f| {
                let start = module.get_finalized_function(f.func_id) as u64;
                (start, start + u64::from(f.code_len))
            })
            .collect();
        let registration = Registration::new(eh_frame, lsdas, detect_unwinder(), endian, &ranges)?;
        Ok(JitModuleWithTables {
            module: Some(module),
            registration: Some(registration),
        })
    }
}

fn endian_of(isa: &dyn TargetIsa) -> gimli::RunTimeEndian {
    match isa.endianness() {
        cranelift_codegen::ir::Endianness::Little => gimli::RunTimeEndian::Little,
        cranelift_codegen::ir::Endianness::Big => gimli::RunTimeEndian::Big,
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
    /// Pointers passed to `__register_frame`.
    Frames(Vec<*const u8>),
    /// A table passed to `_U_dyn_register`.
    Dynamic {
        info: Box<UnwDynInfo>,
        _table: Box<[TableEntry]>,
        register: DynFn,
        cancel: DynFn,
    },
}

/// Registered tables: deregistered on drop.
struct Registration {
    // Kept alive (and unmoved) while registered.
    _eh_frame: AlignedBytes,
    _lsdas: AlignedBytes,
    registered: Registered,
}

impl Registration {
    fn new(
        eh_frame: AlignedBytes,
        lsdas: AlignedBytes,
        unwinder: Unwinder,
        endian: gimli::RunTimeEndian,
        ranges: &[(u64, u64)],
    ) -> LsdaResult<Self> {
        let mut registered = match unwinder {
            Unwinder::Libgcc => Registered::Frames(vec![eh_frame.address(0)]),
            Unwinder::LlvmLibunwind => Registered::Frames(
                fde_offsets(&eh_frame, endian)?
                    .into_iter()
                    .map(|o| eh_frame.address(o))
                    .collect(),
            ),
            Unwinder::NongnuLibunwind => dynamic_table(&eh_frame, endian, ranges)?,
        };
        match &mut registered {
            Registered::Frames(frames) => {
                for &entry in frames.iter() {
                    // SAFETY: `entry` points into `eh_frame`, a well-formed
                    // `.eh_frame` (terminated for libgcc, an FDE for LLVM
                    // libunwind) whose code and LSDAs stay alive and unmoved
                    // until deregistration.
                    unsafe { __register_frame(entry) };
                }
            }
            Registered::Dynamic { info, register, .. } => {
                // SAFETY: `info`, its table and the `.eh_frame` it points to
                // stay alive and unmoved until `_U_dyn_cancel` in drop.
                unsafe { register(&mut **info) };
            }
        }
        Ok(Self {
            _eh_frame: eh_frame,
            _lsdas: lsdas,
            registered,
        })
    }
}

/// The `_U_dyn_register` description of a module: one table entry per FDE,
/// in address order.
fn dynamic_table(
    eh_frame: &AlignedBytes,
    endian: gimli::RunTimeEndian,
    ranges: &[(u64, u64)],
) -> LsdaResult<Registered> {
    let (register, cancel) = (lookup(c"_U_dyn_register"), lookup(c"_U_dyn_cancel"));
    if register.is_null() || cancel.is_null() {
        return Err(LsdaError::Ir(
            "nongnu libunwind without _U_dyn_register/_U_dyn_cancel".into(),
        ));
    }
    // SAFETY: both are `void f(unw_dyn_info_t *)` (libunwind-dynamic.h).
    let (register, cancel) = unsafe {
        (
            core::mem::transmute::<*mut libc::c_void, DynFn>(register),
            core::mem::transmute::<*mut libc::c_void, DynFn>(cancel),
        )
    };
    let fdes = fde_offsets(eh_frame, endian)?;
    let start_ip = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let end_ip = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let segbase = eh_frame.address(0) as u64;
    let fit = |v: u64| {
        i32::try_from(v).map_err(|_| LsdaError::DoesNotFit {
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
        .collect::<LsdaResult<Vec<_>>>()?;
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
        _table: table,
        register,
        cancel,
    })
}

/// Offsets of the FDEs (not CIEs) in a 32-bit DWARF `.eh_frame`.
fn fde_offsets(eh_frame: &AlignedBytes, endian: gimli::RunTimeEndian) -> LsdaResult<Vec<usize>> {
    // SAFETY: the storage holds `len` initialized bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts(eh_frame.storage.as_ptr().cast::<u8>(), eh_frame.len)
    };
    let read = |at: usize| -> LsdaResult<u32> {
        let field: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| LsdaError::Ir("truncated .eh_frame".into()))?;
        Ok(match endian {
            gimli::RunTimeEndian::Little => u32::from_le_bytes(field),
            gimli::RunTimeEndian::Big => u32::from_be_bytes(field),
        })
    };
    let mut offsets = Vec::new();
    let mut at = 0;
    loop {
        let length = read(at)? as usize;
        if length == 0 {
            return Ok(offsets);
        }
        if read(at + 4)? != 0 {
            offsets.push(at);
        }
        at += 4 + length;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        match &mut self.registered {
            Registered::Frames(frames) => {
                for &entry in frames.iter().rev() {
                    // SAFETY: `entry` was registered in `new` and not since.
                    unsafe { __deregister_frame(entry) };
                }
            }
            Registered::Dynamic { info, cancel, .. } => {
                // SAFETY: `info` was registered in `new` and not since.
                unsafe { cancel(&mut **info) };
            }
        }
    }
}

/// A finalized JIT module whose exception tables are registered.
///
/// It owns the module: the tables are deregistered when this is dropped or
/// freed, always before the code could be freed.
pub struct JitModuleWithTables {
    module: Option<JITModule>,
    registration: Option<Registration>,
}

impl JitModuleWithTables {
    /// The module.
    pub fn module(&self) -> &JITModule {
        self.module.as_ref().expect("present until freed")
    }

    /// The address of a finalized function.
    pub fn get_finalized_function(&self, func_id: FuncId) -> *const u8 {
        self.module().get_finalized_function(func_id)
    }

    /// Deregister the tables, then free the module's code and data.
    ///
    /// # Safety
    ///
    /// As for `JITModule::free_memory`: no pointer to the module's code or
    /// data may be used afterwards, and none of its functions may be running.
    pub unsafe fn free_memory(mut self) {
        self.registration.take();
        if let Some(module) = self.module.take() {
            // SAFETY: forwarded from the caller.
            unsafe { module.free_memory() };
        }
    }
}

impl Drop for JitModuleWithTables {
    fn drop(&mut self) {
        // Deregister first; the module's memory is not freed by dropping it.
        self.registration.take();
    }
}
