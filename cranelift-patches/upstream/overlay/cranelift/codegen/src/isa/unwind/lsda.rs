//! Language-specific data areas (LSDAs) for `try_call`, in the format of
//! the Itanium C++ ABI's exception handling.
//!
//! A system unwinder (libgcc, LLVM libunwind) hands each frame's LSDA to
//! the personality routine named by the frame's CIE, which looks the
//! throwing call up in the LSDA's call-site table and decides whether the
//! frame's landing pad runs. Cranelift knows where each call returns and
//! where its handlers are ([`crate::MachBufferFinalized::call_sites`]);
//! what an exception tag means to a personality is the embedder's: it
//! gives each call's handlers a chain of [`Action`]s over a type table of
//! its own ([`TypeEntry`]). [`Lsda`] lays the table out and writes it
//! through gimli's `Writer`, type entries through `write_eh_pointer` so a
//! relocating writer records their relocations. Pointing an FDE at the
//! LSDA and naming the personality is the unwind-info writer's part.
//!
//! An LSDA call site has one landing pad, so every handler of a `try_call`
//! must go to the same block with the same arguments. [`check_try_calls`]
//! checks that, and [`call_sites`] runs it on the function it describes;
//! with the `unwind_lsda` setting, compilation runs it too.
//!
//! Layout (LLVM's `EHStreamer`, libstdc++'s `eh_personality.cc`):
//!
//! ```text
//! u8      LPStart encoding        DW_EH_PE_omit: landing pads are function offsets
//! u8      TType encoding          DW_EH_PE_omit when nothing is caught by type
//! uleb    TType base offset       only with a type table; padded so the table is 4-aligned
//! u8      call-site encoding      uleb128 or udata4
//! uleb    call-site table length
//! ...     call-site records       start, length, landing pad, action (uleb)
//! ...     action records          (sleb type filter, sleb next displacement)
//! ...     type table              entry N first, entry 1 last, ending at TType base
//! ```
//!
//! The call-site table covers the function's code up to its last call, so
//! a throwing call without handlers is found too (personalities terminate
//! on a PC missing from the table); adjacent records with the same landing
//! pad and action are merged, and action chains are hash-consed. Each
//! range ends at a call's return address, so code between two calls
//! belongs to the later one: the table describes synchronous exceptions
//! raised by recorded calls, not faults or calls the emitter does not
//! record as call sites.

use crate::ir::{BlockArg, ExceptionTableItem, ExceptionTag, Function, Inst};
use crate::{Context, FinalizedMachCallSite, FinalizedMachExceptionHandler};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use gimli::constants::{self, DwEhPe};
use gimli::leb128::write::{Leb128, uleb128_size};
use gimli::write::{Address, Writer};

/// An entry of the LSDA's type table: what a catch action matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TypeEntry {
    /// A null entry, which personalities treat as "catch everything".
    CatchAll,
    /// The address of a symbol plus an addend (e.g. a C++ `typeinfo`
    /// object), resolved by the writer.
    Symbol {
        /// The symbol name.
        name: String,
        /// Added to the symbol's address.
        addend: i64,
    },
    /// An absolute address, for JIT code. Only [`TypeEncoding::Absptr`]
    /// can carry it.
    Address(u64),
}

impl TypeEntry {
    /// A symbol with addend 0.
    pub fn symbol(name: impl Into<String>) -> Self {
        Self::Symbol {
            name: name.into(),
            addend: 0,
        }
    }
}

impl fmt::Display for TypeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CatchAll => write!(f, "null (catch-all)"),
            Self::Symbol { name, addend: 0 } => write!(f, "{name}"),
            Self::Symbol { name, addend } => write!(f, "{name}{addend:+}"),
            Self::Address(addr) => write!(f, "{addr:#x}"),
        }
    }
}

/// One step of a landing pad's action chain, which the personality tries
/// in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Action {
    /// Catch exceptions matching entry `n` of the type table (1-based); the
    /// personality hands the pad `n` as the selector.
    Catch(u32),
    /// Run the pad for any exception, then resume unwinding (selector 0).
    /// Meaningful last in a chain.
    Cleanup,
}

/// One call in a function, as the encoder sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallSite {
    /// Offset of the call's return address from the function start.
    pub ret_addr: u32,
    /// Where the exception goes if the callee throws, or `None` to let it
    /// propagate out of this frame.
    pub landing_pad: Option<LandingPad>,
}

impl CallSite {
    /// A call returning to `ret_addr`, with its landing pad if it has one.
    pub fn new(ret_addr: u32, landing_pad: Option<LandingPad>) -> Self {
        Self {
            ret_addr,
            landing_pad,
        }
    }
}

/// A landing pad and the actions the personality takes for it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LandingPad {
    /// Offset of the pad from the function start.
    pub offset: u32,
    /// The actions, in order; [`Lsda::new`] refuses an empty chain.
    pub actions: Vec<Action>,
}

impl LandingPad {
    /// A pad at `offset` taking `actions` in order.
    pub fn new(offset: u32, actions: Vec<Action>) -> Self {
        Self { offset, actions }
    }
}

/// Check that every `try_call` of `func` can be described by an LSDA call
/// site: all its handlers go to the same block with the same arguments
/// (values compared after resolving aliases).
pub fn check_try_calls(func: &Function) -> Result<(), TryCallError> {
    try_calls_with_handlers(func).map(|_| ())
}

