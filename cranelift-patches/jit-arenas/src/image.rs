//! The shared-object image an arena is loaded from.
//!
//! Four loadable segments, in address order: the ELF headers and dynamic
//! symbol table (R), `.dynamic` (RW, as linkers lay it out), the unwind
//! tables (R: `.eh_frame_hdr` with room for `hdr_capacity` search-table
//! entries, then `.eh_frame`), and the code (RX, no file bytes: the loader
//! maps it as zero-filled anonymous memory). `PT_GNU_EH_FRAME` points at
//! `.eh_frame_hdr`, so libgcc finds the tables through `_dl_find_object`
//! and LLVM libunwind through `dl_iterate_phdr`; `PT_GNU_STACK` keeps the
//! stack non-executable. The file holds only the first bytes of each table
//! region; the rest is a hole until the arena writes it.

use crate::ArenaError;
use gimli::write::{
    Address, CommonInformationEntry, EhFrame, EndianVec, FrameDescriptionEntry, FrameTable,
};
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, SectionHeader, Sym, Writer};

/// Segment alignment: a multiple of every page size Linux uses.
pub(crate) const SEGMENT_ALIGN: u64 = 0x1_0000;

/// The dynamic symbol whose address gives the image's load bias.
pub(crate) const TABLES_SYMBOL: &core::ffi::CStr = c"__cranelift_jit_arena_tables";
const SONAME: &[u8] = b"cranelift-jit-arena";

/// `.eh_frame_hdr`'s fixed part: version, three encodings, the pointer to
/// `.eh_frame` and the entry count.
pub(crate) const HDR_HEADER_LEN: u64 = 12;
/// Offset of the entry count within `.eh_frame_hdr`.
pub(crate) const HDR_COUNT_OFFSET: u64 = 8;
/// One search-table entry: start address and FDE, `datarel | sdata4` each.
pub(crate) const HDR_ENTRY_LEN: u64 = 8;

/// Where everything is, as offsets from the load address (equal to file
/// offsets for the bytes the file holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub dynamic: u64,
    /// `.eh_frame_hdr`: the start of the table segment.
    pub hdr: u64,
    pub hdr_capacity: u32,
    pub eh_frame: u64,
    pub eh_frame_capacity: u64,
    /// The code segment.
    pub code: u64,
    pub code_capacity: u64,
}

fn align_up(value: u64, align: u64) -> u64 {
    value.next_multiple_of(align)
}

impl Layout {
    /// Room for `code_capacity` bytes of code, with one search-table entry
    /// for every `min_function_align` bytes of it and `.eh_frame` space of
    /// `eh_frame_capacity` bytes.
    pub(crate) fn new(
        code_capacity: u64,
        min_function_align: u64,
        eh_frame_capacity: u64,
    ) -> Result<Self, ArenaError> {
        if code_capacity == 0 || eh_frame_capacity == 0 {
            return Err(ArenaError::Config(
                "an arena needs room for code and for .eh_frame",
            ));
        }
        let too_large = || {
            ArenaError::Config(
                "an arena's code and .eh_frame must lie within 2 GiB of its search table (its offsets are 32-bit)",
            )
        };
        let code_capacity = align_up(code_capacity, SEGMENT_ALIGN);
        let eh_frame_capacity = align_up(eh_frame_capacity, SEGMENT_ALIGN);
        // One entry per function, functions at least `min_function_align`
        // apart in the code the arena really holds.
        let hdr_capacity =
            u32::try_from(code_capacity / min_function_align).map_err(|_| too_large())?;
        let dynamic = SEGMENT_ALIGN;
        let hdr = 2 * SEGMENT_ALIGN;
        let eh_frame = align_up(
            hdr + HDR_HEADER_LEN + u64::from(hdr_capacity) * HDR_ENTRY_LEN,
            SEGMENT_ALIGN,
        );
        let code = eh_frame + eh_frame_capacity;
        // Every search-table value is an offset from the table's start.
        if code + code_capacity - hdr > i32::MAX as u64 {
            return Err(too_large());
        }
        Ok(Self {
            dynamic,
            hdr,
            hdr_capacity,
            eh_frame,
            eh_frame_capacity,
            code,
            code_capacity,
        })
    }

    /// Bytes of the table segment: `.eh_frame_hdr` and `.eh_frame`.
    pub(crate) fn tables_len(&self) -> u64 {
        self.code - self.hdr
    }

    /// The file's length: up to the end of the table segment.
    pub(crate) fn file_len(&self) -> u64 {
        self.code
    }
}

