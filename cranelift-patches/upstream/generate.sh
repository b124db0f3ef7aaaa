#!/usr/bin/env bash
# Generate the upstream patch series, rooted at the Wasmtime snapshot, as
# `git format-patch` files in series/ (or OUT).
#
#   usage: generate.sh [OUT]
#
# Each commit is a step of steps/ applied by apply-steps.sh: new files from
# overlay/ (laid out as their upstream destinations), hooks (small edits to
# existing upstream files) and a message. Authors, dates and the base are
# fixed, so the same inputs always give the same bytes: CI regenerates the
# series and fails when it differs from the committed one.
#
# With KEEP_TREE=DIR, the patched tree is left in DIR (a git repository,
# one commit per step) for editing hooks: change it, then write the
# step's hooks back with `git -C DIR diff HEAD~1 -- ':!<overlay paths>'`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/series}
tarball=${WASMTIME_TARBALL:-$here/../../../shared/upstream/wasmtime-e6b33de.tar.gz}
if [[ ! -f $tarball ]]; then
    echo "generate.sh: the Wasmtime snapshot $tarball is missing (../shared/upstream)" >&2
    exit 1
fi

work=${KEEP_TREE:-$(mktemp -d)}
[[ -n ${KEEP_TREE:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
tree=$(bash "$here/unpack.sh" "$tarball" "$work")

source "$here/commit-identity.sh"

steps=$(bash "$here/apply-steps.sh" "$tree" "$here/overlay" "$here/steps")

rm -rf "$out"
mkdir -p "$out"
git -C "$tree" -c core.abbrev=12 format-patch -q --zero-commit --no-signature -o "$out" \
    "HEAD~$steps"
echo "generate.sh: $steps patches in $out"