/// [`check_try_calls`], counting the `try_call`s with handlers. Every block
/// in the layout counts, unreachable ones too: a dead `try_call` whose
/// handlers disagree is refused although no code is emitted for it.
fn try_calls_with_handlers(func: &Function) -> Result<usize, TryCallError> {
    let dfg = &func.dfg;
    let pool = &dfg.value_lists;
    let resolved = |arg: BlockArg| match arg {
        BlockArg::Value(value) => BlockArg::Value(dfg.resolve_aliases(value)),
        other => other,
    };
    let mut with_handlers = 0;
    for block in func.layout.blocks() {
        let Some(inst) = func.layout.last_inst(block) else {
            continue;
        };
        let Some(table) = dfg.insts[inst].exception_table() else {
            continue;
        };
        let mut targets = dfg.exception_tables[table]
            .items()
            .filter_map(|item| match item {
                ExceptionTableItem::Tag(_, target) | ExceptionTableItem::Default(target) => {
                    Some(target)
                }
                ExceptionTableItem::Context(_) => None,
            });
        let Some(first) = targets.next() else {
            continue;
        };
        with_handlers += 1;
        let same = |target: crate::ir::BlockCall| {
            target.block(pool) == first.block(pool)
                && target
                    .args(pool)
                    .map(resolved)
                    .eq(first.args(pool).map(resolved))
        };
        if !targets.all(same) {
            return Err(TryCallError::HandlersDisagree { inst });
        }
    }
    Ok(with_handlers)
}

/// The encoder's view of the function `ctx` compiled (its call sites from
/// `MachBufferFinalized::call_sites`): each call's return address, and for
/// a call with handlers, the first handler's offset as its landing pad with
/// the actions `actions_of` gives for the handlers' tags (`None` for a
/// default handler), in table order. Dynamic-context items are not handlers
/// and are skipped.
///
/// The handlers of one `try_call` all go to one block ([`check_try_calls`],
/// run here on `ctx.func` before `actions_of` is asked anything). Cranelift
/// may still give each handler its own edge block (critical edges are split
/// per successor in `blockorder.rs`; empty ones can fold together),
/// equivalent since they pass the same arguments, so the first one's offset
/// stands for all of them. The function and its code come from one
/// `Context`, as cranelift-jit and cranelift-object read `ctx.func` for
/// the relocations of the code it compiled: changing `ctx.func` between
/// compiling and this call is unsupported and mostly undetected (only code
/// with more handled calls than the function has `try_call`s with handlers
/// is refused, [`EncodeError::NotCompiledFrom`]). After an incremental-cache
/// hit `ctx.func` is the unoptimized function, which can only make the
/// check stricter.
///
/// [`Lsda::new`] takes call sites from anywhere, unchecked: this is the
/// checked way to make them.
pub fn call_sites<E: From<EncodeError>>(
    ctx: &Context,
    mut actions_of: impl FnMut(&[Option<ExceptionTag>]) -> Result<Vec<Action>, E>,
) -> Result<Vec<CallSite>, E> {
    let try_calls = try_calls_with_handlers(&ctx.func).map_err(EncodeError::TryCall)?;
    let code = ctx.compiled_code().ok_or(EncodeError::NotCompiled)?;
    let mut out = Vec::new();
    walk_calls(try_calls, code.buffer.call_sites(), |ret_addr, handled| {
        let landing_pad = match handled {
            None => None,
            Some((offset, tags)) => Some(LandingPad::new(offset, actions_of(tags)?)),
        };
        out.push(CallSite::new(ret_addr, landing_pad));
        Ok::<_, E>(())
    })?;
    Ok(out)
}

/// Visit the calls of `sites`, compiled from a function with `try_calls`
/// calls with handlers, all in landing-pad form: each call's return
/// address, and a handled call's landing pad (its first handler's offset)
/// and tags in table order. Code with more handled calls than that is
/// refused before its tags are visited.
fn walk_calls<'a, E: From<EncodeError>>(
    try_calls: usize,
    sites: impl IntoIterator<Item = FinalizedMachCallSite<'a>>,
    mut visit: impl FnMut(u32, Option<(u32, &[Option<ExceptionTag>])>) -> Result<(), E>,
) -> Result<(), E> {
    let mut tags = Vec::new();
    let mut with_handlers = 0;
    for site in sites {
        let mut pad = None;
        tags.clear();
        for handler in site.exception_handlers {
            let (offset, tag) = match *handler {
                FinalizedMachExceptionHandler::Tag(tag, offset) => (offset, Some(tag)),
                FinalizedMachExceptionHandler::Default(offset) => (offset, None),
                FinalizedMachExceptionHandler::Context(_) => continue,
            };
            pad.get_or_insert(offset);
            tags.push(tag);
        }
        if pad.is_some() {
            with_handlers += 1;
            if with_handlers > try_calls {
                return Err(EncodeError::NotCompiledFrom { try_calls }.into());
            }
        }
        visit(site.ret_addr, pad.map(|pad| (pad, &tags[..])))?;
    }
    Ok(())
}

/// The calls of a compiled function as [`call_sites`] finds them, each
/// handled call's tags kept until the embedder says what they do: for a
/// module that compiles a function first and is given its LSDA's meaning
/// later (`define_lsda` in cranelift-jit and cranelift-object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandledCalls {
    calls: Vec<RecordedCall>,
    code_len: u32,
}

/// A call's return address, and its landing pad and tags if handled.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RecordedCall {
    ret_addr: u32,
    landing_pad: Option<u32>,
    tags: Vec<Option<ExceptionTag>>,
}

impl HandledCalls {
    /// The calls of the function `ctx` compiled, checked as [`call_sites`]
    /// checks them.
    pub fn new(ctx: &Context) -> Result<Self, EncodeError> {
        let try_calls = try_calls_with_handlers(&ctx.func).map_err(EncodeError::TryCall)?;
        let code = ctx.compiled_code().ok_or(EncodeError::NotCompiled)?;
        let code_len = code.buffer.data().len();
        let code_len = u32::try_from(code_len).map_err(|_| EncodeError::DoesNotFit {
            what: "code length",
            value: code_len as u64,
        })?;
        Self::of(try_calls, code.buffer.call_sites(), code_len)
    }

