//! Landing-pad form: the check that a function's `try_call`s can be
//! described by an LSDA, and the proof of it that the encoder requires.
//!
//! The Itanium ABI gives a call site one landing pad, entered with the
//! exception pointer and the selector in the first two EH data registers.
//! Cranelift delivers `try_call` payloads `exn0`, `exn1` in exactly those
//! registers for the callee conventions accepted here, so a `try_call` is
//! in landing-pad form when all its catch items go to one block with the
//! arguments `(exn0, exn1)`, or a prefix of them: a pad with one
//! destination needs no selector, and an unused block parameter would only
//! cost the register allocator. Cranelift still emits one edge trampoline per
//! item; they are equivalent, so the compiled call site's first handler is
//! the pad. That equivalence cannot be seen in machine code, which is why
//! the encoder takes a [`PreparedFunction`], obtainable only from this
//! check or from the legalization pass.

use crate::error::{FormError, LsdaResult, NotLandingPad, UnsupportedTarget};
use crate::policy::{Clause, ClauseList, ClausePolicy, TypeTable};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cranelift_codegen::ir::{
    Block, BlockArg, BlockCall, ExceptionTable, ExceptionTableItem, ExceptionTag, Function, Inst,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use target_lexicon::{Architecture, OperatingSystem};

/// Whether one `try_call` is in landing-pad form.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryCallForm {
    /// The call has no catch items: for the LSDA it is a plain call.
    NoHandlers,
    /// Every catch item goes to `pad(exn0, exn1)` (or a prefix of it).
    LandingPad(Block),
    /// Not in landing-pad form, and why.
    NotLandingPad(NotLandingPad),
}

/// The landing-pad check of one `try_call` or `try_call_indirect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryCallReport {
    /// The instruction.
    pub inst: Inst,
    /// Its form.
    pub form: TryCallForm,
    /// Its clauses under the policy, in match order, each with the
    /// selector its pad receives (empty without handlers). Calls with the
    /// same handlers share one list.
    pub selectors: Arc<[(Clause, i64)]>,
}

/// A function checked (or legalized) into landing-pad form, with the type
/// table its selectors were computed from. The encoder needs it to trust
/// that a call site's handlers share one pad; [`check_landing_pad_form`] is
/// the only way to make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedFunction {
    types: TypeTable,
    reports: Vec<TryCallReport>,
}

impl PreparedFunction {
    /// The function's type table: selectors delivered under
    /// [`SelectorConvention::TypeFilter`](crate::SelectorConvention) are
    /// indices into it.
    pub fn types(&self) -> &TypeTable {
        &self.types
    }

    /// The per-`try_call` report, in layout order.
    pub fn reports(&self) -> &[TryCallReport] {
        &self.reports
    }

    /// How many `try_call`s have a landing pad.
    pub fn landing_pads(&self) -> usize {
        self.reports
            .iter()
            .filter(|r| matches!(r.form, TryCallForm::LandingPad(_)))
            .count()
    }
}

/// Check that `isa` can deliver exceptions to landing pads: an ISA with
/// Itanium EH data registers, System V-style unwinding, unwind info on
/// (the unwinder restores callee-saved registers from CFI on the
/// exceptional edge).
pub fn check_isa(isa: &dyn TargetIsa) -> Result<(), UnsupportedTarget> {
    let triple = isa.triple();
    match triple.architecture {
        Architecture::X86_64
        | Architecture::Aarch64(_)
        | Architecture::Riscv64(_)
        | Architecture::S390x => {}
        other => return Err(UnsupportedTarget::Architecture(other)),
    }
    if triple.operating_system == OperatingSystem::Windows {
        return Err(UnsupportedTarget::Windows);
    }
    if !isa.flags().unwind_info() {
        return Err(UnsupportedTarget::UnwindInfoOff);
    }
    Ok(())
}

/// Whether a `try_call` to a callee of convention `cc` gets its payloads in
/// the Itanium EH data registers on `isa`.
pub fn call_conv_has_landing_pads(isa: &dyn TargetIsa, cc: CallConv) -> bool {
    match cc {
        CallConv::SystemV | CallConv::Tail | CallConv::PreserveAll => true,
        CallConv::AppleAarch64 => matches!(isa.triple().architecture, Architecture::Aarch64(_)),
        _ => false,
    }
}

