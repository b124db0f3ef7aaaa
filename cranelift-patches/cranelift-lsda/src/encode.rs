//! Encoding of an LSDA (`.gcc_except_table` entry) from a function's call
//! sites.
//!
//! The layout is the one the Itanium C++ ABI personalities read (libgcc's
//! `unwind-c.c` / libstdc++'s `eh_personality.cc`, LLVM's `EHStreamer`):
//!
//! ```text
//! u8      LPStart encoding        DW_EH_PE_omit: landing pads are function offsets
//! u8      TType encoding          DW_EH_PE_omit when no clause catches
//! uleb    TType base offset       only with a type table; padded so the table is 4-aligned
//! u8      call-site encoding      uleb128 or udata4
//! uleb    call-site table length
//! ...     call-site records       start, length, landing pad, action (uleb)
//! ...     action records          (sleb type filter, sleb next displacement)
//! ...     type table              entry N first, entry 1 last, ending at TType base
//! ```
//!
//! Size work: the call-site table partitions the function's code up to its
//! last call, so every call is covered (personalities terminate on a
//! throwing PC missing from the table), and adjacent records with the same
//! landing pad and action are merged. Action chains are hash-consed, so
//! identical chains and common chain suffixes are written once.

use crate::error::{LsdaError, LsdaResult};
use crate::policy::{Clause, ClauseList, TypeEntry, TypeTable};
use gimli::RunTimeEndian;
use gimli::constants;
use gimli::write::{EndianVec, Writer};
use std::collections::HashMap;

/// One call in a function, as the encoder sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// Offset of the call's return address from the function start.
    pub ret_addr: u32,
    /// Where the exception goes if the callee throws, or `None` to let it
    /// propagate out of this frame.
    pub landing_pad: Option<LandingPad>,
}

/// A landing pad and the clauses it handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LandingPad {
    /// Offset of the pad from the function start.
    pub offset: u32,
    /// The clauses the personality checks, in order.
    pub clauses: ClauseList,
}

/// How call-site records encode their offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallSiteEncoding {
    /// `DW_EH_PE_uleb128`: smallest; the default.
    Uleb128,
    /// `DW_EH_PE_udata4`: fixed width, what some older tools expect.
    Udata4,
}

/// How type-table entries are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeEncoding {
    /// `DW_EH_PE_absptr`: absolute addresses, for JIT code.
    Absptr,
    /// `DW_EH_PE_pcrel | DW_EH_PE_sdata4`: for position-independent objects
    /// whose type entries are defined in the same linked image.
    PcRelSdata4,
    /// `DW_EH_PE_indirect | DW_EH_PE_pcrel | DW_EH_PE_sdata4`: each entry
    /// points to a pointer holding the type's address (`DW.ref.<sym>`), for
    /// type entries that may live in another shared object.
    IndirectPcRelSdata4,
}

impl TypeEncoding {
    fn dw_eh_pe(self) -> constants::DwEhPe {
        match self {
            Self::Absptr => constants::DW_EH_PE_absptr,
            Self::PcRelSdata4 => {
                constants::DwEhPe(constants::DW_EH_PE_pcrel.0 | constants::DW_EH_PE_sdata4.0)
            }
            Self::IndirectPcRelSdata4 => constants::DwEhPe(
                constants::DW_EH_PE_indirect.0
                    | constants::DW_EH_PE_pcrel.0
                    | constants::DW_EH_PE_sdata4.0,
            ),
        }
    }
}

/// The encodings of one LSDA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsdaEncoding {
    /// Call-site record encoding.
    pub call_sites: CallSiteEncoding,
    /// Type-table entry encoding.
    pub types: TypeEncoding,
    /// Byte order of fixed-width fields.
    pub endian: RunTimeEndian,
    /// Pointer size in bytes, for `absptr` entries.
    pub address_size: u8,
}

impl LsdaEncoding {
    /// Encodings for a relocatable object on a little-endian 64-bit target.
    pub fn object() -> Self {
        Self {
            call_sites: CallSiteEncoding::Uleb128,
            types: TypeEncoding::PcRelSdata4,
            endian: RunTimeEndian::Little,
            address_size: 8,
        }
    }

