//! LSDAs for functions with `try_call`, so that the system unwinder enters
//! their handlers (on top of the `.eh_frame` emission of `unwind.rs`).
//!
//! With `ObjectBuilder::unwind_info` and a personality routine
//! (`ObjectBuilder::personality`), `define_function` also records each
//! function's handled calls, checked for landing-pad form while the
//! function and its code are together. `ObjectModule::define_lsda` then
//! says what the calls' tags mean and writes the LSDA into
//! `.gcc_except_table`; `finish` puts the function's FDE under a second
//! CIE that names the personality and points it at the LSDA.
//!
//! The tables are position-independent, as GCC writes them for PIC: FDE
//! LSDA pointers are `pcrel|sdata4`, and the personality and type entries
//! are reached through slots holding their addresses
//! (`indirect|pcrel|sdata4`), so they may live in another shared object.
//! The slots are anonymous read-only data objects of the module (in
//! `.data.rel.ro`), one per symbol and object: GCC shares one
//! `DW.ref.<symbol>` between objects in a weak COMDAT group, which
//! cranelift-module cannot declare, at the cost of a pointer per symbol and
//! object. ELF only: Mach-O and COFF objects are refused.

use crate::ObjectModule;
use cranelift_codegen::Context;
use cranelift_codegen::ir::ExceptionTag;
use cranelift_codegen::isa::unwind::lsda::{
    Action, CallSiteEncoding, EncodeError, HandledCalls, Lsda, LsdaEncoding, TypeEncoding,
    TypeEntry,
};
use cranelift_module::{
    DataDescription, DataId, FuncId, FuncOrDataId, Linkage, Module, ModuleError, ModuleResult,
};
use gimli::constants::{DW_EH_PE_indirect, DW_EH_PE_pcrel, DW_EH_PE_sdata4, DwEhPe};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// How the personality CIE points at the personality's slot.
pub(crate) const PERSONALITY_ENCODING: DwEhPe =
    DwEhPe(DW_EH_PE_indirect.0 | DW_EH_PE_pcrel.0 | DW_EH_PE_sdata4.0);

/// Why [`ObjectModule::define_lsda`] refused. Carried by
/// `ModuleError::Backend`, from which it can be downcast.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectLsdaError {
    /// LSDAs need `ObjectBuilder::unwind_info(true)` and
    /// `ObjectBuilder::personality`.
    NotEnabled,
    /// LSDAs are written for ELF objects only.
    UnsupportedFormat(target_lexicon::BinaryFormat),
    /// The function was not defined with `define_function` (with the
    /// `unwind_info` setting and System V unwind information) since the
    /// module records handled calls.
    NoFde(FuncId),
    /// The function already has its LSDA.
    AlreadyDefined(FuncId),
    /// The function's code is larger than an LSDA can describe.
    TooLarge(FuncId),
    /// A type entry's or the personality's symbol name holds a NUL byte.
    InvalidSymbol(String),
    /// A type entry's symbol is a thread-local data object, whose address
    /// no slot can hold.
    ThreadLocalSymbol(String),
    /// The encoder refused the call sites or the table.
    Encode(EncodeError),
}

impl fmt::Display for ObjectLsdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnabled => write!(
                f,
                "LSDAs need ObjectBuilder::unwind_info(true) and ObjectBuilder::personality"
            ),
            Self::UnsupportedFormat(format) => {
                write!(f, "LSDAs are written for ELF objects only, not {format}")
            }
            Self::NoFde(id) => write!(
                f,
                "{id} has no FDE an LSDA could hang on (not defined by define_function with \
                 unwind_info)"
            ),
            Self::AlreadyDefined(id) => write!(f, "{id} already has an LSDA"),
            Self::TooLarge(id) => write!(f, "{id} is too large for an LSDA"),
            Self::InvalidSymbol(name) => write!(f, "symbol {name:?} holds a NUL byte"),
            Self::ThreadLocalSymbol(name) => {
                write!(f, "{name} is thread-local: it cannot be a type entry")
            }
            Self::Encode(e) => write!(f, "LSDA: {e}"),
        }
    }
}

