//! The embedder's clause policy: what each `ExceptionTag` means to the
//! personality routine.
//!
//! Cranelift gives tags no meaning; only the LSDA does. A [`ClausePolicy`]
//! maps each tag to an ordered [`ClauseList`] (one clause, or a *clause set*
//! such as all clauses of a `try` scope and its enclosing scopes), says what a
//! `default` handler means, and carries the personality's
//! [`SelectorConvention`], so that dispatch code built before encoding knows
//! the selector each clause will deliver.

use crate::lsda::{Action, TypeEntry};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use cranelift_codegen::ir::ExceptionTag;

/// The clause policy or a type table refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy was asked about a tag it does not define.
    UnknownTag(u32),
    /// A tag was defined twice.
    TagAlreadyDefined(u32),
    /// The tag lies in the range reserved for interned clause sets.
    ReservedTag(u32),
    /// Every tag of the clause-set range is taken.
    ClauseSetTagsExhausted,
    /// A clause list with no clause was given where one is required.
    EmptyClauseList,
    /// The personality's selector convention cannot express this clause.
    UnsupportedClause {
        /// The clause.
        clause: Clause,
        /// Why.
        why: &'static str,
    },
    /// A clause's type entry is missing from the function's type table.
    TypeNotInTable(TypeEntry),
    /// The type table has more entries than a type filter can index.
    TypeTableFull,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownTag(tag) => write!(f, "the clause policy does not define tag{tag}"),
            Self::TagAlreadyDefined(tag) => {
                write!(f, "tag{tag} is already defined in the clause policy")
            }
            Self::ReservedTag(tag) => write!(
                f,
                "tag{tag} is reserved for clause sets the policy interns (tags from \
                 {CLAUSE_SET_TAG_BASE:#x} up)"
            ),
            Self::ClauseSetTagsExhausted => write!(f, "every clause-set tag is taken"),
            Self::EmptyClauseList => write!(f, "a clause list must hold at least one clause"),
            Self::UnsupportedClause { clause, why } => {
                write!(f, "clause `{clause}` is not supported: {why}")
            }
            Self::TypeNotInTable(entry) => {
                write!(f, "type entry {entry} is not in the function's type table")
            }
            Self::TypeTableFull => write!(f, "the type table has more than 2^31 entries"),
        }
    }
}

/// One clause of a landing pad.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Clause {
    /// Catch exceptions matching the type entry.
    Catch(TypeEntry),
    /// Run the pad for every exception, then resume unwinding.
    Cleanup,
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Catch(entry) => write!(f, "catch {entry}"),
            Self::Cleanup => write!(f, "cleanup"),
        }
    }
}

/// An ordered, normalized list of clauses: the first matching catch wins.
///
/// Normalization keeps the semantics and removes what can never take
/// effect: a type caught by an earlier clause is not repeated, nothing
/// follows a catch-all, and a cleanup (which the personality considers only
/// when no catch matches) is kept once, last. Clones share the clauses:
/// every call site with the same handlers holds the same list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClauseList(Arc<[Clause]>);

impl ClauseList {
    /// Normalize `clauses` into a clause list.
    pub fn new(clauses: impl IntoIterator<Item = Clause>) -> Result<Self, PolicyError> {
        let list = normalize_clauses(clauses.into_iter().map(|c| (c, ())));
        if list.is_empty() {
            return Err(PolicyError::EmptyClauseList);
        }
        Ok(Self(list.into_iter().map(|(c, ())| c).collect()))
    }

    /// The clauses, in match order.
    pub fn clauses(&self) -> &[Clause] {
        &self.0
    }

    /// Whether the list is a single cleanup (the LSDA action 0).
    pub fn is_cleanup_only(&self) -> bool {
        *self.0 == [Clause::Cleanup]
    }

    /// The list as the encoder's action chain over `types`: each catch
    /// becomes [`Action::Catch`] of its entry's index, a cleanup
    /// [`Action::Cleanup`]. This is the one place clauses become actions.
    pub fn actions(&self, types: &TypeTable) -> Result<Vec<Action>, PolicyError> {
        self.0
            .iter()
            .map(|clause| match clause {
                Clause::Cleanup => Ok(Action::Cleanup),
                Clause::Catch(entry) => types.filter(entry).map(Action::Catch),
            })
            .collect()
    }

    /// The type entries this list catches, in order.
    pub fn type_entries(&self) -> impl Iterator<Item = &TypeEntry> {
        self.0.iter().filter_map(|c| match c {
            Clause::Catch(entry) => Some(entry),
            Clause::Cleanup => None,
        })
    }
}

