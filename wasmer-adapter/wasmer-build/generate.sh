#!/usr/bin/env bash
# Generate the Wasmer change in both forms from its real files:
#
#   * series/: a `git format-patch` series rooted at Wasmer's repository
#     layout (`lib/compiler-cranelift/`, its manifest with workspace
#     inheritance), for Wasmer's maintainers;
#   * generic-lsda.patch: the same change for the crate as cargo downloads
#     it (normalized manifest, paths from the crate root), which
#     prepare.sh applies for the builds here.
#
#   usage: generate.sh [OUT_DIR]   (default: this directory)
#
# The base is the registry's wasmer-compiler-cranelift 7.5.0, released from
# Wasmer commit 82ff099e (its .cargo_vcs_info.json), laid out as in that
# commit. The change is the steps of steps/ (overlay/ files, hooks, message)
# applied by the Cranelift series' apply-steps.sh; the registry form takes
# its source part from that commit and its manifest edit from
# registry-manifest.hooks. CI regenerates both and fails when they differ
# from the committed ones.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here}

src=$("$here/registry-crate.sh")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/wasmer
dir=$tree/lib/compiler-cranelift
mkdir -p "$dir"
cp -r "$src/src" "$src/README.md" "$src/.gitignore" "$dir/"
cp "$src/Cargo.toml.orig" "$dir/Cargo.toml"

source "$root/cranelift-patches/upstream/commit-identity.sh"
git -C "$tree" init -q
git -C "$tree" add -A
git -C "$tree" commit -q -m "wasmer v7.5.0 (82ff099e): lib/compiler-cranelift as released"
steps=$(bash "$root/cranelift-patches/upstream/apply-steps.sh" "$tree" "$here/overlay" "$here/steps")

rm -rf "$out/series"
mkdir -p "$out/series"
git -C "$tree" -c core.abbrev=12 format-patch -q --zero-commit --no-signature \
    -o "$out/series" "HEAD~$steps"

# The series applies to the base as Wasmer's maintainers would apply it.
git -C "$tree" worktree add -q --detach "$work/am" "HEAD~$steps"
git -C "$work/am" am -q "$out"/series/*.patch

# The registry form: the manifest edit, then the sources' diff from the
# crate root.
{
    cat "$here/registry-manifest.hooks"
    git -C "$tree" diff --no-prefix --relative=lib/compiler-cranelift/ --src-prefix=a/ \
        --dst-prefix=b/ "HEAD~$steps" HEAD -- lib/compiler-cranelift/src
} >"$out/generic-lsda.patch"
echo "generate.sh: $steps commit(s) in $out/series, and $out/generic-lsda.patch"
