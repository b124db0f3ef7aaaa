#!/usr/bin/env python3
"""Insert text into an upstream file next to an anchor that must occur once.

usage: edit.py FILE (--after | --before) ANCHOR TEXT

The anchor is matched literally; a missing or repeated anchor is an error,
so a step never edits a tree it was not written for.
"""
import sys


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[2] not in ("--after", "--before"):
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
    at = source.index(anchor) + (len(anchor) if where == "--after" else 0)
    with open(path, "w", encoding="utf-8") as f:
        f.write(source[:at] + text + source[at:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
