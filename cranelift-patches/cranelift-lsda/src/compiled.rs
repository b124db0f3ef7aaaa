//! From Cranelift's compiled call sites to the encoder's [`CallSite`]s.
//!
//! `MachBufferFinalized::call_sites()` records every call: `try_call`s with
//! their handlers, plain calls and libcalls with none, and `return_call`s,
//! whose "return address" follows a jump that never returns. All calls
//! without handlers are treated alike: the call-site table covers them with
//! a no-landing-pad range, which is what a plain call needs and is harmless
//! for a tail call, whose frame is gone before the callee can throw.

use crate::eh_frame::unwind_info_of;
use crate::encode::{CallSite, LandingPad, Lsda, LsdaEncoding};
use crate::error::{EncodeError, FormError, LsdaResult};
use crate::landing_pad::PreparedFunction;
use crate::policy::{ClauseList, ClausePolicy};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use cranelift_codegen::ir::ExceptionTag;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use cranelift_codegen::{CompiledCode, FinalizedMachCallSite, FinalizedMachExceptionHandler};

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
    // Call sites with the same handler tags share one clause list.
    let mut lists: BTreeMap<Vec<Option<ExceptionTag>>, ClauseList> = BTreeMap::new();
    // The tags and list of the last call site with handlers: neighbouring
    // calls usually have the same, and then nothing is looked up.
    let mut last: Option<(Vec<Option<ExceptionTag>>, ClauseList)> = None;
    let mut tags = Vec::new();
    for site in call_sites {
        let mut pad: Option<u32> = None;
        tags.clear();
        for handler in site.exception_handlers {
            let (offset, tag) = match *handler {
                FinalizedMachExceptionHandler::Tag(tag, offset) => (offset, Some(tag)),
                FinalizedMachExceptionHandler::Default(offset) => (offset, None),
                FinalizedMachExceptionHandler::Context(_) => continue,
            };
            match pad {
                None => pad = Some(offset),
                Some(p) if p != offset && prepared.is_none() => {
                    return Err(FormError::HandlersDisagree {
                        ret_addr: site.ret_addr,
                    }
                    .into());
                }
                Some(_) => {}
            }
            tags.push(tag);
        }
        let landing_pad = match pad {
            None => None,
            Some(offset) => {
                let clauses = match &last {
                    Some((last_tags, list)) if *last_tags == tags => list.clone(),
                    _ => {
                        let list = match lists.get(&tags) {
                            Some(list) => list.clone(),
                            None => {
                                let mut clauses = Vec::new();
                                for tag in &tags {
                                    clauses.extend_from_slice(policy.item_clauses(*tag)?);
                                }
                                let list = ClauseList::new(clauses)?;
                                lists.insert(tags.clone(), list.clone());
                                list
                            }
                        };
                        last = Some((tags.clone(), list.clone()));
                        list
                    }
                };
                Some(LandingPad { offset, clauses })
            }
        };
        out.push(CallSite {
            ret_addr: site.ret_addr,
            landing_pad,
        });
    }
    Ok(out)
}

/// What one compiled function contributes to `.eh_frame` and
/// `.gcc_except_table`.
#[derive(Clone, Debug)]
pub struct CompiledTables {
    /// Its CFI.
    pub unwind: UnwindInfo,
    /// Its code length.
    pub code_len: u32,
    /// Its LSDA, if it has handlers.
    pub lsda: Option<Lsda>,
}

/// The tables of `code`, compiled from IR that was checked or legalized
/// into landing-pad form (`prepared`).
pub fn tables_for_compiled(
    code: &CompiledCode,
    isa: &dyn TargetIsa,
    policy: &ClausePolicy,
    prepared: &PreparedFunction,
    encoding: LsdaEncoding,
) -> LsdaResult<CompiledTables> {
    let unwind = unwind_info_of(code, isa)?;
    let len = code.code_buffer().len();
    let code_len = u32::try_from(len).map_err(|_| EncodeError::DoesNotFit {
        what: "code length",
        value: len as u64,
    })?;
    // Optimization may delete try_calls, never add them: more call sites
    // with handlers than the IR had means `prepared` is another function's.
    let stale = |compiled| FormError::StalePreparedFunction {
        compiled,
        prepared: prepared.landing_pads(),
    };
    let lsda = if prepared.landing_pads() == 0 {
        // No handlers, no LSDA: no call-site table to build, only the proof
        // to hold.
        let compiled = code
            .buffer
            .call_sites()
            .filter(|site| {
                site.exception_handlers
                    .iter()
                    .any(|h| !matches!(h, FinalizedMachExceptionHandler::Context(_)))
            })
            .count();
        if compiled > 0 {
            return Err(stale(compiled).into());
        }
        None
    } else {
        let sites = call_sites_from_compiled(code.buffer.call_sites(), policy, Some(prepared))?;
        let compiled = sites.iter().filter(|s| s.landing_pad.is_some()).count();
        if compiled > prepared.landing_pads() {
            return Err(stale(compiled).into());
        }
        Lsda::new(
            &sites,
            code_len,
            prepared.types(),
            encoding,
            isa.pointer_bytes(),
        )?
    };
    Ok(CompiledTables {
        unwind,
        code_len,
        lsda,
    })
}
