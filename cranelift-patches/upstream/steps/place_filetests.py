#!/usr/bin/env python3
"""Place this project's filetests where upstream keeps them.

usage: place_filetests.py SRC_DIR DEST_DIR PREFIX

Each SRC_DIR/<name>.clif becomes DEST_DIR/<arch>/<PREFIX>-<name>.clif for
each of its `target` lines (`isa/<arch>/` as upstream names the ISAs).
Upstream compares every target of a file with one expectation block, so a
file with several targets is split: each copy keeps its own `target` line
(the others become blank lines, so that line numbers in directive errors
stay the same) and, after each function, its own section of the
expectation (the lines after `target <triple>`). An expectation without
sections (a directive error, the same on every target) is kept whole.
"""
import os
import re
import sys

ARCH_DIRS = {"x86_64": "x64", "aarch64": "aarch64", "riscv64": "riscv64",
             "s390x": "s390x", "pulley32": "pulley32", "pulley64": "pulley64"}


def arch_dir(target_line: str) -> str:
    arch = target_line.split()[1].split("-")[0]
    if arch not in ARCH_DIRS:
        raise SystemExit(f"place_filetests.py: no upstream directory for `{target_line}`")
    return ARCH_DIRS[arch]


def is_expectation(line: str) -> bool:
    return line.startswith(";") and not line.startswith(";;") and not re.match(
        r";\s*eh-[\w-]+:", line)


def split(lines: list[str], keep: int, targets: list[int]) -> list[str]:
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if i in targets and i != keep:
            out.append("")
            i += 1
            continue
        out.append(line)
        i += 1
        if line.split(";")[0].strip() != "}":
            continue
        # The expectation block after a function's closing brace.
        while i < len(lines) and not lines[i].strip():
            out.append(lines[i])
            i += 1
        block = []
        while i < len(lines) and is_expectation(lines[i]):
            block.append(lines[i])
            i += 1
        sections, current = [], None
        for b in block:
            if b.startswith("; target "):
                current = []
                sections.append(current)
            elif current is not None:
                current.append(b)
        if not sections:
            out.extend(block)
        else:
            if len(sections) != len(targets):
                raise SystemExit("place_filetests.py: expectation sections differ from targets")
            out.extend(sections[targets.index(keep)])
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, dest, prefix = argv
    for name in sorted(os.listdir(src)):
        if not name.endswith(".clif"):
            continue
        with open(os.path.join(src, name), encoding="utf-8") as f:
            lines = f.read().split("\n")
        targets = [i for i, l in enumerate(lines) if l.startswith("target ")]
        for keep in targets:
            text = "\n".join(split(lines, keep, targets) if len(targets) > 1 else lines)
            directory = os.path.join(dest, arch_dir(lines[keep]))
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, f"{prefix}-{name}"), "w", encoding="utf-8") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
