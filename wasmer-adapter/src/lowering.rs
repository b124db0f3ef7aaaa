//! Lowering of `try_table` to landing pads, for Wasmer's translator.
//!
//! The translator calls [`TryTableLowering::enter_try_table`] at
//! `try_table`, [`TryTableLowering::call_handler`] for every call inside it
//! (attaching the returned single item to its `try_call`), and
//! [`TryTableLowering::exit_try_table`] at the matching `end`, when the
//! current block is filled. Calls outside any `try_table` get no item.
//!
//! Each scope's clauses continue with those of the enclosing scopes
//! (innermost first, a tag caught by an inner clause not repeated, nothing
//! after a catch-all); every call in the scope carries one clause-set item
//! `tagN: pad(exn0, exn1)` and no `Context` item, so each call site has one
//! trampoline whatever the clause count. The scope's pad, shared by all its
//! calls:
//!
//! ```text
//! pad(exn, stage):              exn = UwExceptionWrapper*, stage = 0 or 1 (stage 1's verdict)
//!     brif stage, ask, all
//! ask:  sel = personality2(vmctx, exn)        ; only when stage 1 said 1
//!       jump dispatch(sel)
//! all:  jump dispatch(i32::MAX)               ; immediate catch-all
//! dispatch(sel):
//!     exnref = exception_into_exnref(exn)     ; frees the native exception
//!     switch sel { tag => catch_tag, ..., i32::MAX => catch_all, _ => rethrow }
//! catch_tag:  [payload = loads from read_exnref(vmctx, exnref)] jump target(payload.., [exnref])
//! rethrow:    throw(vmctx, exnref); trap
//! ```
//!
//! The switch is `cranelift_frontend::Switch` (jump tables for dense tags,
//! binary search otherwise), not a compare chain.

#[cfg(doc)]
use crate::builtins::NO_MATCH_SELECTOR;
use crate::builtins::{Builtin, CATCH_ALL_SELECTOR, EXNREF_TYPE, TAG_TYPE, VmBuiltins};
use crate::policy::{WasmClause, WasmerTagPolicy};
use core::fmt;
use cranelift_codegen::ir::{
    Block, BlockArg, ExceptionTableData, ExceptionTableItem, ExceptionTag, FuncRef, InstBuilder,
    MemFlagsData, SigRef, TrapCode, Type, Value,
};

/// The trap code wasmer-compiler-cranelift 7.5 uses for unreachable code
/// (`TRAP_UNREACHABLE`, user code 32 + 4); its compiler rejects any code it
/// does not know, and Cranelift records the trap after the rethrow call.
pub const TRAP_UNREACHABLE: TrapCode = TrapCode::unwrap_user(32 + 4);
use cranelift_frontend::{FunctionBuilder, Switch};
use cranelift_lsda::LsdaError;

/// What a catch clause delivers to its target block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchKind {
    /// `catch tag`: the tag's payload values.
    Catch {
        /// Module-local tag index.
        tag: u32,
        /// The IR types of the tag's parameters.
        payload: Vec<Type>,
    },
    /// `catch_ref tag`: the payload values, then the exnref.
    CatchRef {
        /// Module-local tag index.
        tag: u32,
        /// The IR types of the tag's parameters.
        payload: Vec<Type>,
    },
    /// `catch_all`: nothing.
    CatchAll,
    /// `catch_all_ref`: the exnref.
    CatchAllRef,
}

impl CatchKind {
    /// The kind of a `wasmparser::Catch`, given the IR types of each tag's
    /// parameters; also returns the clause's label (relative depth).
    pub fn from_wasmparser(
        catch: &wasmparser::Catch,
        payload_of: impl Fn(u32) -> Vec<Type>,
    ) -> (Self, u32) {
        match *catch {
            wasmparser::Catch::One { tag, label } => (
                Self::Catch {
                    tag,
                    payload: payload_of(tag),
                },
                label,
            ),
            wasmparser::Catch::OneRef { tag, label } => (
                Self::CatchRef {
                    tag,
                    payload: payload_of(tag),
                },
                label,
            ),
            wasmparser::Catch::All { label } => (Self::CatchAll, label),
            wasmparser::Catch::AllRef { label } => (Self::CatchAllRef, label),
        }
    }

