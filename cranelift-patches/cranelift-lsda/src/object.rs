//! [`LsdaObjectModule`]: an `ObjectModule` whose functions get LSDAs and a
//! personality.
//!
//! It records each function's tables in a [`crate::ObjectTables`] of its
//! own and writes them at `finish`.

use crate::module::{LandingPads, lsda_module_methods};
use crate::{ClausePolicy, LsdaEncoding, OutputResult};
use cranelift_module::Module;
use cranelift_object::{ObjectBuilder, ObjectModule, ObjectProduct};

/// An `ObjectModule` whose functions get LSDAs and a personality: each
/// function is put into landing-pad form and its tables recorded as it is
/// defined, and both sections are written at [`LsdaObjectModule::finish`].
pub struct LsdaObjectModule {
    module: ObjectModule,
    tables: crate::ObjectTables,
    policy: ClausePolicy,
    landing_pads: LandingPads,
}

impl LsdaObjectModule {
    /// A module built by `builder`, whose functions with handlers use the
    /// personality named `personality` under `policy`, with the LSDA
    /// encodings of [`crate::ObjectTables::new`]. It writes the whole
    /// `.eh_frame`, so `builder`'s own `unwind_info` need not be turned off.
    pub fn new(
        builder: ObjectBuilder,
        personality: &str,
        policy: ClausePolicy,
        landing_pads: LandingPads,
    ) -> OutputResult<Self> {
        Self::build(builder, personality, policy, landing_pads, None)
    }

    /// As [`LsdaObjectModule::new`], with other LSDA encodings (see
    /// [`crate::ObjectTables::with_lsda_encoding`]).
    pub fn with_lsda_encoding(
        builder: ObjectBuilder,
        personality: &str,
        policy: ClausePolicy,
        landing_pads: LandingPads,
        encoding: LsdaEncoding,
    ) -> OutputResult<Self> {
        Self::build(builder, personality, policy, landing_pads, Some(encoding))
    }
    fn build(
        mut builder: ObjectBuilder,
        personality: &str,
        policy: ClausePolicy,
        landing_pads: LandingPads,
        encoding: Option<LsdaEncoding>,
    ) -> OutputResult<Self> {
        builder.unwind_info(false);
        let module = ObjectModule::new(builder);
        let mut tables = crate::ObjectTables::new(module.isa(), personality)?;
        if let Some(encoding) = encoding {
            tables = tables.with_lsda_encoding(encoding)?;
        }
        Ok(Self {
            tables,
            module,
            policy,
            landing_pads,
        })
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
    lsda_module_methods!(crate::OutputError);
}
