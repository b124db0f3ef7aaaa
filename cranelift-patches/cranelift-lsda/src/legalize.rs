//! The landing-pad legalization pass.
//!
//! Natural Cranelift IR sends different tags to different blocks. This pass
//! rewrites every `try_call` with catch items into the preferred
//! landing-pad form: a single item `tagN: pad(exn0, exn1)`, where `tagN` is
//! a clause-set tag the [`ClausePolicy`] interns for the call's whole
//! clause list. The pad dispatches on the selector to the original
//! destinations with their original arguments: a `brif` for two
//! selectors, a `br_table` for a dense run, compares otherwise; a pad with
//! one destination takes no selector. Calls already in that form are left
//! alone. Pads are appended with a cursor: the function is finished IR,
//! not one being built. One item means one edge trampoline per call site,
//! however many clauses are active; `context` items are dropped, since an
//! LSDA has no use for them.
//!
//! The pass uses only the public API of the LSDA module (its result is
//! proven by [`check_landing_pad_form`]), so it can live in another crate.

use crate::landing_pad::prepare_from_reports;
use crate::{
    Clause, ClausePolicy, FormError, LANDING_PAD_ARGS, LsdaResult, PreparedFunction, TryCallForm,
    TryCallReport, TypeTable, analyze_landing_pads, catch_items, check_landing_pad_form,
    is_landing_pad_args, normalize_clauses, type_table_of,
};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::ToString;
use alloc::vec::Vec;
use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    Block, BlockArg, BlockCall, ExceptionTableData, ExceptionTableItem, ExceptionTag, Function,
    Inst, InstBuilder, JumpTableData, Value, types,
};
use cranelift_codegen::isa::TargetIsa;

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
    if !needs_rewrite(func, &reports) {
        return prepare_from_reports(func, policy, reports);
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

    // A destination that already takes a prefix of `(exn0, exn1)` is a pad
    // for one call. Several calls get a pad of their own even then:
    // Cranelift gives each exception edge a trampoline for the payload's
    // moves, so calls landing on the destination directly would get
    // distinct landing pads (and call-site records: 6,476 LSDA bytes
    // instead of 24 for 1,000 calls in one `try`); a pad whose parameters
    // only flow on takes the payload where it arrives, its edges stay empty
    // and fold away, and the calls share one landing pad and one record.
    let mut uses = alloc::vec![0usize; targets.len()];
    for (_, target) in &of_call {
        uses[*target] += 1;
    }
    let mut pads = Vec::with_capacity(targets.len());
    for ((_, dispatch), uses) in targets.iter().zip(uses) {
        pads.push(match single_pad(dispatch) {
            Some(pad) if uses == 1 => pad,
            _ => build_pad(func, isa, dispatch)?,
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

/// Whether the pass would change `func`: the full pass leaves a call alone
/// only when it has one catch item, no `context` item, and a landing pad
/// no other call lands on (calls sharing a pad get a forwarding pad, see
/// below). Front ends' lowerings and Rust-style calls are usually in that
/// form, and then the pass only checks them.
fn needs_rewrite(func: &Function, reports: &[TryCallReport]) -> bool {
    let mut pads = BTreeSet::new();
    reports.iter().any(|r| match r.form {
        TryCallForm::NoHandlers => false,
        TryCallForm::LandingPad(pad) => {
            let Some(et) = func.dfg.insts[r.inst].exception_table() else {
                return true;
            };
            let mut items = func.dfg.exception_tables[et].items();
            let single = matches!(
                items.next(),
                Some(ExceptionTableItem::Tag(..) | ExceptionTableItem::Default(_))
            ) && items.next().is_none();
            !(single && pads.insert(pad))
        }
        _ => true,
    })
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
///
/// The personality delivers only the selectors of `dispatch`, so nothing
/// is range-checked and the last destination is the fallback: two
/// selectors (Wasmer's `0, 1`, a cleanup and a catch) are one `brif`; a
/// dense run (type filters `1..=n`) one `br_table` straight to the
/// destinations, holes going to the fallback; a sparse set a chain of
/// compares. Moves into the destinations' parameters sit on split edges
/// that take the destination's coldness, so a handler block is best marked
/// `cold` by its front end, as the pad is.
fn build_pad(
    func: &mut Function,
    isa: &dyn TargetIsa,
    dispatch: &Dispatch,
) -> LsdaResult<(Block, usize)> {
    // A selector per clause, and a clause list is never empty.
    let (Some(&lowest), Some(&highest)) = (dispatch.keys().next(), dispatch.keys().next_back())
    else {
        unreachable!("a pad is built for a call with catch items")
    };
    let fallback = dispatch
        .values()
        .next_back()
        .expect("dispatch is not empty");
    let one_destination = dispatch.values().all(|d| d == fallback);
    let params = if one_destination {
        fallback
            .args
            .iter()
            .filter_map(|arg| match arg {
                BlockArg::TryCallExn(n) => Some((*n as usize).saturating_add(1)),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            .min(LANDING_PAD_ARGS.len())
    } else {
        LANDING_PAD_ARGS.len()
    };

    let ptr = isa.pointer_type();
    let mut pos = FuncCursor::new(func);
    let pad = cold_block(&mut pos);
    pos.goto_bottom(pad);
    let exn: Vec<Value> = (0..params)
        .map(|_| pos.func.dfg.append_block_param(pad, ptr))
        .collect();
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
    let fallback_args = map_args(&fallback.args)?;
    if one_destination {
        pos.ins().jump(fallback.block, &fallback_args);
        return Ok((pad, params));
    }
    if lowest < 0 {
        return Err(FormError::NegativeSelector(lowest).into());
    }
    let selector = exn[1];
    let span = highest - lowest + 1;
    if dispatch.len() == 2 {
        let low = &dispatch[&lowest];
        let low_args = map_args(&low.args)?;
        // The selector is `lowest` or `highest`: when `lowest` is 0, any
        // other value is `highest`.
        let is_high = if lowest == 0 {
            selector
        } else {
            pos.ins().icmp_imm_s(IntCC::Equal, selector, highest)
        };
        pos.ins().brif(
            is_high,
            fallback.block,
            &fallback_args,
            low.block,
            &low_args,
        );
    } else if span <= 2 * dispatch.len() as i64 {
        let offset = if lowest == 0 {
            selector
        } else {
            pos.ins().iadd_imm_s(selector, -lowest)
        };
        // Selectors are type filters below 2^31 (`TypeTable`), Wasmer's
        // and Rust's 0 and 1: an i32 index holds them.
        debug_assert_eq!(ptr, types::I64, "check_isa admits 64-bit targets only");
        let index = pos.ins().ireduce(types::I32, offset);
        // `highest` goes to the fallback, the table's default.
        let mut table = Vec::with_capacity(span as usize - 1);
        for value in lowest..highest {
            let dest = dispatch.get(&value).unwrap_or(fallback);
            let args = map_args(&dest.args)?;
            table.push(pos.func.dfg.block_call(dest.block, &args));
        }
        let default = pos.func.dfg.block_call(fallback.block, &fallback_args);
        let jt = pos
            .func
            .create_jump_table(JumpTableData::new(default, &table));
        pos.ins().br_table(index, jt);
    } else {
        for (&value, dest) in dispatch.iter().filter(|(_, d)| *d != fallback) {
            let args = map_args(&dest.args)?;
            let is_this = pos.ins().icmp_imm_s(IntCC::Equal, selector, value);
            let next = cold_block(&mut pos);
            pos.ins().brif(is_this, dest.block, &args, next, &[]);
            pos.goto_bottom(next);
        }
        pos.ins().jump(fallback.block, &fallback_args);
    }
    Ok((pad, params))
}

/// A new block at the end of the layout. Cold: reached only by
/// exceptions, and laid out after the normal path as C++ compilers place
/// landing pads, so the calls of one region stay adjacent and their
/// call-site records merge.
fn cold_block(pos: &mut FuncCursor) -> Block {
    let block = pos.func.dfg.make_block();
    pos.func.layout.append_block(block);
    pos.func.layout.set_cold(block);
    block
}