impl fmt::Display for ClauseList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, clause) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{clause}")?;
        }
        Ok(())
    }
}

/// Normalize clauses that each carry a payload (e.g. the block a clause
/// jumps to), keeping the payload of the clause that takes effect. This is
/// the rule [`ClauseList::new`] applies.
pub fn normalize_clauses<T>(clauses: impl IntoIterator<Item = (Clause, T)>) -> Vec<(Clause, T)> {
    let mut out: Vec<(Clause, T)> = Vec::new();
    let mut caught = alloc::collections::BTreeSet::new();
    let mut cleanup = None;
    for (clause, payload) in clauses {
        match clause {
            Clause::Cleanup => {
                cleanup.get_or_insert(payload);
            }
            Clause::Catch(entry) => {
                if !caught.insert(entry.clone()) {
                    continue;
                }
                let is_catch_all = entry == TypeEntry::CatchAll;
                out.push((Clause::Catch(entry), payload));
                if is_catch_all {
                    // A cleanup after a catch-all never runs: the catch-all
                    // always makes this frame the handler.
                    return out;
                }
            }
        }
    }
    if let Some(payload) = cleanup {
        out.push((Clause::Cleanup, payload));
    }
    out
}

/// What a `default` exception-table item means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefaultAction {
    /// A catch-all clause (null type entry).
    CatchAll,
    /// A cleanup clause: the pad runs and unwinding resumes.
    Cleanup,
}

impl DefaultAction {
    fn clause(self) -> Clause {
        match self {
            Self::CatchAll => Clause::Catch(TypeEntry::CatchAll),
            Self::Cleanup => Clause::Cleanup,
        }
    }
}

/// Which value the personality routine puts in the selector register (the
/// second EH data register) when it enters a landing pad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelectorConvention {
    /// The action record's type filter: the 1-based type-table index of the
    /// matching catch, 0 for a cleanup (libstdc++ `__gxx_personality_v0`,
    /// LLVM's `llvm.eh.typeid.for`).
    TypeFilter,
    /// Always 0 (`rust_eh_personality` stores a null pointer).
    AlwaysZero,
    /// 0 for a catch-all, 1 for a typed catch, which a second stage then
    /// resolves (Wasmer's `wasmer_eh_personality`).
    CatchAllZeroTypedOne,
}

/// The first tag the policy allocates for interned clause sets. Tags from
/// here up are reserved: the embedder cannot define them, so an IR tag it
/// never defined (below this base) stays unknown whatever was interned for
/// other functions. An IR tag at or above the base is taken to be a clause
/// set this policy interned (legalized IR uses them).
pub const CLAUSE_SET_TAG_BASE: u32 = 0x8000_0000;

/// The embedder's mapping from exception tags to clauses.
#[derive(Clone, Debug)]
pub struct ClausePolicy {
    tags: BTreeMap<u32, ClauseList>,
    default: DefaultAction,
    default_clauses: ClauseList,
    selectors: SelectorConvention,
    interned: BTreeMap<ClauseList, u32>,
}

impl ClausePolicy {
    /// An empty policy.
    pub fn new(default: DefaultAction, selectors: SelectorConvention) -> Self {
        Self {
            tags: BTreeMap::new(),
            default,
            default_clauses: ClauseList(Arc::from([default.clause()])),
            selectors,
            interned: BTreeMap::new(),
        }
    }

    /// Map `tag` to a single clause.
    pub fn define(&mut self, tag: ExceptionTag, clause: Clause) -> Result<(), PolicyError> {
        self.define_clause_set(tag, [clause])
    }

    /// Map `tag` (below [`CLAUSE_SET_TAG_BASE`]) to an ordered clause set.
    pub fn define_clause_set(
        &mut self,
        tag: ExceptionTag,
        clauses: impl IntoIterator<Item = Clause>,
    ) -> Result<(), PolicyError> {
        if tag.as_u32() >= CLAUSE_SET_TAG_BASE {
            return Err(PolicyError::ReservedTag(tag.as_u32()));
        }
        self.insert(tag, ClauseList::new(clauses)?)
    }

    fn insert(&mut self, tag: ExceptionTag, list: ClauseList) -> Result<(), PolicyError> {
        let key = tag.as_u32();
        if self.tags.contains_key(&key) {
            return Err(PolicyError::TagAlreadyDefined(key));
        }
        self.interned.entry(list.clone()).or_insert(key);
        self.tags.insert(key, list);
        Ok(())
    }

