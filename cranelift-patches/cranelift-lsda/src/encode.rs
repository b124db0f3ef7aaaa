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

use crate::decode::{DecodedLsda, decode_lsda};
use crate::eh_frame::{RelocatedSection, SymbolIndex};
use crate::error::{EncodeError, LsdaResult};
use crate::policy::{Clause, ClauseList, TypeEntry, TypeTable};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use gimli::constants::{self, DwEhPe};
use gimli::leb128::write::{Leb128, uleb128_size};
use gimli::write::{Address, RelocationTarget, Writer};

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
#[non_exhaustive]
pub enum CallSiteEncoding {
    /// `DW_EH_PE_uleb128`: smallest; the default.
    Uleb128,
    /// `DW_EH_PE_udata4`: fixed width, what some older tools expect.
    Udata4,
}

impl CallSiteEncoding {
    fn dw_eh_pe(self) -> DwEhPe {
        match self {
            Self::Uleb128 => constants::DW_EH_PE_uleb128,
            Self::Udata4 => constants::DW_EH_PE_udata4,
        }
    }
}

/// How type-table entries are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The `DW_EH_PE_*` value of this encoding.
    pub fn dw_eh_pe(self) -> DwEhPe {
        let pcrel_sdata4 = constants::DW_EH_PE_pcrel.0 | constants::DW_EH_PE_sdata4.0;
        match self {
            Self::Absptr => constants::DW_EH_PE_absptr,
            Self::PcRelSdata4 => DwEhPe(pcrel_sdata4),
            Self::IndirectPcRelSdata4 => DwEhPe(constants::DW_EH_PE_indirect.0 | pcrel_sdata4),
        }
    }

    fn entry_size(self, address_size: u8) -> u8 {
        match self {
            Self::Absptr => address_size,
            Self::PcRelSdata4 | Self::IndirectPcRelSdata4 => 4,
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
}

impl LsdaEncoding {
    /// Encodings for a relocatable object.
    pub fn object() -> Self {
        Self {
            call_sites: CallSiteEncoding::Uleb128,
            types: TypeEncoding::PcRelSdata4,
        }
    }

    /// Encodings for JIT code.
    pub fn jit() -> Self {
        Self {
            types: TypeEncoding::Absptr,
            ..Self::object()
        }
    }
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

    fn write<W: Writer>(&self, w: &mut W, encoding: CallSiteEncoding) -> LsdaResult<()> {
        for r in &self.records {
            for field in [r.start, r.len, r.landing_pad] {
                w.write_eh_pointer_data(field.into(), encoding.dw_eh_pe(), 4)?;
            }
            w.write_uleb128(r.action.into())?;
        }
        Ok(())
    }

    /// The size in bytes of the records in `encoding` (without the table's
    /// length field).
    pub fn encoded_len(&self, encoding: CallSiteEncoding) -> LsdaResult<usize> {
        let mut w = LengthWriter::default();
        self.write(&mut w, encoding)?;
        Ok(w.len)
    }
}

/// The action table: hash-consed action records, so that identical chains
/// and shared chain suffixes are stored once.
#[derive(Clone, Debug, Default)]
pub struct ActionTable {
    bytes: Vec<u8>,
    /// (type filter, offset of the next record) -> offset of the record.
    records: BTreeMap<(i64, Option<u32>), u32>,
    /// The largest type filter used.
    max_filter: u32,
}

impl ActionTable {
    /// The action value (1 + offset of the first record) of the chain of
    /// `filters`, adding the records it needs. `None` for an empty chain.
    pub fn chain(&mut self, filters: &[i64]) -> LsdaResult<Option<u32>> {
        let mut next: Option<u32> = None;
        for &filter in filters.iter().rev() {
            next = Some(self.record(filter, next)?);
        }
        Ok(next.map(|first| first + 1))
    }

    fn record(&mut self, filter: i64, next: Option<u32>) -> LsdaResult<u32> {
        if let Some(&offset) = self.records.get(&(filter, next)) {
            return Ok(offset);
        }
        let offset = u32::try_from(self.bytes.len()).map_err(|_| EncodeError::DoesNotFit {
            what: "action table offset",
            value: self.bytes.len() as u64,
        })?;
        let filter_field = Leb128::signed(filter);
        // The displacement is relative to the start of its own field.
        let disp_field = i64::from(offset) + filter_field.len() as i64;
        let disp = next.map_or(0, |n| i64::from(n) - disp_field);
        self.bytes.extend_from_slice(filter_field.bytes());
        self.bytes.extend_from_slice(Leb128::signed(disp).bytes());
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

/// A `gimli::write::Writer` that only counts bytes, for sizes needed
/// before the bytes are written.
#[derive(Clone, Copy, Debug, Default)]
pub struct LengthWriter {
    len: usize,
}

impl Writer for LengthWriter {
    type Endian = gimli::RunTimeEndian;

    fn endian(&self) -> Self::Endian {
        gimli::RunTimeEndian::default()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn write(&mut self, bytes: &[u8]) -> gimli::write::Result<()> {
        self.len += bytes.len();
        Ok(())
    }

    fn write_at(&mut self, offset: usize, bytes: &[u8]) -> gimli::write::Result<()> {
        match offset.checked_add(bytes.len()) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(gimli::write::Error::OffsetOutOfBounds),
        }
    }
}

/// Where the type table goes: the TType base offset, the width of its
/// ULEB128 field, and the padding that 4-aligns the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TypeTableLayout {
    base_offset: u64,
    field_width: usize,
    padding: usize,
}

/// A function's LSDA, laid out and checked, ready to be written into a
/// `.gcc_except_table` with [`Lsda::write`]. It cannot hold a table the
/// encodings cannot express.
#[derive(Clone, Debug)]
pub struct Lsda {
    call_sites: CallSiteTable,
    actions: ActionTable,
    type_entries: Vec<TypeEntry>,
    encoding: LsdaEncoding,
    address_size: u8,
    call_sites_len: usize,
    types_layout: Option<TypeTableLayout>,
}

impl Lsda {
    /// Lay out the LSDA of a function whose code is `code_len` bytes long,
    /// for a target whose pointers (`absptr` entries) are `address_size`
    /// bytes.
    ///
    /// `call_sites` are the function's calls in address order. Returns
    /// `None` when no call has a landing pad: such a function needs no LSDA
    /// (and its FDE no personality).
    pub fn new(
        call_sites: &[CallSite],
        code_len: u32,
        types: &TypeTable,
        encoding: LsdaEncoding,
        address_size: u8,
    ) -> LsdaResult<Option<Self>> {
        if call_sites.iter().all(|c| c.landing_pad.is_none()) {
            return Ok(None);
        }
        let mut actions = ActionTable::default();
        // Actions already computed, by clause list. Call sites with the same
        // handlers usually share one list, so the pointer test answers first.
        let mut known: Vec<(&ClauseList, u32)> = Vec::new();
        let mut table = CallSiteTable::default();
        let mut prev_end = 0u32;
        for site in call_sites {
            let bound = if site.ret_addr <= prev_end {
                prev_end
            } else {
                code_len
            };
            if site.ret_addr <= prev_end || site.ret_addr > code_len {
                return Err(EncodeError::CallSiteOutOfOrder {
                    ret_addr: site.ret_addr,
                    bound,
                }
                .into());
            }
            let (landing_pad, action) = match &site.landing_pad {
                None => (0, 0),
                Some(pad) => {
                    let offset = check_pad(pad.offset, code_len)?;
                    let clauses = &pad.clauses;
                    let found = known
                        .iter()
                        .find(|(list, _)| list.shares(clauses))
                        .or_else(|| known.iter().find(|(list, _)| *list == clauses));
                    let action = match found {
                        Some(&(_, action)) => action,
                        None => action_of(&mut actions, clauses, types)?,
                    };
                    if found.is_none_or(|(list, _)| !list.shares(clauses)) {
                        known.push((clauses, action));
                    }
                    (offset, action)
                }
            };
            // The personality looks up the return address minus one, so the
            // range ending at the return address covers the call instruction.
            table.push(prev_end, site.ret_addr, landing_pad, action);
            prev_end = site.ret_addr;
        }
        let type_entries = types.entries()[..actions.max_filter as usize].to_vec();
        for entry in &type_entries {
            match *entry {
                TypeEntry::Address(addr) => {
                    if encoding.types != TypeEncoding::Absptr {
                        return Err(EncodeError::AbsoluteTypeEntryNeedsAbsptr(addr).into());
                    }
                    if address_size < 8 && addr >> (8 * u32::from(address_size)) != 0 {
                        let what = "absolute type entry";
                        return Err(EncodeError::DoesNotFit { what, value: addr }.into());
                    }
                }
                // An indirect entry points to a slot holding the symbol's
                // address: an addend has nowhere to go.
                TypeEntry::Symbol { ref name, addend }
                    if addend != 0 && encoding.types == TypeEncoding::IndirectPcRelSdata4 =>
                {
                    let symbol = name.clone();
                    return Err(EncodeError::IndirectAddend { symbol, addend }.into());
                }
                TypeEntry::Symbol { .. } | TypeEntry::CatchAll => {}
            }
        }
        let mut lsda = Self {
            call_sites_len: table.encoded_len(encoding.call_sites)?,
            call_sites: table,
            actions,
            type_entries,
            encoding,
            address_size,
            types_layout: None,
        };
        lsda.types_layout = lsda.lay_out_type_table()?;
        Ok(Some(lsda))
    }

    /// The call-site table.
    pub fn call_site_table(&self) -> &CallSiteTable {
        &self.call_sites
    }

    fn types_len(&self) -> usize {
        self.type_entries.len() * usize::from(self.encoding.types.entry_size(self.address_size))
    }

    /// The size in bytes of the header fields after the TType base field,
    /// the call-site table and the action table.
    fn body_len(&self) -> usize {
        1 + uleb128_size(self.call_sites_len as u64)
            + self.call_sites_len
            + self.actions.bytes.len()
    }

    /// The TType base offset counts the bytes after its own field, which
    /// include the padding that aligns the type table, which depends on the
    /// field's width: pick the narrowest width that holds the value, padding
    /// the ULEB128 if the value is narrower.
    fn lay_out_type_table(&self) -> LsdaResult<Option<TypeTableLayout>> {
        if self.type_entries.is_empty() {
            return Ok(None);
        }
        let body = self.body_len();
        (1..=5)
            .find_map(|field_width| {
                let table_start = 2 + field_width + body;
                let padding = (4 - table_start % 4) % 4;
                let base_offset = (body + padding + self.types_len()) as u64;
                (uleb128_size(base_offset) <= field_width).then_some(TypeTableLayout {
                    base_offset,
                    field_width,
                    padding,
                })
            })
            .map(Some)
            .ok_or_else(|| {
                EncodeError::DoesNotFit {
                    what: "type table base offset",
                    value: (body + self.types_len()) as u64,
                }
                .into()
            })
    }

    /// Its size in bytes (never empty: it has at least its header).
    #[allow(
        clippy::len_without_is_empty,
        reason = "an LSDA is never empty: it has a header"
    )]
    pub fn len(&self) -> usize {
        match self.types_layout {
            None => 2 + self.body_len(),
            Some(layout) => {
                2 + layout.field_width + self.body_len() + layout.padding + self.types_len()
            }
        }
    }

    /// Append the LSDA to `w` (a `.gcc_except_table` being written), first
    /// padding `w` to a 4-byte boundary, which the type table's alignment
    /// assumes. Symbol type entries are written as `symbol_address(name)`
    /// plus their addend through `Writer::write_eh_pointer`, so a relocating
    /// writer records their relocations. Returns the LSDA's offset in `w`.
    pub fn write<W: Writer>(
        &self,
        w: &mut W,
        mut symbol_address: impl FnMut(&str) -> Option<Address>,
    ) -> LsdaResult<usize> {
        while !w.len().is_multiple_of(4) {
            w.write_u8(0)?;
        }
        let start = w.len();
        w.write_u8(constants::DW_EH_PE_omit.0)?;
        match self.types_layout {
            None => w.write_u8(constants::DW_EH_PE_omit.0)?,
            Some(layout) => {
                w.write_u8(self.encoding.types.dw_eh_pe().0)?;
                write_padded_uleb128(w, layout.base_offset, layout.field_width)?;
            }
        }
        w.write_u8(self.encoding.call_sites.dw_eh_pe().0)?;
        w.write_uleb128(self.call_sites_len as u64)?;
        self.call_sites.write(w, self.encoding.call_sites)?;
        w.write(&self.actions.bytes)?;
        if let Some(layout) = self.types_layout {
            for _ in 0..layout.padding {
                w.write_u8(0)?;
            }
            for entry in self.type_entries.iter().rev() {
                self.write_type_entry(w, entry, &mut symbol_address)?;
            }
        }
        debug_assert_eq!(w.len() - start, self.len());
        Ok(start)
    }

    /// Write the LSDA alone and read it back with the independent decoder,
    /// naming symbol type entries from the relocations the writer recorded:
    /// what dumps, filetests and round-trip tests show.
    pub fn decode_back(&self, endian: gimli::RunTimeEndian) -> LsdaResult<DecodedLsda> {
        let mut section = RelocatedSection::new(endian);
        let mut symbols = SymbolIndex::default();
        self.write(&mut section, |name| {
            Some(symbols.address(String::from(name)))
        })?;
        let mut decoded = decode_lsda(section.bytes(), endian, self.address_size)?;
        decoded.name_entries(|offset| {
            let reloc = section.relocation_at(offset)?;
            let RelocationTarget::Symbol(index) = reloc.target else {
                return None;
            };
            Some((symbols.get(index)?.clone(), reloc.addend))
        });
        Ok(decoded)
    }

    fn write_type_entry<W: Writer>(
        &self,
        w: &mut W,
        entry: &TypeEntry,
        symbol_address: &mut impl FnMut(&str) -> Option<Address>,
    ) -> LsdaResult<()> {
        let size = self.encoding.types.entry_size(self.address_size);
        let address = match entry {
            // A null entry stays null under pcrel: personalities add the
            // base only to non-zero values.
            TypeEntry::CatchAll => return Ok(w.write_udata(0, size)?),
            TypeEntry::Address(addr) => Address::Constant(*addr),
            TypeEntry::Symbol { name, addend } => {
                match symbol_address(name)
                    .ok_or_else(|| EncodeError::UnresolvedSymbol(name.clone()))?
                {
                    Address::Constant(base) => Address::Constant(base.wrapping_add_signed(*addend)),
                    Address::Symbol { symbol, addend: a } => Address::Symbol {
                        symbol,
                        addend: a + addend,
                    },
                }
            }
        };
        Ok(w.write_eh_pointer(address, self.encoding.types.dw_eh_pe(), size)?)
    }
}

