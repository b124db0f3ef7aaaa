#!/usr/bin/env bash
# Unpack the Wasmtime snapshot into DIR as a git repository with one commit,
# the base the series is rooted at; print the tree's path.
#
#   usage: unpack.sh TARBALL DIR
set -euo pipefail
tarball=$1
dir=$2
tar xzf "$tarball" -C "$dir"
tree=$dir/wasmtime
export GIT_AUTHOR_NAME="snapshot" GIT_AUTHOR_EMAIL="snapshot@invalid"
export GIT_COMMITTER_NAME="snapshot" GIT_COMMITTER_EMAIL="snapshot@invalid"
export GIT_AUTHOR_DATE="2026-08-21T00:00:00Z" GIT_COMMITTER_DATE="2026-08-21T00:00:00Z"
git -C "$tree" init -q
git -C "$tree" add -A
git -C "$tree" -c commit.gpgsign=false commit -q -m "wasmtime e6b33de5139d915a48127fc78b790e2d306cf896"
echo "$tree"
