//! Reading exception tables back out of an ELF file: `.eh_frame` (with
//! gimli's reader), `.eh_frame_hdr`'s search table, and each FDE's LSDA in
//! `.gcc_except_table` (with the crate's independent decoder).
//!
//! A linked executable or shared library is read at its own addresses. A
//! relocatable object is first laid out at made-up addresses with its
//! relocations applied, as a linker would, so that PC-relative pointers
//! resolve to the right symbols.

use crate::ToolError;
use core::fmt;
use cranelift_lsda::{DecodedLsda, DecodedTypeEntry, decode_lsda};
use gimli::{BaseAddresses, CieOrFde, EhFrame, EhFrameHdr, Pointer, RunTimeEndian, UnwindSection};
use object::{Object, ObjectKind, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget};
use std::collections::BTreeMap;

/// A CIE as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CieDump {
    /// Offset in `.eh_frame`.
    pub offset: usize,
    /// The augmentation string, e.g. `zR` or `zLPR`.
    pub augmentation: String,
    /// The personality routine's symbol, if any.
    pub personality: Option<String>,
    /// Whether the personality is reached through a pointer slot.
    pub personality_indirect: bool,
    /// The personality pointer as encoded: the slot's address when
    /// indirect, else the routine's.
    pub personality_pointer: Option<u64>,
}

/// An FDE as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdeDump {
    /// The function's symbol, if one starts at `pc_begin`.
    pub function: Option<String>,
    /// First address covered.
    pub pc_begin: u64,
    /// One past the last address covered.
    pub pc_end: u64,
    /// Offset of its CIE.
    pub cie: usize,
    /// Address of its LSDA.
    pub lsda: Option<u64>,
    /// The LSDA, decoded.
    pub decoded: Option<DecodedLsda>,
    /// Whether `.eh_frame_hdr`'s table finds this FDE for `pc_begin`
    /// (`None` without a table, as in relocatable objects).
    pub found_by_hdr: Option<bool>,
}

/// The exception tables of one ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EhDump {
    /// The CIEs.
    pub cies: Vec<CieDump>,
    /// The FDEs.
    pub fdes: Vec<FdeDump>,
}

struct Image {
    endian: RunTimeEndian,
    address_size: u8,
    /// name -> (address, data)
    sections: BTreeMap<String, (u64, Vec<u8>)>,
    /// address -> symbol name
    symbols: BTreeMap<u64, String>,
}

impl Image {
    fn section(&self, name: &str) -> Option<(u64, &[u8])> {
        self.sections.get(name).map(|(a, d)| (*a, d.as_slice()))
    }

    fn read_pointer(&self, address: u64) -> Option<u64> {
        let size = usize::from(self.address_size);
        for (base, data) in self.sections.values() {
            if address >= *base && address + size as u64 <= base + data.len() as u64 {
                let at = (address - base) as usize;
                let bytes = &data[at..at + size];
                let mut value = 0u64;
                for (i, b) in bytes.iter().enumerate() {
                    let shift = match self.endian {
                        RunTimeEndian::Little => 8 * i,
                        RunTimeEndian::Big => 8 * (size - 1 - i),
                    };
                    value |= u64::from(*b) << shift;
                }
                return Some(value);
            }
        }
        None
    }

    fn symbol_at(&self, address: u64) -> Option<String> {
        self.symbols.get(&address).cloned()
    }
}

fn bad(what: impl fmt::Display) -> ToolError {
    ToolError::Parse(format!("reading exception tables: {what}"))
}

