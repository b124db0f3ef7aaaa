//! JIT tables registered in loader-known arenas (`cranelift-jit-arenas`):
//! a [`FrameRegistrar`] over [`ArenaTables`], so that [`JitTables`] and
//! [`crate::LsdaJitModule`] can put a module's `.eh_frame` where libgcc and
//! LLVM libunwind find it as they find a shared library's.

use crate::{FrameRegistrar, JitTables, RegistrationError, RegistrationResult};
use cranelift_jit_arenas::ArenaTables;
use std::boxed::Box;

struct ArenaRegistrar(ArenaTables);

impl FrameRegistrar for ArenaRegistrar {
    unsafe fn register(&self, eh_frame: &[u8]) -> RegistrationResult<Box<dyn Send>> {
        // SAFETY: forwarded from the caller, under the same contract.
        let registration = unsafe { self.0.register(eh_frame) }
            .map_err(|error| RegistrationError::Registrar(Box::new(error)))?;
        Ok(Box::new(registration))
    }
}

/// Tables for a module whose memory provider is the `ArenaMemory` that
/// `tables` came with (`LoaderArenas::memory`): registered in its arenas.
pub fn jit_tables_in_arenas(personality: *const u8, tables: ArenaTables) -> JitTables {
    JitTables::with_registrar(personality, Box::new(ArenaRegistrar(tables)))
}
