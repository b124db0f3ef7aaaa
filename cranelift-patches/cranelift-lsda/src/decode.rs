//! Decoding of an LSDA into a typed table, written from the format (as the
//! personality routines read it), not from this crate's encoder: it shares
//! no code with `encode`, so round trips test one against the other.
//!
//! It accepts every LSDA a GCC- or LLVM-style compiler emits (any LPStart,
//! any fixed-width or LEB128 call-site encoding, any type-table encoding),
//! and reports malformed bytes as a [`DecodeError`].

use crate::eh_frame::{RelocatedSection, SymbolIndex};
use crate::error::LsdaResult;
use crate::error::{DecodeError, Malformation};
use crate::lsda::{Lsda, TypeEntry};
use crate::policy::Clause;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use gimli::constants::{self, DwEhPe};
use gimli::{EndianSlice, Reader, RunTimeEndian};

type DecodeResult<T> = Result<T, DecodeError>;

/// A decoded LSDA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedLsda {
    /// Size in bytes: up to the TType base, or the end of the last action
    /// record read (trailing bytes of the input are not counted).
    pub size: usize,
    /// The landing-pad base, when the LSDA gives one (else the function start).
    pub lpstart: Option<u64>,
    /// The type-table encoding, `None` when omitted.
    pub type_encoding: Option<DwEhPe>,
    /// The call-site record encoding.
    pub call_site_encoding: DwEhPe,
    /// The call-site records, with their action chains resolved.
    pub call_sites: Vec<DecodedCallSite>,
    /// The type table entries the action chains use, index 1 first.
    pub type_entries: Vec<DecodedTypeEntry>,
    /// Offset of the TType base (the end of the type table), if any.
    pub type_base: Option<usize>,
    /// Offset of each type entry in the bytes, index 1 first.
    pub type_entry_offsets: Vec<usize>,
}

/// A decoded call-site record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedCallSite {
    /// Start of the range, from the function start.
    pub start: u64,
    /// Length of the range.
    pub len: u64,
    /// The landing pad, relative to LPStart; 0 for none.
    pub landing_pad: u64,
    /// The raw action field: 0 for none, else 1 + action-record offset.
    pub action: u64,
    /// The action chain, in the order the personality walks it.
    pub chain: Vec<DecodedAction>,
}

/// One action record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodedAction {
    /// Type filter 0.
    Cleanup,
    /// A positive filter: a catch of type-table entry `n` (1-based).
    Catch(u32),
    /// A negative filter: an exception specification.
    ExceptionSpec(i64),
}

/// A decoded type-table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodedTypeEntry {
    /// A null entry (catch-all).
    Null,
    /// An entry named by the caller (a relocation's symbol, or the symbol
    /// found at the entry's target).
    Symbol {
        /// The symbol.
        name: String,
        /// The addend.
        addend: i64,
        /// Whether the entry goes through an indirection slot.
        indirect: bool,
    },
    /// A non-zero value with no relocation (an absolute address or a raw
    /// pc-relative offset, per the type encoding).
    Value(u64),
}

impl DecodedLsda {
    /// The call-site record covering `offset`, as a personality would find
    /// it for a return address of `offset + 1`.
    pub fn lookup(&self, offset: u64) -> Option<&DecodedCallSite> {
        self.call_sites
            .iter()
            .find(|cs| cs.start <= offset && offset < cs.start.saturating_add(cs.len))
    }

    /// The clauses `record` (one of this table's call sites) stands for, as
    /// a policy writes them: no action chain is a lone cleanup, a null type
    /// entry a catch-all. `None` when the chain holds an exception
    /// specification or a type index past the table.
    pub fn clauses(&self, record: &DecodedCallSite) -> Option<Vec<Clause>> {
        if record.chain.is_empty() {
            return Some(vec![Clause::Cleanup]);
        }
        record
            .chain
            .iter()
            .map(|action| match *action {
                DecodedAction::Cleanup => Some(Clause::Cleanup),
                DecodedAction::Catch(n) => {
                    let entry = self.type_entries.get((n as usize).checked_sub(1)?)?;
                    Some(Clause::Catch(match entry {
                        DecodedTypeEntry::Null => TypeEntry::CatchAll,
                        DecodedTypeEntry::Symbol { name, addend, .. } => TypeEntry::Symbol {
                            name: name.clone(),
                            addend: *addend,
                        },
                        DecodedTypeEntry::Value(value) => TypeEntry::Address(*value),
                    }))
                }
                DecodedAction::ExceptionSpec(_) => None,
            })
            .collect()
    }

