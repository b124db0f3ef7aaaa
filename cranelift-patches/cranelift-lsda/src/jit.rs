//! [`LsdaJitModule`]: a `JITModule` whose functions get LSDAs and a
//! personality, registered with the process's unwinder when they are
//! finalized.
//!
//! `cranelift-jit` registers no unwind info by default, and never an LSDA
//! (the series' cranelift-jit patch makes plain FDEs opt-in, #5574): the
//! module records its tables in a [`crate::JitTables`] and owns the
//! registrations, so tables are deregistered before (never after) the code
//! is freed.

use crate::module::{LandingPads, lsda_module_methods};
use crate::{ClausePolicy, RegistrationResult, SymbolResolver};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Module, ModuleResult};

/// A `JITModule` whose functions get LSDAs and a personality, registered
/// with the process's unwinder when they are finalized.
pub struct LsdaJitModule {
    // Dropped first: tables are deregistered before anything else goes.
    registrations: alloc::vec::Vec<crate::Registration>,
    module: JITModule,
    tables: crate::JitTables,
    policy: ClausePolicy,
    landing_pads: LandingPads,
    resolve: SymbolResolver,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<LsdaJitModule>();
};

impl LsdaJitModule {
    /// A module built by `builder`, whose functions with handlers use the
    /// personality routine at `personality` under `policy`; `resolve` gives
    /// the addresses of type-entry symbols (e.g. C++ typeinfo).
    pub fn new(
        builder: JITBuilder,
        personality: *const u8,
        policy: ClausePolicy,
        landing_pads: LandingPads,
        resolve: SymbolResolver,
    ) -> RegistrationResult<Self> {
        Ok(Self {
            registrations: alloc::vec::Vec::new(),
            module: JITModule::new(builder),
            tables: crate::JitTables::new(personality),
            policy,
            landing_pads,
            resolve,
        })
    }

    /// As [`LsdaJitModule::new`], with the module's code placed in
    /// `arenas` and its tables registered there (`cranelift-jit-arenas`):
    /// lookups cost the same however many modules are alive. Replaces the
    /// builder's memory provider.
    pub fn in_arenas(
        mut builder: JITBuilder,
        arenas: &cranelift_jit_arenas::LoaderArenas,
        personality: *const u8,
        policy: ClausePolicy,
        landing_pads: LandingPads,
        resolve: SymbolResolver,
    ) -> Self {
        let (memory, tables) = arenas.memory();
        builder.memory_provider(alloc::boxed::Box::new(memory));
        Self {
            registrations: alloc::vec::Vec::new(),
            module: JITModule::new(builder),
            tables: crate::jit_tables_in_arenas(personality, tables),
            policy,
            landing_pads,
            resolve,
        }
    }

    /// The clause policy, with the clause sets legalization interned.
    pub fn policy(&self) -> &ClausePolicy {
        &self.policy
    }

    /// Finalize the functions defined so far and register their tables.
    // The signature of `JITModule::finalize_definitions`, which this wraps.
    #[allow(clippy::result_large_err)]
    pub fn finalize_definitions(&mut self) -> ModuleResult<()> {
        self.module.finalize_definitions()?;
        if let Some(registration) = self.tables.register(&self.module, &*self.resolve)? {
            self.registrations.push(registration);
        }
        Ok(())
    }

    /// The address of a finalized function.
    pub fn get_finalized_function(&self, func_id: FuncId) -> *const u8 {
        self.module.get_finalized_function(func_id)
    }

    /// Deregister the tables, then free the module's code and data.
    ///
    /// # Safety
    ///
    /// As for `JITModule::free_memory`: no pointer to the module's code or
    /// data may be used afterwards, and none of its functions may be running.
    pub unsafe fn free_memory(self) {
        let Self {
            registrations,
            module,
            ..
        } = self;
        drop(registrations);
        // SAFETY: forwarded from the caller; the tables that pointed into
        // the code are deregistered above.
        unsafe { module.free_memory() };
    }
}

impl Module for LsdaJitModule {
    lsda_module_methods!(crate::RegistrationError);
}
