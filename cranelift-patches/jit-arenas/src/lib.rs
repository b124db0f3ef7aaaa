//! JIT code in arenas the dynamic loader knows, so that unwinders find its
//! unwind tables the way they find a shared library's: libgcc through
//! glibc's `_dl_find_object`, LLVM libunwind through `dl_iterate_phdr` and
//! the `.eh_frame_hdr` search table. Nothing is `__register_frame`d, so a
//! lookup is a binary search whatever the number of modules, and takes no
//! lock in libgcc (LLVM libunwind's `dl_iterate_phdr` holds the loader's).
//!
//! An arena is a memfd holding a minimal shared object (see `image.rs`),
//! loaded once with `dlopen`. Its code segment is anonymous memory that
//! modules lease in ascending address order, page-aligned, written while
//! read-write and made read-execute when the module is finalized, as
//! cranelift-jit's own providers do. Its unwind tables grow through a second,
//! writable mapping of the memfd: at finalization every function gets a
//! search-table entry (appended, then published by a release store of the
//! count), pointing at a placeholder FDE that covers nothing until its own
//! `.eh_frame` is registered.
//!
//! [`LoaderArenas`] is the pool; [`LoaderArenas::memory`] gives a
//! [`cranelift_jit::JITMemoryProvider`] for one `JITModule` and the
//! [`ArenaTables`] handle through which its `.eh_frame` is registered. An
//! arena nobody uses is emptied for reuse, or unloaded if the pool has a
//! fresher one. Linux only, tested with glibc: `_dl_find_object` needs
//! glibc 2.35 (libgcc 12 uses it when no frame is `__register_frame`d);
//! elsewhere the unwinders find arenas through `dl_iterate_phdr`.

#![cfg(target_os = "linux")]

mod arena;
mod image;

use arena::{Arena, ArenaState};
use cranelift_jit::{BranchProtection, JITMemoryKind, JITMemoryProvider, SystemMemoryProvider};
use cranelift_module::{ModuleError, ModuleResult};
use image::Layout;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Creating an arena or registering tables in one failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ArenaError {
    /// The configuration cannot describe an arena.
    Config(&'static str),
    /// This platform has no arena support.
    Unsupported(&'static str),
    /// A system call failed.
    Os {
        /// What was being done.
        what: &'static str,
        /// The error the system reported.
        error: io::Error,
    },
    /// The dynamic loader refused the image.
    Loader {
        /// What was being done.
        what: &'static str,
        /// `dlerror`'s message.
        message: String,
    },
    /// An arena region is full.
    Full(&'static str),
    /// A function is larger than an arena's code segment.
    TooLarge {
        /// Bytes asked for.
        size: usize,
        /// Bytes an arena holds.
        capacity: u64,
    },
    /// The `.eh_frame` cannot be read.
    Malformed(String),
    /// The `.eh_frame` uses a PC-relative encoding, so it cannot be copied
    /// into an arena as it is; write it with absolute pointers.
    PositionDependent,
    /// An FDE covers code that this module did not place in an arena.
    NotArenaCode {
        /// The FDE's start address.
        address: usize,
    },
    /// An FDE was registered for a function whose FDE is registered.
    AlreadyRegistered {
        /// The function's address.
        address: usize,
    },
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(what) => write!(f, "bad arena configuration: {what}"),
            Self::Unsupported(what) => write!(f, "JIT arenas are not supported here: {what}"),
            Self::Os { what, error } => write!(f, "{what} failed: {error}"),
            Self::Loader { what, message } => write!(f, "{what} failed: {message}"),
            Self::Full(what) => write!(f, "the arena's {what} is full"),
            Self::TooLarge { size, capacity } => write!(
                f,
                "a {size}-byte function does not fit an arena's {capacity}-byte code segment"
            ),
            Self::Malformed(what) => write!(f, "cannot read the .eh_frame to register: {what}"),
            Self::PositionDependent => f.write_str(
                "the .eh_frame uses PC-relative pointers; arenas take absolute ones (DW_EH_PE_absptr)",
            ),
            Self::NotArenaCode { address } => write!(
                f,
                "an FDE starts at {address:#x}, which is no function this module placed in an arena"
            ),
            Self::AlreadyRegistered { address } => {
                write!(f, "the function at {address:#x} already has an FDE registered")
            }
        }
    }
}

impl std::error::Error for ArenaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Os { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<ArenaError> for io::Error {
    fn from(error: ArenaError) -> Self {
        io::Error::other(error)
    }
}

impl From<ArenaError> for ModuleError {
    fn from(error: ArenaError) -> Self {
        ModuleError::Backend(anyhow::Error::new(error))
    }
}

/// How large arenas are. Sizes are address space: pages cost memory only
/// once written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaConfig {
    /// Bytes of code an arena holds (each module's code starts on a page).
    pub code_capacity: u64,
    /// Bytes of `.eh_frame` an arena holds.
    pub eh_frame_capacity: u64,
}

impl Default for ArenaConfig {
    fn default() -> Self {
        Self {
            code_capacity: 64 << 20,
            // Address space, not memory: room for a 48-byte FDE per 16
            // bytes of code, more than any module needs.
            eh_frame_capacity: 192 << 20,
        }
    }
}

/// Executable allocations are at least this far apart, so an arena's
/// search table has an entry for every `MIN_FUNCTION_ALIGN` bytes of code
/// and never fills before its code does.
const MIN_FUNCTION_ALIGN: u64 = 16;

/// A pool of arenas, shared by the modules that place code in them.
#[derive(Clone)]
pub struct LoaderArenas {
    pool: Arc<Pool>,
}

struct Pool {
    layout: Layout,
    image: Vec<u8>,
    placeholder: Vec<u8>,
    page: u64,
    /// Arenas that take leases (not full).
    arenas: Mutex<Vec<Arc<Arena>>>,
    stats: Arc<Counters>,
}

/// What the pool has done, for monitoring and benchmarks.
#[derive(Default)]
struct Counters {
    opened: AtomicUsize,
    loaded: AtomicUsize,
    open_nanos: AtomicU64,
}

/// Arenas opened and loaded, and the time spent creating them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaStats {
    /// Arenas created (memfd, image, `dlopen`) since the pool was.
    pub opened: usize,
    /// Arenas loaded now (leasable, or holding live code or tables).
    pub loaded: usize,
    /// Time spent creating arenas.
    pub open_time: Duration,
}

