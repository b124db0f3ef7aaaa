//! Whole-file compilation into a `cranelift-module` Module: every function
//! of a CLIF file is declared, legalized, defined, and its exception tables
//! recorded; then the module is emitted as an object or run in the JIT
//! against the C++ runtime in `cxx/eh_runtime.cpp`.

use crate::{EhFile, ToolError};
use cranelift_codegen::Context;
use cranelift_codegen::ir::{ExternalName, Function, UserExternalName, UserFuncName};
use cranelift_codegen::isa::{self, CallConv, OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_lsda::{
    ClausePolicy, JitExceptionTables, JitModuleWithTables, LsdaResult, ObjectExceptionTables,
    PreparedFunction, legalize_landing_pads,
};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};
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
    /// Its type table and per-call report.
    pub prepared: PreparedFunction,
    /// Its calling convention and whether it is `(i64) -> i64`.
    pub runnable: bool,
}

/// Declare, legalize and define every function of `file` in `module`,
/// recording each one's tables with `record` (e.g. `add_function` of the
/// object or JIT tables) while its compiled code is still in the context.
pub fn define_all<M: Module>(
    module: &mut M,
    file: &EhFile,
    policy: &mut ClausePolicy,
    mut record: impl FnMut(
        &dyn TargetIsa,
        FuncId,
        &Context,
        &ClausePolicy,
        &PreparedFunction,
    ) -> LsdaResult<Option<usize>>,
) -> Result<Vec<DefinedFunction>, ToolError> {
    let codegen = |e: cranelift_module::ModuleError| ToolError::Codegen(e.to_string());
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
    for func in &file.functions {
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

        let prepared = legalize_landing_pads(&mut func, module.isa(), policy).map_err(|error| {
            ToolError::Lsda {
                function: format!("%{name}"),
                error,
            }
        })?;
        let runnable = func.signature.call_conv == CallConv::SystemV
            && func.signature.params.len() == 1
            && func.signature.returns.len() == 1
            && func.signature.params[0].value_type == cranelift_codegen::ir::types::I64
            && func.signature.returns[0].value_type == cranelift_codegen::ir::types::I64;
        ctx.func = func;
        module.define_function(id, &mut ctx).map_err(|e| match e {
            cranelift_module::ModuleError::Compilation(err) => ToolError::Codegen(
                cranelift_codegen::print_errors::pretty_error(&ctx.func, err),
            ),
            other => codegen(other),
        })?;
        record(module.isa(), id, &ctx, policy, &prepared).map_err(|error| ToolError::Lsda {
            function: format!("%{name}"),
            error,
        })?;
        module.clear_context(&mut ctx);
        defined.push(DefinedFunction {
            name,
            id,
            prepared,
            runnable,
        });
    }
    Ok(defined)
}

/// `isa` rebuilt with `is_pic` set, for objects that may go into shared
/// libraries.
pub fn pic_isa(isa: &OwnedTargetIsa) -> Result<OwnedTargetIsa, ToolError> {
    let mut flags = settings::builder();
    for value in isa.flags().iter() {
        flags
            .set(value.name, &value.value_string())
            .map_err(|e| ToolError::Codegen(e.to_string()))?;
    }
    flags
        .enable("is_pic")
        .map_err(|e| ToolError::Codegen(e.to_string()))?;
    isa::lookup(isa.triple().clone())
        .map_err(|e| ToolError::Codegen(e.to_string()))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| ToolError::Codegen(e.to_string()))
}

/// Compile every function of `file` for `isa` into a relocatable object
/// whose functions with handlers use `personality`.
pub fn emit_object(
    file: &EhFile,
    isa: &OwnedTargetIsa,
    personality: &str,
) -> Result<Vec<u8>, ToolError> {
    let isa = pic_isa(isa)?;
    let lsda_err = |error| ToolError::Lsda {
        function: "object".into(),
        error,
    };
    let builder = ObjectBuilder::new(isa.clone(), "clif-eh", default_libcall_names())
        .map_err(|e| ToolError::Codegen(e.to_string()))?;
    let mut module = ObjectModule::new(builder);
    let mut tables = ObjectExceptionTables::new(&*isa, personality).map_err(lsda_err)?;
    let mut policy = file.policy.clone();
    define_all(
        &mut module,
        file,
        &mut policy,
        |isa, id, ctx, policy, prepared| tables.add_function(isa, id, ctx, policy, prepared),
    )?;
    let mut product = module.finish();
    tables.finish(&mut product).map_err(lsda_err)?;
    product
        .emit()
        .map_err(|e| ToolError::Codegen(format!("writing the object: {e}")))
}