/// A CIE and an FDE covering no code: the FDE every search-table entry
/// points to until its function's own is registered, and again after.
pub(crate) fn placeholder_eh_frame() -> Result<Vec<u8>, ArenaError> {
    let encoding = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 1,
        address_size: size_of::<usize>() as u8,
    };
    let mut table = FrameTable::default();
    let cie = table.add_cie(CommonInformationEntry::new(
        encoding,
        1,
        1,
        gimli::Register(0),
    ));
    table.add_fde(cie, FrameDescriptionEntry::new(Address::Constant(0), 0));
    let mut eh_frame = EhFrame(EndianVec::new(gimli::NativeEndian));
    table
        .write_eh_frame(&mut eh_frame)
        .map_err(|_| ArenaError::Config("the placeholder FDE cannot be written"))?;
    Ok(eh_frame.0.into_vec())
}

fn host_machine() -> Result<(elf::Machine, elf::FileFlags), ArenaError> {
    let none = elf::FileFlags(0);
    if cfg!(target_arch = "x86_64") {
        Ok((elf::EM_X86_64, none))
    } else if cfg!(target_arch = "aarch64") {
        Ok((elf::EM_AARCH64, none))
    } else if cfg!(target_arch = "riscv64") {
        // Debian's riscv64 ABI (lp64d); the loader refuses other float ABIs.
        Ok((
            elf::EM_RISCV,
            elf::FileFlags(elf::EF_RISCV_FLOAT_ABI_DOUBLE.0 | elf::EF_RISCV_RVC.0),
        ))
    } else if cfg!(target_arch = "s390x") {
        Ok((elf::EM_S390, none))
    } else {
        Err(ArenaError::Unsupported(
            "no ELF machine is known for this architecture",
        ))
    }
}

