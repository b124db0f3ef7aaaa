#!/usr/bin/env python3
"""Move modules of this project's crates into the Cranelift tree.

usage: move.py [--rewrite FROM=TO]... [--mod-file] SRC_DIR DEST_DIR
               MODULE[:NEW_NAME]...

Each MODULE's file (SRC_DIR/MODULE.rs) is written to DEST_DIR/NEW_NAME.rs
with its paths rewritten for its new place: each `--rewrite` replaces the
path prefix FROM (a whole word, e.g. `crate::`) with TO, in the order
given, so a later rule never sees what an earlier one wrote unless it
names it. With `--mod-file`, DEST_DIR/mod.rs gets SRC_DIR/lib.rs's
documentation up to its `# This crate` section, the modules, and their
`pub use` lines from lib.rs, rewritten the same way. Nothing is written
by hand here: the crate is the one source.
"""
import re
import sys


def rewriter(rules: list[tuple[str, str]]):
    def rewrite(text: str) -> str:
        # One pass over all rules, so that text a rule produced is never
        # matched again by another.
        pattern = "|".join(rf"\b{re.escape(old)}" for old, _ in rules)
        table = dict(rules)
        return re.sub(pattern, lambda m: table[m.group(0)], text) if rules else text
    return rewrite


def module_file(root: str, modules: list[str], rewrite) -> str:
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
            out.append(rewrite(use))
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    rules, mod_file = [], False
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag == "--rewrite" and argv and "=" in argv[0]:
            rules.append(tuple(argv.pop(0).split("=", 1)))
        elif flag == "--mod-file":
            mod_file = True
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, dest, modules = argv[0], argv[1], argv[2:]
    rewrite = rewriter(rules)
    names = []
    for spec in modules:
        module, _, new_name = spec.partition(":")
        names.append(module)
        with open(f"{src}/{module}.rs", encoding="utf-8") as f:
            text = f.read()
        with open(f"{dest}/{new_name or module}.rs", "w", encoding="utf-8") as f:
            f.write(rewrite(text))
    if mod_file:
        with open(f"{src}/lib.rs", encoding="utf-8") as f:
            root = f.read()
        with open(f"{dest}/mod.rs", "w", encoding="utf-8") as f:
            f.write(module_file(root, names, rewrite))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
