"""Choosing which samples to run: a seeded subset that is the same every time, and a limit."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable

from tis.core.types import Sample


def _rank(seed: int, sample_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{sample_id}".encode()).digest()


def select(samples: Iterable[Sample], *, limit: int | None = None, sample: int | None = None,
           seed: int = 0) -> list[Sample]:
    """`sample=N`: the N samples with the smallest hash of (seed, id), whatever the reading order,
    kept in reading order; `limit=N`: the first N after that."""
    if sample is None:
        out = []
        for s in samples:
            if limit is not None and len(out) >= limit:
                break
            out.append(s)
        return out
    heap: list[tuple[bytes, int, Sample]] = []  # a max-heap of the N smallest ranks, by negation
    for position, s in enumerate(samples):
        item = (bytes(255 - b for b in _rank(seed, s.id)), position, s)
        if len(heap) < sample:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    chosen = [s for _, _, s in sorted(heap, key=lambda x: x[1])]
    return chosen[:limit] if limit is not None else chosen
