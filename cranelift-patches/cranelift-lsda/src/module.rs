//! What the object and JIT modules share: how a function is put into
//! landing-pad form before it is compiled, and the `Module` methods they
//! forward unchanged to the module they wrap.

use crate::{ClausePolicy, LsdaResult, PreparedFunction, check_landing_pad_form};
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::TargetIsa;

/// How a module puts each function's `try_call`s into landing-pad form
/// before compiling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LandingPads {
    /// The IR is already in landing-pad form; anything else is an error.
    Check,
    /// Rewrite every `try_call` into one clause-set item and a shared pad
    /// that dispatches on the selector ([`crate::legalize_landing_pads`]).
    #[cfg(feature = "legalize")]
    Legalize,
}

/// Put `func` into landing-pad form as `mode` says.
pub fn prepare_function(
    func: &mut Function,
    isa: &dyn TargetIsa,
    policy: &mut ClausePolicy,
    mode: LandingPads,
) -> LsdaResult<PreparedFunction> {
    match mode {
        LandingPads::Check => check_landing_pad_form(func, isa, policy),
        #[cfg(feature = "legalize")]
        LandingPads::Legalize => crate::legalize_landing_pads(func, isa, policy),
    }
}

/// Turn on the `unwind_lsda` setting of the patched cranelift-codegen
/// (`--cfg cranelift_lsda_upstream`), under which compilation checks that
/// every `try_call` can have an LSDA. Released Cranelift has no such
/// setting: there this does nothing.
pub fn enable_unwind_lsda(
    flags: &mut cranelift_codegen::settings::Builder,
) -> Result<(), cranelift_codegen::settings::SetError> {
    #[cfg(cranelift_lsda_upstream)]
    return cranelift_codegen::settings::Configurable::enable(flags, "unwind_lsda");
    #[cfg(not(cranelift_lsda_upstream))]
    {
        let _ = flags;
        Ok(())
    }
}

/// What a wrapper's `define_function` does: put `ctx.func` into
/// landing-pad form, define it in `module`, and give `record` the context,
/// which then holds the function with its compiled code.
#[cfg(any(feature = "object", feature = "jit"))]
// The `Module::define_function_with_control_plane` signature it implements.
#[allow(clippy::result_large_err)]
pub(crate) fn define_in_landing_pad_form<M: cranelift_module::Module, E>(
    module: &mut M,
    policy: &mut ClausePolicy,
    mode: LandingPads,
    func_id: cranelift_module::FuncId,
    ctx: &mut cranelift_codegen::Context,
    ctrl_plane: &mut cranelift_codegen::control::ControlPlane,
    record: impl FnOnce(
        &dyn TargetIsa,
        &cranelift_codegen::Context,
        &ClausePolicy,
        &PreparedFunction,
    ) -> Result<Option<usize>, E>,
) -> cranelift_module::ModuleResult<()>
where
    E: From<crate::LsdaError> + Into<cranelift_module::ModuleError>,
{
    let lsda_error = |e: crate::LsdaError| -> cranelift_module::ModuleError { E::from(e).into() };
    let prepared =
        prepare_function(&mut ctx.func, module.isa(), policy, mode).map_err(lsda_error)?;
    module.define_function_with_control_plane(func_id, ctx, ctrl_plane)?;
    record(module.isa(), ctx, policy, &prepared).map_err(Into::into)?;
    Ok(())
}

/// The `Module` implementation of a wrapper with the fields `module` (the
/// wrapped module), `landing_pads`, `tables` (its recorder) and `policy`: every method forwards to `module`, but
/// `define_function`, which also puts the function into landing-pad form
/// and records its tables; `$error` is the wrapper's error type.
#[cfg(any(feature = "object", feature = "jit"))]
macro_rules! lsda_module_methods {
    ($error:ty) => {
        fn define_function_with_control_plane(
            &mut self,
            func_id: cranelift_module::FuncId,
            ctx: &mut cranelift_codegen::Context,
            ctrl_plane: &mut cranelift_codegen::control::ControlPlane,
        ) -> cranelift_module::ModuleResult<()> {
            let tables = &mut self.tables;
            $crate::module::define_in_landing_pad_form(
                &mut self.module,
                &mut self.policy,
                self.landing_pads,
                func_id,
                ctx,
                ctrl_plane,
                |isa, ctx, policy, prepared| {
                    tables.add_function(isa, func_id, ctx, policy, prepared)
                },
            )
        }

        fn isa(&self) -> &dyn cranelift_codegen::isa::TargetIsa {
            self.module.isa()
        }

        fn declarations(&self) -> &cranelift_module::ModuleDeclarations {
            self.module.declarations()
        }

        fn declare_function(
            &mut self,
            name: &str,
            linkage: cranelift_module::Linkage,
            signature: &cranelift_codegen::ir::Signature,
        ) -> cranelift_module::ModuleResult<cranelift_module::FuncId> {
            self.module.declare_function(name, linkage, signature)
        }

        fn declare_anonymous_function(
            &mut self,
            signature: &cranelift_codegen::ir::Signature,
        ) -> cranelift_module::ModuleResult<cranelift_module::FuncId> {
            self.module.declare_anonymous_function(signature)
        }

        fn declare_data(
            &mut self,
            name: &str,
            linkage: cranelift_module::Linkage,
            writable: bool,
            tls: bool,
        ) -> cranelift_module::ModuleResult<cranelift_module::DataId> {
            self.module.declare_data(name, linkage, writable, tls)
        }

        fn declare_anonymous_data(
            &mut self,
            writable: bool,
            tls: bool,
        ) -> cranelift_module::ModuleResult<cranelift_module::DataId> {
            self.module.declare_anonymous_data(writable, tls)
        }

        // Functions defined from bytes carry no unwind info, as in
        // cranelift-object's own `.eh_frame`: they get no FDE.
        fn define_function_bytes(
            &mut self,
            func_id: cranelift_module::FuncId,
            alignment: u64,
            bytes: &[u8],
            relocs: &[cranelift_module::ModuleReloc],
        ) -> cranelift_module::ModuleResult<()> {
            self.module
                .define_function_bytes(func_id, alignment, bytes, relocs)
        }

        fn define_data(
            &mut self,
            data_id: cranelift_module::DataId,
            data: &cranelift_module::DataDescription,
        ) -> cranelift_module::ModuleResult<()> {
            self.module.define_data(data_id, data)
        }
    };
}

#[cfg(any(feature = "object", feature = "jit"))]
pub(crate) use lsda_module_methods;
