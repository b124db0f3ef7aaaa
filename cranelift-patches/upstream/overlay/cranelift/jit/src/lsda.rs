//! LSDAs for JIT code, so that the system unwinder enters `try_call`
//! handlers (on top of the unwind registration of `unwind.rs`).
//!
//! With registration on and a personality routine
//! (`JITBuilder::personality`), `define_function` also records each
//! function's handled calls, checked for landing-pad form while the
//! function and its code are together. `JITModule::define_lsda` then says
//! what the calls' tags mean and writes the LSDA at once, with absolute
//! addresses (`DW_EH_PE_absptr`): the personality and the type entries as
//! the module resolves them. The next `finalize_definitions` registers its
//! functions' FDEs under a second CIE that names the personality, each
//! pointing at its LSDA; functions without one keep the plain CIE. Nothing
//! about LSDAs can fail there.

use core::fmt;
use cranelift_codegen::Context;
use cranelift_codegen::gimli::RunTimeEndian;
use cranelift_codegen::gimli::constants::DW_EH_PE_absptr;
use cranelift_codegen::gimli::write::{
    Address, CieId, CommonInformationEntry, EndianVec, FrameDescriptionEntry, FrameTable,
};
use cranelift_codegen::ir::ExceptionTag;
use cranelift_codegen::isa::unwind::lsda::{
    Action, EncodeError, HandledCalls, Lsda, LsdaEncoding, TypeEntry,
};
use cranelift_module::{FuncId, ModuleError, ModuleResult};
use std::boxed::Box;
use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

/// Why [`JITModule::define_lsda`](crate::JITModule::define_lsda) refused.
/// Carried by `ModuleError::Backend`, from which it can be downcast.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JitLsdaError {
    /// LSDAs need `JITBuilder::register_unwind_info(true)` on a platform
    /// that registers, and `JITBuilder::personality`.
    NotEnabled,
    /// The personality routine's symbol was not found.
    PersonalityNotFound(String),
    /// The function was not defined with `define_function` (with the
    /// `unwind_info` setting and System V unwind information) since the
    /// module records handled calls, or is already finalized.
    NoFde(FuncId),
    /// The function already has its LSDA.
    AlreadyDefined(FuncId),
    /// The function's code is larger than an LSDA can describe.
    TooLarge(FuncId),
    /// A symbol names a function or data object this module defines but
    /// has not defined yet.
    NotYetDefined(String),
    /// The encoder refused the call sites or the table.
    Encode(EncodeError),
}

impl fmt::Display for JitLsdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnabled => write!(
                f,
                "LSDAs need JITBuilder::register_unwind_info(true) and JITBuilder::personality"
            ),
            Self::PersonalityNotFound(name) => {
                write!(f, "personality routine {name} not found")
            }
            Self::NoFde(id) => write!(
                f,
                "{id} gets no FDE an LSDA could hang on (not defined by define_function with \
                 unwind_info, or already finalized)"
            ),
            Self::AlreadyDefined(id) => write!(f, "{id} already has an LSDA"),
            Self::TooLarge(id) => write!(f, "{id} is too large for an LSDA"),
            Self::NotYetDefined(name) => write!(
                f,
                "{name} is defined by this module but not yet: define it before define_lsda"
            ),
            Self::Encode(e) => write!(f, "LSDA: {e}"),
        }
    }
}

impl core::error::Error for JitLsdaError {}

impl From<EncodeError> for JitLsdaError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl From<JitLsdaError> for ModuleError {
    fn from(e: JitLsdaError) -> Self {
        ModuleError::Backend(anyhow::Error::new(e))
    }
}

/// The handled calls and LSDAs of defined functions, until they are
/// registered.
pub(crate) struct LsdaTables {
    enabled: bool,
    personality: Option<String>,
    personality_address: Option<u64>,
    /// A function's handled calls, or why they cannot have an LSDA (given
    /// by `define_lsda`: `define_function` stays as it is without one).
    recorded: BTreeMap<FuncId, Result<HandledCalls, JitLsdaError>>,
    written: BTreeMap<FuncId, Box<[u8]>>,
}

