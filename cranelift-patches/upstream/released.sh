#!/usr/bin/env bash
# The series on the released 0.136.0 crates: apply it to cranelift-codegen,
# -codegen-meta, -jit and -object as cargo downloaded them, build a copy of this
# workspace against them (`[patch.crates-io]`, cranelift-lsda with
# `--cfg cranelift_lsda_upstream`, so the in-tree API comes from the
# patched crates), and run the end-to-end suite: libstdc++ catches, Rust panics through cleanups, the
# three unwinders, linked objects and external decoders, the filetests.
#
#   usage: released.sh [cargo test arguments...]
#
# Builds in target/released of the project; prints one line per stage.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tarball=${WASMTIME_TARBALL:-$root/../shared/upstream/wasmtime-e6b33de.tar.gz}
if [[ ! -f $tarball ]]; then
    echo "released: the Wasmtime snapshot $tarball is missing (../shared/upstream)" >&2
    exit 1
fi
out=$root/target/released
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$SECONDS

# The series as per-crate diffs: applied to the snapshot, then taken
# relative to each crate's directory.
tree=$(bash "$here/unpack.sh" "$tarball" "$work")
git -C "$tree" -c user.name=ci -c user.email=ci@invalid am -q "$here"/series/*.patch
patches=$(ls "$here"/series/*.patch | wc -l)

(cd "$root" && cargo fetch -q)
registry=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cranelift-codegen-0.136.0 | head -n 1)
registry=$(dirname "$registry")
rm -rf "$out/crates"
mkdir -p "$out/crates"
for crate in cranelift-codegen:cranelift/codegen cranelift-codegen-meta:cranelift/codegen/meta \
    cranelift-jit:cranelift/jit cranelift-object:cranelift/object; do
    name=${crate%%:*}
    path=${crate#*:}
    cp -r "$registry/$name-0.136.0" "$out/crates/$name"
    git -C "$tree" diff --relative="$path/" "HEAD~$patches" HEAD -- "$path/src" \
        >"$work/$name.diff"
    # Inside the project's own repository, `git apply` would take paths
    # from its top and silently skip these; the ceiling keeps it out.
    (cd "$out/crates/$name" && GIT_CEILING_DIRECTORIES=$out/crates git apply -p1 "$work/$name.diff")
    grep -q . "$work/$name.diff" || echo "released: no change to $name" >&2
done
echo "released: $patches patches applied to cranelift-codegen, -codegen-meta, -jit and -object 0.136.0 ($((SECONDS - t0)) s)"

# A copy of the workspace, its crates built against the patched ones with
# `[patch.crates-io]` given on the command line; the Wasmer adapter, which
# pins the stock crates and is measured against them, is not built.
ws=$out/workspace
rm -rf "$ws"
mkdir -p "$ws/cranelift-patches" "$ws/docs"
cp "$root/Cargo.toml" "$root/Cargo.lock" "$ws/"
cp -r "$root/cranelift-patches/cranelift-lsda" "$root/cranelift-patches/clif-eh" "$root/cranelift-patches/jit-arenas" "$ws/cranelift-patches/"
cp -r "$root/tests" "$root/filetests" "$root/wasmer-adapter" "$ws/"
cp -r "$root/docs/examples" "$ws/docs/"
# The docs' checks and the series generator's tests are about this
# repository's files, which the copy leaves out; ./test.sh runs them.
rm "$ws/cranelift-patches/clif-eh/tests/docs.rs" "$ws/tests/tests/apply_steps.rs"
patched=()
for name in cranelift-codegen cranelift-codegen-meta cranelift-jit cranelift-object; do
    patched+=(--config "patch.crates-io.$name.path=\"$out/crates/$name\"")
done

start=$SECONDS
log=$work/test.log
status=0
# cranelift-lsda takes the in-tree API from the patched crates.
(cd "$ws" && CARGO_TARGET_DIR=$out/target RUSTFLAGS="--cfg cranelift_lsda_upstream" RUSTDOCFLAGS="--cfg cranelift_lsda_upstream" cargo test "${patched[@]}" --workspace --exclude wasmer-eh-adapter --no-fail-fast --ignore-rust-version "$@") \
    >"$log" 2>&1 || status=$?
grep -E "^test .*FAILED|panicked|^error" "$log" | head -20 >&2 || true
awk '/^test result:/ { p += $4; f += $6 } /^filetests: [0-9]+ passed/ { p += $2; f += $4 }
     END { printf "released: end-to-end through the in-tree API (unwind_lsda on): %d passed, %d failed", p, f }' "$log"
echo " ($((SECONDS - start)) s)"
exit "$status"
