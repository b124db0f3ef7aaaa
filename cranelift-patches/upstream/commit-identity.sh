# Sourced by the generators of the Cranelift series and of the Wasmer patch:
# the project's commit identity (as in this repository's history) and a
# fixed date, so the same inputs always give the same patches.
export GIT_AUTHOR_NAME="Seed 9fd8a40e maintainers"
export GIT_AUTHOR_EMAIL="maintainers@users.noreply.r-seed-9fd8a40e.example"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME"
export GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export GIT_AUTHOR_DATE="2026-12-02T00:00:00Z"
export GIT_COMMITTER_DATE="$GIT_AUTHOR_DATE"
