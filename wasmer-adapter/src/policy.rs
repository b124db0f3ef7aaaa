//! Wasmer's clause policy: what an LSDA type entry means to
//! `wasmer_eh_personality` (stage 1).
//!
//! Stage 1 reads each type entry as a pointer to a `u32` holding a
//! module-local Wasm tag index, treats a null entry as catch-all (which ends
//! its walk, so it must be last), and terminates on cleanups. So every tag
//! a module catches gets one slot in a per-module tag data section
//! (`TAG_DATA_SYMBOL`, deduplicated), a catch is
//! `Catch(Symbol { TAG_DATA_SYMBOL, 4 * slot })`, a catch-all is the null
//! entry, and no clause is ever a cleanup. Stage 1 delivers selector 0 for
//! an immediate catch-all and 1 for "ask stage 2"
//! ([`SelectorConvention::CatchAllZeroTypedOne`]).

use cranelift_codegen::ir::ExceptionTag;
use cranelift_lsda::{
    Clause, ClausePolicy, DefaultAction, LsdaResult, PolicyError, SelectorConvention, TypeEntry,
};

/// The symbol of the per-module tag data section: `u32` tag indices that
/// the LSDA's type entries point to.
pub const TAG_DATA_SYMBOL: &str = "__wasmer_eh_tags";

/// One clause of a `try_table` as stage 1 sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WasmClause {
    /// `catch` / `catch_ref` of a module-local tag index.
    Tag(u32),
    /// `catch_all` / `catch_all_ref`.
    CatchAll,
}

/// The clause policy of one Wasm module.
#[derive(Clone, Debug)]
pub struct WasmerTagPolicy {
    policy: ClausePolicy,
    tag_slots: Vec<u32>,
}

impl Default for WasmerTagPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl WasmerTagPolicy {
    /// An empty policy.
    pub fn new() -> Self {
        Self {
            policy: ClausePolicy::new(
                DefaultAction::CatchAll,
                SelectorConvention::CatchAllZeroTypedOne,
            ),
            tag_slots: Vec::new(),
        }
    }

    /// The type entry of `tag`: its `u32` slot in the tag data section.
    pub fn type_entry(&mut self, tag: u32) -> TypeEntry {
        let slot = match self.tag_slots.iter().position(|&t| t == tag) {
            Some(slot) => slot,
            None => {
                self.tag_slots.push(tag);
                self.tag_slots.len() - 1
            }
        };
        TypeEntry::Symbol {
            name: TAG_DATA_SYMBOL.to_string(),
            addend: 4 * slot as i64,
        }
    }

    /// Normalize a scope chain's clauses, innermost first, the way stage 1
    /// and the dispatch read them: a tag already caught is not repeated and
    /// nothing follows a catch-all.
    pub fn effective_clauses(clauses: impl IntoIterator<Item = WasmClause>) -> Vec<WasmClause> {
        let mut out = Vec::new();
        for clause in clauses {
            if out.contains(&clause) {
                continue;
            }
            out.push(clause);
            if clause == WasmClause::CatchAll {
                break;
            }
        }
        out
    }

    /// The clause-set tag for a scope chain's clauses (already effective).
    pub fn clause_set(&mut self, clauses: &[WasmClause]) -> LsdaResult<ExceptionTag> {
        if clauses.is_empty() {
            return Err(PolicyError::EmptyClauseList.into());
        }
        let list: Vec<Clause> = clauses
            .iter()
            .map(|c| match c {
                WasmClause::Tag(tag) => Clause::Catch(self.type_entry(*tag)),
                WasmClause::CatchAll => Clause::Catch(TypeEntry::CatchAll),
            })
            .collect();
        Ok(self.policy.intern_clause_set(list)?)
    }

    /// The generic policy, for the encoder.
    pub fn policy(&self) -> &ClausePolicy {
        &self.policy
    }

    /// The generic policy, for legalization (which may intern the clause
    /// lists of forwarding pads).
    pub fn policy_mut(&mut self) -> &mut ClausePolicy {
        &mut self.policy
    }

    /// The tag data section's contents: one `u32` per caught tag.
    pub fn tag_data(&self) -> &[u32] {
        &self.tag_slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_get_deduplicated_slots_and_catch_all_ends_a_chain() {
        let mut p = WasmerTagPolicy::new();
        let clauses = WasmerTagPolicy::effective_clauses([
            WasmClause::Tag(7),
            WasmClause::Tag(3),
            WasmClause::Tag(7),
            WasmClause::CatchAll,
            WasmClause::Tag(9),
        ]);
        assert_eq!(
            clauses,
            [WasmClause::Tag(7), WasmClause::Tag(3), WasmClause::CatchAll]
        );
        let set = p.clause_set(&clauses).unwrap();
        assert_eq!(p.tag_data(), [7, 3]);
        let list = p.policy().clauses(set).unwrap().clauses().to_vec();
        assert_eq!(
            list,
            [
                Clause::Catch(TypeEntry::Symbol {
                    name: TAG_DATA_SYMBOL.into(),
                    addend: 0
                }),
                Clause::Catch(TypeEntry::Symbol {
                    name: TAG_DATA_SYMBOL.into(),
                    addend: 4
                }),
                Clause::Catch(TypeEntry::CatchAll),
            ]
        );
        // The same chain again: the same tag, no new slots.
        assert_eq!(p.clause_set(&clauses).unwrap(), set);
        assert_eq!(p.tag_data(), [7, 3]);
        assert_eq!(p.clause_set(&[]), Err(PolicyError::EmptyClauseList.into()));
    }
}
