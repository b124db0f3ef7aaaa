#!/usr/bin/env bash
# Step 5 (its commit message: the .msg file beside it): cranelift-object
# writes `.gcc_except_table`, `DW.ref` slots and a personality-carrying
# `.eh_frame` with `ObjectBuilder::exception_tables`. `ObjectTables` and its
# error type are moved from cranelift-lsda by move.py; the hooks in
# `backend.rs` (record per defined function, write at `finish`) are the
# glue. Runs in the tree's root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=$here/../../cranelift-lsda/src
dest=cranelift/object/src
python3 "$here/move.py" \
    --rewrite 'crate::output::=crate::exception_tables_error::' \
    --rewrite 'crate::=cranelift_codegen::isa::unwind::lsda::' \
    --rewrite 'cranelift_object::=crate::' \
    "$crate" "$dest" object_tables:exception_tables output:exception_tables_error
rustfmt --edition 2024 "$dest/exception_tables.rs" "$dest/exception_tables_error.rs"

lib=$dest/lib.rs
python3 "$here/edit.py" "$lib" --after '#[cfg(feature = "unwind")]
mod unwind;
' '#[cfg(feature = "unwind")]
mod exception_tables;
#[cfg(feature = "unwind")]
mod exception_tables_error;
'
python3 "$here/edit.py" "$lib" --after 'pub use crate::backend::{ObjectBuilder, ObjectModule, ObjectProduct};
' '#[cfg(feature = "unwind")]
pub use crate::exception_tables::ObjectTables;
#[cfg(feature = "unwind")]
pub use crate::exception_tables_error::{OutputError, OutputResult};
'

backend=$dest/backend.rs
# The builder holds the tables and the policy once configured.
python3 "$here/edit.py" "$backend" --after '    #[cfg(feature = "unwind")]
    unwind_info: bool,
' '    #[cfg(feature = "unwind")]
    exception_tables: Option<(crate::ObjectTables, ClausePolicy)>,
'
python3 "$here/edit.py" "$backend" --after '            #[cfg(feature = "unwind")]
            unwind_info: false,
' '            #[cfg(feature = "unwind")]
            exception_tables: None,
'
python3 "$here/edit.py" "$backend" --after '    pub fn unwind_info(&mut self, unwind_info: bool) -> &mut Self {
        self.unwind_info = unwind_info;
        self
    }
' '
    /// Write the exception tables of `try_call`: each function'"'"'s LSDA into
    /// `.gcc_except_table`, and an `.eh_frame` whose functions with handlers
    /// use a CIE naming `personality` (e.g. `__gxx_personality_v0`, reached
    /// through a hidden `DW.ref` slot), next to the plain CIE. `policy`
    /// says what each exception tag means to that personality.
    ///
    /// Needs the `unwind_lsda` setting. Functions must be in landing-pad
    /// form (see `cranelift_frontend::legalize_landing_pads`, which interns
    /// clause sets into [`ObjectModule::exception_policy_mut`]). The tables
    /// hold every defined function'"'"'s FDE, so they take the place of the
    /// `.eh_frame` of [`ObjectBuilder::unwind_info`]. ELF only.
    #[cfg(feature = "unwind")]
    pub fn exception_tables(
        &mut self,
        policy: ClausePolicy,
        personality: &str,
    ) -> crate::OutputResult<&mut Self> {
        self.set_exception_tables(policy, personality, None)
    }

    /// As [`ObjectBuilder::exception_tables`], with other LSDA encodings
    /// (see [`crate::ObjectTables::with_lsda_encoding`]).
    #[cfg(feature = "unwind")]
    pub fn exception_tables_with_encoding(
        &mut self,
        policy: ClausePolicy,
        personality: &str,
        encoding: LsdaEncoding,
    ) -> crate::OutputResult<&mut Self> {
        self.set_exception_tables(policy, personality, Some(encoding))
    }

    #[cfg(feature = "unwind")]
    fn set_exception_tables(
        &mut self,
        policy: ClausePolicy,
        personality: &str,
        encoding: Option<LsdaEncoding>,
    ) -> crate::OutputResult<&mut Self> {
        if !self.isa.flags().unwind_lsda() {
            return Err(UnsupportedTarget::UnwindLsdaOff.into());
        }
        let mut tables = crate::ObjectTables::new(&*self.isa, personality)?;
        if let Some(encoding) = encoding {
            tables = tables.with_lsda_encoding(encoding)?;
        }
        self.exception_tables = Some((tables, policy));
        Ok(self)
    }