    /// Encodings for JIT code on a little-endian 64-bit target.
    pub fn jit() -> Self {
        Self {
            types: TypeEncoding::Absptr,
            ..Self::object()
        }
    }
}

/// How a relocation in the LSDA is to be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LsdaRelocKind {
    /// Write the symbol's address (`address_size` bytes).
    Abs,
    /// Write `symbol + addend - place` as 4 bytes.
    PcRel4,
    /// Write `slot - place` as 4 bytes, where `slot` is a pointer-sized
    /// datum holding `symbol + addend` (e.g. a `DW.ref.<symbol>` slot).
    IndirectPcRel4,
}

/// A relocation the LSDA needs before it can be used.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LsdaReloc {
    /// Byte offset of the field within the LSDA.
    pub offset: u32,
    /// How to compute the field.
    pub kind: LsdaRelocKind,
    /// The symbol.
    pub symbol: String,
    /// Added to the symbol's address.
    pub addend: i64,
}

/// An encoded LSDA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lsda {
    /// The bytes, with relocated fields zero.
    pub bytes: Vec<u8>,
    /// Relocations to apply to `bytes`.
    pub relocs: Vec<LsdaReloc>,
    /// Where the LSDA must start relative to a 4-byte boundary: always 0.
    /// The type table is aligned assuming the LSDA itself is.
    pub alignment: u32,
}

/// One record of the call-site table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSiteRecord {
    /// Start of the covered range, from the function start.
    pub start: u32,
    /// Length of the covered range.
    pub len: u32,
    /// Landing pad offset from the function start; 0 for none.
    pub landing_pad: u32,
    /// 0 for no action (cleanup only, or no pad), else 1 + the byte offset
    /// of the first action record.
    pub action: u32,
}

/// The call-site table: a partition of the function's code up to its last
/// call, with adjacent equal records merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSiteTable {
    records: Vec<CallSiteRecord>,
}

impl CallSiteTable {
    /// The records, in address order.
    pub fn records(&self) -> &[CallSiteRecord] {
        &self.records
    }

    /// Append the range `[start, end)` with the given pad and action,
    /// merging with the previous record when both agree.
    fn push(&mut self, start: u32, end: u32, landing_pad: u32, action: u32) {
        if let Some(last) = self.records.last_mut()
            && last.landing_pad == landing_pad
            && last.action == action
            && last.start + last.len == start
        {
            last.len = end - last.start;
            return;
        }
        self.records.push(CallSiteRecord {
            start,
            len: end - start,
            landing_pad,
            action,
        });
    }

    fn encode(&self, encoding: CallSiteEncoding, endian: RunTimeEndian) -> LsdaResult<Vec<u8>> {
        let mut w = EndianVec::new(endian);
        for r in &self.records {
            match encoding {
                CallSiteEncoding::Uleb128 => {
                    w.write_uleb128(r.start.into())?;
                    w.write_uleb128(r.len.into())?;
                    w.write_uleb128(r.landing_pad.into())?;
                }
                CallSiteEncoding::Udata4 => {
                    w.write_u32(r.start)?;
                    w.write_u32(r.len)?;
                    w.write_u32(r.landing_pad)?;
                }
            }
            w.write_uleb128(r.action.into())?;
        }
        Ok(w.into_vec())
    }
}

/// The action table: hash-consed action records, so that identical chains
/// and shared chain suffixes are stored once.
#[derive(Clone, Debug, Default)]
pub struct ActionTable {
    bytes: Vec<u8>,
    /// (type filter, offset of the next record) -> offset of the record.
    records: HashMap<(i64, Option<u32>), u32>,
    /// The largest type filter used.
    max_filter: u32,
}

impl ActionTable {
    /// The action value (1 + offset of the first record) of the chain of
    /// `filters`, adding the records it needs.
    pub fn chain(&mut self, filters: &[i64]) -> LsdaResult<u32> {
        let mut next: Option<u32> = None;
        for &filter in filters.iter().rev() {
            next = Some(self.record(filter, next)?);
        }
        let first = next.ok_or(LsdaError::EmptyClauseList)?;
        Ok(first + 1)
    }

