//! One arena: a memfd holding the image of `image.rs`, `dlopen`ed once,
//! with a second, writable and shared mapping of its table segment through
//! which the search table and `.eh_frame` grow while unwinders read them.

use crate::image::{self, HDR_COUNT_OFFSET, HDR_ENTRY_LEN, HDR_HEADER_LEN, Layout};
use crate::{ArenaError, LoadedToken};
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// What changes as modules come and go, under the arena's lock.
#[derive(Debug)]
pub(crate) struct ArenaState {
    /// Offset in the code segment where the next lease starts (page-aligned).
    pub code_top: u64,
    /// Search-table entries published (the count unwinders read).
    pub entries: u32,
    /// Bytes of `.eh_frame` in use, the placeholder included.
    pub eh_frame_top: u64,
    /// A module is placing code here; nobody else may.
    pub leased: bool,
    /// No more leases: the pool has let go of it.
    pub full: bool,
}

pub(crate) struct Arena {
    layout: Layout,
    /// The search-table value of the placeholder FDE.
    placeholder_fde: i32,
    placeholder_len: u64,
    /// Load bias of the image.
    base: usize,
    /// The table segment, writable and shared with the loader's mapping.
    tables: *mut u8,
    handle: *mut libc::c_void,
    // Open while loaded: its /proc/self/fd name is the loaded object's name,
    // which must not be reused while the loader knows it.
    memfd: File,
    state: Mutex<ArenaState>,
    _loaded: LoadedToken,
}

// SAFETY: the raw pointers are the arena's own mappings and loader handle,
// valid until drop; writes through `tables` that move the tables' ends
// happen under `state`'s lock, single fields are stored atomically, and
// unwinders only read.
unsafe impl Send for Arena {}
// SAFETY: as above: shared access only reads the pointers or writes under
// the lock (or with atomics the unwinders read concurrently).
unsafe impl Sync for Arena {}

fn last_os_error(what: &'static str) -> ArenaError {
    ArenaError::Os {
        what,
        error: io::Error::last_os_error(),
    }
}

fn dl_error(what: &'static str) -> ArenaError {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
    let message = unsafe {
        let message = libc::dlerror();
        if message.is_null() {
            String::from("no message")
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        }
    };
    ArenaError::Loader { what, message }
}

impl Arena {
    /// Create, load and map a fresh arena.
    pub(crate) fn open(
        layout: Layout,
        image: &[u8],
        placeholder: &[u8],
        loaded: LoadedToken,
    ) -> Result<Self, ArenaError> {
        // The image is never mapped executable from the file (its code
        // segment is anonymous), so hosts that refuse executable memfds
        // (vm.memfd_noexec=2) accept it sealed non-executable; kernels
        // before 6.3 do not know the flag.
        const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;
        let create = |flags| {
            // SAFETY: memfd_create takes a NUL-terminated name and flags;
            // it returns a new descriptor or -1.
            unsafe { libc::memfd_create(c"cranelift-jit-arena".as_ptr(), flags) }
        };
        let mut fd = create(libc::MFD_CLOEXEC | MFD_NOEXEC_SEAL);
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            fd = create(libc::MFD_CLOEXEC);
        }
        if fd < 0 {
            return Err(last_os_error("memfd_create"));
        }
        // SAFETY: `fd` is a descriptor this function just opened.
        let memfd = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        memfd
            .write_all_at(image, 0)
            .and_then(|()| memfd.write_all_at(placeholder, layout.eh_frame))
            .and_then(|()| memfd.set_len(layout.file_len()))
            .map_err(|error| ArenaError::Os {
                what: "writing the arena image",
                error,
            })?;

