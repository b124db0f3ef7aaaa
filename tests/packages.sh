#!/usr/bin/env bash
# Install what the tests and lints need on a Debian machine: the missing
# packages only, as root or through sudo. Run by ./test.sh (the README's
# test command) and first by .ci/run, whose clippy stage already builds the
# unwinder tests' build scripts, which look for libunwind.so.1.
set -euo pipefail

# Independent decoders: eu-readelf (elfutils), readelf (binutils),
# llvm-dwarfdump (llvm). g++: the C++ runtime and linked executables.
# Unwinders: libunwind-14 (LLVM, libunwind.so.1) and libunwind8 (nongnu,
# libunwind.so.8); their -dev packages conflict, and the tests link the
# runtime libraries by path, so only the runtimes are installed. Cross g++
# and qemu-user: the linked suite executed on aarch64, riscv64 and s390x.
# valgrind: the leak checks. clang: the benchmark's LSDA sizes next to
# g++'s (`cargo bench -p eh-tests`, run briefly by CI).
packages=(elfutils binutils g++ llvm libunwind-14 libunwind8
    g++-aarch64-linux-gnu g++-riscv64-linux-gnu g++-s390x-linux-gnu qemu-user valgrind clang)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$package")
done
if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null; then
        echo "packages.sh: install ${missing[*]} (Debian package names) and run again" >&2
        exit 1
    fi
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    echo "packages.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