unsafe extern "C" {
    fn eh_throw(kind: i64) -> i64;
    fn eh_note_cleanup();
    fn eh_cleanups() -> i64;
    fn eh_reset_cleanups();
    fn eh_int_value(object: *const u8) -> i64;
    fn eh_base_value(object: *const u8) -> i64;
    fn eh_unrelated_value(object: *const u8) -> i64;
    fn eh_typeinfo_base() -> *const u8;
    fn eh_typeinfo_unrelated() -> *const u8;
    fn eh_call(f: *const u8, arg: i64, escaped: *mut i64) -> i64;
}

/// The C++ runtime's functions, for the JIT's symbol table. (They are
/// linked into this binary but not exported dynamically.)
pub fn runtime_symbols() -> Vec<(&'static str, *const u8)> {
    vec![
        ("eh_throw", eh_throw as *const u8),
        ("eh_note_cleanup", eh_note_cleanup as *const u8),
        ("eh_cleanups", eh_cleanups as *const u8),
        ("eh_int_value", eh_int_value as *const u8),
        ("eh_base_value", eh_base_value as *const u8),
        ("eh_unrelated_value", eh_unrelated_value as *const u8),
    ]
}

/// Resolve a symbol for JIT type entries and the personality: the C++
/// runtime's typeinfo, then the process's dynamic symbols.
pub fn resolve_symbol(name: &str) -> Option<*const u8> {
    // SAFETY: the runtime's typeinfo getters only return addresses.
    match name {
        "_ZTI4Base" => return Some(unsafe { eh_typeinfo_base() }),
        "_ZTI9Unrelated" => return Some(unsafe { eh_typeinfo_unrelated() }),
        _ => {}
    }
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks
    // the symbol up.
    let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!ptr.is_null()).then_some(ptr.cast())
}

/// A JIT-compiled file, its tables registered.
pub struct JitFile {
    /// The module and its registration.
    pub module: JitModuleWithTables,
    /// The functions.
    pub functions: Vec<DefinedFunction>,
    /// The policy, with the clause sets legalization interned.
    pub policy: ClausePolicy,
}

/// JIT-compile every function of `file` for the host, with
/// `__gxx_personality_v0` as the personality, and register the tables.
pub fn jit_file(file: &EhFile, extra_symbols: &[(&str, *const u8)]) -> Result<JitFile, ToolError> {
    let lsda_err = |error| ToolError::Lsda {
        function: "module".into(),
        error,
    };
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
        .finish(file_isa.flags().clone())
        .map_err(|e| ToolError::Codegen(e.to_string()))?;

    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, ptr) in runtime_symbols()
        .into_iter()
        .chain(extra_symbols.iter().copied())
    {
        builder.symbol(name, ptr);
    }
    let mut module = JITModule::new(builder);
    let personality = resolve_symbol("__gxx_personality_v0")
        .ok_or_else(|| ToolError::Codegen("__gxx_personality_v0 is not loaded".into()))?;
    let mut tables = JitExceptionTables::new(personality);
    let mut policy = file.policy.clone();
    let functions = define_all(
        &mut module,
        file,
        &mut policy,
        |isa, id, ctx, policy, prepared| tables.add_function(isa, id, ctx, policy, prepared),
    )?;
    let module = tables.register(module, resolve_symbol).map_err(lsda_err)?;
    Ok(JitFile {
        module,
        functions,
        policy,
    })
}

/// What escaped a function called through the C++ runtime's `eh_call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaped {
    /// It returned normally.
    Nothing,
    /// A C++ `int`.
    Int,
    /// A `Base` (or `Derived`).
    Base,
    /// An `Unrelated`.
    Unrelated,
    /// A `double`.
    Double,
    /// Something else.
    Other,
}

/// The outcome of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The return value, or the escaped exception's value.
    pub value: i64,
    /// What escaped.
    pub escaped: Escaped,
    /// How many cleanup pads ran (`eh_note_cleanup` calls).
    pub cleanups: i64,
}

/// How many cleanup pads ran since the last reset (`eh_note_cleanup`).
pub fn cleanup_count() -> i64 {
    // SAFETY: reads a counter of the C++ runtime.
    unsafe { eh_cleanups() }
}

/// Reset the cleanup counter.
pub fn reset_cleanup_count() {
    // SAFETY: writes a counter of the C++ runtime.
    unsafe { eh_reset_cleanups() }
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
        let mut escaped = 0;
        // SAFETY: `code` is a finalized `(i64) -> i64 system_v` function of
        // a module that stays alive (and registered) for this call, and
        // `eh_call` catches every C++ exception it lets escape.
        let value = unsafe {
            eh_reset_cleanups();
            eh_call(code, arg, &mut escaped)
        };
        Ok(RunOutcome {
            value,
            escaped: match escaped {
                0 => Escaped::Nothing,
                1 => Escaped::Int,
                2 => Escaped::Base,
                3 => Escaped::Unrelated,
                4 => Escaped::Double,
                _ => Escaped::Other,
            },
            // SAFETY: reads a counter.
            cleanups: unsafe { eh_cleanups() },
        })
    }
}