    /// The tag naming `clauses`: an existing tag with exactly this clause
    /// list, or a fresh one from [`CLAUSE_SET_TAG_BASE`] up.
    pub fn intern_clause_set(
        &mut self,
        clauses: impl IntoIterator<Item = Clause>,
    ) -> Result<ExceptionTag, PolicyError> {
        let list = ClauseList::new(clauses)?;
        if let Some(&tag) = self.interned.get(&list) {
            return Ok(ExceptionTag::from_u32(tag));
        }
        let fresh = match self.tags.last_key_value() {
            Some((&last, _)) if last >= CLAUSE_SET_TAG_BASE => last
                .checked_add(1)
                .ok_or(PolicyError::ClauseSetTagsExhausted)?,
            _ => CLAUSE_SET_TAG_BASE,
        };
        let tag = ExceptionTag::from_u32(fresh);
        self.insert(tag, list)?;
        Ok(tag)
    }

    /// The clauses `tag` stands for.
    pub fn clauses(&self, tag: ExceptionTag) -> Result<&ClauseList, PolicyError> {
        self.tags
            .get(&tag.as_u32())
            .ok_or(PolicyError::UnknownTag(tag.as_u32()))
    }

    /// The clauses an exception-table item stands for: those of its tag, or
    /// for `None` (a `default` item) the default clause. This is the one
    /// place where handlers, in IR or compiled, get their meaning.
    pub fn item_clauses(&self, tag: Option<ExceptionTag>) -> Result<&[Clause], PolicyError> {
        match tag {
            Some(tag) => self.clauses(tag).map(ClauseList::clauses),
            None => Ok(self.default_clauses.clauses()),
        }
    }

    /// What `default` means.
    pub fn default_action(&self) -> DefaultAction {
        self.default
    }

    /// The personality's selector convention.
    pub fn selector_convention(&self) -> SelectorConvention {
        self.selectors
    }

    /// The selector the personality delivers to a pad entered for each
    /// clause of `clauses` (a normalized list), given the function's type
    /// table.
    ///
    /// Under [`SelectorConvention::CatchAllZeroTypedOne`] a catch-all
    /// receives 0 only as the first clause (Wasmer's stage 1 reports an
    /// immediate catch-all); after a typed clause it receives 1 like the
    /// typed ones, and stage 2 tells them apart. That convention has no
    /// cleanups: Wasmer's stage 1 terminates on them.
    pub fn selectors(
        &self,
        types: &TypeTable,
        clauses: &[Clause],
    ) -> Result<Vec<i64>, PolicyError> {
        clauses
            .iter()
            .enumerate()
            .map(|(i, clause)| {
                Ok(match (self.selectors, clause) {
                    (SelectorConvention::AlwaysZero, _) => 0,
                    (SelectorConvention::TypeFilter, Clause::Cleanup) => 0,
                    (SelectorConvention::TypeFilter, Clause::Catch(entry)) => {
                        i64::from(types.filter(entry)?)
                    }
                    (SelectorConvention::CatchAllZeroTypedOne, Clause::Cleanup) => {
                        return Err(PolicyError::UnsupportedClause {
                            clause: clause.clone(),
                            why: "this personality terminates on cleanups",
                        });
                    }
                    (
                        SelectorConvention::CatchAllZeroTypedOne,
                        Clause::Catch(TypeEntry::CatchAll),
                    ) if i == 0 => 0,
                    (SelectorConvention::CatchAllZeroTypedOne, Clause::Catch(_)) => 1,
                })
            })
            .collect()
    }
}

/// A function's LSDA type table, fixed before code is generated so that
/// selector values can be predicted.
///
/// Indices are 1-based, in the order entries were first added; the encoder
/// writes the table exactly in this order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeTable {
    entries: Vec<TypeEntry>,
    /// Each entry's filter, for lookups by entry.
    filters: BTreeMap<TypeEntry, u32>,
}

