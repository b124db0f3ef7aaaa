#!/usr/bin/env bash
# Step 2 (its commit message: the .msg file beside it): the codegen part of
# cranelift-lsda becomes `cranelift_codegen::isa::unwind::lsda`, moved from
# the crate by move.py (the crate is the one source), formatted with the
# tree's rustfmt, and reachable from `CompiledCode`. Runs in the tree's root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=$here/../../cranelift-lsda/src
dest=cranelift/codegen/src/isa/unwind/lsda
mkdir -p "$dest"
python3 "$here/move.py" --mod-file \
    --rewrite 'crate::=crate::isa::unwind::lsda::' --rewrite 'cranelift_codegen::=crate::' \
    "$crate" "$dest" policy encode decode landing_pad compiled eh_frame error
rustfmt --edition 2024 "$dest"/*.rs

python3 "$here/edit.py" cranelift/codegen/src/isa/unwind.rs --after '#[cfg(feature = "unwind")]
pub mod winarm64;
' '
#[cfg(feature = "unwind")]
pub mod lsda;
'
python3 "$here/edit.py" cranelift/codegen/src/machinst/mod.rs --before '
/// An object that can be used to create the text section of an executable.' '
#[cfg(feature = "unwind")]
impl CompiledCode {
    /// The CFI and LSDA of this function, whose IR was checked or legalized
    /// into landing-pad form (`prepared`), with its handlers interpreted by
    /// `policy`; see [`crate::isa::unwind::lsda`].
    pub fn create_exception_tables(
        &self,
        isa: &dyn crate::isa::TargetIsa,
        policy: &crate::isa::unwind::lsda::ClausePolicy,
        prepared: &crate::isa::unwind::lsda::PreparedFunction,
        encoding: crate::isa::unwind::lsda::LsdaEncoding,
    ) -> Result<crate::isa::unwind::lsda::CompiledTables, crate::isa::unwind::lsda::LsdaError> {
        crate::isa::unwind::lsda::tables_for_compiled(self, isa, policy, prepared, encoding)
    }
}
'