impl std::error::Error for ObjectLsdaError {}

impl From<EncodeError> for ObjectLsdaError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl From<ObjectLsdaError> for ModuleError {
    fn from(e: ObjectLsdaError) -> Self {
        ModuleError::Backend(anyhow::Error::new(e))
    }
}

/// The handled calls and LSDA slots of an object being built.
pub(crate) struct LsdaTables {
    personality: Option<String>,
    functions: BTreeMap<FuncId, FunctionLsda>,
    /// The slot of each symbol, by the symbol's name.
    slots: HashMap<String, DataId>,
}

/// Where a function with an FDE stands.
enum FunctionLsda {
    /// Its handled calls (`None` if it has none), or why they cannot have
    /// an LSDA (given by `define_lsda`: `define_function` stays as it is
    /// without one).
    Recorded(Result<Option<HandledCalls>, ObjectLsdaError>),
    /// `define_lsda` gave it its LSDA, or found it needs none.
    Defined,
}

impl LsdaTables {
    pub(crate) fn new(personality: Option<String>) -> Self {
        Self {
            personality,
            functions: BTreeMap::new(),
            slots: HashMap::new(),
        }
    }

    /// Record the handled calls of `id`, which `ctx` just compiled and
    /// which got an FDE, if LSDAs are on. A `try_call` whose handlers do
    /// not share one landing pad is recorded as such, for `define_lsda` to
    /// report.
    pub(crate) fn add_function(&mut self, id: FuncId, ctx: &Context) {
        if self.personality.is_none() {
            return;
        }
        let calls = match HandledCalls::new(ctx) {
            Ok(calls) => Ok(calls.any_handled().then_some(calls)),
            Err(EncodeError::DoesNotFit { .. }) => Err(ObjectLsdaError::TooLarge(id)),
            Err(e) => Err(ObjectLsdaError::Encode(e)),
        };
        self.functions.insert(id, FunctionLsda::Recorded(calls));
    }
}

