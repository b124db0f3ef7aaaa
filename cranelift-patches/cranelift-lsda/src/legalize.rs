//! The landing-pad legalization pass.
//!
//! Natural Cranelift IR sends different tags to different blocks. This pass
//! rewrites every `try_call` with catch items into the preferred
//! landing-pad form: a single item `tagN: pad(exn0, exn1)`, where `tagN` is
//! a clause-set tag the [`ClausePolicy`] interns for the call's whole
//! clause list. The pad dispatches on the selector to the original
//! destinations with their original arguments: a `brif` for two
//! selectors, a `br_table` for a dense run, `cranelift_frontend::Switch`
//! otherwise; a pad with one destination takes no selector. Calls already
//! in that form are left alone. One item means one edge trampoline per call site,
//! however many clauses are active; `context` items are dropped, since an
//! LSDA has no use for them.
//!
//! The pass uses only the public API of the LSDA module (its result is
//! proven by [`check_landing_pad_form`]), so it can live in another crate.

use crate::{
    Clause, ClausePolicy, FormError, LANDING_PAD_ARGS, LsdaResult, PreparedFunction, TryCallForm,
    TryCallReport, TypeTable, analyze_landing_pads, catch_items, check_landing_pad_form,
    is_landing_pad_args, normalize_clauses, type_table_of,
};
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec::Vec;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    Block, BlockArg, BlockCall, ExceptionTableData, ExceptionTableItem, ExceptionTag, Function,
    Inst, InstBuilder, JumpTableData, types,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Switch};

/// A catch destination: a block and the arguments the item passed to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Destination {
    block: Block,
    args: Vec<BlockArg>,
}

/// Each selector the personality can deliver, with where it must go.
type Dispatch = BTreeMap<i64, Destination>;

/// A call's catch items: each tag (`None` for `default`) and destination.
type Items = Vec<(Option<ExceptionTag>, Destination)>;

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
    // As Cranelift's own passes: IR is verified when the embedder asks.
    let verify = isa.flags().enable_verifier();
    if verify {
        cranelift_codegen::verify_function(func, isa).map_err(FormError::InvalidInput)?;
    }
    let reports = analyze_landing_pads(func, isa)?;
    // Nothing to rewrite when every call with handlers already has one
    // catch item to a landing pad (a front end's lowering, Rust-style
    // calls, or no handlers at all): only the check.
    let rewritten = |r: &&TryCallReport| match r.form {
        TryCallForm::NoHandlers => false,
        TryCallForm::LandingPad(_) => catch_items(func, r.inst).nth(1).is_some(),
        _ => true,
    };
    if !reports.iter().any(|r| rewritten(&r)) {
        return check_landing_pad_form(func, isa, policy);
    }
    // The type table is fixed before any pad is built, so each pad's
    // selectors are final.
    let types = type_table_of(func, policy)?;
    let calls: Vec<Inst> = reports
        .into_iter()
        .filter(|r| r.form != TryCallForm::NoHandlers)
        .map(|r| r.inst)
        .collect();

    // Each call's clause-set tag and dispatch, by index into `targets`.
    // Calls with the same clause set and destinations share one pad. Its
    // SSA arguments dominate it: they dominate every call that uses it.
    let mut targets: Vec<(ExceptionTag, Dispatch)> = Vec::new();
    let mut target_index: BTreeMap<(ExceptionTag, Dispatch), usize> = BTreeMap::new();
    let mut of_call: Vec<(Inst, usize)> = Vec::with_capacity(calls.len());
    // What a call's tags mean depends on nothing else: found once per list.
    let mut meanings: BTreeMap<Vec<Option<ExceptionTag>>, Meaning> = BTreeMap::new();
    // The previous call's items and its target: neighbouring calls of one
    // region usually have the same items, and then the same target.
    let mut last: Option<(Items, usize)> = None;
    for inst in calls {
        if let Some((items, target)) = &last
            && same_items(func, inst, items)
        {
            of_call.push((inst, *target));
            continue;
        }
        let pool = &func.dfg.value_lists;
        let items: Items = catch_items(func, inst)
            .map(|(tag, call)| {
                let block = call.block(pool);
                let args = call.args(pool).collect();
                (tag, Destination { block, args })
            })
            .collect();
        let tags: Vec<Option<ExceptionTag>> = items.iter().map(|(tag, _)| *tag).collect();
        let meaning = match meanings.get(&tags) {
            Some(meaning) => meaning.clone(),
            None => {
                let meaning = meaning_of(&tags, policy, &types)?;
                meanings.insert(tags, meaning.clone());
                meaning
            }
        };
        let key = (meaning.set_tag, dispatch_of(func, inst, &items, &meaning)?);
        let target = match target_index.get(&key) {
            Some(&target) => target,
            None => {
                target_index.insert(key.clone(), targets.len());
                targets.push(key);
                targets.len() - 1
            }
        };
        of_call.push((inst, target));
        last = Some((items, target));
    }

    // A destination that already takes `(exn0, exn1)` is a pad for one
    // call. Several calls get a pad of their own even then: Cranelift gives
    // each exception edge a trampoline for the payload's moves, so calls
    // landing on the destination directly would get distinct landing pads
    // (and call-site records); a pad whose parameters only flow on takes
    // the payload where it arrives, its edges stay empty and fold away, and
    // the calls share one landing pad and one record.
    let mut uses = alloc::vec![0usize; targets.len()];
    for (_, target) in &of_call {
        uses[*target] += 1;
    }
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut pads = Vec::with_capacity(targets.len());
    for ((_, dispatch), uses) in targets.iter().zip(uses) {
        pads.push(match single_pad(dispatch) {
            Some(pad) if uses == 1 => pad,
            _ => build_pad(func, &mut builder_ctx, isa, dispatch)?,
        });
    }
    for (inst, target) in of_call {
        let (pad, params) = pads[target];
        replace_items(func, inst, targets[target].0, pad, params);
    }

    if verify {
        cranelift_codegen::verify_function(func, isa).map_err(FormError::InvalidOutput)?;
    }
    let prepared = check_landing_pad_form(func, isa, policy)?;
    debug_assert_eq!(prepared.types(), &types, "legalization kept the type table");
    Ok(prepared)
}

