"""Multi-channel merge: channel lists -> one deduplicated list per user, provenance and scores kept.

Each strategy gives every (channel, rank) entry a value; entries of one item are combined (summed
for reciprocal-rank fusion, best-of otherwise) and the merged list is ordered by that value. Short
lists (cold users, sparse histories) are filled with popular items the user has not seen.

>>> import numpy as np
>>> a = Candidates(np.array([[1, 2, 3]]), np.ones((1, 3), np.float32))
>>> b = Candidates(np.array([[3, 4, -1]]), np.ones((1, 3), np.float32))
>>> merged = merge_candidates([("a", a, 1.0), ("b", b, 1.0)], k=4, strategy="rrf", rrf_k=60)
>>> merged.items.tolist(), merged.channel_names(0)
([[3, 1, 2, 4]], ['a', 'b'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from recforge.recall.channels.base import Candidates
from recforge.registry import Registry

FALLBACK = "popular_fallback"

# (rank [U, q] 0-based, channel position, weight, rrf_k) -> value per entry, and how one item's values combine
Strategy = tuple[Callable[[np.ndarray, int, float, float], np.ndarray], str]
STRATEGIES: Registry[Strategy] = Registry("merge strategy")
STRATEGIES.register("rrf")((lambda rank, c, w, rrf_k: w / (rrf_k + rank + 1.0), "sum"))
STRATEGIES.register("round_robin")((lambda rank, c, w, rrf_k: -(rank + 1.0) / w - 1e-6 * c, "max"))
STRATEGIES.register("priority")((lambda rank, c, w, rrf_k: -(c * 1e6 + rank), "max"))


@dataclass(frozen=True)
class MergedCandidates:
    """items/scores [U, k] (-1 pads), `sources` [U, k] bitmask over `channels` (bit c = channel c)."""

    items: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    channels: tuple[str, ...]

    def channel_names(self, row: int, col: int = 0) -> list[str]:
        return list(names_of(self.channels, int(self.sources[row, col])))


@lru_cache(maxsize=4096)
def names_of(channels: tuple[str, ...], mask: int) -> tuple[str, ...]:
    """The channels a provenance bitmask names (memoized: a service asks for the same few masks per answer)."""
    return tuple(name for bit, name in enumerate(channels) if mask >> bit & 1)


def merge_candidates(
    lists: Sequence[tuple[str, Candidates, float]],
    k: int,
    *,
    strategy: str = "rrf",
    rrf_k: float = 60.0,
    popular: np.ndarray | None = None,
    exclude: sp.csr_matrix | None = None,
) -> MergedCandidates:
    """Merge `(name, candidates, weight)` lists; `popular` (item codes, best first) fills short rows."""
    value_of, combine = STRATEGIES.get(strategy, yaml_path="recall.merge.strategy")
    n_users = lists[0][1].items.shape[0]
    rows, items, values, bits = [], [], [], []
    for c, (_, cand, weight) in enumerate(lists):
        valid = cand.items >= 0
        rank = np.broadcast_to(np.arange(cand.items.shape[1]), cand.items.shape)
        rows.append(np.nonzero(valid)[0])
        items.append(cand.items[valid])
        values.append(value_of(rank, c, weight, rrf_k)[valid])
        bits.append(np.full(int(valid.sum()), 1 << c, dtype=np.int64))
    names = tuple(name for name, _, _ in lists)
    merged = _combine(
        np.concatenate(rows), np.concatenate(items), np.concatenate(values), np.concatenate(bits), combine
    )
    out = _top_per_row(*merged, n_users=n_users, k=k)
    if popular is not None:
        out = _fill(out, popular, exclude, bit=1 << len(names))
        names = (*names, FALLBACK)
    return MergedCandidates(*out, channels=names)


def _combine(
    rows: np.ndarray, items: np.ndarray, values: np.ndarray, bits: np.ndarray, how: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One entry per (row, item): values summed or maxed, provenance bits OR-ed."""
    keys = rows * (int(items.max(initial=0)) + 1) + items
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if how == "sum":
        combined = np.bincount(inverse, weights=values, minlength=len(unique))
    else:
        combined = np.full(len(unique), -np.inf)
        np.maximum.at(combined, inverse, values)
    sources = np.zeros(len(unique), dtype=np.int64)
    np.bitwise_or.at(sources, inverse, bits)
    return rows[first], items[first], combined, sources


def _top_per_row(
    rows: np.ndarray, items: np.ndarray, values: np.ndarray, sources: np.ndarray, *, n_users: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best k entries per row by value (ties: lower item code first), -1 padded."""
    order = np.lexsort((items, -values, rows))
    rows, items, values, sources = rows[order], items[order], values[order], sources[order]
    starts = np.searchsorted(rows, np.arange(n_users))
    position = np.arange(len(rows)) - starts[rows]
    keep = position < k
    out_items = np.full((n_users, k), -1, dtype=np.int64)
    out_scores = np.full((n_users, k), -np.inf, dtype=np.float32)
    out_sources = np.zeros((n_users, k), dtype=np.int64)
    out_items[rows[keep], position[keep]] = items[keep]
    out_scores[rows[keep], position[keep]] = values[keep]
    out_sources[rows[keep], position[keep]] = sources[keep]
    return out_items, out_scores, out_sources


def _fill(
    merged: tuple[np.ndarray, np.ndarray, np.ndarray], popular: np.ndarray, exclude: sp.csr_matrix | None, bit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty slots take the most popular items not already listed and not excluded (score -inf)."""
    items, scores, sources = (a.copy() for a in merged)
    free = items < 0
    need = free.sum(axis=1)
    short = np.flatnonzero(need)
    if short.size == 0:
        return items, scores, sources
    depth = int(items.shape[1] + (np.diff(exclude.indptr)[short].max() if exclude is not None else 0))
    pool = np.asarray(popular[:depth], dtype=np.int64)
    key_width = int(max(pool.max(initial=0), items.max(initial=0))) + 1
    taken = np.isin(short[:, None] * key_width + pool[None, :], _row_keys(items[short], short, exclude, key_width))
    usable = ~taken
    rank = np.cumsum(usable, axis=1) - 1
    for j, row in enumerate(short):  # per short row: vectorized within the row
        picks = pool[usable[j] & (rank[j] < need[row])]
        slots = np.flatnonzero(free[row])[: len(picks)]
        items[row, slots] = picks[: len(slots)]
        sources[row, slots] = bit
    return items, scores, sources


def _row_keys(listed: np.ndarray, rows: np.ndarray, exclude: sp.csr_matrix | None, width: int) -> np.ndarray:
    """Keys row * width + item of what each short row already holds or must not get."""
    keys = [(rows[:, None] * width + listed)[listed >= 0]]
    if exclude is not None:
        sub = exclude if len(rows) == exclude.shape[0] == 1 else exclude[rows].tocsr()  # one request: its own row
        sub_rows = np.repeat(rows, np.diff(sub.indptr))
        keys.append(sub_rows * width + sub.indices)
    return np.concatenate(keys)
