//! Whole-file compilation into a `cranelift-module` Module: every function
//! of a CLIF file is declared and defined in an [`LsdaObjectModule`] or
//! [`LsdaJitModule`], which legalize it into landing-pad form and record
//! its exception tables as it is defined; then the module is emitted as an
//! object or run in the JIT against the C++ runtime of `eh-test-support`.

use crate::{EhFile, ToolError};
use cranelift_codegen::Context;
use cranelift_codegen::ir::{ExternalName, Function, UserExternalName, UserFuncName};
use cranelift_codegen::isa::{self, CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::JITBuilder;
use cranelift_lsda::{
    ClausePolicy, LandingPads, LsdaJitModule, LsdaObjectModule, OutputError, RegistrationError,
};
use cranelift_module::{FuncId, Linkage, Module, ModuleError, default_libcall_names};
use cranelift_object::ObjectBuilder;
use eh_test_support::{RunOutcome, call_through_cxx, resolve_symbol, runtime_symbols};
use std::collections::HashMap;

/// The name of a function as written in CLIF, without the `%`.
pub fn clif_name(func: &Function) -> String {
    match &func.name {
        UserFuncName::Testcase(t) => t.to_string().trim_start_matches('%').to_string(),
        UserFuncName::User(u) => format!("u{}:{}", u.namespace, u.index),
    }
}

/// A function defined in a module.
pub struct DefinedFunction {
    /// Its CLIF name.
    pub name: String,
    /// Its id in the module.
    pub id: FuncId,
    /// Whether it is `(i64) -> i64 system_v`, so that `run` can call it.
    pub runnable: bool,
}

/// A module error as the user should read it: the crate's own error when
/// the LSDA layer raised it, Cranelift's pretty-printed one when it failed
/// to compile `func`.
fn module_error(name: &str, func: &Function, err: ModuleError) -> ToolError {
    match err {
        ModuleError::Backend(e) => match e.downcast::<OutputError>() {
            Ok(error) => output_error(format!("%{name}"), error),
            Err(e) => match e.downcast::<RegistrationError>() {
                Ok(error) => registration_error(format!("%{name}"), error),
                Err(other) => ToolError::Codegen(ModuleError::Backend(other).to_string()),
            },
        },
        ModuleError::Compilation(err) => {
            ToolError::Codegen(cranelift_codegen::print_errors::pretty_error(func, err))
        }
        other => ToolError::Codegen(other.to_string()),
    }
}

/// Declare and define every function of `file` in `module`, whose
/// `define_function` legalizes it and records its tables.
pub fn define_all<M: Module>(
    module: &mut M,
    file: &EhFile,
) -> Result<Vec<DefinedFunction>, ToolError> {
    define_all_then(module, file, |_, _, _| Ok(()))
}

/// As [`define_all`], giving each function's index in `file`, id and
/// context (the function with its compiled code) to `defined` right after
/// it is defined: for embedders that record tables themselves around a
/// plain module.
pub fn define_all_then<M: Module>(
    module: &mut M,
    file: &EhFile,
    mut defined_then: impl FnMut(usize, FuncId, &Context) -> Result<(), ToolError>,
) -> Result<Vec<DefinedFunction>, ToolError> {
    let codegen = |e: ModuleError| ToolError::Codegen(e.to_string());
    let mut ids = HashMap::new();
    for func in &file.functions {
        let name = clif_name(func);
        let id = module
            .declare_function(&name, Linkage::Export, &func.signature)
            .map_err(codegen)?;
        ids.insert(name, id);
    }

    let mut defined = Vec::new();
    let mut ctx = module.make_context();
    for (index, func) in file.functions.iter().enumerate() {
        let name = clif_name(func);
        let id = ids[&name];
        let mut func = func.clone();
        func.name = UserFuncName::user(0, id.as_u32());
        let refs: Vec<_> = func.dfg.ext_funcs.keys().collect();
        for fref in refs {
            let ext = &func.dfg.ext_funcs[fref];
            // The reader fills gaps in `fnN` numbering with placeholders.
            let ExternalName::TestCase(callee) = &ext.name else {
                continue;
            };
            if !func.dfg.signatures.is_valid(ext.signature) {
                continue;
            }
            let callee = callee.to_string().trim_start_matches('%').to_string();
            let callee_id = match ids.get(&callee) {
                Some(&id) => id,
                None => {
                    let sig = func.dfg.signatures[func.dfg.ext_funcs[fref].signature].clone();
                    let id = module
                        .declare_function(&callee, Linkage::Import, &sig)
                        .map_err(codegen)?;
                    ids.insert(callee.clone(), id);
                    id
                }
            };
            let user =
                func.declare_imported_user_function(UserExternalName::new(0, callee_id.as_u32()));
            func.dfg.ext_funcs[fref].name = ExternalName::User(user);
        }

        let sig = &func.signature;
        let i64_only = |params: &[cranelift_codegen::ir::AbiParam]| {
            params.len() == 1 && params[0].value_type == cranelift_codegen::ir::types::I64
        };
        let runnable =
            sig.call_conv == CallConv::SystemV && i64_only(&sig.params) && i64_only(&sig.returns);
        ctx.func = func;
        module
            .define_function(id, &mut ctx)
            .map_err(|e| module_error(&name, &ctx.func, e))?;
        if ctx.compiled_code().is_none() {
            return Err(ToolError::Codegen(format!(
                "%{name}: defined but not compiled"
            )));
        }
        defined_then(index, id, &ctx)?;
        module.clear_context(&mut ctx);
        defined.push(DefinedFunction { name, id, runnable });
    }
    Ok(defined)
}

/// `flags` for a module with exception tables: `unwind_lsda` on where
/// Cranelift has it ([`cranelift_lsda::enable_unwind_lsda`]), and `is_pic`
/// when `pic`, for objects that may go into shared libraries.
fn tables_flags(flags: &settings::Flags, pic: bool) -> Result<settings::Flags, ToolError> {
    let setting = |e: settings::SetError| ToolError::Codegen(e.to_string());
    let mut builder = settings::builder();
    for value in flags.iter() {
        builder
            .set(value.name, &value.value_string())
            .map_err(setting)?;
    }
    if pic {
        builder.enable("is_pic").map_err(setting)?;
    }
    cranelift_lsda::enable_unwind_lsda(&mut builder).map_err(setting)?;
    Ok(settings::Flags::new(builder))
}

/// The crate's error for the user: table errors as such, output ones apart.
fn output_error(function: String, error: OutputError) -> ToolError {
    match error {
        OutputError::Lsda(error) => ToolError::Lsda { function, error },
        error => ToolError::Output { function, error },
    }
}

/// As [`output_error`], for the JIT's registration.
fn registration_error(function: String, error: RegistrationError) -> ToolError {
    match error {
        RegistrationError::Lsda(error) => ToolError::Lsda { function, error },
        error => ToolError::Registration { function, error },
    }
}

fn module_output_error(error: OutputError) -> ToolError {
    output_error("module".into(), error)
}

/// Compile every function of `file` for `isa` into a relocatable object
/// whose functions with handlers use `personality`.
pub fn emit_object(
    file: &EhFile,
    isa: &OwnedTargetIsa,
    personality: &str,
) -> Result<Vec<u8>, ToolError> {
    let isa = object_isa(isa)?;
    let builder = ObjectBuilder::new(isa.clone(), "clif-eh", default_libcall_names())
        .map_err(|e| ToolError::Codegen(e.to_string()))?;
    let policy = file.policy.clone();
    let mut module = LsdaObjectModule::new(builder, personality, policy, LandingPads::Legalize)
        .map_err(module_output_error)?;
    define_all(&mut module, file)?;
    let product = module.finish().map_err(module_output_error)?;
    product
        .emit()
        .map_err(|e| ToolError::Codegen(format!("writing the object: {e}")))
}

/// `isa` as objects are compiled for: position-independent, with the
/// exception-table setting on where the crates have it.
pub fn object_isa(isa: &OwnedTargetIsa) -> Result<OwnedTargetIsa, ToolError> {
    isa::lookup(isa.triple().clone())
        .map_err(|e| ToolError::Codegen(e.to_string()))?
        .finish(tables_flags(isa.flags(), true)?)
        .map_err(|e| ToolError::Codegen(e.to_string()))
}

/// A JIT-compiled file, its tables registered.
pub struct JitFile {
    /// The module, with its registrations.
    pub module: LsdaJitModule,
    /// The functions.
    pub functions: Vec<DefinedFunction>,
}

/// JIT-compile every function of `file` for the host, with
/// `__gxx_personality_v0` as the personality, and register the tables.
pub fn jit_file(file: &EhFile, extra_symbols: &[(&str, *const u8)]) -> Result<JitFile, ToolError> {
    jit_file_placed(file, extra_symbols, None)
}

/// As [`jit_file`], with the code in `arenas` and the tables registered
/// there instead of with `__register_frame`.
pub fn jit_file_in_arenas(
    file: &EhFile,
    extra_symbols: &[(&str, *const u8)],
    arenas: &cranelift_lsda::LoaderArenas,
) -> Result<JitFile, ToolError> {
    jit_file_placed(file, extra_symbols, Some(arenas))
}

type Arenas<'a> = Option<&'a cranelift_lsda::LoaderArenas>;

fn jit_file_placed(
    file: &EhFile,
    extra_symbols: &[(&str, *const u8)],
    arenas: Arenas<'_>,
) -> Result<JitFile, ToolError> {
    let host = cranelift_native::builder().map_err(|e| ToolError::Codegen(e.to_string()))?;
    let arch = host.triple().architecture;
    let file_isa = file
        .isas
        .iter()
        .find(|i| i.triple().architecture == arch)
        .ok_or_else(|| {
            ToolError::Codegen(format!("the file has no `target` for this host ({arch})"))
        })?;
    let isa = host
        .finish(tables_flags(file_isa.flags(), false)?)
        .map_err(|e| ToolError::Codegen(e.to_string()))?;

    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, ptr) in runtime_symbols()
        .into_iter()
        .chain(extra_symbols.iter().copied())
    {
        builder.symbol(name, ptr);
    }
    let personality = resolve_symbol("__gxx_personality_v0")
        .ok_or_else(|| ToolError::Codegen("__gxx_personality_v0 is not loaded".into()))?;
    let policy: ClausePolicy = file.policy.clone();
    let resolve = Box::new(resolve_symbol);
    let mut module = match arenas {
        Some(arenas) => LsdaJitModule::in_arenas(
            builder,
            arenas,
            personality,
            policy,
            LandingPads::Legalize,
            resolve,
        ),
        None => LsdaJitModule::new(builder, personality, policy, LandingPads::Legalize, resolve)
            .map_err(|error| registration_error("module".into(), error))?,
    };
    let functions = define_all(&mut module, file)?;
    module
        .finalize_definitions()
        .map_err(|e| module_error("module", &Function::new(), e))?;
    Ok(JitFile { module, functions })
}

impl JitFile {
    /// The finalized code of function `name`.
    pub fn function_ptr(&self, name: &str) -> Option<*const u8> {
        let f = self.functions.iter().find(|f| f.name == name)?;
        Some(self.module.get_finalized_function(f.id))
    }

    /// Call the `(i64) -> i64` function `name` through the C++ runtime,
    /// which catches whatever escapes it.
    pub fn call(&self, name: &str, arg: i64) -> Result<RunOutcome, ToolError> {
        let f = self
            .functions
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| ToolError::Codegen(format!("no function %{name} in the file")))?;
        if !f.runnable {
            return Err(ToolError::Codegen(format!(
                "%{name} must have the signature (i64) -> i64 system_v to be run"
            )));
        }
        let code = self.module.get_finalized_function(f.id);
        // SAFETY: `code` is a finalized `(i64) -> i64 system_v` function of
        // a module that stays alive (and registered) for this call.
        Ok(unsafe { call_through_cxx(code, arg) })
    }
}
