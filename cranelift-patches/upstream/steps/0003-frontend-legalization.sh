#!/usr/bin/env bash
# Step 3 (its commit message: the .msg file beside it): the landing-pad
# legalization pass becomes `cranelift_frontend::legalize_landing_pads`,
# moved from cranelift-lsda's `legalize.rs` by move.py (it builds on
# cranelift-frontend's `Switch` and uses only the public API of
# `isa::unwind::lsda`). Runs in the tree's root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=$here/../../cranelift-lsda/src
dest=cranelift/frontend/src
python3 "$here/move.py" \
    --rewrite 'crate::=cranelift_codegen::isa::unwind::lsda::' --rewrite 'cranelift_frontend::=crate::' \
    "$crate" "$dest" legalize:landing_pads
rustfmt --edition 2024 "$dest/landing_pads.rs"

python3 "$here/edit.py" cranelift/frontend/src/lib.rs --after 'pub use crate::variable::Variable;
' 'pub use crate::landing_pads::legalize_landing_pads;
'
python3 "$here/edit.py" cranelift/frontend/src/lib.rs --before 'mod ssa;
' 'mod landing_pads;
'
