//! The landing-pad legalization pass.
//!
//! Natural Cranelift IR sends different tags to different blocks. This pass
//! rewrites every `try_call` with catch items into the preferred
//! landing-pad form: a single item `tagN: pad(exn0, exn1)`, where `tagN` is
//! a clause-set tag the [`ClausePolicy`] interns for the call's whole
//! clause list. The pad dispatches on the selector with
//! `cranelift_frontend::Switch` to the original destinations with their
//! original arguments. One item means one edge trampoline per call site,
//! however many clauses are active; `context` items are dropped, since an
//! LSDA has no use for them.

use crate::error::{LsdaError, LsdaResult};
use crate::landing_pad::{PreparedFunction, TryCallForm, analyze_landing_pads, clause_list_of};
use crate::policy::{Clause, ClausePolicy, TypeTable, normalize_clauses};
use cranelift_codegen::ir::ExceptionTag;
use cranelift_codegen::ir::{
    Block, BlockArg, BlockCall, ExceptionTableData, ExceptionTableItem, Function, InstBuilder,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Switch};
use std::collections::{BTreeMap, HashMap};

/// A catch destination: a block and the arguments the item passed to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Destination {
    block: Block,
    args: Vec<BlockArg>,
}

/// Rewrite every `try_call` of `func` into single-item landing-pad form.
///
/// Clause-set tags are interned into `policy`. Returns the prepared
/// function (type table and per-call report) that the encoder needs; the
/// selectors the pads dispatch on are computed from that type table.
pub fn legalize_landing_pads(
    func: &mut Function,
    isa: &dyn TargetIsa,
    policy: &mut ClausePolicy,
) -> LsdaResult<PreparedFunction> {
    cranelift_codegen::verify_function(func, isa).map_err(|errors| {
        LsdaError::Ir(format!("the input function fails verification: {errors}"))
    })?;
    let reports = analyze_landing_pads(func, isa)?;

    // First fix the type table from every call's clauses, so that each
    // pad's selectors are final before any pad is built.
    let mut types = TypeTable::new();
    let mut work = Vec::new();
    for report in &reports {
        if report.form == TryCallForm::NoHandlers {
            continue;
        }
        let Some(list) = clause_list_of(func, report.inst, policy)? else {
            continue;
        };
        types.add_clauses(&list)?;
        work.push((report.inst, report.text.clone()));
    }

    let ptr = isa.pointer_type();
    let mut builder_ctx = FunctionBuilderContext::new();
    // Calls with the same clause set and destinations share one pad. Its
    // SSA arguments dominate it: they dominate every call that uses it.
    let mut pads: HashMap<(ExceptionTag, Vec<(i64, Destination)>), Block> = HashMap::new();
    for (inst, text) in work {
        let et = func.dfg.insts[inst]
            .exception_table()
            .ok_or_else(|| LsdaError::Ir(format!("`{text}` lost its exception table")))?;
        let table = &func.dfg.exception_tables[et];
        let sig = table.signature();
        let normal_return = *table.normal_return();
        let pool = &func.dfg.value_lists;
        let mut clauses = Vec::new();
        for item in table.items() {
            let (listed, call): (Vec<Clause>, BlockCall) = match item {
                ExceptionTableItem::Tag(tag, call) => {
                    (policy.clauses(tag)?.clauses().to_vec(), call)
                }
                ExceptionTableItem::Default(call) => (vec![policy.default_clause()], call),
                ExceptionTableItem::Context(_) => continue,
            };
            let dest = Destination {
                block: call.block(pool),
                args: call.args(pool).collect(),
            };
            clauses.extend(listed.into_iter().map(|c| (c, dest.clone())));
        }
        let clauses = normalize_clauses(clauses);

        // Group destinations by the selector the personality delivers.
        let mut by_selector: BTreeMap<i64, Destination> = BTreeMap::new();
        let listed: Vec<Clause> = clauses.iter().map(|(c, _)| c.clone()).collect();
        let selectors = policy.selectors(&types, &listed)?;
        for ((_, dest), &selector) in clauses.iter().zip(&selectors) {
            match by_selector.get(&selector) {
                Some(existing) if *existing != *dest => {
                    return Err(LsdaError::AmbiguousSelector {
                        inst: text,
                        selector,
                    });
                }
                Some(_) => {}
                None => {
                    by_selector.insert(selector, dest.clone());
                }
            }
        }

        let set_tag = policy.intern_clause_set(listed)?;
        let exn_args = [BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)];
        let single = by_selector.values().next().cloned();
        let pad = match single {
            // Already a pad: keep it, only collapse the items into one.
            Some(dest) if by_selector.values().all(|d| *d == dest) && dest.args == exn_args => {
                dest.block
            }
            _ => {
                let key = (set_tag, by_selector.clone().into_iter().collect());
                match pads.get(&key) {
                    Some(&pad) => pad,
                    None => {
                        let pad = build_pad(func, &mut builder_ctx, isa, ptr, &by_selector)?;
                        pads.insert(key, pad);
                        pad
                    }
                }
            }
        };

        let pad_call = BlockCall::new(pad, exn_args, &mut func.dfg.value_lists);
        func.dfg.exception_tables[et] = ExceptionTableData::new(
            sig,
            normal_return,
            [ExceptionTableItem::Tag(set_tag, pad_call)],
        );
    }

    cranelift_codegen::verify_function(func, isa).map_err(|errors| {
        LsdaError::Ir(format!(
            "the legalized function fails verification: {errors}"
        ))
    })?;
    let reports = analyze_landing_pads(func, isa)?;
    Ok(PreparedFunction { types, reports })
}

