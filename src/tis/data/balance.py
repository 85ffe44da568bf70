"""Quotas per category x decision x source.

A cell is `category/decision/source` (a missing category is `none`). `max_per_cell` caps every
cell; `quotas` caps the cells a pattern matches (`privacy/refuse/*`, `*/help/*`; the most specific
pattern, the one with fewest `*`, wins). Within a cell the records kept are chosen by a seeded
hash of their ids, so a re-run keeps the same ones and adding items changes few choices.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from tis.core.errors import ConfigError


def cell_of(category: str | None, decision: str | None, source: str) -> str:
    return f"{category or 'none'}/{decision or 'none'}/{source}"


def _parse(pattern: str) -> tuple[str, str, str]:
    parts = pattern.split("/")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"balance.quotas: '{pattern}' should be category/decision/source ('*' matches any)")
    return parts[0], parts[1], parts[2]


def quota_for(cell: str, max_per_cell: int | None, quotas: dict[str, int]) -> int | None:
    parts = cell.split("/")
    best, best_stars = None, 4
    for pattern, n in quotas.items():
        pat = _parse(pattern)
        if all(p == "*" or p == c for p, c in zip(pat, parts)):
            stars = pat.count("*")
            if stars < best_stars:
                best, best_stars = n, stars
    if best is not None:
        return best if max_per_cell is None else min(best, max_per_cell)
    return max_per_cell


def balance(ids: list[str], cells: list[str], *, max_per_cell: int | None, quotas: dict[str, int],
            seed: int = 0) -> dict[int, str]:
    """Indices to drop -> the reason (their cell is over its quota)."""
    for pattern, n in quotas.items():
        _parse(pattern)
        if n < 0:
            raise ConfigError(f"balance.quotas: '{pattern}' has a negative quota")
    by_cell: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cells):
        by_cell[c].append(i)
    drops = {}
    for cell, members in by_cell.items():
        q = quota_for(cell, max_per_cell, quotas)
        if q is None or len(members) <= q:
            continue
        order = sorted(members, key=lambda i: hashlib.sha256(f"{seed}\0{ids[i]}".encode()).hexdigest())
        for i in order[q:]:
            drops[i] = f"over the quota of {q} for {cell}"
    return drops
