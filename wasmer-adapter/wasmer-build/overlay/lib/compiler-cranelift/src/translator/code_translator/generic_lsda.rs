//! `try_table` with `generic-lsda`: the scope's clauses become edge blocks
//! that the adapter's landing pad dispatches to, one per clause that can be
//! taken, each branching to its clause's label.

use super::canonicalise_then_jump;
use crate::func_environ::FuncEnvironment;
use crate::translator::func_state::FuncTranslationState;
use crate::translator::translation_utils::block_with_params;
use cranelift_codegen::ir::InstBuilder;
use cranelift_frontend::FunctionBuilder;
use itertools::Itertools;
use wasmer_compiler::ModuleTranslationState;
use wasmer_compiler::wasmparser::{Catch, TryTable};
use wasmer_types::{TagIndex, WasmError, WasmResult};

/// Enter a `try_table` scope: its body block, its clauses' edges handed to
/// `enter_try_table`, and its control frame.
pub(super) fn translate_try_table(
    try_table: &TryTable,
    module_translation_state: &ModuleTranslationState,
    builder: &mut FunctionBuilder,
    state: &mut FuncTranslationState,
    environ: &mut FuncEnvironment<'_>,
) -> WasmResult<()> {
    let body = builder.create_block();
    let (params, results) = module_translation_state.blocktype_params_results(&try_table.ty)?;
    let next = block_with_params(builder, results.iter(), environ)?;
    builder.ins().jump(body, &[]);
    builder.seal_block(body);

    // Each clause enters an edge block taking what the clause
    // delivers, which branches to the clause's label; the adapter's
    // pad dispatches to the edges.
    // A clause repeating an earlier one's tag, or following a
    // catch-all, can never be taken: no edge for it.
    let mut targets = Vec::with_capacity(try_table.catches.len());
    let mut taken: Vec<Option<u32>> = Vec::with_capacity(try_table.catches.len());
    for catch in &try_table.catches {
        let tag = match catch {
            Catch::One { tag, .. } | Catch::OneRef { tag, .. } => Some(*tag),
            Catch::All { .. } | Catch::AllRef { .. } => None,
        };
        if taken.contains(&tag) || taken.contains(&None) {
            continue;
        }
        taken.push(tag);
        let payload = match tag {
            Some(tag) => environ.tag_param_types(TagIndex::from_u32(tag))?,
            None => Vec::new(),
        };
        let (kind, label) =
            wasmer_eh_adapter::CatchKind::from_wasmparser(catch, |_| payload.clone());
        let edge = crate::generic_lsda::catch_edge(builder, &kind);
        builder.switch_to_block(edge);
        let args = builder.block_params(edge).to_vec();
        let depth = label as usize;
        let idx = state.control_stack.len() - 1 - depth;
        let frame = &mut state.control_stack[idx];
        frame.set_branched_to_exit();
        canonicalise_then_jump(builder, frame.br_destination(), &args);
        targets.push(wasmer_eh_adapter::CatchTarget { kind, block: edge });
    }
    let edges = targets.iter().map(|t| t.block).collect_vec();
    let Some(eh) = environ.eh.as_mut() else {
        return Err(WasmError::Generic(
            "generic-lsda: try_table reached without the generic-lsda lowering".into(),
        ));
    };
    eh.enter_try_table(builder, targets)?;

    let checkpoint = state.handlers.take_checkpoint();
    state.push_try_table_block(next, edges, params.len(), results.len(), checkpoint);

    builder.switch_to_block(body);
    Ok(())
}