    fn clause(&self) -> WasmClause {
        match self {
            Self::Catch { tag, .. } | Self::CatchRef { tag, .. } => WasmClause::Tag(*tag),
            Self::CatchAll | Self::CatchAllRef => WasmClause::CatchAll,
        }
    }

    /// The block parameter types its target must have.
    pub fn target_params(&self) -> Vec<Type> {
        match self {
            Self::Catch { payload, .. } => payload.clone(),
            Self::CatchRef { payload, .. } => {
                let mut p = payload.clone();
                p.push(EXNREF_TYPE);
                p
            }
            Self::CatchAll => Vec::new(),
            Self::CatchAllRef => vec![EXNREF_TYPE],
        }
    }
}

/// A catch clause and the block it branches to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchTarget {
    /// The clause.
    pub kind: CatchKind,
    /// The target block; its parameters are `kind.target_params()`.
    pub block: Block,
}

/// A misuse of the lowering API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoweringError {
    /// From the generic layer.
    Lsda(LsdaError),
    /// `exit_try_table` without a matching `enter_try_table`.
    NoOpenTryTable,
    /// A catch target's block parameters do not match what the clause
    /// delivers.
    TargetMismatch {
        /// The target.
        block: Block,
        /// What the clause delivers.
        expected: Vec<Type>,
        /// What the block takes.
        found: Vec<Type>,
    },
}

impl fmt::Display for LoweringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lsda(e) => write!(f, "{e}"),
            Self::NoOpenTryTable => write!(f, "`end` of a try_table that was never entered"),
            Self::TargetMismatch {
                block,
                expected,
                found,
            } => write!(
                f,
                "catch target {block} takes {found:?} but the clause delivers {expected:?}"
            ),
        }
    }
}

impl std::error::Error for LoweringError {}

impl From<LsdaError> for LoweringError {
    fn from(e: LsdaError) -> Self {
        Self::Lsda(e)
    }
}

struct Scope {
    /// This scope's clauses followed by the enclosing ones, effective.
    targets: Vec<CatchTarget>,
    set_tag: ExceptionTag,
    /// Created by the first call that needs it, filled at `end`.
    pad: Option<Block>,
}

#[derive(Clone, Copy)]
enum Callee {
    Direct(FuncRef),
    Indirect(SigRef, Value),
}

/// The `try_table` state of one function being translated.
pub struct TryTableLowering {
    scopes: Vec<Scope>,
    builtins: VmBuiltins,
    vmctx: Value,
    pointer: Type,
}

impl TryTableLowering {
    /// Lowering for a function whose `vmctx` is `vmctx`.
    pub fn new(builtins: VmBuiltins, vmctx: Value, pointer: Type) -> Self {
        Self {
            scopes: Vec::new(),
            builtins,
            vmctx,
            pointer,
        }
    }

    /// At `try_table`: open a scope with `catches` (in clause order).
    pub fn enter_try_table(
        &mut self,
        builder: &FunctionBuilder,
        policy: &mut WasmerTagPolicy,
        catches: Vec<CatchTarget>,
    ) -> Result<(), LoweringError> {
        for c in &catches {
            let found: Vec<Type> = builder
                .func
                .dfg
                .block_params(c.block)
                .iter()
                .map(|v| builder.func.dfg.value_type(*v))
                .collect();
            let expected = c.kind.target_params();
            if found != expected {
                return Err(LoweringError::TargetMismatch {
                    block: c.block,
                    expected,
                    found,
                });
            }
        }
        let outer = self
            .scopes
            .last()
            .map(|s| s.targets.clone())
            .unwrap_or_default();
        let mut targets: Vec<CatchTarget> = Vec::new();
        for target in catches.into_iter().chain(outer) {
            let clause = target.kind.clause();
            if targets.iter().any(|t| t.kind.clause() == clause) {
                continue;
            }
            targets.push(target);
            if clause == WasmClause::CatchAll {
                break;
            }
        }
        let set_tag = if targets.is_empty() {
            // A try_table without clauses catches nothing; its calls carry
            // no item. The tag is never used.
            ExceptionTag::from_u32(0)
        } else {
            let clauses: Vec<WasmClause> = targets.iter().map(|t| t.kind.clause()).collect();
            policy.clause_set(&clauses)?
        };
        self.scopes.push(Scope {
            targets,
            set_tag,
            pad: None,
        });
        Ok(())
    }