    fn record(&mut self, filter: i64, next: Option<u32>) -> LsdaResult<u32> {
        if let Some(&offset) = self.records.get(&(filter, next)) {
            return Ok(offset);
        }
        let offset = u32::try_from(self.bytes.len()).map_err(|_| LsdaError::DoesNotFit {
            what: "action table offset",
            value: self.bytes.len() as u64,
        })?;
        let mut w = EndianVec::new(RunTimeEndian::Little);
        w.write_sleb128(filter)?;
        // The displacement is relative to the start of its own field.
        let disp_field = i64::from(offset) + w.len() as i64;
        let disp = next.map_or(0, |n| i64::from(n) - disp_field);
        w.write_sleb128(disp)?;
        self.bytes.extend_from_slice(w.slice());
        self.records.insert((filter, next), offset);
        if let Ok(filter) = u32::try_from(filter) {
            self.max_filter = self.max_filter.max(filter);
        }
        Ok(offset)
    }

    /// The encoded records.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Encode the LSDA of a function whose code is `code_len` bytes long.
///
/// `call_sites` are the function's calls in address order. Returns `None`
/// when no call has a landing pad: such a function needs no LSDA (and its
/// FDE no personality).
pub fn encode_lsda(
    call_sites: &[CallSite],
    code_len: u32,
    types: &TypeTable,
    encoding: LsdaEncoding,
) -> LsdaResult<Option<Lsda>> {
    if call_sites.iter().all(|c| c.landing_pad.is_none()) {
        return Ok(None);
    }

    let mut actions = ActionTable::default();
    let mut table = CallSiteTable::default();
    let mut prev_end = 0u32;
    for site in call_sites {
        if site.ret_addr <= prev_end {
            return Err(LsdaError::CallSiteOutOfOrder {
                ret_addr: site.ret_addr,
                bound: prev_end,
            });
        }
        if site.ret_addr > code_len {
            return Err(LsdaError::CallSiteOutOfOrder {
                ret_addr: site.ret_addr,
                bound: code_len,
            });
        }
        let (landing_pad, action) = match &site.landing_pad {
            None => (0, 0),
            Some(pad) => {
                if pad.offset == 0 {
                    return Err(LsdaError::LandingPadAtFunctionStart);
                }
                if pad.offset >= code_len {
                    return Err(LsdaError::LandingPadOutOfRange {
                        pad: pad.offset,
                        code_len,
                    });
                }
                let action = if pad.clauses.is_cleanup_only() {
                    0
                } else {
                    let filters = pad
                        .clauses
                        .clauses()
                        .iter()
                        .map(|clause| match clause {
                            Clause::Cleanup => Ok(0),
                            Clause::Catch(entry) => types.filter(entry).map(i64::from),
                        })
                        .collect::<LsdaResult<Vec<_>>>()?;
                    actions.chain(&filters)?
                };
                (pad.offset, action)
            }
        };
        // The personality looks up the return address minus one, so the
        // range ending at the return address covers the call instruction.
        table.push(prev_end, site.ret_addr, landing_pad, action);
        prev_end = site.ret_addr;
    }

    let call_site_bytes = table.encode(encoding.call_sites, encoding.endian)?;
    let entries = &types.entries()[..actions.max_filter as usize];
    assemble(&call_site_bytes, &actions, entries, encoding)
}

fn assemble(
    call_site_bytes: &[u8],
    actions: &ActionTable,
    type_entries: &[TypeEntry],
    encoding: LsdaEncoding,
) -> LsdaResult<Option<Lsda>> {
    let cs_len = call_site_bytes.len() as u64;
    let cs_encoding = match encoding.call_sites {
        CallSiteEncoding::Uleb128 => constants::DW_EH_PE_uleb128,
        CallSiteEncoding::Udata4 => constants::DW_EH_PE_udata4,
    };
    let entry_size = match encoding.types {
        TypeEncoding::Absptr => usize::from(encoding.address_size),
        TypeEncoding::PcRelSdata4 | TypeEncoding::IndirectPcRelSdata4 => 4,
    };

    let mut w = EndianVec::new(encoding.endian);
    w.write_u8(constants::DW_EH_PE_omit.0)?;
    if type_entries.is_empty() {
        w.write_u8(constants::DW_EH_PE_omit.0)?;
        w.write_u8(cs_encoding.0)?;
        w.write_uleb128(cs_len)?;
        w.write(call_site_bytes)?;
        w.write(actions.bytes())?;
        return Ok(Some(Lsda {
            bytes: w.into_vec(),
            relocs: Vec::new(),
            alignment: 4,
        }));
    }
    w.write_u8(encoding.types.dw_eh_pe().0)?;

    // The TType base offset counts the bytes after its own field, which
    // include the padding that aligns the type table, which depends on the
    // field's width: pick the narrowest width that holds the value, padding
    // the ULEB128 if the value is narrower.
    let body = uleb_len(cs_len) + call_site_bytes.len() + actions.bytes().len() + 1;
    let types_len = type_entries.len() * entry_size;
    let (field_width, base_offset, padding) = (1..=5)
        .find_map(|width| {
            let table_start = 2 + width + body;
            let padding = (4 - table_start % 4) % 4;
            let base_offset = (body + padding + types_len) as u64;
            (uleb_len(base_offset) <= width).then_some((width, base_offset, padding))
        })
        .ok_or(LsdaError::DoesNotFit {
            what: "type table base offset",
            value: (body + types_len) as u64,
        })?;
    write_padded_uleb128(&mut w, base_offset, field_width)?;
    w.write_u8(cs_encoding.0)?;
    w.write_uleb128(cs_len)?;
    w.write(call_site_bytes)?;
    w.write(actions.bytes())?;
    for _ in 0..padding {
        w.write_u8(0)?;
    }

    let mut relocs = Vec::new();
    for entry in type_entries.iter().rev() {
        let offset = u32::try_from(w.len()).map_err(|_| LsdaError::DoesNotFit {
            what: "LSDA size",
            value: w.len() as u64,
        })?;
        match entry {
            // A null entry stays null under pcrel: personalities add the
            // base only to non-zero values.
            TypeEntry::CatchAll => w.write_udata(0, entry_size as u8)?,
            TypeEntry::Address(addr) => match encoding.types {
                TypeEncoding::Absptr => w.write_udata(*addr, entry_size as u8)?,
                _ => return Err(LsdaError::AbsoluteTypeEntryNeedsAbsptr(*addr)),
            },
            TypeEntry::Symbol { name, addend } => {
                relocs.push(LsdaReloc {
                    offset,
                    kind: match encoding.types {
                        TypeEncoding::Absptr => LsdaRelocKind::Abs,
                        TypeEncoding::PcRelSdata4 => LsdaRelocKind::PcRel4,
                        TypeEncoding::IndirectPcRelSdata4 => LsdaRelocKind::IndirectPcRel4,
                    },
                    symbol: name.clone(),
                    addend: *addend,
                });
                w.write_udata(0, entry_size as u8)?;
            }
        }
    }
    Ok(Some(Lsda {
        bytes: w.into_vec(),
        relocs,
        alignment: 4,
    }))
}

fn uleb_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// ULEB128 in exactly `width` bytes (non-minimal encodings are valid).
fn write_padded_uleb128(
    w: &mut EndianVec<RunTimeEndian>,
    value: u64,
    width: usize,
) -> LsdaResult<()> {
    let mut rest = value;
    for i in 0..width {
        let mut byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if i + 1 < width {
            byte |= 0x80;
        }
        w.write_u8(byte)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Clause;

    fn pad(offset: u32, clauses: &[Clause]) -> Option<LandingPad> {
        Some(LandingPad {
            offset,
            clauses: ClauseList::new(clauses.iter().cloned()).unwrap(),
        })
    }

    fn site(ret_addr: u32, landing_pad: Option<LandingPad>) -> CallSite {
        CallSite {
            ret_addr,
            landing_pad,
        }
    }

    #[test]
    fn no_handlers_no_lsda() {
        let sites = [site(5, None), site(10, None)];
        assert_eq!(
            encode_lsda(&sites, 20, &TypeTable::new(), LsdaEncoding::object()),
            Ok(None)
        );
    }

    #[test]
    fn adjacent_equal_records_merge_and_plain_calls_are_covered() {
        let mut types = TypeTable::new();
        let int = TypeEntry::symbol("_ZTIi");
        types.add(&int).unwrap();
        let catch = [Clause::Catch(int)];
        let sites = [
            site(4, None),
            site(8, None),
            site(12, pad(40, &catch)),
            site(16, pad(40, &catch)),
            site(20, None),
        ];
        let mut actions = ActionTable::default();
        let action = actions.chain(&[1]).unwrap();
        let lsda = encode_lsda(&sites, 48, &types, LsdaEncoding::object())
            .unwrap()
            .unwrap();
        let decoded =
            crate::decode::decode_lsda(&lsda.bytes, &lsda.relocs, RunTimeEndian::Little, 8)
                .unwrap();
        let records: Vec<_> = decoded
            .call_sites
            .iter()
            .map(|c| (c.start, c.len, c.landing_pad, c.action))
            .collect();
        assert_eq!(
            records,
            [(0, 8, 0, 0), (8, 8, 40, u64::from(action)), (16, 4, 0, 0)]
        );
    }

    #[test]
    fn identical_chains_and_suffixes_are_shared() {
        let mut actions = ActionTable::default();
        let abc = actions.chain(&[1, 2, 3]).unwrap();
        let size_abc = actions.bytes().len();
        assert_eq!(size_abc, 6);
        // Same chain: nothing new.
        assert_eq!(actions.chain(&[1, 2, 3]).unwrap(), abc);
        assert_eq!(actions.bytes().len(), size_abc);
        // A suffix of it: already present, nothing new.
        let bc = actions.chain(&[2, 3]).unwrap();
        assert_ne!(bc, abc);
        assert_eq!(actions.bytes().len(), size_abc);
        // A new head on a shared suffix: one record.
        actions.chain(&[4, 2, 3]).unwrap();
        assert_eq!(actions.bytes().len(), size_abc + 2);
    }

    #[test]
    fn bad_input_is_an_error() {
        let types = TypeTable::new();
        let cleanup = [Clause::Cleanup];
        let enc = LsdaEncoding::object();
        assert!(matches!(
            encode_lsda(&[site(8, pad(2, &cleanup)), site(8, None)], 16, &types, enc),
            Err(LsdaError::CallSiteOutOfOrder { .. })
        ));
        assert!(matches!(
            encode_lsda(&[site(20, pad(2, &cleanup))], 16, &types, enc),
            Err(LsdaError::CallSiteOutOfOrder { .. })
        ));
        assert_eq!(
            encode_lsda(&[site(8, pad(0, &cleanup))], 16, &types, enc),
            Err(LsdaError::LandingPadAtFunctionStart)
        );
        assert!(matches!(
            encode_lsda(&[site(8, pad(16, &cleanup))], 16, &types, enc),
            Err(LsdaError::LandingPadOutOfRange { .. })
        ));
        let catch = [Clause::Catch(TypeEntry::symbol("x"))];
        assert!(matches!(
            encode_lsda(&[site(8, pad(10, &catch))], 16, &types, enc),
            Err(LsdaError::TypeNotInTable(_))
        ));
        let mut types = TypeTable::new();
        types.add(&TypeEntry::Address(0x1000)).unwrap();
        let catch = [Clause::Catch(TypeEntry::Address(0x1000))];
        assert_eq!(
            encode_lsda(&[site(8, pad(10, &catch))], 16, &types, enc),
            Err(LsdaError::AbsoluteTypeEntryNeedsAbsptr(0x1000))
        );
        assert!(
            encode_lsda(&[site(8, pad(10, &catch))], 16, &types, LsdaEncoding::jit())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn type_table_is_four_byte_aligned_for_every_header_width() {
        let mut types = TypeTable::new();
        types.add(&TypeEntry::symbol("t")).unwrap();
        let catch = [Clause::Catch(TypeEntry::symbol("t"))];
        for n in 1..300u32 {
            let sites: Vec<_> = (1..=n)
                .map(|i| site(i * 8, if i % 2 == 0 { pad(4, &catch) } else { None }))
                .collect();
            let Some(lsda) =
                encode_lsda(&sites, n * 8 + 8, &types, LsdaEncoding::object()).unwrap()
            else {
                continue;
            };
            let reloc = &lsda.relocs[0];
            assert_eq!(reloc.offset % 4, 0, "n = {n}");
            assert_eq!(reloc.offset as usize + 4, lsda.bytes.len());
        }
    }
}