/// The image's file bytes up to the end of `.eh_frame_hdr`'s fixed part;
/// `.eh_frame` (the placeholder) goes at `layout.eh_frame`.
pub(crate) fn build(layout: &Layout) -> Result<Vec<u8>, ArenaError> {
    let (machine, flags) = host_machine()?;
    let mut bytes = Vec::new();
    let mut w = Writer::new(
        object::Endianness::default(),
        cfg!(target_pointer_width = "64"),
        &mut bytes,
    );
    w.reserve_file_header();
    w.reserve_program_headers(7);

    w.reserve_null_section_index();
    let _hash_index = w.reserve_hash_section_index();
    let _dynsym_index = w.reserve_dynsym_section_index();
    let _dynstr_index = w.reserve_dynstr_section_index();
    let _dynamic_index = w.reserve_dynamic_section_index();
    let hdr_name = w.add_section_name(b".eh_frame_hdr");
    let hdr_index = w.reserve_section_index();
    let eh_frame_name = w.add_section_name(b".eh_frame");
    let _eh_frame_index = w.reserve_section_index();
    let text_name = w.add_section_name(b".text");
    let _text_index = w.reserve_section_index();
    w.reserve_shstrtab_section_index();

    let soname = w.add_dynamic_string(SONAME);
    let symbol_name = w.add_dynamic_string(TABLES_SYMBOL.to_bytes());
    w.reserve_null_dynamic_symbol_index();
    w.reserve_dynamic_symbol_index();
    let hash = w.reserve_hash(1, 2);
    let dynsym = w.reserve_dynsym();
    let dynstr = w.reserve_dynstr().map_err(image_error)?;
    w.reserve_shstrtab().map_err(image_error)?;
    w.reserve_section_headers();
    if w.reserved_len() > layout.dynamic {
        return Err(ArenaError::Config(
            "the image's headers outgrew their segment",
        ));
    }
    w.reserve_until(layout.dynamic);
    const DYNAMIC_ENTRIES: usize = 7;
    let dynamic = w.reserve_dynamic(DYNAMIC_ENTRIES);
    w.reserve_until(layout.hdr);
    w.reserve(HDR_HEADER_LEN, 4);

    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: elf::ET_DYN,
        e_machine: machine,
        e_entry: 0,
        e_flags: flags,
    })
    .map_err(image_error)?;
    w.write_align_program_headers();
    let segment = |p_type, p_flags, start: u64, file: u64, memory: u64, align| ProgramHeader {
        p_type,
        p_flags,
        p_offset: start,
        p_vaddr: start,
        p_paddr: start,
        p_filesz: file,
        p_memsz: memory,
        p_align: align,
    };
    let r = elf::PF_R;
    let rw = elf::ProgramFlags(elf::PF_R.0 | elf::PF_W.0);
    let rx = elf::ProgramFlags(elf::PF_R.0 | elf::PF_X.0);
    let dynamic_len = DYNAMIC_ENTRIES as u64 * 2 * size_of::<usize>() as u64;
    let headers_len = layout.dynamic;
    for header in [
        segment(elf::PT_LOAD, r, 0, headers_len, headers_len, SEGMENT_ALIGN),
        segment(
            elf::PT_LOAD,
            rw,
            layout.dynamic,
            dynamic_len,
            dynamic_len,
            SEGMENT_ALIGN,
        ),
        segment(
            elf::PT_LOAD,
            r,
            layout.hdr,
            layout.tables_len(),
            layout.tables_len(),
            SEGMENT_ALIGN,
        ),
        segment(
            elf::PT_LOAD,
            rx,
            layout.code,
            0,
            layout.code_capacity,
            SEGMENT_ALIGN,
        ),
        segment(
            elf::PT_DYNAMIC,
            rw,
            layout.dynamic,
            dynamic_len,
            dynamic_len,
            8,
        ),
        segment(
            elf::PT_GNU_EH_FRAME,
            r,
            layout.hdr,
            layout.eh_frame - layout.hdr,
            layout.eh_frame - layout.hdr,
            4,
        ),
    ] {
        w.write_program_header(&header);
    }
    // PT_GNU_STACK is the seventh reserved header: without it the loader
    // would make every thread's stack executable.
    w.write_program_header(&segment(elf::PT_GNU_STACK, rw, 0, 0, 0, 16));

    w.write_hash(1, 2, |index| {
        (index == 1).then(|| elf::hash(TABLES_SYMBOL.to_bytes()))
    });
    w.write_null_dynamic_symbol();
    let st_name = w.dynamic_string_offset(Some(symbol_name));
    w.write_dynamic_symbol(&Sym {
        st_name,
        section: Some(hdr_index.0),
        st_info: elf::SymbolInfo::new(elf::STB_GLOBAL, elf::STT_OBJECT),
        st_other: elf::SymbolOther(0).with_visibility(elf::STV_DEFAULT),
        st_shndx: elf::SymbolSection(0),
        st_value: layout.hdr,
        st_size: layout.eh_frame - layout.hdr,
    });
    w.write_dynstr();
    w.write_shstrtab();

    w.write_null_section_header();
    w.write_hash_section_header(hash);
    w.write_dynsym_section_header(dynsym, 1);
    w.write_dynstr_section_header(dynstr);
    w.write_dynamic_section_header(dynamic);
    let alloc = |extra: u64| elf::SectionFlags(elf::SHF_ALLOC.0 | extra);
    for (name, sh_type, flags, start, len, align) in [
        (
            hdr_name,
            elf::SHT_PROGBITS,
            alloc(0),
            layout.hdr,
            layout.eh_frame - layout.hdr,
            4,
        ),
        (
            eh_frame_name,
            elf::SHT_PROGBITS,
            alloc(0),
            layout.eh_frame,
            layout.eh_frame_capacity,
            8,
        ),
        (
            text_name,
            elf::SHT_NOBITS,
            alloc(elf::SHF_EXECINSTR.0),
            layout.code,
            layout.code_capacity,
            16,
        ),
    ] {
        let sh_name = w.section_name_offset(Some(name));
        w.write_section_header(&SectionHeader {
            sh_name,
            sh_type,
            sh_flags: flags,
            sh_addr: start,
            sh_offset: start,
            sh_size: len,
            sh_link: 0,
            sh_info: 0,
            sh_addralign: align,
            sh_entsize: 0,
        });
    }
    w.write_shstrtab_section_header();

    w.pad_until(layout.dynamic);
    w.write_align_dynamic();
    w.write_dynamic_string(elf::DT_SONAME, soname)
        .map_err(image_error)?;
    for (tag, value) in [
        (elf::DT_HASH, hash),
        (elf::DT_STRTAB, dynstr),
        (elf::DT_SYMTAB, dynsym),
        (elf::DT_STRSZ, u64::from(w.dynstr_len())),
        (elf::DT_SYMENT, 3 * size_of::<usize>() as u64),
        (elf::DT_NULL, 0),
    ] {
        w.write_dynamic(tag, value).map_err(image_error)?;
    }

    w.pad_until(layout.hdr);
    w.write(&hdr_header(layout));
    // `.eh_frame` starts far beyond: the arena writes the placeholder there
    // itself, leaving a hole (no bytes, no memory) between.
    Ok(bytes)
}

fn image_error(_: object::write::Error) -> ArenaError {
    ArenaError::Config("the arena's ELF image cannot be written")
}

/// `.eh_frame_hdr`'s fixed part with no entries: `.eh_frame` found
/// PC-relatively, a 4-byte count, entries relative to the header.
fn hdr_header(layout: &Layout) -> [u8; HDR_HEADER_LEN as usize] {
    use gimli::constants::*;
    let mut header = [0; HDR_HEADER_LEN as usize];
    header[0] = 1;
    header[1] = DW_EH_PE_pcrel.0 | DW_EH_PE_sdata4.0;
    header[2] = DW_EH_PE_udata4.0;
    header[3] = DW_EH_PE_datarel.0 | DW_EH_PE_sdata4.0;
    let to_eh_frame = (layout.eh_frame - (layout.hdr + 4)) as i32;
    header[4..8].copy_from_slice(&to_eh_frame.to_ne_bytes());
    header
}