    /// For a call at the current point: the single exception-table item
    /// `(tag, pad)` to attach as `tag: pad(exn0, exn1)`, or `None` outside
    /// any clause-carrying `try_table`.
    pub fn call_handler(&mut self, builder: &mut FunctionBuilder) -> Option<(ExceptionTag, Block)> {
        let pointer = self.pointer;
        let scope = self.scopes.last_mut()?;
        if scope.targets.is_empty() {
            return None;
        }
        let pad = *scope.pad.get_or_insert_with(|| {
            let pad = builder.create_block();
            builder.append_block_param(pad, pointer);
            builder.append_block_param(pad, pointer);
            pad
        });
        Some((scope.set_tag, pad))
    }

    /// A direct call at the current point: a `try_call` carrying the
    /// scope's single item inside a clause-carrying `try_table`, a plain
    /// `call` otherwise. Returns the call's results.
    pub fn call(
        &mut self,
        builder: &mut FunctionBuilder,
        callee: FuncRef,
        args: &[Value],
    ) -> Vec<Value> {
        self.emit_call(builder, Callee::Direct(callee), args)
    }

    /// An indirect call at the current point, handled as [`Self::call`].
    pub fn call_indirect(
        &mut self,
        builder: &mut FunctionBuilder,
        sig: SigRef,
        callee: Value,
        args: &[Value],
    ) -> Vec<Value> {
        self.emit_call(builder, Callee::Indirect(sig, callee), args)
    }

    /// `throw tag` with the tag's parameters `payload`: allocate the
    /// exception, store the payload ([`payload_layout`]) and raise it. Ends
    /// the current block.
    pub fn throw(&mut self, builder: &mut FunctionBuilder, tag: u32, payload: &[Value]) {
        let vmctx = self.vmctx;
        let tag = builder.ins().iconst(TAG_TYPE, i64::from(tag));
        let exnref = self
            .builtins
            .call(builder, Builtin::AllocException, vmctx, &[tag])[0];
        if !payload.is_empty() {
            let buffer = self
                .builtins
                .call(builder, Builtin::ReadExnref, vmctx, &[exnref])[0];
            let types: Vec<Type> = payload
                .iter()
                .map(|v| builder.func.dfg.value_type(*v))
                .collect();
            for ((offset, _), value) in payload_layout(&types).into_iter().zip(payload) {
                builder
                    .ins()
                    .store(MemFlagsData::trusted(), *value, buffer, offset as i32);
            }
        }
        self.throw_ref(builder, exnref);
    }

    /// `throw_ref exnref`: raise it again. Ends the current block.
    pub fn throw_ref(&mut self, builder: &mut FunctionBuilder, exnref: Value) {
        let vmctx = self.vmctx;
        let (sig, address) = self.builtins.callee(builder, Builtin::Throw, vmctx);
        let args = VmBuiltins::arguments(Builtin::Throw, vmctx, &[exnref]);
        self.emit_call(builder, Callee::Indirect(sig, address), &args);
        builder.ins().trap(TRAP_UNREACHABLE);
    }