        let placeholder_fde =
            (layout.eh_frame - layout.hdr + placeholder_fde_offset(placeholder)?) as i32;
        let path = format!("/proc/self/fd/{fd}\0");
        // The loader matches names: an object still loaded under this one
        // (an arena someone else kept open) would be handed back instead.
        // SAFETY: RTLD_NOLOAD only looks the name up.
        let stale =
            unsafe { libc::dlopen(path.as_ptr().cast(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if !stale.is_null() {
            // SAFETY: the reference RTLD_NOLOAD just took.
            unsafe { libc::dlclose(stale) };
            return Err(ArenaError::Loader {
                what: "dlopen of the arena image",
                message: format!(
                    "an object named {} is still loaded",
                    path.trim_end_matches('\0')
                ),
            });
        }
        // SAFETY: `path` is NUL-terminated; the image has no initializers,
        // no relocations and no dependencies, so loading runs none of our
        // code and resolves nothing.
        let handle =
            unsafe { libc::dlopen(path.as_ptr().cast(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(dl_error("dlopen of the arena image"));
        }
        // From here on, dropping `arena` unloads the image.
        let mut arena = Self {
            layout,
            placeholder_fde,
            placeholder_len: placeholder.len() as u64,
            base: 0,
            tables: core::ptr::null_mut(),
            handle,
            memfd,
            state: Mutex::new(ArenaState {
                code_top: 0,
                entries: 0,
                eh_frame_top: placeholder.len() as u64,
                leased: false,
                full: false,
            }),
            _loaded: loaded,
        };
        // SAFETY: `handle` is a live dlopen handle and the name is
        // NUL-terminated.
        let symbol = unsafe { libc::dlsym(handle, image::TABLES_SYMBOL.as_ptr()) };
        if symbol.is_null() {
            return Err(dl_error("dlsym of the arena's table symbol"));
        }
        arena.base = symbol as usize - layout.hdr as usize;
        // SAFETY: a new shared mapping of the memfd's table segment, which
        // the file covers (`set_len` above); it aliases no Rust object.
        let tables = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                layout.tables_len() as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                arena.memfd.as_raw_fd(),
                layout.hdr as libc::off_t,
            )
        };
        if tables == libc::MAP_FAILED {
            return Err(last_os_error("mapping the arena's tables"));
        }
        arena.tables = tables.cast();
        Ok(arena)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ArenaState> {
        // A panic while holding the lock leaves the state as consistent as
        // the last completed store: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Address of `offset` in the code segment.
    pub(crate) fn code_address(&self, offset: u64) -> *mut u8 {
        (self.base + (self.layout.code + offset) as usize) as *mut u8
    }

    fn count(&self) -> &AtomicU32 {
        // SAFETY: the count is 4-aligned inside the mapped table segment,
        // which lives as long as `self`.
        unsafe {
            &*self
                .tables
                .add(HDR_COUNT_OFFSET as usize)
                .cast::<AtomicU32>()
        }
    }

    /// The two fields of search-table entry `index`.
    fn entry(&self, index: u32) -> [&AtomicI32; 2] {
        debug_assert!(index < self.layout.hdr_capacity);
        let offset = HDR_HEADER_LEN + u64::from(index) * HDR_ENTRY_LEN;
        // SAFETY: entries are 4-aligned inside the mapped table segment
        // (index < capacity), which lives as long as `self`.
        unsafe {
            let first = self.tables.add(offset as usize).cast::<AtomicI32>();
            [&*first, &*first.add(1)]
        }
    }

    /// Append search-table entries for functions at `code_offsets`
    /// (ascending, above every published entry), each pointing to the
    /// placeholder FDE; returns the index of the first.
    pub(crate) fn publish_entries(
        &self,
        state: &mut ArenaState,
        code_offsets: &[u64],
    ) -> Result<u32, ArenaError> {
        let first = state.entries;
        if u64::from(first) + code_offsets.len() as u64 > u64::from(self.layout.hdr_capacity) {
            return Err(ArenaError::Full(".eh_frame_hdr search table"));
        }
        let code_from_hdr = self.layout.code - self.layout.hdr;
        for (i, &offset) in code_offsets.iter().enumerate() {
            let [start, fde] = self.entry(first + i as u32);
            start.store((code_from_hdr + offset) as i32, Ordering::Relaxed);
            fde.store(self.placeholder_fde, Ordering::Relaxed);
        }
        state.entries = first + code_offsets.len() as u32;
        // Release: a reader that sees the count sees the entries under it.
        self.count().store(state.entries, Ordering::Release);
        let entry_offset = |i: u32| HDR_HEADER_LEN + u64::from(i) * HDR_ENTRY_LEN;
        self.prefault(entry_offset(first), entry_offset(state.entries));
        Ok(first)
    }

    /// Map the table bytes `start..end` (offsets in the table segment) into
    /// the loader's mapping now, so that no unwinder takes a page fault on
    /// its first lookup there: the writes went through the shared alias.
    fn prefault(&self, start: u64, end: u64) {
        let page = image::SEGMENT_ALIGN.min(4096);
        let loaded = self.base + self.layout.hdr as usize;
        let mut offset = start - start % page;
        while offset < end {
            // SAFETY: inside the image's table segment, mapped readable by
            // the loader for the arena's lifetime.
            unsafe { core::ptr::read_volatile((loaded + offset as usize) as *const u8) };
            offset += page;
        }
    }

    /// Point entry `index` at the FDE `eh_frame_offset` bytes into
    /// `.eh_frame`, or back at the placeholder.
    pub(crate) fn set_fde(&self, index: u32, eh_frame_offset: Option<u64>) {
        let value = match eh_frame_offset {
            Some(offset) => (self.layout.eh_frame - self.layout.hdr + offset) as i32,
            None => self.placeholder_fde,
        };
        self.entry(index)[1].store(value, Ordering::Release);
    }

    /// Make the FDE `eh_frame_offset` bytes into `.eh_frame` cover no code
    /// (its address range becomes 0), so that an unwinder scanning
    /// `.eh_frame` past the search table (LLVM libunwind does, on a miss)
    /// does not find it either.
    pub(crate) fn empty_fde(&self, eh_frame_offset: u64) {
        // Length, CIE pointer, then the absolute start address.
        let range = self.layout.eh_frame - self.layout.hdr
            + eh_frame_offset
            + 8
            + size_of::<usize>() as u64;
        // SAFETY: `eh_frame_offset` is an FDE this arena copied in, written
        // with absolute (pointer-sized) addresses and pointer-aligned (its
        // block and every entry in it are), so the range field is an
        // aligned usize inside the mapped table segment.
        let range = unsafe { &*self.tables.add(range as usize).cast::<AtomicUsize>() };
        range.store(0, Ordering::Release);
    }

    /// Copy `entries` (whole CIEs and FDEs) to the end of `.eh_frame`;
    /// returns their offset in it.
    pub(crate) fn append_eh_frame(
        &self,
        state: &mut ArenaState,
        entries: &[u8],
    ) -> Result<u64, ArenaError> {
        let offset = state.eh_frame_top;
        debug_assert_eq!(offset % size_of::<usize>() as u64, 0);
        // The zero length after the last entry ends `.eh_frame` for the
        // unwinders that scan it: it must stay inside the region.
        if offset + entries.len() as u64 + 4 > self.layout.eh_frame_capacity {
            return Err(ArenaError::Full(".eh_frame"));
        }
        let (length, rest) = entries.split_at(4);
        // SAFETY: the range is inside the mapped `.eh_frame` region (checked
        // above), past every published byte, and `entries` is not in it.
        unsafe {
            let dst = self
                .tables
                .add((self.layout.eh_frame - self.layout.hdr + offset) as usize);
            core::ptr::copy_nonoverlapping(rest.as_ptr(), dst.add(4), rest.len());
            // A reader scanning `.eh_frame` stops at a zero length: give it
            // the first length only once what follows is in place. (The C
            // readers use plain loads and rely on the address dependency.)
            let length = u32::from_ne_bytes(length.try_into().expect("4 bytes"));
            (*dst.cast::<AtomicU32>()).store(length, Ordering::Release);
        }
        state.eh_frame_top = offset + entries.len() as u64;
        let in_tables = self.layout.eh_frame - self.layout.hdr;
        self.prefault(in_tables + offset, in_tables + state.eh_frame_top);
        Ok(offset)
    }

    /// Empty the arena for reuse: no module has code in it and nobody holds
    /// it, so no unwinder looks anything up in it.
    pub(crate) fn reset(&self, state: &mut ArenaState) -> Result<(), ArenaError> {
        self.count().store(0, Ordering::Release);
        // Give the table pages back, except the one with the fixed header
        // and the placeholder's page.
        let page = image::SEGMENT_ALIGN;
        for (start, end) in [
            (self.layout.hdr + page, self.layout.eh_frame),
            (self.layout.eh_frame + page, self.layout.code),
        ] {
            if end > start {
                // SAFETY: punching a hole in our own memfd; the file keeps
                // its size and reads back zeros.
                let punched = unsafe {
                    libc::fallocate(
                        self.memfd.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        start as libc::off_t,
                        (end - start) as libc::off_t,
                    )
                };
                if punched != 0 {
                    return Err(last_os_error("releasing the arena's table pages"));
                }
            }
        }
        let used_in_first_page = (state.eh_frame_top.min(page) - self.placeholder_len) as usize;
        // SAFETY: inside the mapped `.eh_frame` region's first page, after
        // the placeholder, which stays.
        unsafe {
            let after = self
                .tables
                .add((self.layout.eh_frame - self.layout.hdr + self.placeholder_len) as usize);
            core::ptr::write_bytes(after, 0, used_in_first_page);
        }
        *state = ArenaState {
            code_top: 0,
            entries: 0,
            eh_frame_top: self.placeholder_len,
            leased: false,
            full: false,
        };
        Ok(())
    }
}

/// Offset of the placeholder FDE in `.eh_frame`: after its CIE.
fn placeholder_fde_offset(placeholder: &[u8]) -> Result<u64, ArenaError> {
    let cie_len = placeholder
        .get(..4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
        .ok_or(ArenaError::Config("the placeholder has no CIE"))?;
    Ok(4 + u64::from(cie_len))
}

impl Drop for Arena {
    fn drop(&mut self) {
        if !self.tables.is_null() {
            // SAFETY: the mapping made in `open`, used by nothing that
            // outlives the arena.
            unsafe { libc::munmap(self.tables.cast(), self.layout.tables_len() as usize) };
        }
        // SAFETY: the handle from `open`; no module has code here any more
        // (a module's code and registrations hold the arena through its
        // `ModuleCode`), so nothing runs in or unwinds through the image.
        unsafe { libc::dlclose(self.handle) };
    }
}