impl LsdaTables {
    pub(crate) fn new(registered: bool, personality: Option<String>) -> Self {
        Self {
            enabled: registered && personality.is_some(),
            personality,
            personality_address: None,
            recorded: BTreeMap::new(),
            written: BTreeMap::new(),
        }
    }

    /// The handled calls of `id`, which `ctx` just compiled, if LSDAs are
    /// on and it gets an FDE. A `try_call` whose handlers do not share one
    /// landing pad is recorded as such, for `define_lsda` to report.
    pub(crate) fn handled_calls(
        &self,
        id: FuncId,
        ctx: &Context,
        gets_fde: bool,
    ) -> Option<Result<HandledCalls, JitLsdaError>> {
        if !self.enabled || !gets_fde {
            return None;
        }
        Some(HandledCalls::new(ctx).map_err(|e| match e {
            EncodeError::DoesNotFit { .. } => JitLsdaError::TooLarge(id),
            e => JitLsdaError::Encode(e),
        }))
    }

    /// Record `calls` for `id`, now defined.
    pub(crate) fn add_function(
        &mut self,
        id: FuncId,
        calls: Option<Result<HandledCalls, JitLsdaError>>,
    ) {
        if let Some(calls) = calls {
            self.recorded.insert(id, calls);
        }
    }

    /// Lay out and write `id`'s LSDA: `actions_of` gives each handled
    /// call's chain over `types`, whose symbols (and the personality's)
    /// `resolve` turns into addresses.
    pub(crate) fn define<E: Into<anyhow::Error>>(
        &mut self,
        id: FuncId,
        address_size: u8,
        types: &[TypeEntry],
        actions_of: impl FnMut(&[Option<ExceptionTag>]) -> Result<Vec<Action>, E>,
        resolve: impl Fn(&str) -> Option<*const u8>,
    ) -> ModuleResult<()> {
        if !self.enabled {
            return Err(JitLsdaError::NotEnabled.into());
        }
        if self.written.contains_key(&id) {
            return Err(JitLsdaError::AlreadyDefined(id).into());
        }
        let calls = match self.recorded.get(&id) {
            None => return Err(JitLsdaError::NoFde(id).into()),
            Some(Err(e)) => return Err(e.clone().into()),
            Some(Ok(calls)) => calls,
        };
        if self.personality_address.is_none() {
            let name = self.personality.clone().unwrap_or_default();
            let address = resolve(&name).ok_or(JitLsdaError::PersonalityNotFound(name))?;
            self.personality_address = Some(address as u64);
        }
        let sites = calls
            .call_sites(actions_of)
            .map_err(|e| ModuleError::Backend(e.into()))?;
        let laid_out = Lsda::new(
            &sites,
            calls.code_len(),
            types,
            LsdaEncoding::jit(),
            address_size,
        )
        .map_err(JitLsdaError::from)?;
        let bytes = match laid_out {
            Some(lsda) => {
                // JIT code runs here: the host's byte order.
                let mut out = EndianVec::new(RunTimeEndian::default());
                lsda.write(&mut out, |symbol| {
                    resolve(symbol).map(|address| Address::Constant(address as u64))
                })
                .map_err(JitLsdaError::from)?;
                out.into_vec().into_boxed_slice()
            }
            // No handled call: an empty LSDA marks the function done.
            None => Box::default(),
        };
        self.written.insert(id, bytes);
        Ok(())
    }