    /// Name the type entries for which `name_at(offset)` (the entry's
    /// offset in the decoded bytes) gives a symbol and addend, e.g. from
    /// the relocations of a section being written.
    pub fn name_entries(&mut self, mut name_at: impl FnMut(usize) -> Option<(String, i64)>) {
        let indirect = self.type_encoding.is_some_and(|e| e.is_indirect());
        for (entry, &offset) in self.type_entries.iter_mut().zip(&self.type_entry_offsets) {
            if let Some((name, addend)) = name_at(offset) {
                *entry = DecodedTypeEntry::Symbol {
                    name,
                    addend,
                    indirect,
                };
            }
        }
    }

    /// Where type entry `index` (1-based) points when the LSDA is loaded
    /// at `lsda_address`: the value with its PC-relative base applied, and
    /// whether that is the address of a pointer to the type (`indirect`).
    /// `None` for a null entry, an entry already named, or a base this
    /// decoder cannot know (text-, data- or function-relative).
    pub fn type_entry_target(&self, index: usize, lsda_address: u64) -> Option<(u64, bool)> {
        let encoding = self.type_encoding?;
        let DecodedTypeEntry::Value(raw) = *self.type_entries.get(index.checked_sub(1)?)? else {
            return None;
        };
        let place = lsda_address.wrapping_add(*self.type_entry_offsets.get(index - 1)? as u64);
        let target = match encoding.application() {
            constants::DW_EH_PE_absptr => raw,
            constants::DW_EH_PE_pcrel => place.wrapping_add(raw),
            _ => return None,
        };
        Some((target, encoding.is_indirect()))
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    reader: EndianSlice<'a, RunTimeEndian>,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], endian: RunTimeEndian) -> Self {
        Self {
            data,
            reader: EndianSlice::new(data, endian),
        }
    }

    fn at(data: &'a [u8], endian: RunTimeEndian, offset: usize) -> DecodeResult<Self> {
        let tail = data
            .get(offset..)
            .ok_or_else(|| malformed(offset, Malformation::ActionOutOfRange))?;
        Ok(Self {
            data,
            reader: EndianSlice::new(tail, endian),
        })
    }

    fn pos(&self) -> usize {
        self.data.len() - self.reader.len()
    }