/// The block arguments of a landing pad: the exception pointer and the
/// selector, in the first two EH data registers. A pad may take a prefix
/// of them ([`is_landing_pad_args`]).
pub const LANDING_PAD_ARGS: [BlockArg; 2] = [BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)];

/// Whether a catch item passing `args` goes to a landing pad: `args` are
/// [`LANDING_PAD_ARGS`] or a prefix of them.
pub fn is_landing_pad_args(args: impl IntoIterator<Item = BlockArg>) -> bool {
    let mut expected = LANDING_PAD_ARGS.iter();
    args.into_iter().all(|arg| expected.next() == Some(&arg))
}

/// The catch items of the `try_call` `inst` (context items skipped): each
/// item's tag (`None` for `default`) and destination.
pub fn catch_items(
    func: &Function,
    inst: Inst,
) -> impl Iterator<Item = (Option<ExceptionTag>, BlockCall)> + '_ {
    let table = func.dfg.insts[inst]
        .exception_table()
        .map(|et| &func.dfg.exception_tables[et]);
    table
        .into_iter()
        .flat_map(|t| t.items())
        .filter_map(|item| match item {
            ExceptionTableItem::Tag(tag, call) => Some((Some(tag), call)),
            ExceptionTableItem::Default(call) => Some((None, call)),
            ExceptionTableItem::Context(_) => None,
        })
}

/// The normalized clause list of the `try_call` `inst` under `policy`, or
/// `None` when it has no catch items.
pub fn try_call_clauses(
    func: &Function,
    inst: Inst,
    policy: &ClausePolicy,
) -> LsdaResult<Option<ClauseList>> {
    let mut clauses = Vec::new();
    for (tag, _) in catch_items(func, inst) {
        clauses.extend_from_slice(policy.item_clauses(tag)?);
    }
    if clauses.is_empty() {
        return Ok(None);
    }
    Ok(Some(ClauseList::new(clauses)?))
}

/// Report the form of every `try_call` of `func`, in layout order, without
/// selectors. Fails only on an unsupported ISA or callee convention.
pub fn analyze_landing_pads(
    func: &Function,
    isa: &dyn TargetIsa,
) -> LsdaResult<Vec<TryCallReport>> {
    check_isa(isa)?;
    let mut reports = Vec::new();
    let no_selectors: Arc<[(Clause, i64)]> = Arc::from([]);
    for (inst, et) in try_calls(func) {
        let form = form_of(func, inst);
        let call_conv = func.dfg.signatures[func.dfg.exception_tables[et].signature()].call_conv;
        if form != TryCallForm::NoHandlers && !call_conv_has_landing_pads(isa, call_conv) {
            return Err(FormError::UnsupportedCallConv {
                inst: inst_text(func, inst),
                call_conv,
            }
            .into());
        }
        reports.push(TryCallReport {
            inst,
            form,
            selectors: no_selectors.clone(),
        });
    }
    Ok(reports)
}

fn form_of(func: &Function, inst: Inst) -> TryCallForm {
    let pool = &func.dfg.value_lists;
    let mut pad: Option<BlockCall> = None;
    for (_, call) in catch_items(func, inst) {
        let block = call.block(pool);
        // Every item passes the pad the same prefix (the verifier, which may
        // be off, would also refuse different arities).
        let same_as_first = pad.is_none_or(|first| call.args(pool).eq(first.args(pool)));
        if !is_landing_pad_args(call.args(pool)) || !same_as_first {
            return TryCallForm::NotLandingPad(NotLandingPad::Arguments {
                block,
                args: call.args(pool).collect(),
            });
        }
        match pad {
            None => pad = Some(call),
            Some(first) if first.block(pool) != block => {
                return TryCallForm::NotLandingPad(NotLandingPad::TwoPads {
                    first: first.block(pool),
                    second: block,
                });
            }
            Some(_) => {}
        }
    }
    pad.map_or(TryCallForm::NoHandlers, |call| {
        TryCallForm::LandingPad(call.block(pool))
    })
}