impl TypeTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `entry` if absent; returns its 1-based index (its type filter).
    pub fn add(&mut self, entry: &TypeEntry) -> Result<u32, PolicyError> {
        if let Ok(index) = self.filter(entry) {
            return Ok(index);
        }
        // Filters are SLEB128 action fields the personality reads as i32.
        let index =
            i32::try_from(self.entries.len() + 1).map_err(|_| PolicyError::TypeTableFull)?;
        self.entries.push(entry.clone());
        self.filters.insert(entry.clone(), index as u32);
        Ok(index as u32)
    }

    /// Add every type entry of `list`.
    pub fn add_clauses(&mut self, list: &ClauseList) -> Result<(), PolicyError> {
        for entry in list.type_entries() {
            self.add(entry)?;
        }
        Ok(())
    }

    /// The 1-based index (type filter) of `entry`.
    pub fn filter(&self, entry: &TypeEntry) -> Result<u32, PolicyError> {
        self.filters
            .get(entry)
            .copied()
            .ok_or_else(|| PolicyError::TypeNotInTable(entry.clone()))
    }

    /// The entries, index 1 first.
    pub fn entries(&self) -> &[TypeEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sym(name: &str) -> Clause {
        Clause::Catch(TypeEntry::symbol(name))
    }

    #[test]
    fn clause_lists_drop_what_cannot_take_effect() {
        let list = ClauseList::new([
            Clause::Cleanup,
            sym("a"),
            sym("b"),
            sym("a"),
            Clause::Catch(TypeEntry::CatchAll),
            sym("c"),
        ])
        .unwrap();
        assert_eq!(
            list.clauses(),
            [sym("a"), sym("b"), Clause::Catch(TypeEntry::CatchAll)]
        );
        let list = ClauseList::new([Clause::Cleanup, sym("a"), Clause::Cleanup]).unwrap();
        assert_eq!(list.clauses(), [sym("a"), Clause::Cleanup]);
        assert_eq!(ClauseList::new([]), Err(PolicyError::EmptyClauseList));
    }

    #[test]
    fn interning_reuses_tags_and_never_collides() {
        let mut policy = ClausePolicy::new(DefaultAction::CatchAll, SelectorConvention::TypeFilter);
        policy.define(ExceptionTag::from_u32(7), sym("a")).unwrap();
        let set = policy.intern_clause_set([sym("a"), sym("b")]).unwrap();
        assert_eq!(set.as_u32(), CLAUSE_SET_TAG_BASE);
        assert_eq!(policy.intern_clause_set([sym("a"), sym("b")]).unwrap(), set);
        assert_eq!(policy.intern_clause_set([sym("a")]).unwrap().as_u32(), 7);
        assert_eq!(
            policy.define(ExceptionTag::from_u32(7), sym("z")),
            Err(PolicyError::TagAlreadyDefined(7))
        );
        assert_eq!(
            policy.define(set, sym("z")),
            Err(PolicyError::ReservedTag(CLAUSE_SET_TAG_BASE))
        );
        // An undefined tag stays unknown, whatever was interned.
        assert_eq!(
            policy.clauses(ExceptionTag::from_u32(8)),
            Err(PolicyError::UnknownTag(8))
        );
        assert_eq!(
            policy.clauses(ExceptionTag::from_u32(99)),
            Err(PolicyError::UnknownTag(99))
        );
    }

    #[test]
    fn selectors_follow_the_convention() {
        let mut types = TypeTable::new();
        types.add(&TypeEntry::symbol("b")).unwrap();
        types.add(&TypeEntry::CatchAll).unwrap();
        let all = Clause::Catch(TypeEntry::CatchAll);
        let typed_then_all = [sym("b"), all.clone()];
        for (convention, expected) in [
            (SelectorConvention::TypeFilter, [1, 2]),
            (SelectorConvention::AlwaysZero, [0, 0]),
            // After a typed clause a catch-all is "ask stage 2" too.
            (SelectorConvention::CatchAllZeroTypedOne, [1, 1]),
        ] {
            let policy = ClausePolicy::new(DefaultAction::CatchAll, convention);
            assert_eq!(
                policy.selectors(&types, &typed_then_all),
                Ok(expected.to_vec()),
                "{convention:?}"
            );
        }
        let wasmer = ClausePolicy::new(
            DefaultAction::CatchAll,
            SelectorConvention::CatchAllZeroTypedOne,
        );
        assert_eq!(
            wasmer.selectors(&types, core::slice::from_ref(&all)),
            Ok(vec![0])
        );
        assert!(matches!(
            wasmer.selectors(&types, &[sym("b"), Clause::Cleanup]),
            Err(PolicyError::UnsupportedClause { .. })
        ));
        let cxx = ClausePolicy::new(DefaultAction::Cleanup, SelectorConvention::TypeFilter);
        assert_eq!(
            cxx.selectors(&types, &[sym("b"), Clause::Cleanup]),
            Ok(vec![1, 0])
        );
        assert!(matches!(
            cxx.selectors(&types, &[sym("zzz")]),
            Err(PolicyError::TypeNotInTable(_))
        ));
    }
}