    /// For one registration: add the personality CIE (a copy of `cie`
    /// naming it) to `table` if a function has an LSDA, and take the LSDAs.
    pub(crate) fn take(
        &mut self,
        table: &mut FrameTable,
        cie: &CommonInformationEntry,
    ) -> WrittenLsdas {
        let lsdas: BTreeMap<FuncId, Box<[u8]>> = core::mem::take(&mut self.written)
            .into_iter()
            .filter(|(_, bytes)| !bytes.is_empty())
            .collect();
        let personality_cie = match self.personality_address {
            Some(address) if !lsdas.is_empty() => {
                let mut personality_cie = cie.clone();
                personality_cie.personality = Some((DW_EH_PE_absptr, Address::Constant(address)));
                personality_cie.lsda_encoding = Some(DW_EH_PE_absptr);
                Some(table.add_cie(personality_cie))
            }
            _ => None,
        };
        WrittenLsdas {
            lsdas,
            personality_cie,
        }
    }

    /// Forget what was recorded for a function now registered (or that
    /// gets no FDE after all).
    pub(crate) fn finalized(&mut self, id: FuncId) {
        self.recorded.remove(&id);
        self.written.remove(&id);
    }
}

/// The LSDAs of one registration.
pub(crate) struct WrittenLsdas {
    lsdas: BTreeMap<FuncId, Box<[u8]>>,
    personality_cie: Option<CieId>,
}

impl WrittenLsdas {
    /// The CIE for `id`'s FDE, `plain` unless it has an LSDA, which `fde`
    /// then points at.
    pub(crate) fn place(
        &self,
        id: FuncId,
        plain: CieId,
        mut fde: FrameDescriptionEntry,
    ) -> (CieId, FrameDescriptionEntry) {
        match (self.lsdas.get(&id), self.personality_cie) {
            (Some(bytes), Some(cie)) => {
                fde.lsda = Some(Address::Constant(bytes.as_ptr() as u64));
                (cie, fde)
            }
            _ => (plain, fde),
        }
    }

    /// The memory to keep as long as the registration.
    pub(crate) fn into_memory(self) -> Vec<Box<[u8]>> {
        self.lsdas.into_values().collect()
    }
}

impl crate::JITModule {
    /// Give `id`, defined by [`Module::define_function`] and not yet
    /// finalized, an LSDA, registered with its FDE by the next
    /// [`Self::finalize_definitions`] under [`JITBuilder::personality`]
    /// (needs [`JITBuilder::register_unwind_info`] and the `unwind_info`
    /// setting). `actions_of` says what each handled call's tags do, over
    /// the type table `types`; symbols, every type entry's and the
    /// personality's, are resolved now: this module's functions and data
    /// (defined before, else [`JitLsdaError::NotYetDefined`]), then the
    /// builder's symbol lookups. A function without handled calls needs
    /// none. Refusals are [`JitLsdaError`]s in `ModuleError::Backend`, as
    /// are `actions_of`'s own errors.
    ///
    /// [`Module::define_function`]: cranelift_module::Module::define_function
    /// [`JITBuilder::personality`]: crate::JITBuilder::personality
    /// [`JITBuilder::register_unwind_info`]: crate::JITBuilder::register_unwind_info
    pub fn define_lsda<E: Into<anyhow::Error>>(
        &mut self,
        id: FuncId,
        types: &[TypeEntry],
        actions_of: impl FnMut(&[Option<ExceptionTag>]) -> Result<Vec<Action>, E>,
    ) -> ModuleResult<()> {
        use cranelift_module::Module;
        let address_size = self.isa().pointer_bytes();
        // Resolved first: the lookups go through the module, the tables
        // are part of it.
        let names = types
            .iter()
            .filter_map(|entry| match entry {
                TypeEntry::Symbol { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .chain(self.unwind.lsdas.personality.as_deref());
        let mut resolved = BTreeMap::new();
        for name in names {
            if let Some(address) = self.resolve_symbol(name)? {
                resolved.insert(name.to_string(), address);
            }
        }
        self.unwind
            .lsdas
            .define(id, address_size, types, actions_of, |name| {
                resolved.get(name).copied()
            })
    }
}
