#!/usr/bin/env python3
"""Insert text into an upstream file next to an anchor that must occur once,
or replace the anchor with it.

usage: edit.py FILE (--after | --before | --replace) ANCHOR TEXT

The anchor is matched literally; a missing or repeated anchor is an error,
so a step never edits a tree it was not written for.
"""
import sys


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[2] not in ("--after", "--before", "--replace"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, where, anchor, text = sys.argv[1:]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    count = source.count(anchor)
    if count != 1:
        print(f"edit.py: {path}: anchor found {count} times, expected once:\n{anchor}",
              file=sys.stderr)
        return 1
    at = source.index(anchor)
    if where == "--replace":
        source = source[:at] + source[at + len(anchor):]
    elif where == "--after":
        at += len(anchor)
    with open(path, "w", encoding="utf-8") as f:
        f.write(source[:at] + text + source[at:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