fn load(bytes: &[u8]) -> Result<Image, ToolError> {
    let file = object::File::parse(bytes).map_err(bad)?;
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let relocatable = file.kind() == ObjectKind::Relocatable;
    let mut layout = Layout::new(&file, relocatable);
    let mut symbols = BTreeMap::new();
    for symbol in file.symbols().chain(file.dynamic_symbols()) {
        let Ok(name) = symbol.name() else { continue };
        if name.is_empty() || symbol.kind() == object::SymbolKind::Section {
            continue;
        }
        if let Some(address) = layout.symbol_address(&symbol) {
            symbols.entry(address).or_insert_with(|| name.to_string());
        }
    }

    let mut sections = BTreeMap::new();
    for section in file.sections() {
        let Ok(name) = section.name() else { continue };
        let address = layout.sections[&section.index()];
        let mut data = section.uncompressed_data().map_err(bad)?.into_owned();
        // Only the tables and their pointer slots are read back.
        let eh_related = name == ".eh_frame"
            || name == ".gcc_except_table"
            || name.starts_with(".data.rel.local.DW.ref.");
        if relocatable && eh_related {
            for (offset, reloc) in section.relocations() {
                let (value, size) =
                    layout.relocated_value(&file, address + offset, &reloc, name)?;
                let at = offset as usize;
                let field = data
                    .get_mut(at..at + size)
                    .ok_or_else(|| bad(format!("relocation past the end of {name}")))?;
                put_uint(field, value, endian);
            }
        }
        sections.insert(name.to_string(), (address, data));
    }
    symbols.extend(layout.undefined.into_iter().map(|(name, a)| (a, name)));
    Ok(Image {
        endian,
        address_size: if file.is_64() { 8 } else { 4 },
        sections,
        symbols,
    })
}

/// Where sections and symbols of a file are: its own addresses, or for a
/// relocatable object a made-up layout as a linker would choose, with
/// undefined symbols at made-up addresses of their own.
struct Layout {
    relocatable: bool,
    sections: std::collections::HashMap<object::SectionIndex, u64>,
    undefined: BTreeMap<String, u64>,
}

impl Layout {
    fn new(file: &object::File, relocatable: bool) -> Self {
        let mut sections = std::collections::HashMap::new();
        let mut next = 0x1000u64;
        for section in file.sections() {
            let address = if relocatable {
                let align = section.align().max(1);
                next = next.div_ceil(align) * align;
                let at = next;
                next += section.size().max(1);
                at
            } else {
                section.address()
            };
            sections.insert(section.index(), address);
        }
        Self {
            relocatable,
            sections,
            undefined: BTreeMap::new(),
        }
    }

    fn symbol_address(&mut self, symbol: &object::Symbol) -> Option<u64> {
        match symbol.section_index() {
            Some(index) if self.relocatable => Some(self.sections[&index] + symbol.address()),
            Some(_) => Some(symbol.address()),
            None if symbol.is_undefined() => {
                let name = symbol.name().ok()?.to_string();
                let next = 0xffff_0000_0000u64 + 0x10 * (self.undefined.len() as u64 + 1);
                Some(*self.undefined.entry(name).or_insert(next))
            }
            None => None,
        }
    }

    /// The value a relocation at `place` stores, and its size in bytes.
    fn relocated_value(
        &mut self,
        file: &object::File,
        place: u64,
        reloc: &object::Relocation,
        section: &str,
    ) -> Result<(u64, usize), ToolError> {
        let target = match reloc.target() {
            RelocationTarget::Symbol(index) => {
                let symbol = file.symbol_by_index(index).map_err(bad)?;
                if symbol.kind() == object::SymbolKind::Section {
                    symbol.section_index().map(|i| self.sections[&i])
                } else {
                    self.symbol_address(&symbol)
                }
            }
            RelocationTarget::Section(index) => Some(self.sections[&index]),
            _ => None,
        }
        .ok_or_else(|| bad(format!("unresolvable relocation in {section}")))?;
        let value = target.wrapping_add_signed(reloc.addend());
        let (kind, bits) = relocation_kind(file, reloc);
        match kind {
            RelocationKind::Absolute => Ok((value, usize::from(bits / 8))),
            RelocationKind::Relative => Ok((value.wrapping_sub(place), usize::from(bits / 8))),
            other => Err(bad(format!("relocation kind {other:?} in {section}"))),
        }
    }
}