impl ObjectModule {
    /// Give `id`, defined by [`Module::define_function`], an LSDA in
    /// `.gcc_except_table`, which [`ObjectModule::finish`] points its FDE
    /// at, under a CIE naming [`ObjectBuilder::personality`] (needs
    /// [`ObjectBuilder::unwind_info`] and the `unwind_info` setting; ELF
    /// only). `actions_of` says what each handled call's tags do, over the
    /// type table `types`. The personality and each type entry's symbol
    /// are reached through a slot holding the symbol's address, anonymous
    /// read-only data this module defines once per symbol. A symbol the
    /// module has not declared is declared as imported data: declare it
    /// before if the module declares it otherwise (as a function, or
    /// thread-local). A function without handled calls needs none.
    /// Refusals are [`ObjectLsdaError`]s in `ModuleError::Backend`, as are
    /// `actions_of`'s own errors.
    ///
    /// [`Module::define_function`]: cranelift_module::Module::define_function
    /// [`ObjectBuilder::personality`]: crate::ObjectBuilder::personality
    /// [`ObjectBuilder::unwind_info`]: crate::ObjectBuilder::unwind_info
    pub fn define_lsda<E: Into<anyhow::Error>>(
        &mut self,
        id: FuncId,
        types: &[TypeEntry],
        actions_of: impl FnMut(&[Option<ExceptionTag>]) -> Result<Vec<Action>, E>,
    ) -> ModuleResult<()> {
        let format = self.isa().triple().binary_format;
        let Some(personality) = self.lsdas.personality.clone() else {
            return Err(ObjectLsdaError::NotEnabled.into());
        };
        if self.unwind.is_none() {
            return Err(ObjectLsdaError::NotEnabled.into());
        }
        if format != target_lexicon::BinaryFormat::Elf {
            return Err(ObjectLsdaError::UnsupportedFormat(format).into());
        }
        let calls = match self.lsdas.functions.get(&id) {
            None => return Err(ObjectLsdaError::NoFde(id).into()),
            Some(FunctionLsda::Defined) => return Err(ObjectLsdaError::AlreadyDefined(id).into()),
            Some(FunctionLsda::Recorded(Err(e))) => return Err(e.clone().into()),
            Some(FunctionLsda::Recorded(Ok(calls))) => calls.as_ref(),
        };
        let lsda = match calls {
            None => None,
            Some(calls) => {
                let sites = calls
                    .call_sites(actions_of)
                    .map_err(|e| ModuleError::Backend(e.into()))?;
                let encoding =
                    LsdaEncoding::new(CallSiteEncoding::Uleb128, TypeEncoding::IndirectPcRelSdata4);
                let address_size = self.isa().pointer_bytes();
                Lsda::new(&sites, calls.code_len(), types, encoding, address_size)
                    .map_err(ObjectLsdaError::from)?
            }
        };
        if let Some(lsda) = lsda {
            let type_names: Vec<&str> = lsda
                .type_entries()
                .iter()
                .filter_map(|entry| match entry {
                    TypeEntry::Symbol { name, .. } => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            // Checked before any slot is defined, so that a refused LSDA
            // leaves nothing behind.
            for name in type_names.iter().chain([&personality.as_str()]) {
                self.check_slot_target(name)?;
            }
            // Nothing below fails for a name that passed the check: the
            // slots are new anonymous data, their targets declared or
            // imported under a valid name.
            let personality_slot = self.slot_symbol(&personality)?;
            let mut slots = HashMap::new();
            for name in type_names {
                slots.insert(name, self.slot_symbol(name)?);
            }
            let function = self.functions[id]
                .expect("a defined function has a symbol")
                .0;
            self.unwind
                .as_mut()
                .expect("checked above")
                .add_lsda(function, &lsda, personality_slot, |name| {
                    slots.get(name).copied()
                })
                .map_err(ObjectLsdaError::from)?;
        }
        self.lsdas.functions.insert(id, FunctionLsda::Defined);
        Ok(())
    }

    /// Refuse a symbol no slot can point at.
    fn check_slot_target(&self, name: &str) -> ModuleResult<()> {
        if name.contains('\0') {
            return Err(ObjectLsdaError::InvalidSymbol(name.into()).into());
        }
        if let Some(FuncOrDataId::Data(data)) = self.declarations().get_name(name)
            && self.declarations().get_data_decl(data).tls
        {
            return Err(ObjectLsdaError::ThreadLocalSymbol(name.into()).into());
        }
        Ok(())
    }

    /// The symbol of the slot holding `name`'s address, defined on first
    /// use.
    fn slot_symbol(&mut self, name: &str) -> ModuleResult<object::write::SymbolId> {
        let slot = match self.lsdas.slots.get(name) {
            Some(&slot) => slot,
            None => {
                let slot = self.declare_anonymous_data(false, false)?;
                let mut description = DataDescription::new();
                let size = self.isa().pointer_bytes();
                // Bytes, not zeroes: a `.bss` slot would drop its relocation.
                description.define(vec![0; usize::from(size)].into_boxed_slice());
                description.set_align(u64::from(size));
                match self.declarations().get_name(name) {
                    Some(FuncOrDataId::Func(func)) => {
                        let func = self.declare_func_in_data(func, &mut description);
                        description.write_function_addr(0, func);
                    }
                    Some(FuncOrDataId::Data(data)) => {
                        let data = self.declare_data_in_data(data, &mut description);
                        description.write_data_addr(0, data, 0);
                    }
                    None => {
                        let data = self.declare_data(name, Linkage::Import, false, false)?;
                        let data = self.declare_data_in_data(data, &mut description);
                        description.write_data_addr(0, data, 0);
                    }
                }
                self.define_data(slot, &description)?;
                self.lsdas.slots.insert(name.into(), slot);
                slot
            }
        };
        Ok(self.data_objects[slot]
            .expect("a declared data object has a symbol")
            .0)
    }
}
