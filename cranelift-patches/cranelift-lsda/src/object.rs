//! [`LsdaObjectModule`]: an `ObjectModule` whose functions get LSDAs and a
//! personality, through [`crate::ObjectTables`].

use crate::module::{LandingPads, lsda_module_methods};
use crate::{ClausePolicy, LsdaEncoding, ObjectTables, OutputResult};
use cranelift_module::Module;
use cranelift_object::{ObjectBuilder, ObjectModule, ObjectProduct};

/// An `ObjectModule` whose functions get LSDAs and a personality: each
/// function is put into landing-pad form and its tables recorded as it is
/// defined, and both sections are written at [`LsdaObjectModule::finish`].
pub struct LsdaObjectModule {
    module: ObjectModule,
    tables: ObjectTables,
    policy: ClausePolicy,
    landing_pads: LandingPads,
}

impl LsdaObjectModule {
    /// A module built by `builder`, whose functions with handlers use the
    /// personality named `personality` under `policy`. It writes the whole
    /// `.eh_frame`, so `builder`'s own `unwind_info` is turned off.
    pub fn new(
        mut builder: ObjectBuilder,
        personality: &str,
        policy: ClausePolicy,
        landing_pads: LandingPads,
    ) -> OutputResult<Self> {
        builder.unwind_info(false);
        let module = ObjectModule::new(builder);
        Ok(Self {
            tables: ObjectTables::new(module.isa(), personality)?,
            module,
            policy,
            landing_pads,
        })
    }

    /// Use other LSDA encodings (see [`ObjectTables::with_lsda_encoding`]).
    pub fn with_lsda_encoding(mut self, encoding: LsdaEncoding) -> OutputResult<Self> {
        self.tables = self.tables.with_lsda_encoding(encoding)?;
        Ok(self)
    }

    /// The clause policy, with the clause sets legalization interned.
    pub fn policy(&self) -> &ClausePolicy {
        &self.policy
    }

    /// Finish the object and write its exception tables.
    pub fn finish(self) -> OutputResult<ObjectProduct> {
        let mut product = self.module.finish();
        self.tables.finish(&mut product)?;
        Ok(product)
    }
}

impl Module for LsdaObjectModule {
    lsda_module_methods!();
}
