#!/usr/bin/env bash
# Generate the upstream patch series, rooted at the Wasmtime snapshot, as
# `git format-patch` files in series/ (or OUT).
#
#   usage: generate.sh [OUT]
#
# A commit is three files in steps/: NNNN-name.files lists the new files it
# adds, copied from overlay/ (laid out as their upstream destinations);
# NNNN-name.hooks is the diff of its small edits to existing upstream
# files, applied with `git apply`; NNNN-name.msg is its message. Every
# overlay file belongs to exactly one commit. Authors, dates and the base
# are fixed, so the same inputs always give the same bytes: CI regenerates
# the series and fails when it differs from the committed one.
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

# The project's commit identity, as in this repository's history.
export GIT_AUTHOR_NAME="Seed 9fd8a40e maintainers"
export GIT_AUTHOR_EMAIL="maintainers@users.noreply.r-seed-9fd8a40e.example"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export GIT_AUTHOR_DATE="2026-12-02T00:00:00Z" GIT_COMMITTER_DATE="2026-12-02T00:00:00Z"

messages=("$here"/steps/[0-9][0-9][0-9][0-9]-*.msg)
placed=()
for message in "${messages[@]}"; do
    step=${message%.msg}
    if [[ -f $step.files ]]; then
        while read -r path; do
            [[ -z $path ]] && continue
            if [[ ! -f $here/overlay/$path ]]; then
                echo "generate.sh: $(basename "$step.files") names $path, which overlay/ lacks" >&2
                exit 1
            fi
            if [[ -e $tree/$path ]]; then
                echo "generate.sh: $path already exists upstream; edit it with a hook" >&2
                exit 1
            fi
            mkdir -p "$(dirname "$tree/$path")"
            cp "$here/overlay/$path" "$tree/$path"
            placed+=("$path")
        done <"$step.files"
    fi
    if [[ -f $step.hooks ]]; then
        git -C "$tree" apply --whitespace=error-all "$step.hooks"
    fi
    git -C "$tree" add -A
    git -C "$tree" commit -q -F "$message"
done

# An overlay file no commit places would be compiled and tested here but
# never proposed.
while read -r path; do
    if ! printf '%s\n' "${placed[@]}" | grep -qxF "$path"; then
        echo "generate.sh: overlay/$path is in no step's .files" >&2
        exit 1
    fi
done < <(cd "$here/overlay" && find . -type f | sed 's|^\./||' | sort)

rm -rf "$out"
mkdir -p "$out"
git -C "$tree" -c core.abbrev=12 format-patch -q --zero-commit --no-signature -o "$out" \
    "HEAD~${#messages[@]}"
echo "generate.sh: ${#messages[@]} patches in $out"