    /// The calls of `sites`, compiled from a function with `try_calls`
    /// calls with handlers, all in landing-pad form.
    fn of<'a>(
        try_calls: usize,
        sites: impl IntoIterator<Item = FinalizedMachCallSite<'a>>,
        code_len: u32,
    ) -> Result<Self, EncodeError> {
        let mut calls = Vec::new();
        walk_calls(try_calls, sites, |ret_addr, handled| {
            calls.push(RecordedCall {
                ret_addr,
                landing_pad: handled.map(|(pad, _)| pad),
                tags: handled.map(|(_, tags)| tags.to_vec()).unwrap_or_default(),
            });
            Ok::<_, EncodeError>(())
        })?;
        Ok(Self { calls, code_len })
    }

    /// The length of the function's code.
    pub fn code_len(&self) -> u32 {
        self.code_len
    }

    /// Whether a call has handlers, so that the function needs an LSDA.
    pub fn any_handled(&self) -> bool {
        self.calls.iter().any(|call| call.landing_pad.is_some())
    }

    /// The call sites, each handled call's landing pad taking the actions
    /// `actions_of` gives for its tags (`None` for a default handler), in
    /// table order, asked once per handled call in address order.
    pub fn call_sites<E>(
        &self,
        mut actions_of: impl FnMut(&[Option<ExceptionTag>]) -> Result<Vec<Action>, E>,
    ) -> Result<Vec<CallSite>, E> {
        self.calls
            .iter()
            .map(|call| {
                let landing_pad = match call.landing_pad {
                    None => None,
                    Some(offset) => Some(LandingPad::new(offset, actions_of(&call.tags)?)),
                };
                Ok(CallSite::new(call.ret_addr, landing_pad))
            })
            .collect()
    }
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
    fn dw_eh_pe(self) -> DwEhPe {
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
#[non_exhaustive]
pub struct LsdaEncoding {
    /// Call-site record encoding.
    pub call_sites: CallSiteEncoding,
    /// Type-table entry encoding.
    pub types: TypeEncoding,
}

impl LsdaEncoding {
    /// Call-site records and type entries encoded as given.
    pub fn new(call_sites: CallSiteEncoding, types: TypeEncoding) -> Self {
        Self { call_sites, types }
    }

    /// Encodings for a relocatable object whose type entries are defined in
    /// the image it is linked into (`pcrel|sdata4` entries). Type entries
    /// that may live in another shared object need
    /// [`TypeEncoding::IndirectPcRelSdata4`], as cranelift-object writes.
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
#[non_exhaustive]
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

    fn write<W: Writer>(&self, w: &mut W, encoding: CallSiteEncoding) -> Result<(), EncodeError> {
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
    fn encoded_len(&self, encoding: CallSiteEncoding) -> Result<usize, EncodeError> {
        let mut w = LengthWriter::default();
        self.write(&mut w, encoding)?;
        Ok(w.len)
    }
}

/// The action table: hash-consed action records, so that identical chains
/// and shared chain suffixes are stored once.
#[derive(Clone, Debug, Default)]
struct ActionTable {
    bytes: Vec<u8>,
    /// (type filter, offset of the next record) -> offset of the record.
    records: BTreeMap<(i64, Option<u32>), u32>,
}

impl ActionTable {
    /// The action value (1 + offset of the first record) of the chain of
    /// type `filters`, adding the records it needs. `None` for an empty
    /// chain.
    fn chain(&mut self, filters: &[i64]) -> Result<Option<u32>, EncodeError> {
        let mut next: Option<u32> = None;
        for &filter in filters.iter().rev() {
            next = Some(self.record(filter, next)?);
        }
        Ok(next.map(|first| first + 1))
    }

    fn record(&mut self, filter: i64, next: Option<u32>) -> Result<u32, EncodeError> {
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
        Ok(offset)
    }

    /// The encoded records.
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A `gimli::write::Writer` that only counts bytes, for sizes needed
/// before the bytes are written.
#[derive(Clone, Copy, Debug, Default)]
struct LengthWriter {
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
    /// bytes; [`Action::Catch`] indexes `types`.
    ///
    /// `call_sites` are the function's calls in address order. Returns
    /// `None` when no call has a landing pad: such a function needs no LSDA
    /// (and its FDE no personality).
    pub fn new(
        call_sites: &[CallSite],
        code_len: u32,
        types: &[TypeEntry],
        encoding: LsdaEncoding,
        address_size: u8,
    ) -> Result<Option<Self>, EncodeError> {
        if address_size != 4 && address_size != 8 {
            return Err(EncodeError::UnsupportedAddressSize(address_size));
        }
        if call_sites.iter().all(|c| c.landing_pad.is_none()) {
            return Ok(None);
        }
        let mut actions = ActionTable::default();
        // Action values already computed, by chain.
        let mut known: BTreeMap<&[Action], u32> = BTreeMap::new();
        let mut types_used = 0;
        let mut table = CallSiteTable::default();
        let mut prev_end = 0u32;
        for site in call_sites {
            if site.ret_addr <= prev_end || site.ret_addr > code_len {
                let bound = if site.ret_addr <= prev_end {
                    prev_end
                } else {
                    code_len
                };
                return Err(EncodeError::CallSiteOutOfOrder {
                    ret_addr: site.ret_addr,
                    bound,
                });
            }
            let (landing_pad, action) = match &site.landing_pad {
                None => (0, 0),
                Some(pad) => {
                    let offset = check_pad(pad.offset, code_len)?;
                    let action = match known.get(&*pad.actions) {
                        Some(&action) => action,
                        None => {
                            let (action, used) =
                                action_of(&mut actions, &pad.actions, types.len())?;
                            types_used = types_used.max(used);
                            known.insert(&pad.actions, action);
                            action
                        }
                    };
                    (offset, action)
                }
            };
            // The personality looks up the return address minus one, so the
            // range ending at the return address covers the call instruction.
            table.push(prev_end, site.ret_addr, landing_pad, action);
            prev_end = site.ret_addr;
        }
        let type_entries = types[..types_used].to_vec();
        for entry in &type_entries {
            match *entry {
                TypeEntry::Address(addr) => {
                    if encoding.types != TypeEncoding::Absptr {
                        return Err(EncodeError::AbsoluteTypeEntryNeedsAbsptr(addr));
                    }
                    if address_size < 8 && addr >> (8 * u32::from(address_size)) != 0 {
                        let what = "absolute type entry";
                        return Err(EncodeError::DoesNotFit { what, value: addr });
                    }
                }
                // An indirect entry points to a slot holding the symbol's
                // address: an addend has nowhere to go.
                TypeEntry::Symbol { ref name, addend }
                    if addend != 0 && encoding.types == TypeEncoding::IndirectPcRelSdata4 =>
                {
                    let symbol = name.clone();
                    return Err(EncodeError::IndirectAddend { symbol, addend });
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

    /// The type entries written: those up to the last one an action uses.
    pub fn type_entries(&self) -> &[TypeEntry] {
        &self.type_entries
    }

    /// The size of an `absptr` type entry: 4 or 8.
    pub fn address_size(&self) -> u8 {
        self.address_size
    }

    /// The action table's bytes.
    pub fn action_table(&self) -> &[u8] {
        self.actions.bytes()
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
    fn lay_out_type_table(&self) -> Result<Option<TypeTableLayout>, EncodeError> {
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
            .ok_or_else(|| EncodeError::DoesNotFit {
                what: "type table base offset",
                value: (body + self.types_len()) as u64,
            })
    }

    /// Its size in bytes (never empty: it has at least its header).
    #[expect(
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
    ///
    /// What `symbol_address` returns is read as `write_eh_pointer` reads
    /// it: under the pc-relative encodings an `Address::Constant` is an
    /// offset in `w`'s section and an `Address::Symbol` needs a writer that
    /// relocates (gimli's default refuses it); under
    /// [`TypeEncoding::IndirectPcRelSdata4`] it is the address of the slot
    /// holding the type's address (e.g. `DW.ref.<sym>`), not the type's.
    pub fn write<W: Writer>(
        &self,
        w: &mut W,
        mut symbol_address: impl FnMut(&str) -> Option<Address>,
    ) -> Result<usize, EncodeError> {
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

    fn write_type_entry<W: Writer>(
        &self,
        w: &mut W,
        entry: &TypeEntry,
        symbol_address: &mut impl FnMut(&str) -> Option<Address>,
    ) -> Result<(), EncodeError> {
        let size = self.encoding.types.entry_size(self.address_size);
        let address = match entry {
            // A null entry stays null under pcrel: personalities add the
            // base only to non-zero values.
            TypeEntry::CatchAll => return Ok(w.write_udata(0, size)?),
            TypeEntry::Address(addr) => Address::Constant(*addr),
            TypeEntry::Symbol { name, addend } => {
                let overflow = || EncodeError::AddendOverflow {
                    symbol: name.clone(),
                    addend: *addend,
                };
                match symbol_address(name)
                    .ok_or_else(|| EncodeError::UnresolvedSymbol(name.clone()))?
                {
                    Address::Constant(base) => {
                        Address::Constant(base.checked_add_signed(*addend).ok_or_else(overflow)?)
                    }
                    Address::Symbol { symbol, addend: a } => Address::Symbol {
                        symbol,
                        addend: a.checked_add(*addend).ok_or_else(overflow)?,
                    },
                }
            }
        };
        Ok(w.write_eh_pointer(address, self.encoding.types.dw_eh_pe(), size)?)
    }
}

fn check_pad(offset: u32, code_len: u32) -> Result<u32, EncodeError> {
    if offset == 0 {
        return Err(EncodeError::LandingPadAtFunctionStart);
    }
    if offset >= code_len {
        return Err(EncodeError::LandingPadOutOfRange {
            pad: offset,
            code_len,
        });
    }
    Ok(offset)
}

/// The action field of a pad with `chain` (0 for a lone cleanup, else the
/// chain's first record), and how many type entries it uses.
fn action_of(
    actions: &mut ActionTable,
    chain: &[Action],
    types: usize,
) -> Result<(u32, usize), EncodeError> {
    if chain.is_empty() {
        return Err(EncodeError::EmptyActionChain);
    }
    if *chain == [Action::Cleanup] {
        return Ok((0, 0));
    }
    let mut used = 0;
    let mut filters = Vec::with_capacity(chain.len());
    for action in chain {
        filters.push(match *action {
            Action::Cleanup => 0,
            Action::Catch(index) => {
                // Filters are SLEB128 fields that personalities read as i32.
                if index == 0 || index as usize > types || i32::try_from(index).is_err() {
                    return Err(EncodeError::NoSuchTypeEntry { index, types });
                }
                used = used.max(index as usize);
                i64::from(index)
            }
        });
    }
    Ok((actions.chain(&filters)?.unwrap_or(0), used))
}

/// ULEB128 in exactly `width` bytes: gimli's minimal encoding with
/// continuation bytes added (non-minimal encodings are valid), as LLVM pads
/// the TType base field.
fn write_padded_uleb128<W: Writer>(w: &mut W, value: u64, width: usize) -> Result<(), EncodeError> {
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

/// An LSDA that cannot be built: a `try_call` it cannot describe, or a
/// table that does not fit its encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A `try_call` of the function cannot be described by an LSDA.
    TryCall(TryCallError),
    /// The context holds no compiled code.
    NotCompiled,
    /// The compiled code has more calls with handlers than the context's
    /// function has `try_call`s with handlers: the function was changed
    /// after compilation.
    NotCompiledFrom {
        /// The function's `try_call`s with handlers.
        try_calls: usize,
    },
    /// Only 4- and 8-byte pointers are supported.
    UnsupportedAddressSize(u8),
    /// Call-site return addresses are not strictly increasing, or lie
    /// outside the function.
    CallSiteOutOfOrder {
        /// The offending return address.
        ret_addr: u32,
        /// The previous return address (or the code length when too large).
        bound: u32,
    },
    /// A landing pad lies outside the function's code.
    LandingPadOutOfRange {
        /// The landing pad offset.
        pad: u32,
        /// The function's code length.
        code_len: u32,
    },
    /// A landing pad at offset 0 cannot be encoded: 0 means "no pad".
    LandingPadAtFunctionStart,
    /// A landing pad has no actions.
    EmptyActionChain,
    /// An action catches a type entry the type table does not have.
    NoSuchTypeEntry {
        /// The 1-based index.
        index: u32,
        /// The number of type entries.
        types: usize,
    },
    /// A value does not fit the chosen encoding.
    DoesNotFit {
        /// What was being encoded.
        what: &'static str,
        /// The value that did not fit.
        value: u64,
    },
    /// An absolute type entry cannot be encoded position-independently.
    AbsoluteTypeEntryNeedsAbsptr(u64),
    /// A type entry's symbol address plus its addend overflows.
    AddendOverflow {
        /// The symbol.
        symbol: String,
        /// Its addend.
        addend: i64,
    },
    /// An indirect (`DW.ref` slot) type entry cannot carry an addend.
    IndirectAddend {
        /// The symbol.
        symbol: String,
        /// Its addend.
        addend: i64,
    },
    /// A type-entry symbol could not be resolved to an address.
    UnresolvedSymbol(String),
    /// gimli's writer refused a value.
    Write(gimli::write::Error),
}

impl From<gimli::write::Error> for EncodeError {
    fn from(err: gimli::write::Error) -> Self {
        Self::Write(err)
    }
}

// This is manually implementing Error and Display instead of using thiserror to reduce the amount
// of dependencies used by Cranelift.
impl core::error::Error for EncodeError {}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TryCall(err) => write!(f, "{err}"),
            Self::NotCompiled => write!(f, "the context holds no compiled code"),
            Self::NotCompiledFrom { try_calls } => write!(
                f,
                "the compiled code has more calls with handlers than the function's \
                 {try_calls} try_calls with handlers: the function was changed after compilation"
            ),
            Self::UnsupportedAddressSize(size) => {
                write!(f, "unsupported address size {size} (4 or 8)")
            }
            Self::CallSiteOutOfOrder { ret_addr, bound } => write!(
                f,
                "call site returning to {ret_addr:#x} is out of order or out of range \
                 (bound {bound:#x})"
            ),
            Self::LandingPadOutOfRange { pad, code_len } => write!(
                f,
                "landing pad {pad:#x} lies outside the function's {code_len:#x} code bytes"
            ),
            Self::LandingPadAtFunctionStart => write!(
                f,
                "a landing pad at function offset 0 cannot be encoded (0 means no landing pad)"
            ),
            Self::EmptyActionChain => write!(f, "a landing pad has no actions"),
            Self::NoSuchTypeEntry { index, types } => write!(
                f,
                "an action catches type entry {index}, but the type table has {types} entries"
            ),
            Self::DoesNotFit { what, value } => {
                write!(f, "{what} {value:#x} does not fit its encoding")
            }
            Self::AbsoluteTypeEntryNeedsAbsptr(addr) => write!(
                f,
                "absolute type entry {addr:#x} needs the absptr type-table encoding"
            ),
            Self::AddendOverflow { symbol, addend } => write!(
                f,
                "type entry {symbol}{addend:+} overflows its address (with the writer's base for \
                 the symbol)"
            ),
            Self::IndirectAddend { symbol, addend } => write!(
                f,
                "indirect type entry {symbol}{addend:+} cannot carry an addend"
            ),
            Self::UnresolvedSymbol(name) => {
                write!(f, "type entry symbol `{name}` cannot be resolved")
            }
            Self::Write(err) => write!(f, "DWARF writer: {err}"),
        }
    }
}

/// A `try_call` an LSDA cannot describe.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryCallError {
    /// Its handlers go to different blocks, or pass different arguments:
    /// an LSDA call site has one landing pad.
    HandlersDisagree {
        /// The `try_call`.
        inst: Inst,
    },
}

// This is manually implementing Error and Display instead of using thiserror to reduce the amount
// of dependencies used by Cranelift.
impl core::error::Error for TryCallError {}

impl fmt::Display for TryCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HandlersDisagree { inst } => write!(
                f,
                "the handlers of try_call {inst} go to different blocks or pass different \
                 arguments, but an LSDA call site has one landing pad"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use gimli::RunTimeEndian;
    use gimli::write::EndianVec;

    fn pad(offset: u32, actions: &[Action]) -> Option<LandingPad> {
        Some(LandingPad::new(offset, actions.into()))
    }

    fn site(ret_addr: u32, landing_pad: Option<LandingPad>) -> CallSite {
        CallSite::new(ret_addr, landing_pad)
    }

    fn encode(sites: &[CallSite], code_len: u32, types: &[TypeEntry]) -> Option<Lsda> {
        Lsda::new(sites, code_len, types, LsdaEncoding::object(), 8).unwrap()
    }

    fn bytes(lsda: &Lsda) -> Vec<u8> {
        let mut w = EndianVec::new(RunTimeEndian::Little);
        lsda.write(&mut w, |_| Some(Address::Constant(0x1000)))
            .unwrap();
        assert_eq!(w.len(), lsda.len());
        w.into_vec()
    }

    #[test]
    fn no_handlers_no_lsda() {
        let sites = [site(5, None), site(10, None)];
        assert!(encode(&sites, 20, &[]).is_none());
    }

    #[test]
    fn a_cleanup_is_action_zero_and_needs_no_type_table() {
        let lsda = encode(&[site(3, pad(5, &[Action::Cleanup]))], 8, &[]).unwrap();
        let record = CallSiteRecord {
            start: 0,
            len: 3,
            landing_pad: 5,
            action: 0,
        };
        assert_eq!(lsda.call_site_table().records(), [record]);
        assert!(lsda.type_entries().is_empty());
    }

    #[test]
    fn adjacent_equal_records_merge_and_plain_calls_are_covered() {
        let types = [TypeEntry::symbol("_ZTIi")];
        let shared = pad(40, &[Action::Catch(1)]);
        let sites = [
            site(4, None),
            site(8, None),
            site(12, shared.clone()),
            site(16, shared),
            site(20, None),
        ];
        let lsda = encode(&sites, 48, &types).unwrap();
        let records: Vec<_> = lsda
            .call_site_table()
            .records()
            .iter()
            .map(|r| (r.start, r.len, r.landing_pad, r.action))
            .collect();
        assert_eq!(records, [(0, 8, 0, 0), (8, 8, 40, 1), (16, 4, 0, 0)]);
        assert_eq!(lsda.type_entries(), types);
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
    fn unused_trailing_type_entries_are_not_written() {
        let types = [TypeEntry::symbol("a"), TypeEntry::symbol("b")];
        let lsda = encode(&[site(8, pad(10, &[Action::Catch(1)]))], 16, &types).unwrap();
        assert_eq!(lsda.type_entries(), &types[..1]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let cleanup = [Action::Cleanup];
        let enc = LsdaEncoding::object();
        let err = |sites: &[CallSite], types: &[TypeEntry], enc| {
            Lsda::new(sites, 16, types, enc, 8).unwrap_err()
        };
        assert!(matches!(
            err(&[site(8, pad(2, &cleanup)), site(8, None)], &[], enc),
            EncodeError::CallSiteOutOfOrder { bound: 8, .. }
        ));
        assert!(matches!(
            err(&[site(20, pad(2, &cleanup))], &[], enc),
            EncodeError::CallSiteOutOfOrder { bound: 16, .. }
        ));
        assert_eq!(
            err(&[site(8, pad(0, &cleanup))], &[], enc),
            EncodeError::LandingPadAtFunctionStart
        );
        assert!(matches!(
            err(&[site(8, pad(16, &cleanup))], &[], enc),
            EncodeError::LandingPadOutOfRange { .. }
        ));
        assert_eq!(
            err(&[site(8, pad(10, &[]))], &[], enc),
            EncodeError::EmptyActionChain
        );
        assert_eq!(
            err(&[site(8, pad(10, &[Action::Catch(1)]))], &[], enc),
            EncodeError::NoSuchTypeEntry { index: 1, types: 0 }
        );
        let types = [TypeEntry::Address(0x1000)];
        let catch = [Action::Catch(1)];
        assert_eq!(
            err(&[site(8, pad(10, &catch))], &types, enc),
            EncodeError::AbsoluteTypeEntryNeedsAbsptr(0x1000)
        );
        let jit = Lsda::new(
            &[site(8, pad(10, &catch))],
            16,
            &types,
            LsdaEncoding::jit(),
            8,
        );
        assert!(jit.unwrap().is_some());
        let types = [TypeEntry::Symbol {
            name: "t".into(),
            addend: 4,
        }];
        let indirect = LsdaEncoding {
            types: TypeEncoding::IndirectPcRelSdata4,
            ..enc
        };
        assert!(matches!(
            err(&[site(8, pad(10, &catch))], &types, indirect),
            EncodeError::IndirectAddend { addend: 4, .. }
        ));
        assert_eq!(
            Lsda::new(&[site(8, pad(10, &cleanup))], 16, &[], enc, 3).unwrap_err(),
            EncodeError::UnsupportedAddressSize(3)
        );
        // An addend that overflows the address is an error, not a wrap.
        let types = [TypeEntry::Symbol {
            name: "t".into(),
            addend: 16,
        }];
        let lsda = Lsda::new(
            &[site(8, pad(10, &catch))],
            16,
            &types,
            LsdaEncoding::jit(),
            8,
        )
        .unwrap()
        .unwrap();
        let mut w = EndianVec::new(RunTimeEndian::Little);
        assert_eq!(
            lsda.write(&mut w, |_| Some(Address::Constant(u64::MAX))),
            Err(EncodeError::AddendOverflow {
                symbol: "t".into(),
                addend: 16
            })
        );
        // A symbol the writer cannot resolve is an error, not a zero entry.
        let types = [TypeEntry::symbol("t")];
        let lsda = Lsda::new(
            &[site(8, pad(10, &catch))],
            16,
            &types,
            LsdaEncoding::jit(),
            8,
        )
        .unwrap()
        .unwrap();
        let mut w = EndianVec::new(RunTimeEndian::Little);
        assert_eq!(
            lsda.write(&mut w, |_| None),
            Err(EncodeError::UnresolvedSymbol("t".into()))
        );
    }

    #[test]
    fn type_table_is_four_byte_aligned_for_every_header_width() {
        let types = [TypeEntry::symbol("t")];
        for n in 1..300u32 {
            let sites: Vec<_> = (1..=n)
                .map(|i| {
                    let handler = (i % 2 == 0).then(|| pad(4, &[Action::Catch(1)]));
                    site(i * 8, handler.flatten())
                })
                .collect();
            let Some(lsda) = encode(&sites, n * 8 + 8, &types) else {
                continue;
            };
            // The TType base (after its own field) is the end of the LSDA,
            // and the one entry, the table's last 4 bytes, is 4-aligned.
            let bytes = bytes(&lsda);
            let mut field = gimli::EndianSlice::new(&bytes[2..], RunTimeEndian::Little);
            let base = gimli::Reader::read_uleb128(&mut field).unwrap();
            assert_eq!(base, gimli::Reader::len(&field) as u64, "n = {n}");
            assert_eq!((bytes.len() - 4) % 4, 0, "n = {n}");
        }
    }

    #[test]
    fn lsdas_appended_to_one_section_start_four_byte_aligned() {
        let lsda = encode(&[site(3, pad(5, &[Action::Cleanup]))], 8, &[]).unwrap();
        let mut w = EndianVec::new(RunTimeEndian::Little);
        let first = lsda.write(&mut w, |_| None).unwrap();
        let second = lsda.write(&mut w, |_| None).unwrap();
        assert_eq!((first, second % 4), (0, 0));
        assert!(second >= lsda.len());
    }

    #[test]
    fn padded_uleb128_decodes_to_its_value() {
        for (value, width) in [(5u64, 1), (5, 2), (5, 3), (200, 2), (200, 4)] {
            let mut w = EndianVec::new(RunTimeEndian::Little);
            write_padded_uleb128(&mut w, value, width).unwrap();
            assert_eq!(w.len(), width);
            let mut r = gimli::EndianSlice::new(w.slice(), RunTimeEndian::Little);
            assert_eq!(gimli::Reader::read_uleb128(&mut r).unwrap(), value);
        }
    }

    /// `try_call fn0(), sig0, block1, [ tag1: blockN(args), tag2: blockM(args) ]`
    /// for the blocks `targets`, with arguments made by `args` in the entry
    /// block before the call.
    fn try_call_to(
        targets: [usize; 2],
        args: impl FnOnce(&mut crate::cursor::FuncCursor) -> [Vec<BlockArg>; 2],
    ) -> Function {
        use crate::cursor::{Cursor, FuncCursor};
        use crate::ir::{
            ExceptionTableData, ExtFuncData, ExternalName, InstBuilder, Signature, UserExternalName,
        };
        use crate::isa::CallConv;
        let mut func = Function::new();
        let sig = func.import_signature(Signature::new(CallConv::SystemV));
        let name = func.declare_imported_user_function(UserExternalName::new(0, 0));
        let callee = func.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature: sig,
            colocated: false,
            patchable: false,
        });
        let blocks: Vec<_> = (0..4).map(|_| func.dfg.make_block()).collect();
        let mut cur = FuncCursor::new(&mut func);
        for &block in &blocks {
            cur.insert_block(block);
        }
        cur.goto_bottom(blocks[0]);
        let args = args(&mut cur);
        let dfg = &mut cur.func.dfg;
        let normal = dfg.block_call(blocks[1], &[]);
        let mut tag = 0;
        let catches = targets.map(|block| {
            tag += 1;
            let target = dfg.block_call(blocks[block], &args[tag as usize - 1]);
            ExceptionTableItem::Tag(ExceptionTag::from_u32(tag), target)
        });
        let table = dfg
            .exception_tables
            .push(ExceptionTableData::new(sig, normal, catches));
        cur.ins().try_call(callee, &[], table);
        func
    }

    #[test]
    fn try_calls_whose_handlers_agree_can_have_an_lsda() {
        use crate::ir::{InstBuilder, types};
        let exn = vec![BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)];
        let same = try_call_to([2, 2], |_| [exn.clone(), exn.clone()]);
        assert_eq!(try_calls_with_handlers(&same), Ok(1));
        // Dispatching in the IR needs an LSDA per target: refused.
        let two_blocks = try_call_to([2, 3], |_| [exn.clone(), exn.clone()]);
        assert!(matches!(
            check_try_calls(&two_blocks),
            Err(TryCallError::HandlersDisagree { .. })
        ));
        let two_args = try_call_to([2, 2], |_| [exn.clone(), exn[..1].to_vec()]);
        assert!(matches!(
            check_try_calls(&two_args),
            Err(TryCallError::HandlersDisagree { .. })
        ));
        // A value and an alias of it are the same argument.
        let aliased = try_call_to([2, 2], |cur| {
            let value = cur.ins().iconst(types::I64, 7);
            // As the parser makes `v1 -> v0`.
            cur.func.dfg.make_invalid_value_for_parser();
            let alias = crate::ir::Value::from_u32(cur.func.dfg.num_values() as u32 - 1);
            cur.func
                .dfg
                .make_value_alias_for_serialization(value, alias);
            [vec![BlockArg::Value(value)], vec![BlockArg::Value(alias)]]
        });
        check_try_calls(&aliased).unwrap();
    }

    /// Bytes `eu-readelf --debug-dump=exception` decodes as the comments
    /// say: chains `[A, B, all]`, `[0x1122.., B, all]` and `[A, cleanup]`
    /// share the suffix `[B, all]`; JIT encoding, `A` and `B` at address 0.
    #[test]
    fn golden_shared_suffix_absptr() {
        let types = [
            TypeEntry::symbol("A"),
            TypeEntry::symbol("B"),
            TypeEntry::CatchAll,
            TypeEntry::Address(0x1122_3344_5566_7788),
        ];
        use Action::{Catch, Cleanup};
        let sites = [
            site(0x10, pad(0x50, &[Catch(1), Catch(2), Catch(3)])),
            site(0x20, pad(0x60, &[Catch(4), Catch(2), Catch(3)])),
            site(0x30, pad(0x70, &[Catch(1), Cleanup])),
        ];
        let lsda = Lsda::new(&sites, 0x80, &types, LsdaEncoding::jit(), 8)
            .unwrap()
            .unwrap();
        let mut w = EndianVec::new(RunTimeEndian::Little);
        lsda.write(&mut w, |_| Some(Address::Constant(0))).unwrap();
        #[rustfmt::skip]
        let expected = [
            0xff, 0x00, 0x3d, 0x01, 0x0c,       // omit, absptr, TTBase +61, uleb128, 12 bytes
            0x00, 0x10, 0x50, 0x05,             // [0x00, 0x10) pad 0x50, action 5
            0x10, 0x10, 0x60, 0x07,             // [0x10, 0x20) pad 0x60, action 7
            0x20, 0x10, 0x70, 0x0b,             // [0x20, 0x30) pad 0x70, action 11
            0x03, 0x00,                         // @0: catch #3 (null), end
            0x02, 0x7d,                         // @2: catch #2 (B), next @0
            0x01, 0x7d,                         // @4: catch #1 (A), next @2
            0x04, 0x7b,                         // @6: catch #4 (0x1122..), next @2
            0x00, 0x00,                         // @8: cleanup, end
            0x01, 0x7d,                         // @10: catch #1 (A), next @8
            0x00, 0x00, 0x00,                   // align the type table
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // #4: 0x1122334455667788
            0, 0, 0, 0, 0, 0, 0, 0,             // #3: null
            0, 0, 0, 0, 0, 0, 0, 0,             // #2: B
            0, 0, 0, 0, 0, 0, 0, 0,             // #1: A
        ];
        assert_eq!(w.slice(), expected);
        assert_eq!(lsda.action_table(), &expected[17..29]);
    }

    #[test]
    fn call_sites_take_the_first_handler_as_the_pad() {
        use crate::ir::ExceptionTag;
        let tag = ExceptionTag::from_u32(7);
        let handlers = [
            FinalizedMachExceptionHandler::Tag(tag, 20),
            FinalizedMachExceptionHandler::Default(24),
        ];
        let sites = [
            FinalizedMachCallSite {
                ret_addr: 4,
                frame_offset: None,
                exception_handlers: &[],
            },
            FinalizedMachCallSite {
                ret_addr: 9,
                frame_offset: None,
                exception_handlers: &handlers,
            },
        ];
        let calls = HandledCalls::of(1, sites.clone(), 30).unwrap();
        assert!(calls.any_handled());
        assert_eq!(calls.code_len(), 30);
        let mut seen = vec![];
        let out = calls
            .call_sites(|tags| {
                seen.push(tags.to_vec());
                Ok::<_, EncodeError>(vec![Action::Cleanup])
            })
            .unwrap();
        assert_eq!(seen, [vec![Some(tag), None]]);
        assert_eq!(out[0], site(4, None));
        assert_eq!(out[1], site(9, pad(20, &[Action::Cleanup])));
        // Code with handlers is not that of a function without try_calls.
        let err = HandledCalls::of(0, sites, 30).unwrap_err();
        assert_eq!(err, EncodeError::NotCompiledFrom { try_calls: 0 });
    }

    /// With `unwind_lsda`, compilation refuses a `try_call` whose handlers
    /// disagree, and compiles one whose handlers agree.
    #[cfg(feature = "x86")]
    #[test]
    fn the_setting_refuses_at_compile_time() {
        use crate::cursor::{Cursor, FuncCursor};
        use crate::ir::{InstBuilder, types};
        use crate::settings::{self, Configurable};
        let compilable = |targets| {
            let exn = vec![BlockArg::TryCallExn(0)];
            let mut func = try_call_to(targets, |_| [exn.clone(), exn.clone()]);
            let blocks: Vec<_> = func.layout.blocks().collect();
            for &block in &blocks[2..] {
                func.dfg.append_block_param(block, types::I64);
            }
            let mut cur = FuncCursor::new(&mut func);
            for &block in &blocks[1..] {
                cur.goto_bottom(block);
                cur.ins().return_(&[]);
            }
            Context::for_function(func)
        };
        let mut flags = settings::builder();
        flags.enable("unwind_lsda").unwrap();
        let isa = crate::isa::lookup(target_lexicon::triple!("x86_64"))
            .unwrap()
            .finish(settings::Flags::new(flags))
            .unwrap();
        let mut agree = compilable([2, 2]);
        agree.compile(&*isa, &mut Default::default()).unwrap();
        let mut disagree = compilable([2, 3]);
        let err = disagree
            .compile(&*isa, &mut Default::default())
            .unwrap_err();
        assert!(matches!(
            err.inner,
            crate::CodegenError::Lsda(TryCallError::HandlersDisagree { .. })
        ));
    }

    #[test]
    fn call_sites_check_the_context_function_first() {
        let never_asked = |_: &[Option<ExceptionTag>]| -> Result<Vec<Action>, EncodeError> {
            unreachable!("asked about tags of a refused function")
        };
        let exn = vec![BlockArg::TryCallExn(0)];
        let disagree = Context::for_function(try_call_to([2, 3], |_| [exn.clone(), exn.clone()]));
        let err = call_sites(&disagree, never_asked).unwrap_err();
        assert!(matches!(
            err,
            EncodeError::TryCall(TryCallError::HandlersDisagree { .. })
        ));
        let agree = Context::for_function(try_call_to([2, 2], |_| [exn.clone(), exn.clone()]));
        let err = call_sites(&agree, never_asked).unwrap_err();
        assert_eq!(err, EncodeError::NotCompiled);
    }
}
