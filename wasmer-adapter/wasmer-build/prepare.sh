#!/usr/bin/env bash
# Put the patched wasmer-compiler-cranelift 7.5.0 where the `generic-lsda`
# build workspace's [patch.crates-io] points: cargo's registry copy of the
# released crate, with `generic-lsda.patch` (made by generate.sh from
# overlay/, steps/ and registry-manifest.hooks) applied. Nothing of Wasmer's
# is in this repository; the copy lives under target/ and is redone only
# when the patch changes (a fresh copy would make cargo rebuild Wasmer).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest="$root/target/wasmer-src"
crate=wasmer-compiler-cranelift-7.5.0
stamp="$dest/$crate.patch-sha256"

want=$(sha256sum "$here/generic-lsda.patch" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dest/$crate" ]; then
    exit 0
fi

src=$("$here/registry-crate.sh")

rm -rf "${dest:?}/$crate" "$dest/pristine"
mkdir -p "$dest/pristine"
cp -r "$src" "$dest/pristine/"
cp -r "$src" "$dest/"
patch -d "$dest/$crate" -p1 --quiet --no-backup-if-mismatch < "$here/generic-lsda.patch"
echo "$want" > "$stamp"
echo "prepare.sh: $crate patched in $dest/$crate"