/// The relocation's kind and width in bits, including the ELF types
/// `object` reads as `Unknown` but exception tables use (riscv64's
/// `R_RISCV_32_PCREL`).
fn relocation_kind(file: &object::File, reloc: &object::Relocation) -> (RelocationKind, u8) {
    match (file.architecture(), reloc.flags()) {
        (
            object::Architecture::Riscv64,
            object::RelocationFlags::Elf {
                r_type: object::elf::R_RISCV_32_PCREL,
            },
        ) => (RelocationKind::Relative, 32),
        _ => (reloc.kind(), reloc.size()),
    }
}

/// Store the low `field.len()` bytes of `value` in `endian` order.
fn put_uint(field: &mut [u8], value: u64, endian: RunTimeEndian) {
    let size = field.len();
    for (i, byte) in field.iter_mut().enumerate() {
        let shift = match endian {
            RunTimeEndian::Little => 8 * i,
            RunTimeEndian::Big => 8 * (size - 1 - i),
        };
        *byte = (value >> shift) as u8;
    }
}

/// Read the exception tables of an ELF file.
pub fn dump_elf(bytes: &[u8]) -> Result<EhDump, ToolError> {
    let image = load(bytes)?;
    let (eh_frame_address, eh_frame_data) = image
        .section(".eh_frame")
        .ok_or_else(|| bad("no .eh_frame section"))?;
    let text = image.section(".text").map_or(0, |(a, _)| a);
    let mut bases = BaseAddresses::default()
        .set_eh_frame(eh_frame_address)
        .set_text(text);
    if let Some((got, _)) = image.section(".got") {
        bases = bases.set_got(got);
    }
    let mut eh_frame = EhFrame::new(eh_frame_data, image.endian);
    eh_frame.set_address_size(image.address_size);

    let hdr = match image.section(".eh_frame_hdr") {
        Some((address, data)) => {
            let hdr_bases = bases.clone().set_eh_frame_hdr(address);
            let parsed = EhFrameHdr::new(data, image.endian)
                .parse(&hdr_bases, image.address_size)
                .map_err(bad)?;
            Some((hdr_bases, parsed))
        }
        None => None,
    };

    let mut cies = Vec::new();
    let mut fdes = Vec::new();
    let mut entries = eh_frame.entries(&bases);
    while let Some(entry) = entries.next().map_err(bad)? {
        match entry {
            CieOrFde::Cie(cie) => {
                let offset = cie.offset();
                cies.push(cie_dump(&image, eh_frame_data, offset, cie.personality())?);
            }
            CieOrFde::Fde(partial) => {
                let fde = partial
                    .parse(|section, bases, offset| section.cie_from_offset(bases, offset))
                    .map_err(bad)?;
                let pc_begin = fde.initial_address();
                let lsda = fde.lsda().map(|p| match p {
                    Pointer::Direct(a) => a,
                    Pointer::Indirect(a) => image.read_pointer(a).unwrap_or(0),
                });
                let decoded = lsda.map(|address| decode_at(&image, address)).transpose()?;
                let found_by_hdr = match &hdr {
                    None => None,
                    Some((hdr_bases, parsed)) => Some(match parsed.table() {
                        None => false,
                        Some(table) => {
                            let ptr = table.lookup(pc_begin, hdr_bases).map_err(bad)?;
                            let fde_address = match ptr {
                                Pointer::Direct(a) => a,
                                Pointer::Indirect(a) => image.read_pointer(a).unwrap_or(0),
                            };
                            fde_address == eh_frame_address + fde.offset() as u64
                        }
                    }),
                };
                fdes.push(FdeDump {
                    function: image.symbol_at(pc_begin),
                    pc_begin,
                    pc_end: pc_begin + fde.len(),
                    cie: fde.cie().offset(),
                    lsda,
                    decoded,
                    found_by_hdr,
                });
            }
        }
    }
    Ok(EhDump { cies, fdes })
}