/// Whether the catch items of `inst` are `items`: the same tags to the
/// same blocks with the same arguments.
fn same_items(func: &Function, inst: Inst, items: &[(Option<ExceptionTag>, Destination)]) -> bool {
    let pool = &func.dfg.value_lists;
    let mut count = 0;
    for (tag, call) in catch_items(func, inst) {
        let Some((expected_tag, dest)) = items.get(count) else {
            return false;
        };
        if tag != *expected_tag
            || call.block(pool) != dest.block
            || !call.args(pool).eq(dest.args.iter().copied())
        {
            return false;
        }
        count += 1;
    }
    count == items.len()
}

/// What the catch items of a call mean: the clause-set tag of their
/// normalized clauses, and each selector the personality can deliver with
/// the item (by index) it goes to.
#[derive(Clone)]
struct Meaning {
    set_tag: ExceptionTag,
    selectors: Vec<(i64, usize)>,
}

fn meaning_of(
    tags: &[Option<ExceptionTag>],
    policy: &mut ClausePolicy,
    types: &TypeTable,
) -> LsdaResult<Meaning> {
    let mut clauses = Vec::new();
    for (item, tag) in tags.iter().enumerate() {
        clauses.extend(policy.item_clauses(*tag)?.iter().map(|c| (c.clone(), item)));
    }
    let clauses = normalize_clauses(clauses);
    let listed: Vec<Clause> = clauses.iter().map(|(c, _)| c.clone()).collect();
    let values = policy.selectors(types, &listed)?;
    let items = clauses.into_iter().map(|(_, item)| item);
    Ok(Meaning {
        set_tag: policy.intern_clause_set(listed)?,
        selectors: values.into_iter().zip(items).collect(),
    })
}

/// Per selector of `meaning`, where the call `inst` sends it.
fn dispatch_of(
    func: &Function,
    inst: Inst,
    items: &[(Option<ExceptionTag>, Destination)],
    meaning: &Meaning,
) -> LsdaResult<Dispatch> {
    let mut dispatch = Dispatch::new();
    for &(selector, item) in &meaning.selectors {
        let dest = &items[item].1;
        match dispatch.get(&selector) {
            Some(existing) if existing != dest => {
                return Err(FormError::AmbiguousSelector {
                    inst: func.dfg.display_inst(inst).to_string(),
                    selector,
                }
                .into());
            }
            Some(_) => {}
            None => {
                dispatch.insert(selector, dest.clone());
            }
        }
    }
    Ok(dispatch)
}

/// The destination itself, and how many of `(exn0, exn1)` it takes, when
/// every selector goes to one block that takes a prefix of them: it is a
/// pad, only the items collapse.
fn single_pad(dispatch: &Dispatch) -> Option<(Block, usize)> {
    let first = dispatch.values().next()?;
    let all_same = dispatch.values().all(|d| d == first);
    (all_same && is_landing_pad_args(first.args.iter().copied()))
        .then_some((first.block, first.args.len()))
}

/// Replace the catch items of `inst` with the single item `set_tag: pad`,
/// passing the first `params` of `(exn0, exn1)`.
fn replace_items(
    func: &mut Function,
    inst: Inst,
    set_tag: ExceptionTag,
    pad: Block,
    params: usize,
) {
    let Some(et) = func.dfg.insts[inst].exception_table() else {
        return;
    };
    let table = &func.dfg.exception_tables[et];
    let (sig, normal_return) = (table.signature(), *table.normal_return());
    let args = &LANDING_PAD_ARGS[..params];
    let pad_call = BlockCall::new(pad, args.iter().copied(), &mut func.dfg.value_lists);
    func.dfg.exception_tables[et] = ExceptionTableData::new(
        sig,
        normal_return,
        [ExceptionTableItem::Tag(set_tag, pad_call)],
    );
}