'
python3 "$here/edit.py" "$backend" --after 'use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
' '#[cfg(feature = "unwind")]
use cranelift_codegen::isa::unwind::lsda::{
    ClausePolicy, LsdaEncoding, UnsupportedTarget, check_landing_pad_form,
};
'
python3 "$here/edit.py" "$backend" --after '    #[cfg(feature = "unwind")]
    unwind: Option<crate::unwind::UnwindBuilder>,
' '    #[cfg(feature = "unwind")]
    exception_tables: Option<(crate::ObjectTables, ClausePolicy)>,
'
python3 "$here/edit.py" "$backend" --replace '        let unwind = builder
            .unwind_info
            .then(|| crate::unwind::UnwindBuilder::new(builder.endian));' '        // Exception tables write every function'"'"'s FDE themselves.
        let unwind = (builder.unwind_info && builder.exception_tables.is_none())
            .then(|| crate::unwind::UnwindBuilder::new(builder.endian));'
python3 "$here/edit.py" "$backend" --after '            #[cfg(feature = "unwind")]
            unwind,
' '            #[cfg(feature = "unwind")]
            exception_tables: builder.exception_tables,
'
python3 "$here/edit.py" "$backend" --before '
fn validate_symbol(name: &str) -> ModuleResult<()> {' '
#[cfg(feature = "unwind")]
impl ObjectModule {
    /// The clause policy of [`ObjectBuilder::exception_tables`], with the
    /// clause sets interned so far; `None` without exception tables.
    pub fn exception_policy(&self) -> Option<&ClausePolicy> {
        self.exception_tables.as_ref().map(|(_, policy)| policy)
    }

    /// The clause policy of [`ObjectBuilder::exception_tables`], for
    /// legalization to intern clause sets into before a function is
    /// defined; `None` without exception tables.
    pub fn exception_policy_mut(&mut self) -> Option<&mut ClausePolicy> {
        self.exception_tables.as_mut().map(|(_, policy)| policy)
    }
}
'
python3 "$here/edit.py" "$backend" --before '        let res = ctx.compile(self.isa(), ctrl_plane)?;' '        #[cfg(feature = "unwind")]
        let prepared = match &self.exception_tables {
            Some((_, policy)) => Some(
                check_landing_pad_form(&ctx.func, &*self.isa, policy)
                    .map_err(|e| ModuleError::Compilation(e.into()))?,
            ),
            None => None,
        };
'
python3 "$here/edit.py" "$backend" --after '            builder.add_function(&*self.isa, symbol, info);
        }
' '        #[cfg(feature = "unwind")]
        if let (Some((tables, policy)), Some(prepared)) = (self.exception_tables.as_mut(), prepared)
        {
            tables.add_function(&*self.isa, func_id, compiled, policy, &prepared)?;
        }
'
python3 "$here/edit.py" "$backend" --replace '        ObjectProduct {
            object: self.object,
            functions: self.functions,
            data_objects: self.data_objects,
        }
    }' '        let mut product = ObjectProduct {
            object: self.object,
            functions: self.functions,
            data_objects: self.data_objects,
        };
        // As for `.eh_frame` above: what input can get wrong was refused by
        // `exception_tables` or `define_function`.
        #[cfg(feature = "unwind")]
        if let Some((tables, _)) = self.exception_tables {
            tables
                .finish(&mut product)
                .expect("failed to write the exception tables");
        }
        product
    }'

cat >cranelift/object/tests/exception_tables.rs <<'RS'
//! `ObjectBuilder::exception_tables`: a legalized `try_call` gets an LSDA in
//! `.gcc_except_table` and a CIE naming the personality in `.eh_frame`.

use cranelift_codegen::Context;
use cranelift_codegen::ir::*;
use cranelift_codegen::isa::unwind::lsda::{
    Clause, ClausePolicy, DecodedAction, DefaultAction, LsdaError, SelectorConvention, TypeEntry,
    UnsupportedTarget, decode_lsda,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, legalize_landing_pads};
use cranelift_module::{Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule, OutputError};
use object::{Object, ObjectSection, ObjectSymbol};

fn isa(unwind_lsda: bool) -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.enable("unwind_info").unwrap();
    if unwind_lsda {
        flags.enable("unwind_lsda").unwrap();
    }
    cranelift_codegen::isa::lookup_by_name("x86_64-unknown-linux-gnu")
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

/// What a C++ front end would give `catch (int)`: tag 1 = `_ZTIi`.
fn policy() -> ClausePolicy {
    let mut policy = ClausePolicy::new(DefaultAction::CatchAll, SelectorConvention::TypeFilter);
    let catch_int = Clause::Catch(TypeEntry::symbol("_ZTIi"));
    policy.define(ExceptionTag::from_u32(1), catch_int).unwrap();
    policy
}

