#!/usr/bin/env python3
"""Move modules of the cranelift-lsda crate into the Cranelift tree.

usage: move.py CRATE_SRC DEST_DIR MODULE_PATH MODULE...

Each MODULE's file is written to DEST_DIR with its paths rewritten for its
new place: `crate::` (the crate's root, which becomes the module
MODULE_PATH) to `crate::MODULE_PATH::`, then `cranelift_codegen::` to
`crate::`. DEST_DIR/mod.rs gets the crate root's documentation up to its
`# This crate` section, the modules, and their `pub use` lines. Nothing is
written by hand here: the crate is the one source.
"""
import re
import sys


def rewrite(text: str, module_path: str) -> str:
    text = re.sub(r"\bcrate::", f"crate::{module_path}::", text)
    return re.sub(r"\bcranelift_codegen::", "crate::", text)


def module_file(root: str, modules: list[str], module_path: str) -> str:
    docs = []
    for line in root.splitlines():
        if not line.startswith("//!") or line.startswith("//! # This crate"):
            break
        docs.append(line)
    while docs and docs[-1] == "//!":
        docs.pop()
    out = docs + [""]
    out += [f"mod {m};" for m in modules] + [""]
    for m in modules:
        for use in re.findall(rf"^\s*(pub use {m}::(?:\{{[^}}]*\}}|\w+);)", root, re.M):
            out.append(rewrite(use, module_path))
    return "\n".join(out) + "\n"


def main() -> int:
    if len(sys.argv) < 5:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, dest, module_path, modules = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    for m in modules:
        with open(f"{src}/{m}.rs", encoding="utf-8") as f:
            text = f.read()
        with open(f"{dest}/{m}.rs", "w", encoding="utf-8") as f:
            f.write(rewrite(text, module_path))
    with open(f"{src}/lib.rs", encoding="utf-8") as f:
        root = f.read()
    with open(f"{dest}/mod.rs", "w", encoding="utf-8") as f:
        f.write(module_file(root, modules, module_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