/// Build `pad(exn0, exn1)`: dispatch on the selector `exn1` to each
/// destination, passing it its original arguments. A pad with one
/// destination takes only the prefix of `(exn0, exn1)` it passes on: no
/// selector the register allocator would carry for nothing. Returns the pad
/// and how many parameters it has.
fn build_pad(
    func: &mut Function,
    builder_ctx: &mut FunctionBuilderContext,
    isa: &dyn TargetIsa,
    dispatch: &Dispatch,
) -> LsdaResult<(Block, usize)> {
    // Distinct destinations, in selector order; the last one is the
    // switch's fallback, since the personality delivers no other selector.
    let mut distinct: Vec<&Destination> = Vec::new();
    for dest in dispatch.values() {
        if !distinct.contains(&dest) {
            distinct.push(dest);
        }
    }
    let params = match distinct[..] {
        [only] => only.args.iter().fold(0, |params, arg| match arg {
            BlockArg::TryCallExn(n) => params.max(usize::try_from(*n).unwrap_or(0) + 1),
            _ => params,
        }),
        _ => LANDING_PAD_ARGS.len(),
    }
    .min(LANDING_PAD_ARGS.len());

    let ptr = isa.pointer_type();
    // Every block made here (the pad, its edges, the switch's own) is
    // reached only by exceptions.
    let first_new = func.dfg.num_blocks();
    let mut b = FunctionBuilder::new(func, builder_ctx);
    let pad = b.create_block();
    let exn: Vec<_> = (0..params)
        .map(|_| b.append_block_param(pad, ptr))
        .collect();
    b.switch_to_block(pad);

    let map_args = |args: &[BlockArg]| -> LsdaResult<Vec<BlockArg>> {
        args.iter()
            .map(|a| match a {
                BlockArg::Value(v) => Ok(BlockArg::Value(*v)),
                BlockArg::TryCallExn(n) if (*n as usize) < exn.len() => {
                    Ok(BlockArg::Value(exn[*n as usize]))
                }
                other => Err(FormError::UnmappableArgument(alloc::format!("{other}")).into()),
            })
            .collect()
    };
    // The personality delivers only the selectors of `dispatch`: no range
    // checks. Two selectors are one `brif`; a dense run of them one
    // `br_table` straight to the destinations; anything else a `Switch`.
    let (lowest, highest) = match (dispatch.keys().next(), dispatch.keys().next_back()) {
        (Some(&lowest), Some(&highest)) => (lowest, highest),
        _ => (0, 0),
    };
    if lowest < 0 {
        return Err(FormError::NegativeSelector(lowest).into());
    }
    let dense = highest - lowest + 1 == dispatch.len() as i64;
    match distinct[..] {
        [] => {}
        [only] => {
            let args = map_args(&only.args)?;
            b.ins().jump(only.block, &args);
        }
        [_, _] if dispatch.len() == 2 => {
            let (low, high) = (&dispatch[&lowest], &dispatch[&highest]);
            let (low_args, high_args) = (map_args(&low.args)?, map_args(&high.args)?);
            let is_high = if (lowest, highest) == (0, 1) {
                exn[1]
            } else {
                b.ins().icmp_imm_s(IntCC::Equal, exn[1], highest)
            };
            b.ins()
                .brif(is_high, high.block, &high_args, low.block, &low_args);
        }
        _ if dense => {
            let offset = if lowest == 0 {
                exn[1]
            } else {
                b.ins().iadd_imm_s(exn[1], -lowest)
            };
            let index = if ptr == types::I32 {
                offset
            } else {
                b.ins().ireduce(types::I32, offset)
            };
            let mut table = Vec::with_capacity(dispatch.len());
            for dest in dispatch.values() {
                let args = map_args(&dest.args)?;
                table.push(b.func.dfg.block_call(dest.block, &args));
            }
            // Every index is in the table; the default is never taken.
            let default = *table.last().expect("dispatch has two selectors or more");
            let jt = b.create_jump_table(JumpTableData::new(default, &table));
            b.ins().br_table(index, jt);
        }
        [.., _] => {
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
            let fallback = edges[edges.len() - 1];
            for (selector, dest) in dispatch {
                let edge = edges[distinct.iter().position(|d| *d == dest).unwrap_or(0)];
                if edge != fallback {
                    // Not negative: checked above.
                    switch.set_entry(*selector as u128, edge);
                }
            }
            switch.emit(&mut b, exn[1], fallback);
        }
    }
    // Laid out after the normal path, as C++ compilers place landing
    // pads, so the calls of one region stay adjacent and their call-site
    // records merge.
    for index in first_new..b.func.dfg.num_blocks() {
        b.set_cold_block(Block::from_u32(index as u32));
    }
    // Sealing last: the switch adds predecessors to the edge blocks.
    b.seal_all_blocks();
    b.finalize(isa.frontend_config());
    Ok((pad, params))
}