impl LoaderArenas {
    /// A pool with [`ArenaConfig::default`]'s arenas, one of which is
    /// created now, so that an unsupported platform or a refused `dlopen`
    /// is reported here, not at the first function.
    pub fn new() -> Result<Self, ArenaError> {
        Self::with_config(ArenaConfig::default())
    }

    /// A pool of arenas of `config`'s size, one created now.
    pub fn with_config(config: ArenaConfig) -> Result<Self, ArenaError> {
        let layout = Layout::new(
            config.code_capacity,
            MIN_FUNCTION_ALIGN,
            config.eh_frame_capacity,
        )?;
        let placeholder = image::placeholder_eh_frame()?;
        let image = image::build(&layout)?;
        // SAFETY: sysconf only reads a system value.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = u64::try_from(page)
            .ok()
            .filter(|p| p.is_power_of_two() && *p <= image::SEGMENT_ALIGN)
            .ok_or(ArenaError::Unsupported(
                "the page size is not one arenas can align to",
            ))?;
        let pool = Pool {
            layout,
            placeholder,
            image,
            page,
            arenas: Mutex::new(Vec::new()),
            stats: Arc::default(),
        };
        let first = pool.open()?;
        pool.lock().push(Arc::new(first));
        Ok(Self {
            pool: Arc::new(pool),
        })
    }

    /// Memory for one `JITModule` (give it to `JITBuilder::memory_provider`)
    /// and the handle that registers the module's `.eh_frame`.
    pub fn memory(&self) -> (ArenaMemory, ArenaTables) {
        let code = Arc::new(ModuleCode::default());
        (
            ArenaMemory {
                pool: self.pool.clone(),
                data: SystemMemoryProvider::new(),
                open: Vec::new(),
                code: code.clone(),
            },
            ArenaTables {
                code,
                pool: self.pool.clone(),
            },
        )
    }

    /// Arenas the pool can still lease (those that are full stay loaded
    /// until their last module is freed, but are not counted).
    pub fn open_arenas(&self) -> usize {
        self.pool.lock().len()
    }

