#!/usr/bin/env bash
# Generate the upstream patch series from its steps, rooted at the Wasmtime
# snapshot, as `git format-patch` files in series/ (or OUT).
#
#   usage: generate.sh [OUT]
#
# Each steps/NNNN-*.sh edits the tree (run in its root) and steps/NNNN-*.msg
# is that commit's message. Authors, dates and the base are fixed, so the
# same steps always give the same bytes: CI regenerates the series and fails
# when it differs from the committed one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/series}
tarball=${WASMTIME_TARBALL:-$here/../../../shared/upstream/wasmtime-e6b33de.tar.gz}
if [[ ! -f $tarball ]]; then
    echo "generate.sh: the Wasmtime snapshot $tarball is missing (../shared/upstream)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$(bash "$here/unpack.sh" "$tarball" "$work")

export GIT_AUTHOR_NAME="cranelift-lsda" GIT_AUTHOR_EMAIL="cranelift-lsda@invalid"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export GIT_AUTHOR_DATE="2026-11-30T00:00:00Z" GIT_COMMITTER_DATE="2026-11-30T00:00:00Z"
steps=("$here"/steps/[0-9][0-9][0-9][0-9]-*.sh)
for step in "${steps[@]}"; do
    (cd "$tree" && bash "$step")
    git -C "$tree" add -A
    git -C "$tree" commit -q -F "${step%.sh}.msg"
done

rm -rf "$out"
mkdir -p "$out"
git -C "$tree" -c core.abbrev=12 format-patch -q --zero-commit --no-signature -o "$out" "HEAD~${#steps[@]}"
echo "generate.sh: ${#steps[@]} patches in $out"
