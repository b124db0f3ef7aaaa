//! Landing-pad form: the check that a function's `try_call`s can be
//! described by an LSDA, and the proof of it that the encoder requires.
//!
//! The Itanium ABI gives a call site one landing pad, entered with the
//! exception pointer and the selector in the first two EH data registers.
//! Cranelift delivers `try_call` payloads `exn0`, `exn1` in exactly those
//! registers for the callee conventions accepted here, so a `try_call` is
//! in landing-pad form when all its catch items go to one block with the
//! arguments `(exn0, exn1)`. Cranelift still emits one edge trampoline per
//! item; they are equivalent, so the compiled call site's first handler is
//! the pad. That equivalence cannot be seen in machine code, which is why
//! the encoder takes a [`PreparedFunction`], obtainable only from this
//! check or from the legalization pass.

use crate::error::{LsdaError, LsdaResult};
use crate::policy::{ClauseList, ClausePolicy, TypeTable};
use cranelift_codegen::ir::{Block, BlockArg, ExceptionTableItem, Function, Inst, InstructionData};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use target_lexicon::{Architecture, OperatingSystem};

/// Whether one `try_call` is in landing-pad form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TryCallForm {
    /// The call has no catch items: for the LSDA it is a plain call.
    NoHandlers,
    /// Every catch item goes to `pad(exn0, exn1)`.
    LandingPad(Block),
    /// Not in landing-pad form, and why.
    NotLandingPad(String),
}

/// The landing-pad check of one `try_call` or `try_call_indirect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryCallReport {
    /// The instruction.
    pub inst: Inst,
    /// The instruction as text, for messages.
    pub text: String,
    /// Its form.
    pub form: TryCallForm,
}

/// A function checked (or legalized) into landing-pad form, with the type
/// table its selectors were computed from. The encoder needs it to trust
/// that a call site's handlers share one pad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedFunction {
    pub(crate) types: TypeTable,
    pub(crate) reports: Vec<TryCallReport>,
}

impl PreparedFunction {
    /// The function's type table: selectors delivered under
    /// [`SelectorConvention::TypeFilter`](crate::SelectorConvention) are
    /// indices into it.
    pub fn types(&self) -> &TypeTable {
        &self.types
    }

    /// The per-`try_call` report.
    pub fn reports(&self) -> &[TryCallReport] {
        &self.reports
    }
}

/// Check that `isa` can deliver exceptions to landing pads: an ISA with
/// Itanium EH data registers, System V-style unwinding, unwind info on
/// (the unwinder restores callee-saved registers from CFI on the
/// exceptional edge).
pub fn check_isa(isa: &dyn TargetIsa) -> LsdaResult<()> {
    let triple = isa.triple();
    match triple.architecture {
        Architecture::X86_64 | Architecture::Aarch64(_) | Architecture::Riscv64(_) => {}
        Architecture::S390x => {}
        other => {
            return Err(LsdaError::UnsupportedIsa(format!(
                "{other} has no Itanium EH data registers for try_call payloads"
            )));
        }
    }
    if triple.operating_system == OperatingSystem::Windows {
        return Err(LsdaError::UnsupportedIsa(
            "Windows targets unwind with SEH, not DWARF CFI".to_string(),
        ));
    }
    if !isa.flags().unwind_info() {
        return Err(LsdaError::UnsupportedIsa(
            "unwind_info is disabled (set unwind_info=true); the unwinder needs CFI to restore \
             callee-saved registers"
                .to_string(),
        ));
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

/// Report the form of every `try_call` of `func`, in layout order. Fails
/// only on an unsupported ISA or callee calling convention.
pub fn analyze_landing_pads(
    func: &Function,
    isa: &dyn TargetIsa,
) -> LsdaResult<Vec<TryCallReport>> {
    check_isa(isa)?;
    let mut reports = Vec::new();
    for block in func.layout.blocks() {
        let Some(inst) = func.layout.last_inst(block) else {
            continue;
        };
        let Some(et) = func.dfg.insts[inst].exception_table() else {
            continue;
        };
        let text = func.dfg.display_inst(inst).to_string();
        let table = &func.dfg.exception_tables[et];
        let cc = func.dfg.signatures[table.signature()].call_conv;
        let has_catch = table
            .items()
            .any(|i| !matches!(i, ExceptionTableItem::Context(_)));
        if has_catch && !call_conv_has_landing_pads(isa, cc) {
            return Err(LsdaError::UnsupportedCallConv {
                inst: text,
                call_conv: cc.to_string(),
            });
        }
        let form = form_of(func, inst);
        reports.push(TryCallReport { inst, text, form });
    }
    Ok(reports)
}

fn form_of(func: &Function, inst: Inst) -> TryCallForm {
    let et = match func.dfg.insts[inst] {
        InstructionData::TryCall { exception, .. }
        | InstructionData::TryCallIndirect { exception, .. } => exception,
        _ => unreachable!("form_of is only called on try_calls"),
    };
    let pool = &func.dfg.value_lists;
    let mut pad = None;
    for item in func.dfg.exception_tables[et].items() {
        let call = match item {
            ExceptionTableItem::Tag(_, call) | ExceptionTableItem::Default(call) => call,
            ExceptionTableItem::Context(_) => continue,
        };
        let block = call.block(pool);
        let args: Vec<BlockArg> = call.args(pool).collect();
        if args != [BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)] {
            let shown: Vec<String> = args.iter().map(ToString::to_string).collect();
            return TryCallForm::NotLandingPad(format!(
                "{block} receives ({}) instead of (exn0, exn1)",
                shown.join(", ")
            ));
        }
        match pad {
            None => pad = Some(block),
            Some(p) if p != block => {
                return TryCallForm::NotLandingPad(format!(
                    "catch items go to both {p} and {block}"
                ));
            }
            Some(_) => {}
        }
    }
    pad.map_or(TryCallForm::NoHandlers, TryCallForm::LandingPad)
}

/// The clause list of a `try_call`'s catch items under `policy`.
pub(crate) fn clause_list_of(
    func: &Function,
    inst: Inst,
    policy: &ClausePolicy,
) -> LsdaResult<Option<ClauseList>> {
    let Some(et) = func.dfg.insts[inst].exception_table() else {
        return Ok(None);
    };
    let mut clauses = Vec::new();
    for item in func.dfg.exception_tables[et].items() {
        match item {
            ExceptionTableItem::Tag(tag, _) => {
                clauses.extend(policy.clauses(tag)?.clauses().iter().cloned());
            }
            ExceptionTableItem::Default(_) => clauses.push(policy.default_clause()),
            ExceptionTableItem::Context(_) => {}
        }
    }
    if clauses.is_empty() {
        return Ok(None);
    }
    ClauseList::new(clauses).map(Some)
}

/// Check that every `try_call` of `func` is in landing-pad form and that
/// `policy` knows all its tags; build the function's type table.
pub fn check_landing_pad_form(
    func: &Function,
    isa: &dyn TargetIsa,
    policy: &ClausePolicy,
) -> LsdaResult<PreparedFunction> {
    let reports = analyze_landing_pads(func, isa)?;
    let mut types = TypeTable::new();
    for report in &reports {
        if let TryCallForm::NotLandingPad(reason) = &report.form {
            return Err(LsdaError::NotLandingPadForm {
                inst: report.text.clone(),
                reason: reason.clone(),
            });
        }
        if let Some(list) = clause_list_of(func, report.inst, policy)? {
            types.add_clauses(&list)?;
        }
    }
    Ok(PreparedFunction { types, reports })
}