    fn read<T>(
        &mut self,
        field: &'static str,
        f: impl FnOnce(&mut EndianSlice<'a, RunTimeEndian>) -> gimli::Result<T>,
    ) -> DecodeResult<T> {
        let pos = self.pos();
        f(&mut self.reader).map_err(|error| malformed(pos, Malformation::Read { field, error }))
    }

    fn u8(&mut self, what: &'static str) -> DecodeResult<u8> {
        self.read(what, |r| r.read_u8())
    }

    fn uleb(&mut self, what: &'static str) -> DecodeResult<u64> {
        self.read(what, |r| r.read_uleb128())
    }

    fn sleb(&mut self, what: &'static str) -> DecodeResult<i64> {
        self.read(what, |r| r.read_sleb128())
    }

    /// A value in the format part of `encoding`; the application part is
    /// the caller's to interpret.
    fn encoded(
        &mut self,
        encoding: DwEhPe,
        address_size: u8,
        what: &'static str,
    ) -> DecodeResult<u64> {
        let pos = self.pos();
        match encoding.format() {
            constants::DW_EH_PE_absptr => match address_size {
                4 => self.read(what, |r| r.read_u32()).map(u64::from),
                8 => self.read(what, |r| r.read_u64()),
                other => Err(malformed(pos, Malformation::UnsupportedAddressSize(other))),
            },
            constants::DW_EH_PE_uleb128 => self.uleb(what),
            constants::DW_EH_PE_sleb128 => self.sleb(what).map(|v| v as u64),
            constants::DW_EH_PE_udata2 => self.read(what, |r| r.read_u16()).map(u64::from),
            constants::DW_EH_PE_udata4 => self.read(what, |r| r.read_u32()).map(u64::from),
            constants::DW_EH_PE_udata8 => self.read(what, |r| r.read_u64()),
            constants::DW_EH_PE_sdata2 => self.read(what, |r| r.read_i16()).map(|v| v as u64),
            constants::DW_EH_PE_sdata4 => self.read(what, |r| r.read_i32()).map(|v| v as u64),
            constants::DW_EH_PE_sdata8 => self.read(what, |r| r.read_i64()).map(|v| v as u64),
            other => Err(malformed(pos, Malformation::UnknownPointerFormat(other))),
        }
    }
}

fn malformed(offset: usize, what: Malformation) -> DecodeError {
    DecodeError { offset, what }
}

fn fixed_size(encoding: DwEhPe, address_size: u8) -> Option<usize> {
    match encoding.format() {
        constants::DW_EH_PE_absptr => Some(usize::from(address_size)),
        constants::DW_EH_PE_udata2 | constants::DW_EH_PE_sdata2 => Some(2),
        constants::DW_EH_PE_udata4 | constants::DW_EH_PE_sdata4 => Some(4),
        constants::DW_EH_PE_udata8 | constants::DW_EH_PE_sdata8 => Some(8),
        _ => None,
    }
}

/// The fields before the call-site records.
struct Header {
    lpstart: Option<u64>,
    type_encoding: Option<DwEhPe>,
    type_base: Option<usize>,
    call_site_encoding: DwEhPe,
    /// Where the call-site records end and the action table begins.
    action_start: usize,
}

/// Write `lsda` alone and read it back with the decoder, naming symbol
/// type entries from the relocations the writer recorded: what dumps,
/// filetests and round-trip tests show.
pub fn decode_back(lsda: &Lsda, endian: RunTimeEndian) -> LsdaResult<DecodedLsda> {
    let mut section = RelocatedSection::new(endian);
    let mut symbols = SymbolIndex::default();
    lsda.write(&mut section, |name| {
        Some(symbols.address(String::from(name)))
    })?;
    let mut decoded = decode_lsda(section.bytes(), endian, lsda.address_size())?;
    decoded.name_entries(|offset| {
        let reloc = section.relocation_at(offset)?;
        let gimli::write::RelocationTarget::Symbol(index) = reloc.target else {
            return None;
        };
        Some((symbols.get(index)?.clone(), reloc.addend))
    });
    Ok(decoded)
}

/// Decode an LSDA; `address_size` is the size of `absptr`. Type entries
/// come out as values; [`DecodedLsda::name_entries`] names them.
pub fn decode_lsda(
    bytes: &[u8],
    endian: RunTimeEndian,
    address_size: u8,
) -> Result<DecodedLsda, DecodeError> {
    let mut c = Cursor::new(bytes, endian);
    let header = decode_header(&mut c, address_size)?;
    let (call_sites, end) = decode_call_sites(&mut c, &header, address_size)?;
    let max_type = call_sites
        .iter()
        .flat_map(|cs| &cs.chain)
        .filter_map(|a| match a {
            DecodedAction::Catch(n) => Some(*n),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let (type_entries, type_entry_offsets) =
        decode_type_entries(bytes, endian, &header, max_type, address_size)?;
    Ok(DecodedLsda {
        size: header.type_base.unwrap_or(end),
        type_base: header.type_base,
        lpstart: header.lpstart,
        type_encoding: header.type_encoding,
        call_site_encoding: header.call_site_encoding,
        call_sites,
        type_entries,
        type_entry_offsets,
    })
}

fn decode_header(c: &mut Cursor<'_>, address_size: u8) -> DecodeResult<Header> {
    let lpstart_encoding = DwEhPe(c.u8("LPStart encoding")?);
    let lpstart = if lpstart_encoding == constants::DW_EH_PE_omit {
        None
    } else {
        Some(c.encoded(lpstart_encoding, address_size, "LPStart")?)
    };

    let ttype = DwEhPe(c.u8("TType encoding")?);
    let (type_encoding, type_base) = if ttype == constants::DW_EH_PE_omit {
        (None, None)
    } else {
        let offset = c.uleb("TType base offset")?;
        let base = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(c.pos()))
            .filter(|&b| b <= c.data.len())
            .ok_or_else(|| malformed(c.pos(), Malformation::TypeBasePastEnd))?;
        (Some(ttype), Some(base))
    };

    let call_site_encoding = DwEhPe(c.u8("call-site encoding")?);
    if call_site_encoding == constants::DW_EH_PE_omit || call_site_encoding.application().0 != 0 {
        return Err(malformed(
            c.pos() - 1,
            Malformation::UnsupportedCallSiteEncoding(call_site_encoding),
        ));
    }
    let table_len = c.uleb("call-site table length")?;
    let table_start = c.pos();
    let action_start = usize::try_from(table_len)
        .ok()
        .and_then(|l| l.checked_add(table_start))
        .filter(|&end| end <= c.data.len())
        .ok_or_else(|| malformed(table_start, Malformation::CallSiteTablePastEnd))?;
    Ok(Header {
        lpstart,
        type_encoding,
        type_base,
        call_site_encoding,
        action_start,
    })
}

/// The call-site records with their action chains, and the end of the
/// last action record read.
fn decode_call_sites(
    c: &mut Cursor<'_>,
    header: &Header,
    address_size: u8,
) -> DecodeResult<(Vec<DecodedCallSite>, usize)> {
    let (encoding, action_start) = (header.call_site_encoding, header.action_start);
    let mut call_sites = Vec::new();
    let mut end = action_start;
    while c.pos() < action_start {
        let start = c.encoded(encoding, address_size, "call-site start")?;
        let len = c.encoded(encoding, address_size, "call-site length")?;
        let landing_pad = c.encoded(encoding, address_size, "landing pad")?;
        let action = c.uleb("call-site action")?;
        if c.pos() > action_start {
            return Err(malformed(c.pos(), Malformation::CallSiteRecordOverruns));
        }
        let chain = if action == 0 {
            Vec::new()
        } else {
            let endian = c.reader.endian();
            let (chain, chain_end) = decode_chain(c.data, endian, action_start, action - 1)?;
            end = end.max(chain_end);
            chain
        };
        call_sites.push(DecodedCallSite {
            start,
            len,
            landing_pad,
            action,
            chain,
        });
    }
    Ok((call_sites, end))
}

/// Type entries 1 to `max_type`, with their offsets.
fn decode_type_entries(
    bytes: &[u8],
    endian: RunTimeEndian,
    header: &Header,
    max_type: u32,
    address_size: u8,
) -> DecodeResult<(Vec<DecodedTypeEntry>, Vec<usize>)> {
    let mut type_entries = Vec::new();
    let mut type_entry_offsets = Vec::new();
    if max_type == 0 {
        return Ok((type_entries, type_entry_offsets));
    }
    let (Some(encoding), Some(base)) = (header.type_encoding, header.type_base) else {
        return Err(malformed(0, Malformation::NoTypeTable));
    };
    let size = fixed_size(encoding, address_size)
        .ok_or_else(|| malformed(1, Malformation::TypeEncodingNotFixed(encoding)))?;
    for index in 1..=max_type as usize {
        let offset = index
            .checked_mul(size)
            .and_then(|d| base.checked_sub(d))
            .filter(|&o| o >= header.action_start)
            .ok_or_else(|| malformed(base, Malformation::TypeEntryBeforeTable(index)))?;
        let mut entry = Cursor::at(bytes, endian, offset)?;
        let raw = entry.encoded(encoding, address_size, "type entry")?;
        type_entries.push(match raw {
            0 => DecodedTypeEntry::Null,
            raw => DecodedTypeEntry::Value(raw),
        });
        type_entry_offsets.push(offset);
    }
    Ok((type_entries, type_entry_offsets))
}

fn decode_chain(
    bytes: &[u8],
    endian: RunTimeEndian,
    action_start: usize,
    first: u64,
) -> DecodeResult<(Vec<DecodedAction>, usize)> {
    let mut chain = Vec::new();
    let mut end = action_start;
    let mut seen = BTreeSet::new();
    let mut record = usize::try_from(first)
        .ok()
        .and_then(|f| f.checked_add(action_start))
        .ok_or_else(|| malformed(action_start, Malformation::ActionOutOfRange))?;
    loop {
        if record < action_start || !seen.insert(record) {
            return Err(malformed(record, Malformation::ChainLeavesTable));
        }
        let mut c = Cursor::at(bytes, endian, record)?;
        let filter = c.sleb("action type filter")?;
        let disp_field = c.pos();
        let disp = c.sleb("action next displacement")?;
        chain.push(match filter {
            0 => DecodedAction::Cleanup,
            f if f > 0 => DecodedAction::Catch(
                u32::try_from(f)
                    .map_err(|_| malformed(record, Malformation::TypeFilterTooLarge(f)))?,
            ),
            f => DecodedAction::ExceptionSpec(f),
        });
        end = end.max(c.pos());
        if disp == 0 {
            return Ok((chain, end));
        }
        record = i64::try_from(disp_field)
            .ok()
            .and_then(|p| p.checked_add(disp))
            .and_then(|r| usize::try_from(r).ok())
            .ok_or_else(|| malformed(disp_field, Malformation::ActionOutOfRange))?;
    }
}

/// A readable name for a pointer encoding, e.g. `pcrel|sdata4`.
pub fn encoding_name(encoding: DwEhPe) -> String {
    if encoding == constants::DW_EH_PE_omit {
        return "omit".to_string();
    }
    let format = match encoding.format() {
        constants::DW_EH_PE_absptr => "absptr",
        constants::DW_EH_PE_uleb128 => "uleb128",
        constants::DW_EH_PE_udata2 => "udata2",
        constants::DW_EH_PE_udata4 => "udata4",
        constants::DW_EH_PE_udata8 => "udata8",
        constants::DW_EH_PE_sleb128 => "sleb128",
        constants::DW_EH_PE_sdata2 => "sdata2",
        constants::DW_EH_PE_sdata4 => "sdata4",
        constants::DW_EH_PE_sdata8 => "sdata8",
        _ => "?",
    };
    let application = match encoding.application() {
        constants::DW_EH_PE_pcrel => "pcrel|",
        constants::DW_EH_PE_textrel => "textrel|",
        constants::DW_EH_PE_datarel => "datarel|",
        constants::DW_EH_PE_funcrel => "funcrel|",
        constants::DW_EH_PE_aligned => "aligned|",
        _ => "",
    };
    let indirect = if encoding.is_indirect() {
        "indirect|"
    } else {
        ""
    };
    format!("{indirect}{application}{format}")
}

impl fmt::Display for DecodedTypeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => write!(f, "null (catch-all)"),
            Self::Symbol {
                name,
                addend,
                indirect,
            } => {
                let via = if *indirect { " (via DW.ref slot)" } else { "" };
                if *addend == 0 {
                    write!(f, "{name}{via}")
                } else {
                    write!(f, "{name}{addend:+}{via}")
                }
            }
            Self::Value(v) => write!(f, "{v:#x}"),
        }
    }
}

