//! From Cranelift's compiled call sites to the encoder's [`CallSite`]s.
//!
//! `MachBufferFinalized::call_sites()` records every call: `try_call`s with
//! their handlers, plain calls and libcalls with none, and `return_call`s,
//! whose "return address" follows a jump that never returns. All calls
//! without handlers are treated alike: the call-site table covers them with
//! a no-landing-pad range, which is what a plain call needs and is harmless
//! for a tail call, whose frame is gone before the callee can throw.

use crate::eh_frame::unwind_info_of;
use crate::encode::{CallSite, LandingPad, Lsda, LsdaEncoding, encode_lsda};
use crate::error::{LsdaError, LsdaResult};
use crate::landing_pad::PreparedFunction;
use crate::policy::{ClauseList, ClausePolicy};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_codegen::{Context, FinalizedMachCallSite, FinalizedMachExceptionHandler};

/// Convert compiled call sites. With `prepared`, handlers of one call site
/// are known to share a pad (Cranelift emits one equivalent trampoline per
/// item) and the first one is used; without it, handlers at different
/// offsets are an error.
pub fn call_sites_from_compiled<'a>(
    call_sites: impl IntoIterator<Item = FinalizedMachCallSite<'a>>,
    policy: &ClausePolicy,
    prepared: Option<&PreparedFunction>,
) -> LsdaResult<Vec<CallSite>> {
    let mut out = Vec::new();
    for site in call_sites {
        let mut pad: Option<u32> = None;
        let mut clauses = Vec::new();
        for handler in site.exception_handlers {
            let (offset, listed) = match handler {
                FinalizedMachExceptionHandler::Tag(tag, offset) => {
                    (*offset, policy.clauses(*tag)?.clauses().to_vec())
                }
                FinalizedMachExceptionHandler::Default(offset) => {
                    (*offset, vec![policy.default_clause()])
                }
                FinalizedMachExceptionHandler::Context(_) => continue,
            };
            match pad {
                None => pad = Some(offset),
                Some(p) if p != offset && prepared.is_none() => {
                    return Err(LsdaError::HandlersDisagree {
                        ret_addr: site.ret_addr,
                    });
                }
                Some(_) => {}
            }
            clauses.extend(listed);
        }
        let landing_pad = match pad {
            None => None,
            Some(offset) => Some(LandingPad {
                offset,
                clauses: ClauseList::new(clauses)?,
            }),
        };
        out.push(CallSite {
            ret_addr: site.ret_addr,
            landing_pad,
        });
    }
    Ok(out)
}

/// Encode the LSDA of a function compiled from IR that was checked or
/// legalized into landing-pad form. `None` when it has no handlers.
pub fn lsda_for_compiled<'a>(
    call_sites: impl IntoIterator<Item = FinalizedMachCallSite<'a>>,
    code_len: u32,
    policy: &ClausePolicy,
    prepared: &PreparedFunction,
    encoding: LsdaEncoding,
) -> LsdaResult<Option<Lsda>> {
    let sites = call_sites_from_compiled(call_sites, policy, Some(prepared))?;
    // Optimization may delete try_calls, never add them: more call sites
    // with handlers than the IR had means `prepared` is another function's.
    let pads = sites.iter().filter(|s| s.landing_pad.is_some()).count();
    let checked = prepared
        .reports()
        .iter()
        .filter(|r| matches!(r.form, crate::landing_pad::TryCallForm::LandingPad(_)))
        .count();
    if pads > checked {
        return Err(LsdaError::Ir(format!(
            "the compiled code has {pads} call sites with handlers but the prepared IR \
             had {checked}: the PreparedFunction belongs to another function"
        )));
    }
    encode_lsda(&sites, code_len, prepared.types(), encoding)
}

/// What one compiled function contributes to `.eh_frame` and
/// `.gcc_except_table`.
pub struct CompiledTables {
    /// Its CFI.
    pub unwind: UnwindInfo,
    /// Its code length.
    pub code_len: u32,
    /// Its LSDA, if it has handlers.
    pub lsda: Option<Lsda>,
}

/// The tables of the function just compiled in `ctx` (e.g. by a
/// cranelift-module `define_function`), whose IR was checked or legalized
/// into landing-pad form.
pub fn tables_for_compiled(
    ctx: &Context,
    isa: &dyn TargetIsa,
    policy: &ClausePolicy,
    prepared: &PreparedFunction,
    encoding: LsdaEncoding,
) -> LsdaResult<CompiledTables> {
    let code = ctx.compiled_code().ok_or_else(|| {
        LsdaError::Ir("the context holds no compiled code; define the function first".into())
    })?;
    let unwind = unwind_info_of(code, isa)?;
    let code_len = u32::try_from(code.code_buffer().len()).map_err(|_| LsdaError::DoesNotFit {
        what: "code length",
        value: code.code_buffer().len() as u64,
    })?;
    let lsda = lsda_for_compiled(
        code.buffer.call_sites(),
        code_len,
        policy,
        prepared,
        encoding,
    )?;
    Ok(CompiledTables {
        unwind,
        code_len,
        lsda,
    })
}
