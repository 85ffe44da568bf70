"""Near-duplicate removal over unit vectors (MiniLM sentence embeddings) in blocks.

Rows are visited in order; a row is a near duplicate when its cosine similarity to an earlier
*kept* row of the same group is at least the threshold (groups: the item's image set, so the same
generic question about two different images is not a duplicate; one group for all when texts
should be unique across images). Similarities are computed one block of rows at a time against
the kept rows in column blocks, so memory is `block x column_block` floats, never N x N: 100,000
rows of 384 floats need 150 MB for the vectors and 32 MB of scratch.
"""

from __future__ import annotations

import numpy as np


def near_duplicates(vectors: np.ndarray, threshold: float, *, groups: np.ndarray | None = None,
                    block: int = 1024, column_block: int = 8192) -> np.ndarray:
    """For each row, the index of the earlier kept row it duplicates, or -1 (kept)."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n = v.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    g = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    kept = np.empty(n, dtype=np.int64)  # indices of kept rows, in order
    n_kept = 0
    thr = np.float32(threshold - 1e-6)
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = v[start:stop]
        rg = g[start:stop]
        best = np.full(stop - start, -1, dtype=np.int64)
        # against rows kept in earlier blocks: one matrix product and a row maximum per column
        # block; only the rare rows whose maximum reaches the threshold are looked at closely
        for c0 in range(0, n_kept, column_block):
            cols = kept[c0:min(n_kept, c0 + column_block)]
            sims = rows @ v[cols].T
            candidates = np.nonzero((sims.max(axis=1) >= thr) & (best < 0))[0]
            for i in candidates:
                match = np.nonzero((sims[i] >= thr) & (g[cols] == rg[i]))[0]
                if match.size:
                    best[i] = cols[match[0]]
        # within the block, in order
        inner = rows @ rows.T
        inner[rg[:, None] != rg[None, :]] = -2.0
        alive = best < 0
        for i in range(stop - start):
            if not alive[i]:
                continue
            # row i is kept: later rows in the block that match it are its duplicates
            later = np.nonzero((inner[i, i + 1:] >= thr) & alive[i + 1:])[0] + i + 1
            if later.size:
                best[later] = start + i
                alive[later] = False
        for i in np.nonzero(alive)[0]:
            kept[n_kept] = start + i
            n_kept += 1
        out[start:stop] = best
    return out


def exact_duplicates(texts: list[str], groups: list | None = None) -> np.ndarray:
    """The same as `near_duplicates` for texts equal after case and whitespace folding."""
    seen: dict[tuple, int] = {}
    out = np.full(len(texts), -1, dtype=np.int64)
    for i, t in enumerate(texts):
        key = (groups[i] if groups is not None else 0, " ".join(t.lower().split()))
        if key in seen:
            out[i] = seen[key]
        else:
            seen[key] = i
    return out