/// Build `pad(exn0, exn1)`: dispatch on the selector `exn1` to each
/// destination, passing it its original arguments.
fn build_pad(
    func: &mut Function,
    builder_ctx: &mut FunctionBuilderContext,
    isa: &dyn TargetIsa,
    ptr: cranelift_codegen::ir::Type,
    by_selector: &BTreeMap<i64, Destination>,
) -> LsdaResult<Block> {
    let mut b = FunctionBuilder::new(func, builder_ctx);
    let pad = b.create_block();
    let exn0 = b.append_block_param(pad, ptr);
    let exn1 = b.append_block_param(pad, ptr);
    b.switch_to_block(pad);

    let map_args = |args: &[BlockArg]| -> LsdaResult<Vec<BlockArg>> {
        args.iter()
            .map(|a| match a {
                BlockArg::Value(v) => Ok(BlockArg::Value(*v)),
                BlockArg::TryCallExn(0) => Ok(BlockArg::Value(exn0)),
                BlockArg::TryCallExn(1) => Ok(BlockArg::Value(exn1)),
                other => Err(LsdaError::Ir(format!(
                    "catch destination argument `{other}` has no landing-pad equivalent"
                ))),
            })
            .collect()
    };

    // Distinct destinations, in selector order; the last one is the
    // switch's fallback, since the personality delivers no other selector.
    let mut distinct: Vec<&Destination> = Vec::new();
    for dest in by_selector.values() {
        if !distinct.contains(&dest) {
            distinct.push(dest);
        }
    }
    if let [only] = distinct[..] {
        let args = map_args(&only.args)?;
        b.ins().jump(only.block, &args);
    } else {
        let mut edges: Vec<Block> = Vec::new();
        for dest in &distinct {
            let args = map_args(&dest.args)?;
            let edge = b.create_block();
            b.switch_to_block(edge);
            b.ins().jump(dest.block, &args);
            edges.push(edge);
        }
        b.switch_to_block(pad);
        let mut switch = Switch::new();
        let fallback = *edges.last().expect("two or more destinations");
        for (selector, dest) in by_selector {
            let edge = edges[distinct.iter().position(|d| *d == dest).unwrap_or(0)];
            if edge != fallback {
                // Selectors are non-negative under every convention.
                let key = u128::try_from(*selector).map_err(|_| {
                    LsdaError::Ir(format!("negative selector {selector} cannot be dispatched"))
                })?;
                switch.set_entry(key, edge);
            }
        }
        switch.emit(&mut b, exn1, fallback);
    }
    // Sealing last: the switch adds predecessors to the edge blocks.
    b.seal_all_blocks();
    b.finalize(isa.frontend_config());
    Ok(pad)
}
