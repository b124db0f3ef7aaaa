#!/usr/bin/env bash
# Make one commit per step in TREE (a git repository): the Cranelift series
# and the Wasmer patch are both made this way.
#
#   usage: apply-steps.sh TREE OVERLAY STEPS
#
# A step is three files in STEPS: NNNN-name.files lists the new files it
# adds, copied from OVERLAY (a tree laid out as TREE); NNNN-name.hooks is
# the diff of its small edits to files TREE already has, applied with `git
# apply`; NNNN-name.msg is its commit message. Every file in OVERLAY
# belongs to exactly one step, and none may exist in TREE before. The
# commit identity and date come from the environment (GIT_AUTHOR_*,
# GIT_COMMITTER_*). Prints the number of steps.
set -euo pipefail
if [[ $# -ne 3 ]]; then
    echo "usage: apply-steps.sh TREE OVERLAY STEPS" >&2
    exit 2
fi
tree=$1
overlay=$2
steps=$3

messages=("$steps"/[0-9][0-9][0-9][0-9]-*.msg)
if [[ ! -f ${messages[0]} ]]; then
    echo "apply-steps.sh: no NNNN-*.msg in $steps" >&2
    exit 1
fi
placed=()
for message in "${messages[@]}"; do
    step=${message%.msg}
    if [[ -f $step.files ]]; then
        while read -r path; do
            [[ -z $path ]] && continue
            if [[ ! -f $overlay/$path ]]; then
                echo "apply-steps.sh: $(basename "$step.files") names $path, which $overlay lacks" >&2
                exit 1
            fi
            if [[ -e $tree/$path ]]; then
                echo "apply-steps.sh: $path already exists in the tree; edit it with a hook" >&2
                exit 1
            fi
            mkdir -p "$(dirname "$tree/$path")"
            cp "$overlay/$path" "$tree/$path"
            placed+=("$path")
        done <"$step.files"
    fi
    if [[ -f $step.hooks ]]; then
        git -C "$tree" apply --whitespace=error-all "$step.hooks"
    fi
    git -C "$tree" add -A
    git -C "$tree" commit -q -F "$message"
done

# An overlay file no step places would be compiled and tested here but
# never proposed.
while read -r path; do
    if ! printf '%s\n' "${placed[@]}" | grep -qxF "$path"; then
        echo "apply-steps.sh: $overlay/$path is in no step's .files" >&2
        exit 1
    fi
done < <(cd "$overlay" && find . -type f | sed 's|^\./||' | sort)
echo "${#messages[@]}"