/// `f(x) = try g(x) catch tag1(e) => 0`, calling the module's `g`.
fn function(module: &mut ObjectModule) -> (cranelift_module::FuncId, Function) {
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    let config = module.isa().frontend_config();
    let f = module.declare_function("f", Linkage::Export, &sig).unwrap();
    let g = module.declare_function("g", Linkage::Import, &sig).unwrap();
    let mut func = Function::with_name_signature(UserFuncName::user(0, f.as_u32()), sig);
    let mut fn_ctx = FunctionBuilderContext::new();
    let mut builder = FunctionBuilder::new(&mut func, &mut fn_ctx);
    let callee = module.declare_func_in_func(g, builder.func);
    let sig0 = builder.func.dfg.ext_funcs[callee].signature;
    let (entry, normal, pad) = (
        builder.create_block(),
        builder.create_block(),
        builder.create_block(),
    );
    builder.append_block_params_for_function_params(entry);
    builder.append_block_param(normal, types::I64);
    builder.append_block_param(pad, types::I64);
    builder.switch_to_block(entry);
    let x = builder.block_params(entry)[0];
    let dfg = &mut builder.func.dfg;
    let returned = dfg.block_call(normal, &[BlockArg::TryCallRet(0)]);
    let caught = dfg.block_call(pad, &[BlockArg::TryCallExn(0)]);
    let item = ExceptionTableItem::Tag(ExceptionTag::from_u32(1), caught);
    let table = dfg
        .exception_tables
        .push(ExceptionTableData::new(sig0, returned, [item]));
    builder.ins().try_call(callee, &[x], table);
    builder.switch_to_block(normal);
    let value = builder.block_params(normal)[0];
    builder.ins().return_(&[value]);
    builder.switch_to_block(pad);
    let zero = builder.ins().iconst(types::I64, 0);
    builder.ins().return_(&[zero]);
    builder.seal_all_blocks();
    builder.finalize(config);
    (f, func)
}

#[test]
fn exception_tables_need_the_setting() {
    let mut builder = ObjectBuilder::new(isa(false), "t", default_libcall_names()).unwrap();
    let err = builder
        .exception_tables(policy(), "__gxx_personality_v0")
        .err()
        .unwrap();
    let expected = UnsupportedTarget::UnwindLsdaOff;
    assert_eq!(err, OutputError::Lsda(LsdaError::from(expected)));
    assert_eq!(
        err.to_string(),
        "unsupported target for landing pads: unwind_lsda is disabled (set unwind_lsda=true): \
         exception tables are written only with it"
    );
}

#[test]
fn a_try_call_gets_an_lsda_and_a_personality() {
    let isa = isa(true);
    let mut builder = ObjectBuilder::new(isa.clone(), "t", default_libcall_names()).unwrap();
    builder
        .unwind_info(true)
        .exception_tables(policy(), "__gxx_personality_v0")
        .unwrap();
    let mut module = ObjectModule::new(builder);
    let (f, mut func) = function(&mut module);
    let policy = module.exception_policy_mut().unwrap();
    let prepared = legalize_landing_pads(&mut func, &*isa, policy).unwrap();
    assert_eq!(prepared.landing_pads(), 1);
    module.define_function(f, &mut Context::for_function(func)).unwrap();
    let bytes = module.finish().emit().unwrap();

    let file = object::File::parse(&*bytes).unwrap();
    let table = file.section_by_name(".gcc_except_table").unwrap();
    let lsda = decode_lsda(&table.data().unwrap(), gimli::RunTimeEndian::Little, 8).unwrap();
    let handlers: Vec<_> = lsda
        .call_sites
        .iter()
        .filter(|site| site.landing_pad != 0)
        .collect();
    assert_eq!(handlers.len(), 1, "{lsda}");
    assert_eq!(handlers[0].chain, [DecodedAction::Catch(1)], "{lsda}");
    // One `.eh_frame` (the tables', not a second plain one), with the
    // personality CIE; the personality is reached through its slot.
    let eh_frames = file.sections().filter(|s| s.name() == Ok(".eh_frame"));
    assert_eq!(eh_frames.count(), 1);
    let eh_frame = file.section_by_name(".eh_frame").unwrap().data().unwrap();
    assert!(eh_frame.windows(5).any(|w| w == b"zLPR\0"));
    assert!(
        file.symbols()
            .any(|s| s.name() == Ok("DW.ref.__gxx_personality_v0"))
    );
}
RS
python3 "$here/edit.py" cranelift/object/Cargo.toml --after '[dev-dependencies]
' 'gimli = { workspace = true, features = ["read"] }
'