    fn emit_call(
        &mut self,
        builder: &mut FunctionBuilder,
        callee: Callee,
        args: &[Value],
    ) -> Vec<Value> {
        let Some((tag, pad)) = self.call_handler(builder) else {
            let call = match callee {
                Callee::Direct(f) => builder.ins().call(f, args),
                Callee::Indirect(sig, address) => builder.ins().call_indirect(sig, address, args),
            };
            return builder.inst_results(call).to_vec();
        };
        let sig = match callee {
            Callee::Direct(f) => builder.func.dfg.ext_funcs[f].signature,
            Callee::Indirect(sig, _) => sig,
        };
        let returns: Vec<Type> = builder.func.dfg.signatures[sig]
            .returns
            .iter()
            .map(|r| r.value_type)
            .collect();
        // Appended to the layout by its first instruction, right after the
        // call's block (which may itself not be in the layout yet).
        let continuation = builder.create_block();
        let mut results = Vec::with_capacity(returns.len());
        let mut normal_args = Vec::with_capacity(returns.len());
        for (index, ty) in (0u32..).zip(returns) {
            results.push(builder.append_block_param(continuation, ty));
            normal_args.push(BlockArg::TryCallRet(index));
        }
        let normal = builder.func.dfg.block_call(continuation, &normal_args);
        let handler = builder.func.dfg.block_call(pad, &Self::pad_args());
        let table = builder
            .func
            .dfg
            .exception_tables
            .push(ExceptionTableData::new(
                sig,
                normal,
                [ExceptionTableItem::Tag(tag, handler)],
            ));
        match callee {
            Callee::Direct(f) => builder.ins().try_call(f, args, table),
            Callee::Indirect(_, address) => builder.ins().try_call_indirect(address, args, table),
        };
        builder.switch_to_block(continuation);
        builder.seal_block(continuation);
        results
    }