impl fmt::Display for DecodedLsda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "LSDA: {} bytes, lpstart {}, call sites {}, type table {}",
            self.size,
            self.lpstart
                .map_or("= function start".to_string(), |v| format!("{v:#x}")),
            encoding_name(self.call_site_encoding),
            self.type_encoding
                .map_or("omitted".to_string(), encoding_name),
        )?;
        for cs in &self.call_sites {
            write!(
                f,
                "  [{:#06x}, {:#06x}) ",
                cs.start,
                cs.start.saturating_add(cs.len)
            )?;
            if cs.landing_pad == 0 {
                writeln!(f, "no landing pad")?;
                continue;
            }
            write!(f, "pad {:#06x}", cs.landing_pad)?;
            if cs.chain.is_empty() {
                writeln!(f, " cleanup (action 0)")?;
                continue;
            }
            write!(f, " action {}:", cs.action)?;
            for (i, a) in cs.chain.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                match a {
                    DecodedAction::Cleanup => write!(f, "{sep}cleanup")?,
                    DecodedAction::Catch(n) => {
                        let entry = self.type_entries.get(*n as usize - 1);
                        match entry {
                            Some(e) => write!(f, "{sep}catch #{n} {e}")?,
                            None => write!(f, "{sep}catch #{n}")?,
                        }
                    }
                    DecodedAction::ExceptionSpec(s) => write!(f, "{sep}filter {s}")?,
                }
            }
            writeln!(f)?;
        }
        for (i, entry) in self.type_entries.iter().enumerate() {
            writeln!(f, "  type #{}: {entry}", i + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> DecodeResult<DecodedLsda> {
        decode_lsda(bytes, RunTimeEndian::Little, 8)
    }

    #[test]
    fn decodes_a_handwritten_gcc_style_lsda() {
        // As GCC emits for `try { f(); } catch (int) {}` with one typed
        // catch: udata4-free uleb128 call sites, pcrel|sdata4 types.
        let bytes = [
            0xff, // LPStart omitted
            0x9b, // TType indirect|pcrel|sdata4
            0x12, // TType base: 18 bytes after this field
            0x01, // call sites uleb128
            0x08, // 8 bytes of call sites
            0x04, 0x05, 0x10, 0x01, // [4, 9) -> pad 0x10, action 1
            0x0d, 0x05, 0x00, 0x00, // [13, 18) no pad
            0x01, 0x00, // action: catch #1, end
            0x00, 0x00, // padding
            0x00, 0x00, 0x00, 0x00, // type #1 (null)
        ];
        let lsda = decode(&bytes).unwrap();
        assert_eq!(lsda.call_sites.len(), 2);
        assert_eq!(lsda.call_sites[0].chain, [DecodedAction::Catch(1)]);
        assert_eq!(lsda.type_entries, [DecodedTypeEntry::Null]);
        assert_eq!(lsda.lookup(8).unwrap().landing_pad, 0x10);
        assert_eq!(lsda.lookup(13).unwrap().landing_pad, 0);
        assert!(lsda.lookup(3).is_none());
        assert!(lsda.lookup(9).is_none());
    }

    #[test]
    fn huge_ranges_do_not_overflow() {
        // One uleb128 record [u64::MAX, +1) with no pad.
        let mut bytes = vec![0xff, 0xff, 0x01, 0x0d];
        bytes.extend([0xff; 9]);
        bytes.extend([0x01, 0x01, 0x00, 0x00]);
        let lsda = decode(&bytes).unwrap();
        assert!(lsda.lookup(u64::MAX - 1).is_none());
        assert!(lsda.to_string().contains("0xffffffffffffffff"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bytes in [
            &[][..],
            &[0xff],
            &[0xff, 0xff, 0x01, 0x7f],
            &[0xff, 0x9b, 0x7f, 0x01, 0x00],
            &[0xff, 0xff, 0x01, 0x04, 0x00, 0x04, 0x01, 0x05],
            // An action chain that points at itself.
            &[0xff, 0xff, 0x01, 0x04, 0x00, 0x04, 0x01, 0x01, 0x00, 0x7e],
            &[0xff, 0xff, 0x33, 0x00],
        ] {
            assert!(decode(bytes).is_err(), "{bytes:x?}");
        }
    }
}