/// The function's type table: every type entry of its `try_call`s'
/// clauses, in layout order, so that selectors are known before code is
/// generated.
pub fn type_table_of(func: &Function, policy: &ClausePolicy) -> LsdaResult<TypeTable> {
    let mut types = TypeTable::new();
    let mut seen = BTreeSet::new();
    let mut last = Vec::new();
    for (inst, _) in try_calls(func) {
        // Neighbouring calls usually have the same tags: no lookup then.
        if same_tags(func, inst, &last) {
            continue;
        }
        last = item_tags(func, inst);
        if seen.insert(last.clone())
            && let Some(list) = try_call_clauses(func, inst, policy)?
        {
            types.add_clauses(&list)?;
        }
    }
    Ok(types)
}

/// Whether the catch items of `inst` have exactly the tags `tags`.
fn same_tags(func: &Function, inst: Inst, tags: &[Option<ExceptionTag>]) -> bool {
    catch_items(func, inst)
        .map(|(tag, _)| tag)
        .eq(tags.iter().copied())
}

/// The tags of the catch items of `inst`, in order (`None` for `default`):
/// what its clauses depend on, so calls with the same tags are looked up
/// once.
fn item_tags(func: &Function, inst: Inst) -> Vec<Option<ExceptionTag>> {
    catch_items(func, inst).map(|(tag, _)| tag).collect()
}

/// `inst` as text, for messages.
pub(crate) fn inst_text(func: &Function, inst: Inst) -> String {
    func.dfg.display_inst(inst).to_string()
}

/// The `try_call`s of `func` with their exception tables, in layout order.
fn try_calls(func: &Function) -> impl Iterator<Item = (Inst, ExceptionTable)> + '_ {
    func.layout
        .blocks()
        .filter_map(|block| func.layout.last_inst(block))
        .filter_map(|inst| Some((inst, func.dfg.insts[inst].exception_table()?)))
}

/// Check that every `try_call` of `func` is in landing-pad form and that
/// `policy` knows all its tags; build the function's type table and each
/// call's selectors.
pub fn check_landing_pad_form(
    func: &Function,
    isa: &dyn TargetIsa,
    policy: &ClausePolicy,
) -> LsdaResult<PreparedFunction> {
    prepare_from_reports(func, policy, analyze_landing_pads(func, isa)?)
}

/// [`check_landing_pad_form`] of a function whose `try_call`s were just
/// analyzed into `reports`.
pub(crate) fn prepare_from_reports(
    func: &Function,
    policy: &ClausePolicy,
    mut reports: Vec<TryCallReport>,
) -> LsdaResult<PreparedFunction> {
    // Each distinct tag list's clauses, read once; the type table in layout
    // order, as `type_table_of` builds it.
    let mut types = TypeTable::new();
    // Distinct tag lists by first appearance; each call's index into them.
    let mut keys: Vec<(Vec<Option<ExceptionTag>>, Option<ClauseList>)> = Vec::new();
    let mut index: BTreeMap<Vec<Option<ExceptionTag>>, usize> = BTreeMap::new();
    let mut of_call: Vec<usize> = Vec::with_capacity(reports.len());
    for report in &reports {
        if let TryCallForm::NotLandingPad(reason) = &report.form {
            return Err(FormError::NotLandingPadForm {
                inst: inst_text(func, report.inst),
                reason: reason.clone(),
            }
            .into());
        }
        // Neighbouring calls usually have the same tags: no lookup then.
        if let Some(&last) = of_call.last()
            && same_tags(func, report.inst, &keys[last].0)
        {
            of_call.push(last);
            continue;
        }
        let key = item_tags(func, report.inst);
        let at = match index.get(&key) {
            Some(&at) => at,
            None => {
                let list = try_call_clauses(func, report.inst, policy)?;
                if let Some(list) = &list {
                    types.add_clauses(list)?;
                }
                index.insert(key.clone(), keys.len());
                keys.push((key, list));
                keys.len() - 1
            }
        };
        of_call.push(at);
    }
    let mut selectors: Vec<Arc<[(Clause, i64)]>> = Vec::with_capacity(keys.len());
    for (_, list) in &keys {
        selectors.push(match list {
            Some(list) => {
                let values = policy.selectors(&types, list.clauses())?;
                list.clauses().iter().cloned().zip(values).collect()
            }
            None => Arc::from([]),
        });
    }
    for (report, at) in reports.iter_mut().zip(of_call) {
        report.selectors = selectors[at].clone();
    }
    Ok(PreparedFunction { types, reports })
}
