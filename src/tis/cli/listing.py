"""Listings (`tis models list`, `tis benchmarks list`, `tis judges list`) printed one way.

- Always on standard output.
- `--json`: a JSON list of records, every field, nothing cut.
- Not a terminal (piped, redirected): plain tab-separated rows, no header, nothing cut, so
  `cut -f1`, `awk -F'\\t'` and `grep` see whole values.
- A terminal: an aligned table as wide as the terminal (`COLUMNS` is honoured). The first column
  (the name users type) is never shortened; the other columns wrap inside their width.

Standard library only: a listing starts fast and prints the same in every terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, TextIO

MIN_WIDTH = 12  # a wrapped column is never narrower than this (or its whole content)
GAP = "  "


def add_listing_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of records (every field)")


def terminal_width(stream: TextIO | None = None) -> int:
    """COLUMNS if set, else the terminal's width, else 80."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    stream = stream or sys.stdout
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size((80, 24)).columns


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "-"
    return " ".join(str(value).split())  # one line: no tabs or newlines inside a cell


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int) -> list[str]:
    """An aligned table at most `width` wide where it can be. The first column is kept whole; the
    others wrap, the widest shrinking first down to a floor (MIN_WIDTH, or its header's longest
    word); columns that still do not fit are left out from the right, and a last line says so."""
    cells = [[_plain(v) for v in row] for row in rows]
    head = list(headers)
    natural = [max([len(head[i])] + [len(r[i]) for r in cells]) for i in range(len(head))]
    floor = [natural[0]] + [min(natural[i], max(MIN_WIDTH, *(len(w) for w in head[i].split())))
                            for i in range(1, len(head))]
    n = len(head)
    while n > 2 and sum(floor[:n]) + len(GAP) * (n - 1) > width:
        n -= 1  # the rightmost columns go first: they are ordered by importance
    widths = natural[:n]
    while sum(widths) + len(GAP) * (n - 1) > width:
        shrinkable = [i for i in range(1, n) if widths[i] > floor[i]]
        if not shrinkable:
            break  # the key column alone is wider than the terminal: it still is not cut
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    lines = []
    for row in [head, *cells]:
        wrapped = [[row[0]]] + [textwrap.wrap(row[i], widths[i], break_long_words=True,
                                              break_on_hyphens=False) or [""] for i in range(1, n)]
        height = max(len(w) for w in wrapped)
        for k in range(height):
            parts = [(w[k] if k < len(w) else "").ljust(widths[i]) for i, w in enumerate(wrapped)]
            lines.append(GAP.join(parts).rstrip())
    if n < len(head):
        lines += textwrap.wrap(f"({', '.join(head[n:])} left out at {width} columns: widen the terminal or use "
                               "--json)", max(width, 20))
    return lines


def print_listing(args: argparse.Namespace, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                  records: Sequence[dict[str, Any]], *, stream: TextIO | None = None) -> int:
    """Print `records` as JSON with --json, else `rows` (as tab-separated rows when not a terminal)."""
    out = stream or sys.stdout
    if getattr(args, "json", False):
        out.write(json.dumps(list(records), indent=2, ensure_ascii=False, default=str) + "\n")
    elif not _is_tty(out):
        for row in rows:
            out.write("\t".join(_plain(v) for v in row) + "\n")
    else:
        out.write("\n".join(table_lines(headers, rows, terminal_width(out))) + "\n")
    out.flush()
    return 0


def print_registry(args: argparse.Namespace, registry: Any, noun: str) -> int:
    """A registry's entries (name and summary; the import target too with --json) as a listing."""
    entries = registry.entries()
    return print_listing(args, (noun, "summary"), [(e.name, e.summary) for e in entries],
                         [{"name": e.name, "summary": e.summary, "target": e.target} for e in entries])
