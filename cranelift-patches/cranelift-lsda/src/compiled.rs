//! From Cranelift's compiled call sites to the encoder's [`CallSite`]s.
//!
//! `MachBufferFinalized::call_sites()` records every call: `try_call`s with
//! their handlers, plain calls and libcalls with none, and `return_call`s,
//! whose "return address" follows a jump that never returns. All calls
//! without handlers are treated alike: the call-site table covers them with
//! a no-landing-pad range, which is what a plain call needs and is harmless
//! for a tail call, whose frame is gone before the callee can throw.

use crate::eh_frame::unwind_info_of;
use crate::error::LsdaResult;
use crate::landing_pad::PreparedFunction;
use crate::lsda::EncodeError;
use crate::lsda::{self, Action, CallSite, Lsda, LsdaEncoding};
use crate::policy::{ClauseList, ClausePolicy};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use cranelift_codegen::Context;
use cranelift_codegen::ir::ExceptionTag;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;

/// Convert the call sites of the function `ctx` compiled with the in-tree
/// encoder's `call_sites` (which checks that the handlers of each call
/// share a pad), each call's handler tags becoming one clause list and its
/// action chain over `prepared`'s type table ([`actions_for_tags`]).
pub fn call_sites_from_compiled(
    ctx: &Context,
    policy: &ClausePolicy,
    prepared: &PreparedFunction,
) -> LsdaResult<Vec<CallSite>> {
    lsda::call_sites(ctx, actions_for_tags(policy, prepared))
}

/// The action chain of a call's handler tags under `policy`, over
/// `prepared`'s type table: the tags' clauses in order, as one clause
/// list. What the in-tree `define_lsda` of cranelift-object and
/// cranelift-jit asks for.
pub fn actions_for_tags<'a>(
    policy: &'a ClausePolicy,
    prepared: &'a PreparedFunction,
) -> impl FnMut(&[Option<ExceptionTag>]) -> LsdaResult<Vec<Action>> + 'a {
    let types = prepared.types();
    // Call sites with the same handler tags share one chain; neighbouring
    // calls usually have the same tags, and then nothing is looked up.
    type Tags = Vec<Option<ExceptionTag>>;
    let mut chains: BTreeMap<Tags, Vec<Action>> = BTreeMap::new();
    let mut last: Option<(Tags, Vec<Action>)> = None;
    move |tags| {
        if let Some((last_tags, chain)) = &last
            && last_tags == tags
        {
            return Ok(chain.clone());
        }
        let chain = match chains.get(tags) {
            Some(chain) => chain.clone(),
            None => {
                let mut clauses = Vec::new();
                for tag in tags {
                    clauses.extend_from_slice(policy.item_clauses(*tag)?);
                }
                let chain = ClauseList::new(clauses)?.actions(types)?;
                chains.insert(tags.to_vec(), chain.clone());
                chain
            }
        };
        last = Some((tags.to_vec(), chain.clone()));
        Ok(chain)
    }
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

/// The tables of the function `ctx` compiled, from IR that was checked or
/// legalized into landing-pad form (`prepared`). The context holds the
/// function with its code, so neither can be another function's.
pub fn tables_for_compiled(
    ctx: &Context,
    isa: &dyn TargetIsa,
    policy: &ClausePolicy,
    prepared: &PreparedFunction,
    encoding: LsdaEncoding,
) -> LsdaResult<CompiledTables> {
    let code = ctx.compiled_code().ok_or(EncodeError::NotCompiled)?;
    let unwind = unwind_info_of(code, isa)?;
    let len = code.code_buffer().len();
    let code_len = u32::try_from(len).map_err(|_| EncodeError::DoesNotFit {
        what: "code length",
        value: len as u64,
    })?;
    let sites = call_sites_from_compiled(ctx, policy, prepared)?;
    let lsda = Lsda::new(
        &sites,
        code_len,
        prepared.types().entries(),
        encoding,
        isa.pointer_bytes(),
    )?;
    Ok(CompiledTables {
        unwind,
        code_len,
        lsda,
    })
}