fn check_pad(offset: u32, code_len: u32) -> LsdaResult<u32> {
    if offset == 0 {
        return Err(EncodeError::LandingPadAtFunctionStart.into());
    }
    if offset >= code_len {
        return Err(EncodeError::LandingPadOutOfRange {
            pad: offset,
            code_len,
        }
        .into());
    }
    Ok(offset)
}

/// The action field of a pad with `clauses`: 0 for a lone cleanup, else
/// the chain of their type filters.
fn action_of(
    actions: &mut ActionTable,
    clauses: &ClauseList,
    types: &TypeTable,
) -> LsdaResult<u32> {
    if clauses.is_cleanup_only() {
        return Ok(0);
    }
    let filters = clauses
        .clauses()
        .iter()
        .map(|clause| match clause {
            Clause::Cleanup => Ok(0),
            Clause::Catch(entry) => types.filter(entry).map(i64::from),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(actions.chain(&filters)?.unwrap_or(0))
}

/// ULEB128 in exactly `width` bytes: gimli's minimal encoding with
/// continuation bytes added (non-minimal encodings are valid), as LLVM pads
/// the TType base field.
fn write_padded_uleb128<W: Writer>(w: &mut W, value: u64, width: usize) -> LsdaResult<()> {
    let minimal = Leb128::unsigned(value);
    let (last, init) = minimal.bytes().split_last().expect("a LEB128 has a byte");
    w.write(init)?;
    if width == minimal.len() {
        return Ok(w.write_u8(*last)?);
    }
    w.write_u8(last | 0x80)?;
    for _ in minimal.len() + 1..width {
        w.write_u8(0x80)?;
    }
    Ok(w.write_u8(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eh_frame::RelocatedSection;
    use crate::error::{LsdaError, PolicyError};
    use crate::policy::Clause;
    use gimli::RunTimeEndian;

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

    fn encode(
        sites: &[CallSite],
        code_len: u32,
        types: &TypeTable,
        encoding: LsdaEncoding,
    ) -> LsdaResult<Option<Lsda>> {
        Lsda::new(sites, code_len, types, encoding, 8)
    }

    /// The LSDA written alone, with each symbol entry's relocation.
    fn write(lsda: &Lsda) -> RelocatedSection {
        let mut section = RelocatedSection::new(RunTimeEndian::Little);
        lsda.write(&mut section, |_| {
            Some(Address::Symbol {
                symbol: 0,
                addend: 0,
            })
        })
        .unwrap();
        assert_eq!(section.bytes().len(), lsda.len());
        section
    }

    #[test]
    fn no_handlers_no_lsda() {
        let sites = [site(5, None), site(10, None)];
        let lsda = encode(&sites, 20, &TypeTable::new(), LsdaEncoding::object()).unwrap();
        assert!(lsda.is_none());
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
        let action = actions.chain(&[1]).unwrap().unwrap();
        let lsda = encode(&sites, 48, &types, LsdaEncoding::object())
            .unwrap()
            .unwrap();
        let decoded =
            crate::decode::decode_lsda(write(&lsda).bytes(), RunTimeEndian::Little, 8).unwrap();
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
        assert_eq!(actions.chain(&[]).unwrap(), None);
    }

    #[test]
    fn bad_input_is_an_error() {
        let types = TypeTable::new();
        let cleanup = [Clause::Cleanup];
        let enc = LsdaEncoding::object();
        let err =
            |sites: &[CallSite], types: &TypeTable, enc| encode(sites, 16, types, enc).unwrap_err();
        assert!(matches!(
            err(&[site(8, pad(2, &cleanup)), site(8, None)], &types, enc),
            LsdaError::Encode(EncodeError::CallSiteOutOfOrder { bound: 8, .. })
        ));
        assert!(matches!(
            err(&[site(20, pad(2, &cleanup))], &types, enc),
            LsdaError::Encode(EncodeError::CallSiteOutOfOrder { bound: 16, .. })
        ));
        assert_eq!(
            err(&[site(8, pad(0, &cleanup))], &types, enc),
            EncodeError::LandingPadAtFunctionStart.into()
        );
        assert!(matches!(
            err(&[site(8, pad(16, &cleanup))], &types, enc),
            LsdaError::Encode(EncodeError::LandingPadOutOfRange { .. })
        ));
        let catch = [Clause::Catch(TypeEntry::symbol("x"))];
        assert!(matches!(
            err(&[site(8, pad(10, &catch))], &types, enc),
            LsdaError::Policy(PolicyError::TypeNotInTable(_))
        ));
        let mut types = TypeTable::new();
        types.add(&TypeEntry::Address(0x1000)).unwrap();
        let catch = [Clause::Catch(TypeEntry::Address(0x1000))];
        assert_eq!(
            err(&[site(8, pad(10, &catch))], &types, enc),
            EncodeError::AbsoluteTypeEntryNeedsAbsptr(0x1000).into()
        );
        let jit = encode(&[site(8, pad(10, &catch))], 16, &types, LsdaEncoding::jit());
        assert!(jit.unwrap().is_some());
        // A symbol the writer cannot resolve is an error, not a zero entry.
        let mut types = TypeTable::new();
        types.add(&TypeEntry::symbol("t")).unwrap();
        let catch = [Clause::Catch(TypeEntry::symbol("t"))];
        let lsda = encode(&[site(8, pad(10, &catch))], 16, &types, LsdaEncoding::jit())
            .unwrap()
            .unwrap();
        let mut w = gimli::write::EndianVec::new(RunTimeEndian::Little);
        assert_eq!(
            lsda.write(&mut w, |_| None),
            Err(EncodeError::UnresolvedSymbol("t".into()).into())
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
            let Some(lsda) = encode(&sites, n * 8 + 8, &types, LsdaEncoding::object()).unwrap()
            else {
                continue;
            };
            let section = write(&lsda);
            let reloc = &section.relocations()[0];
            assert_eq!(reloc.offset % 4, 0, "n = {n}");
            assert_eq!(reloc.offset + 4, section.bytes().len());
        }
    }

    #[test]
    fn lsdas_appended_to_one_section_start_four_byte_aligned() {
        let sites = [site(3, pad(5, &[Clause::Cleanup]))];
        let lsda = encode(&sites, 8, &TypeTable::new(), LsdaEncoding::object())
            .unwrap()
            .unwrap();
        let mut w = gimli::write::EndianVec::new(RunTimeEndian::Little);
        let first = lsda.write(&mut w, |_| None).unwrap();
        let second = lsda.write(&mut w, |_| None).unwrap();
        assert_eq!((first, second % 4), (0, 0));
        assert!(second >= lsda.len());
    }

    #[test]
    fn padded_uleb128_decodes_to_its_value() {
        for (value, width) in [(5u64, 1), (5, 2), (5, 3), (200, 2), (200, 4)] {
            let mut w = gimli::write::EndianVec::new(RunTimeEndian::Little);
            write_padded_uleb128(&mut w, value, width).unwrap();
            assert_eq!(w.len(), width);
            let mut r = gimli::EndianSlice::new(w.slice(), RunTimeEndian::Little);
            assert_eq!(gimli::Reader::read_uleb128(&mut r).unwrap(), value);
        }
    }
}
