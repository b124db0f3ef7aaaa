use super::*;
use image::{HDR_ENTRY_LEN, HDR_HEADER_LEN};
use object::read::elf::{ElfFile64, ProgramHeader as _};
use object::{Object, ObjectSection};

fn image() -> (Layout, Vec<u8>) {
    let layout = Layout::new(1 << 20, MIN_FUNCTION_ALIGN, 1 << 20).unwrap();
    let bytes = image::build(&layout).unwrap();
    (layout, bytes)
}

#[test]
fn the_image_is_a_shared_object_with_its_tables_where_the_layout_says() {
    let (layout, bytes) = image();
    let file = ElfFile64::<object::Endianness>::parse(&bytes[..]).unwrap();
    assert_eq!(file.kind(), object::ObjectKind::Dynamic);
    let endian = file.endian();
    let segments: Vec<_> = file
        .elf_program_headers()
        .iter()
        .map(|p| {
            (
                p.p_type(endian),
                p.p_vaddr(endian),
                p.p_filesz(endian),
                p.p_memsz(endian),
            )
        })
        .collect();
    let tables = layout.tables_len();
    let hdr_len = layout.eh_frame - layout.hdr;
    assert_eq!(
        segments,
        [
            (object::elf::PT_LOAD, 0, layout.dynamic, layout.dynamic),
            (object::elf::PT_LOAD, layout.dynamic, 112, 112),
            (object::elf::PT_LOAD, layout.hdr, tables, tables),
            (object::elf::PT_LOAD, layout.code, 0, layout.code_capacity),
            (object::elf::PT_DYNAMIC, layout.dynamic, 112, 112),
            (object::elf::PT_GNU_EH_FRAME, layout.hdr, hdr_len, hdr_len),
            (object::elf::PT_GNU_STACK, 0, 0, 0),
        ]
    );
    let hdr = file.section_by_name(".eh_frame_hdr").unwrap();
    assert_eq!(hdr.address(), layout.hdr);
    // Version 1, .eh_frame pc-relative, a 4-byte count (0), a datarel table.
    assert_eq!(&bytes[layout.hdr as usize..][..4], &[1, 0x1b, 0x03, 0x3b]);
    assert_eq!(&bytes[(layout.hdr + 8) as usize..][..4], &[0, 0, 0, 0]);
    let text = file.section_by_name(".text").unwrap();
    assert_eq!(
        (text.address(), text.size()),
        (layout.code, layout.code_capacity)
    );
}

#[test]
fn oversized_configurations_are_refused() {
    // Each capacity under 2 GiB is not enough: the search table's values
    // are offsets from its start, up to the end of the code.
    for (code_capacity, eh_frame_capacity) in [(4 << 30, 1 << 20), (1 << 30, 512 << 20)] {
        let error = LoaderArenas::with_config(ArenaConfig {
            code_capacity,
            eh_frame_capacity,
        })
        .err()
        .unwrap();
        assert!(matches!(error, ArenaError::Config(_)), "{error}");
        assert!(error.to_string().contains("within 2 GiB"), "{error}");
    }
    let fits = Layout::new(1 << 30, MIN_FUNCTION_ALIGN, 448 << 20).unwrap();
    assert!(fits.code + fits.code_capacity - fits.hdr <= i32::MAX as u64);
}

#[test]
fn the_search_table_holds_an_entry_per_16_bytes_of_the_rounded_code() {
    // 65,552 bytes of code round up to 131,072: 8,192 functions fit.
    let layout = Layout::new(65_552, MIN_FUNCTION_ALIGN, 1 << 20).unwrap();
    assert_eq!(layout.code_capacity, 131_072);
    assert_eq!(layout.hdr_capacity, 8_192);
    assert!(layout.hdr + HDR_HEADER_LEN + 8_192 * HDR_ENTRY_LEN <= layout.eh_frame);
}