fn cie_dump(
    image: &Image,
    eh_frame: &[u8],
    offset: usize,
    personality: Option<Pointer>,
) -> Result<CieDump, ToolError> {
    // length (4), CIE id (4), version (1), then the NUL-terminated string.
    let start = offset + 9;
    let rest = eh_frame.get(start..).ok_or_else(|| bad("truncated CIE"))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| bad("unterminated CIE augmentation"))?;
    let augmentation = String::from_utf8_lossy(&rest[..end]).into_owned();
    let personality_pointer = personality.map(|p| match p {
        Pointer::Direct(a) | Pointer::Indirect(a) => a,
    });
    let (personality, personality_indirect) = match personality {
        None => (None, false),
        Some(Pointer::Direct(a)) => (Some(image.symbol_at(a).unwrap_or(format!("{a:#x}"))), false),
        Some(Pointer::Indirect(slot)) => {
            let target = image.read_pointer(slot).unwrap_or(0);
            let name = image
                .symbol_at(target)
                .or_else(|| image.symbol_at(slot))
                .unwrap_or(format!("{target:#x}"));
            (Some(name), true)
        }
    };
    Ok(CieDump {
        offset,
        augmentation,
        personality,
        personality_indirect,
        personality_pointer,
    })
}

fn decode_at(image: &Image, address: u64) -> Result<DecodedLsda, ToolError> {
    let (base, data) = image
        .section(".gcc_except_table")
        .filter(|(b, d)| address >= *b && address < b + d.len() as u64)
        .ok_or_else(|| bad(format!("LSDA {address:#x} is outside .gcc_except_table")))?;
    let bytes = &data[(address - base) as usize..];
    let mut decoded = decode_lsda(bytes, image.endian, image.address_size).map_err(bad)?;
    // Name PC-relative (and indirect) type entries by the symbol they reach.
    for index in 1..=decoded.type_entries.len() {
        let Some((target, indirect)) = decoded.type_entry_target(index, address) else {
            continue;
        };
        let target = match indirect {
            true => image.read_pointer(target),
            false => Some(target),
        };
        if let Some(name) = target.and_then(|t| image.symbol_at(t)) {
            decoded.type_entries[index - 1] = DecodedTypeEntry::Symbol {
                name,
                addend: 0,
                indirect,
            };
        }
    }
    Ok(decoded)
}

impl fmt::Display for EhDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            ".eh_frame: {} CIEs, {} FDEs",
            self.cies.len(),
            self.fdes.len()
        )?;
        for cie in &self.cies {
            write!(
                f,
                "  CIE @{:#x} augmentation \"{}\"",
                cie.offset, cie.augmentation
            )?;
            if let Some(p) = &cie.personality {
                let via = if cie.personality_indirect {
                    " (through a DW.ref slot)"
                } else {
                    ""
                };
                write!(f, ", personality {p}{via}")?;
            }
            writeln!(f)?;
        }
        for fde in &self.fdes {
            write!(
                f,
                "  FDE {} [{:#x}, {:#x}) CIE @{:#x}",
                fde.function.as_deref().unwrap_or("?"),
                fde.pc_begin,
                fde.pc_end,
                fde.cie
            )?;
            match fde.found_by_hdr {
                Some(true) => write!(f, ", found by .eh_frame_hdr")?,
                Some(false) => write!(f, ", NOT found by .eh_frame_hdr")?,
                None => {}
            }
            match (&fde.lsda, &fde.decoded) {
                (Some(address), Some(lsda)) => {
                    writeln!(f, ", LSDA at {address:#x}")?;
                    for line in lsda.to_string().lines() {
                        writeln!(f, "    {line}")?;
                    }
                }
                _ => writeln!(f, ", no LSDA")?,
            }
        }
        Ok(())
    }
}