    /// The block-call arguments of a pad item: `(exn0, exn1)`.
    pub fn pad_args() -> [BlockArg; 2] {
        [BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)]
    }

    /// At `end` of a `try_table`, with the current block filled: build the
    /// scope's pad if any call used it, and close the scope.
    pub fn exit_try_table(&mut self, builder: &mut FunctionBuilder) -> Result<(), LoweringError> {
        let scope = self.scopes.pop().ok_or(LoweringError::NoOpenTryTable)?;
        if let Some(pad) = scope.pad {
            self.build_pad(builder, pad, &scope.targets);
        }
        Ok(())
    }

    fn build_pad(&mut self, builder: &mut FunctionBuilder, pad: Block, targets: &[CatchTarget]) {
        // Every block made from here on (the `Switch`'s too) is part of
        // the pad.
        let first_pad_block = builder.func.dfg.num_blocks();
        let vmctx = self.vmctx;
        let exn = builder.func.dfg.block_params(pad)[0];
        let stage = builder.func.dfg.block_params(pad)[1];
        let dispatch = builder.create_block();
        let selector = builder.append_block_param(dispatch, TAG_TYPE);
        let mut sealed_later = Vec::new();
        builder.switch_to_block(pad);
        let only_catch_all = targets.len() == 1 && targets[0].kind.clause() == WasmClause::CatchAll;
        if only_catch_all {
            // Stage 1 answers 0 for every exception here: no stage 2.
            let all = builder.ins().iconst(TAG_TYPE, CATCH_ALL_SELECTOR);
            builder.ins().jump(dispatch, &[BlockArg::Value(all)]);
        } else {
            let ask = builder.create_block();
            let all = builder.create_block();
            sealed_later.extend([ask, all]);
            builder.ins().brif(stage, ask, &[], all, &[]);
            builder.switch_to_block(ask);
            let sel = self
                .builtins
                .call(builder, Builtin::Personality2, vmctx, &[exn])[0];
            builder.ins().jump(dispatch, &[BlockArg::Value(sel)]);
            builder.switch_to_block(all);
            let all_sel = builder.ins().iconst(TAG_TYPE, CATCH_ALL_SELECTOR);
            builder.ins().jump(dispatch, &[BlockArg::Value(all_sel)]);
        }

        builder.switch_to_block(dispatch);
        let exnref = self
            .builtins
            .call(builder, Builtin::ExceptionIntoExnref, vmctx, &[exn])[0];
        let rethrow = builder.create_block();
        let mut edges = Vec::new();
        let mut switch = Switch::new();
        for target in targets {
            let edge = builder.create_block();
            let key = match target.kind.clause() {
                WasmClause::Tag(tag) => u128::from(tag),
                WasmClause::CatchAll => CATCH_ALL_SELECTOR as u128,
            };
            switch.set_entry(key, edge);
            sealed_later.push(edge);
            edges.push((edge, target));
        }
        switch.emit(builder, selector, rethrow);

        for (edge, target) in edges {
            builder.switch_to_block(edge);
            let mut args = Vec::new();
            if let CatchKind::Catch { payload, .. } | CatchKind::CatchRef { payload, .. } =
                &target.kind
                && !payload.is_empty()
            {
                let ptr = self
                    .builtins
                    .call(builder, Builtin::ReadExnref, vmctx, &[exnref])[0];
                for (offset, ty) in payload_layout(payload) {
                    let v = builder
                        .ins()
                        .load(ty, MemFlagsData::trusted(), ptr, offset as i32);
                    args.push(BlockArg::Value(v));
                }
            }
            if matches!(
                target.kind,
                CatchKind::CatchRef { .. } | CatchKind::CatchAllRef
            ) {
                args.push(BlockArg::Value(exnref));
            }
            builder.ins().jump(target.block, &args);
        }

        builder.switch_to_block(rethrow);
        // No clause of this function matched (outer scopes' clauses are
        // part of this pad's; stage 2 answered NO_MATCH_SELECTOR): raise
        // again from here.
        self.builtins
            .call(builder, Builtin::Throw, vmctx, &[exnref]);
        builder.ins().trap(TRAP_UNREACHABLE);

        // Cold: reached only by exceptions, the pads are laid out after the
        // function's normal path, so the normal path does not jump over
        // them and the calls they make (the builtins) sit together, under
        // one call-site record without a landing pad.
        builder.set_cold_block(pad);
        for index in first_pad_block..builder.func.dfg.num_blocks() {
            builder.set_cold_block(Block::from_u32(index as u32));
        }

        // Every predecessor of these blocks exists now; the translator seals
        // its own blocks one by one and cannot reach these.
        builder.seal_block(pad);
        builder.seal_block(dispatch);
        builder.seal_block(rethrow);
        for block in sealed_later {
            builder.seal_block(block);
        }
    }
}

/// The byte offsets of a tag's payload fields in the exception's payload
/// buffer: one `wasmer_types::RawValue` per field, in order, each value at
/// the start of its slot. This is how wasmer-vm allocates the buffer
/// (`VMExceptionObj::new_zeroed`: one `RawValue` per tag parameter) and how
/// the `wasmer` API writes and reads it (`Exception::new`,
/// `Exception::payload`), so host-made and Wasm-made exceptions agree.
/// (Stock wasmer-compiler-cranelift 7.5 packs the fields instead, so a
/// multi-field payload written by the host is misread by Wasm code and the
/// other way round; see `docs/wasmer.md`.)
pub fn payload_layout(payload: &[Type]) -> Vec<(u32, Type)> {
    const SLOT: u32 = core::mem::size_of::<wasmer_types::RawValue>() as u32;
    (0u32..)
        .zip(payload)
        .map(|(index, ty)| (index * SLOT, *ty))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_codegen::ir::types;

    #[test]
    fn payload_fields_take_one_raw_value_each() {
        assert_eq!(core::mem::size_of::<wasmer_types::RawValue>(), 16);
        assert_eq!(
            payload_layout(&[types::I32, types::I64, types::F32, types::I8X16, types::F64]),
            [
                (0, types::I32),
                (16, types::I64),
                (32, types::F32),
                (48, types::I8X16),
                (64, types::F64)
            ]
        );
        assert!(payload_layout(&[]).is_empty());
    }
}
