#!/usr/bin/env bash
# After editing the patched copy in target/wasmer-src/, write its difference
# from the registry copy back into generic-lsda.patch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root/target/wasmer-src/pristine"
crate=wasmer-compiler-cranelift-7.5.0
status=0
diff -ruN "$crate" "../$crate" > "$here/generic-lsda.patch.raw" || status=$?
[ "$status" -le 1 ] || { echo "update-patch.sh: diff failed" >&2; exit 1; }
# Paths relative to the crate root, as `patch -p1` reads them; no dates.
sed -e '/^diff -ruN /d' \
    -e "s|^--- $crate/\([^\t]*\).*|--- a/\1|" \
    -e "s|^+++ ../$crate/\([^\t]*\).*|+++ b/\1|" \
    "$here/generic-lsda.patch.raw" > "$here/generic-lsda.patch"
rm "$here/generic-lsda.patch.raw"
sha256sum "$here/generic-lsda.patch" | cut -d' ' -f1 > "../$crate.patch-sha256"
echo "update-patch.sh: $(grep -c '^+++ ' "$here/generic-lsda.patch") files in generic-lsda.patch"