    /// Arenas created and loaded so far, and the time creating them took.
    pub fn stats(&self) -> ArenaStats {
        let stats = &self.pool.stats;
        ArenaStats {
            opened: stats.opened.load(Ordering::Relaxed),
            loaded: stats.loaded.load(Ordering::Relaxed),
            open_time: Duration::from_nanos(stats.open_nanos.load(Ordering::Relaxed)),
        }
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Arena>>> {
        self.arenas
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn open(&self) -> Result<Arena, ArenaError> {
        let start = Instant::now();
        let arena = Arena::open(
            self.layout,
            &self.image,
            &self.placeholder,
            LoadedToken::new(self.stats.clone()),
        )?;
        let stats = &self.stats;
        stats.opened.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stats.open_nanos.fetch_add(nanos, Ordering::Relaxed);
        Ok(arena)
    }

    /// An arena no one else is placing code in, with room for at least a
    /// page; created if every arena is leased.
    fn lease(&self) -> Result<Lease, ArenaError> {
        let mut arenas = self.lock();
        // An arena only the pool holds has no code and no tables anyone
        // uses: empty it, and unload all but one such.
        let mut idle = 0;
        let mut index = 0;
        while index < arenas.len() {
            if Arc::strong_count(&arenas[index]) == 1 {
                idle += 1;
                if idle > 1 {
                    arenas.swap_remove(index);
                    continue;
                }
                let arena = &arenas[index];
                let mut state = arena.lock();
                if state.code_top > 0 || state.entries > 0 {
                    arena.reset(&mut state)?;
                }
            }
            index += 1;
        }
        let capacity = self.layout.code_capacity;
        let available = arenas.iter().find(|arena| {
            let state = arena.lock();
            let eh_frame = self.layout.eh_frame_capacity;
            !state.leased
                && state.code_top + self.page <= capacity
                && state.eh_frame_top + eh_frame / 16 <= eh_frame
        });
        let arena = match available {
            Some(arena) => arena.clone(),
            None => {
                let arena = Arc::new(self.open()?);
                arenas.push(arena.clone());
                arena
            }
        };
        let start = {
            let mut state = arena.lock();
            state.leased = true;
            state.code_top
        };
        Ok(Lease {
            arena,
            start,
            end: start,
            writable_end: start,
            functions: Vec::new(),
        })
    }

    /// `arena` takes no more leases.
    fn retire(&self, arena: &Arc<Arena>) {
        self.lock().retain(|a| !Arc::ptr_eq(a, arena));
        arena.lock().full = true;
    }
}

/// Counts one loaded arena while it lives.
struct LoadedToken(Arc<Counters>);

impl LoadedToken {
    fn new(counters: Arc<Counters>) -> Self {
        counters.loaded.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for LoadedToken {
    fn drop(&mut self) {
        self.0.loaded.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Code a module is placing in one arena, which no other module may use
/// until it is published.
struct Lease {
    arena: Arc<Arena>,
    /// Code-segment offsets: the lease's first byte, the next free byte and
    /// the end of the pages made writable.
    start: u64,
    end: u64,
    writable_end: u64,
    /// Offsets of the functions placed, ascending.
    functions: Vec<u64>,
}

/// One function's search-table entry.
struct Slot {
    address: usize,
    arena: Arc<Arena>,
    index: u32,
    /// Where its FDE is in the arena's `.eh_frame`, while registered.
    fde: Option<u64>,
}

impl Slot {
    fn unregister(&mut self) {
        if let Some(fde) = self.fde.take() {
            self.arena.set_fde(self.index, None);
            self.arena.empty_fde(fde);
        }
    }
}

/// A module's published code: page ranges to release when it is freed, and
/// its functions' search-table entries, by address.
#[derive(Default)]
struct ModuleCode {
    state: Mutex<ModuleCodeState>,
}

#[derive(Default)]
struct ModuleCodeState {
    ranges: Vec<(Arc<Arena>, u64, u64)>,
    slots: Vec<Slot>,
}

impl ModuleCode {
    fn lock(&self) -> MutexGuard<'_, ModuleCodeState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A `JITMemoryProvider` placing code in [`LoaderArenas`] (data goes to
/// cranelift-jit's `SystemMemoryProvider`).
pub struct ArenaMemory {
    pool: Arc<Pool>,
    data: SystemMemoryProvider,
    /// Leases of the current round, in the order taken (more than one only
    /// when an arena filled up).
    open: Vec<Lease>,
    code: Arc<ModuleCode>,
}

fn protect(arena: &Arena, start: u64, end: u64, prot: libc::c_int) -> Result<(), ArenaError> {
    // SAFETY: a page-aligned range of the arena's code segment that this
    // module leases; no Rust reference points into it.
    let result = unsafe {
        libc::mprotect(
            arena.code_address(start).cast(),
            (end - start) as usize,
            prot,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(ArenaError::Os {
            what: "changing the protection of arena code",
            error: io::Error::last_os_error(),
        })
    }
}

impl ArenaMemory {
    fn allocate_code(&mut self, size: usize, align: u64) -> Result<*mut u8, ArenaError> {
        let align = align.max(MIN_FUNCTION_ALIGN);
        let capacity = self.pool.layout.code_capacity;
        // Refused before any arena is retired for it.
        if size.max(1) as u64 > capacity {
            return Err(ArenaError::TooLarge { size, capacity });
        }
        loop {
            if self.open.last().is_none_or(|lease| lease.arena.lock().full) {
                self.open.push(self.pool.lease()?);
            }
            let lease = self.open.last_mut().expect("leased above");
            let start = lease.end.next_multiple_of(align);
            // Functions never share an address: their entries stay sorted.
            let end = start + size.max(1) as u64;
            if end <= capacity {
                let writable_end = end.next_multiple_of(self.pool.page);
                if writable_end > lease.writable_end {
                    protect(
                        &lease.arena,
                        lease.writable_end,
                        writable_end,
                        libc::PROT_READ | libc::PROT_WRITE,
                    )?;
                    lease.writable_end = writable_end;
                }
                lease.end = end;
                lease.functions.push(start);
                return Ok(lease.arena.code_address(start));
            }
            if lease.functions.is_empty() && lease.start == 0 {
                // An empty arena cannot take it (its alignment, say).
                return Err(ArenaError::TooLarge { size, capacity });
            }
            // Keep what is placed (if anything): the arena is too full for
            // this function, so it takes no more leases; continue in
            // another one.
            let full = lease.arena.clone();
            self.pool.retire(&full);
        }
    }

    /// Make the round's code executable and give each function a
    /// search-table entry; the arenas take leases again, also when this
    /// fails (the failed round's pages are then left unused).
    fn publish(&mut self, branch_protection: BranchProtection) -> Result<(), ArenaError> {
        let mut code = self.code.lock();
        let mut result = Ok(());
        for lease in self.open.drain(..) {
            if result.is_ok() {
                result = publish_lease(&lease, branch_protection, &mut code);
            }
            let mut state = lease.arena.lock();
            state.code_top = lease.writable_end.max(state.code_top);
            state.leased = false;
        }
        code.slots.sort_by_key(|slot| slot.address);
        result?;
        wasmtime_jit_icache_coherence::pipeline_flush_mt().map_err(|error| ArenaError::Os {
            what: "flushing the pipeline",
            error,
        })
    }

    /// Give back a round that was never finalized: its pages go unused.
    fn abandon(&mut self) {
        for lease in self.open.drain(..) {
            let mut state = lease.arena.lock();
            state.code_top = lease.writable_end.max(state.code_top);
            state.leased = false;
        }
    }
}

/// One lease's part of [`ArenaMemory::publish`].
fn publish_lease(
    lease: &Lease,
    branch_protection: BranchProtection,
    code: &mut ModuleCodeState,
) -> Result<(), ArenaError> {
    let arena = &lease.arena;
    if lease.writable_end > lease.start {
        let len = (lease.writable_end - lease.start) as usize;
        // SAFETY: the lease's pages, written and not yet executable.
        unsafe {
            wasmtime_jit_icache_coherence::clear_cache(arena.code_address(lease.start).cast(), len)
        }
        .map_err(|error| ArenaError::Os {
            what: "clearing the instruction cache",
            error,
        })?;
        let mut prot = libc::PROT_READ | libc::PROT_EXEC;
        if branch_protection == BranchProtection::BTI && cfg!(target_arch = "aarch64") {
            prot |= 0x10; // PROT_BTI
        }
        protect(arena, lease.start, lease.writable_end, prot)?;
        code.ranges
            .push((arena.clone(), lease.start, lease.writable_end));
    }
    let first = arena.publish_entries(&mut arena.lock(), &lease.functions)?;
    for (i, &offset) in lease.functions.iter().enumerate() {
        code.slots.push(Slot {
            address: arena.code_address(offset) as usize,
            arena: arena.clone(),
            index: first + i as u32,
            fde: None,
        });
    }
    Ok(())
}

impl JITMemoryProvider for ArenaMemory {
    fn allocate(&mut self, size: usize, align: u64, kind: JITMemoryKind) -> io::Result<*mut u8> {
        match kind {
            JITMemoryKind::Executable => Ok(self.allocate_code(size, align)?),
            kind => self.data.allocate(size, align, kind),
        }
    }

    unsafe fn free_memory(&mut self) {
        self.abandon();
        let mut code = self.code.lock();
        for (arena, start, end) in code.ranges.drain(..) {
            // SAFETY: pages of this module's code, which the caller promises
            // nothing runs or points into any more; MADV_DONTNEED makes them
            // read back as zeros and returns their memory.
            unsafe {
                libc::madvise(
                    arena.code_address(start).cast(),
                    (end - start) as usize,
                    libc::MADV_DONTNEED,
                );
            }
        }
        for mut slot in code.slots.drain(..) {
            slot.unregister();
        }
        drop(code);
        // SAFETY: forwarded from the caller.
        unsafe { self.data.free_memory() };
    }

    fn finalize(&mut self, branch_protection: BranchProtection) -> ModuleResult<()> {
        self.data.finalize(branch_protection)?;
        self.publish(branch_protection)?;
        Ok(())
    }
}

impl Drop for ArenaMemory {
    fn drop(&mut self) {
        self.abandon();
        // A module dropped without `free_memory` leaks its code, as
        // cranelift-jit's own providers do, so that pointers to its
        // functions stay valid: its arenas are never emptied for other
        // modules or unloaded.
        if !self.code.lock().ranges.is_empty() {
            core::mem::forget(self.code.clone());
        }
    }
}

/// Registers a module's `.eh_frame` in the arenas its code is in.
pub struct ArenaTables {
    code: Arc<ModuleCode>,
    pool: Arc<Pool>,
}

/// FDEs registered in arenas, unregistered on drop (the entries point at
/// the placeholder again).
pub struct ArenaRegistration {
    code: Arc<ModuleCode>,
    addresses: Vec<usize>,
}

impl ArenaTables {
    /// Register `eh_frame` (CIEs and FDEs with absolute pointers, as for
    /// `__register_frame`; a zero terminator is allowed) for functions of
    /// this module that are finalized. Each FDE must start at a function
    /// the module placed in an arena.
    ///
    /// # Safety
    ///
    /// As for `__register_frame`: unwinders will follow what the entries
    /// say. Each FDE's range and call frame instructions must describe its
    /// function's code, and the personality routine and LSDAs it points to
    /// must stay valid until the returned registration is dropped.
    pub unsafe fn register(&self, eh_frame: &[u8]) -> Result<ArenaRegistration, ArenaError> {
        let (entries_len, fdes) = read_fdes(eh_frame)?;
        let entries = &eh_frame[..entries_len];
        let mut code = self.code.lock();
        // Which entry each FDE fills, checked before anything is written.
        let mut targets = Vec::with_capacity(fdes.len());
        for &(address, fde_offset) in &fdes {
            let slot = code
                .slots
                .binary_search_by_key(&address, |slot| slot.address)
                .map_err(|_| ArenaError::NotArenaCode { address })?;
            if code.slots[slot].fde.is_some() || targets.iter().any(|&(s, _)| s == slot) {
                return Err(ArenaError::AlreadyRegistered { address });
            }
            targets.push((slot, fde_offset));
        }
        // One copy of the entries per arena the FDEs' functions are in.
        let mut copies: Vec<(Arc<Arena>, u64)> = Vec::new();
        for &(slot, _) in &targets {
            let arena = &code.slots[slot].arena;
            if !copies.iter().any(|(a, _)| Arc::ptr_eq(a, arena)) {
                let mut state: MutexGuard<'_, ArenaState> = arena.lock();
                let appended = arena.append_eh_frame(&mut state, entries);
                drop(state);
                match appended {
                    Ok(offset) => copies.push((arena.clone(), offset)),
                    Err(error) => {
                        // The copies made cover nothing: an unwinder
                        // scanning `.eh_frame` must not find them.
                        for (copy_arena, copy) in &copies {
                            for &(_, fde_offset) in &fdes {
                                copy_arena.empty_fde(copy + fde_offset);
                            }
                        }
                        if matches!(error, ArenaError::Full(_)) {
                            // Later modules go to an arena with room; this
                            // one is unloaded once its modules are freed.
                            self.pool.retire(arena);
                        }
                        return Err(error);
                    }
                }
            }
        }
        let mut addresses = Vec::with_capacity(targets.len());
        for (slot, fde_offset) in targets {
            let slot = &mut code.slots[slot];
            let (_, copy) = copies
                .iter()
                .find(|(a, _)| Arc::ptr_eq(a, &slot.arena))
                .expect("copied above");
            slot.arena.set_fde(slot.index, Some(copy + fde_offset));
            slot.fde = Some(copy + fde_offset);
            addresses.push(slot.address);
        }
        Ok(ArenaRegistration {
            code: self.code.clone(),
            addresses,
        })
    }
}

impl Drop for ArenaRegistration {
    fn drop(&mut self) {
        let mut code = self.code.lock();
        for address in &self.addresses {
            if let Ok(slot) = code
                .slots
                .binary_search_by_key(address, |slot| slot.address)
            {
                code.slots[slot].unregister();
            }
        }
    }
}

/// The length of `eh_frame`'s entries (without a terminator) and each
/// FDE's start address and offset.
fn read_fdes(eh_frame: &[u8]) -> Result<(usize, Vec<(usize, u64)>), ArenaError> {
    use gimli::UnwindSection;
    let malformed = |error: gimli::Error| match error {
        gimli::Error::PcRelativePointerButSectionBaseIsUndefined
        | gimli::Error::TextRelativePointerButTextBaseIsUndefined
        | gimli::Error::DataRelativePointerButDataBaseIsUndefined
        | gimli::Error::FuncRelativePointerInBadContext => ArenaError::PositionDependent,
        error => ArenaError::Malformed(error.to_string()),
    };
    let mut section = gimli::EhFrame::new(eh_frame, gimli::NativeEndian);
    section.set_address_size(size_of::<usize>() as u8);
    let bases = gimli::BaseAddresses::default();
    let mut entries = section.entries(&bases);
    let (mut end, mut fdes) = (0, Vec::new());
    while let Some(entry) = entries.next().map_err(malformed)? {
        match entry {
            gimli::CieOrFde::Cie(cie) => {
                // Unregistering rewrites FDE fields at 32-bit DWARF offsets;
                // no unwinder reads 64-bit `.eh_frame` anyway.
                if cie.encoding().format != gimli::Format::Dwarf32 {
                    return Err(ArenaError::Malformed("it is 64-bit DWARF".into()));
                }
                let absolute = |encoding: Option<gimli::DwEhPe>| {
                    encoding.is_none_or(|e| e.application() == gimli::DW_EH_PE_absptr)
                };
                if !absolute(cie.fde_address_encoding())
                    || !absolute(cie.lsda_encoding())
                    || !absolute(cie.personality_with_encoding().map(|(e, _)| e))
                {
                    return Err(ArenaError::PositionDependent);
                }
                // FDE addresses exactly as `__register_frame` takes them
                // (pointer-sized): unregistering rewrites the range field.
                if cie
                    .fde_address_encoding()
                    .is_some_and(|e| e != gimli::DW_EH_PE_absptr)
                {
                    return Err(ArenaError::Malformed(
                        "FDE addresses must be pointer-sized (DW_EH_PE_absptr)".into(),
                    ));
                }
                end = end.max(cie.offset() + 4 + cie.entry_len());
            }
            gimli::CieOrFde::Fde(partial) => {
                let fde = partial
                    .parse(|section, bases, offset| section.cie_from_offset(bases, offset))
                    .map_err(malformed)?;
                if eh_frame[fde.offset()..].starts_with(&[0xff; 4]) {
                    return Err(ArenaError::Malformed("an FDE is 64-bit DWARF".into()));
                }
                end = end.max(fde.offset() + 4 + fde.entry_len());
                fdes.push((fde.initial_address() as usize, fde.offset() as u64));
            }
        }
    }
    if end % size_of::<usize>() != 0
        || fdes
            .iter()
            .any(|&(_, offset)| offset % size_of::<usize>() as u64 != 0)
    {
        return Err(ArenaError::Malformed(
            "its entries are not pointer-aligned (gimli's writer aligns them)".into(),
        ));
    }
    Ok((end, fdes))
}

#[cfg(test)]
mod tests;
