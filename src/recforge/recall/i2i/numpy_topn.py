"""Top-N selection of the numpy i2i engine: each key's best pairs by score, ties by the other key."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recforge.recall.i2i.numpy_links import offsets


def top_n(
    key: np.ndarray, other: np.ndarray, score: np.ndarray, n_keys: int, top_n: int, budget: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key, entry, rank) of each key's `top_n` entries by score descending, then `other` ascending.

    Entries come grouped by key (0 .. n_keys - 1). Keys with similar entry counts are padded into one
    matrix, a row per key; in rows longer than top_n the entries above the row's top_n-th best score stay,
    and of those tied with it the smallest `other`s. Then each row is sorted by `other`, stably by score.
    """
    counts = np.bincount(key, minlength=n_keys)
    starts = np.cumsum(counts) - counts
    padded_score, padded_other = np.append(score, -np.inf), np.append(other, np.iinfo(np.int64).max)
    empty = np.zeros(0, dtype=np.int64)
    parts = [(empty, empty, empty)]
    for rows in _row_chunks(np.flatnonzero(counts), counts, budget):
        count, width = counts[rows], int(counts[rows].max())
        valid = np.arange(width) < count[:, None]
        at = np.where(valid, starts[rows, None] + np.arange(width), len(score))  # padding reads -inf
        if width > top_n:
            at = at[_best(padded_score[at], padded_other, at, valid, top_n)].reshape(len(rows), top_n)
        by_other = np.argsort(padded_other[at], axis=1)
        at = np.take_along_axis(at, by_other, axis=1)
        at = np.take_along_axis(at, np.argsort(-padded_score[at], axis=1, kind="stable"), axis=1)
        kept = np.minimum(count, top_n)  # sorted first in their rows, padding last
        at = at[:, : int(kept.max())][np.arange(int(kept.max())) < kept[:, None]]
        parts.append((np.repeat(rows, kept), at, offsets(kept) + 1))
    key_out, at, rank = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return key_out, at, rank


def _best(s: np.ndarray, other: np.ndarray, at: np.ndarray, valid: np.ndarray, top_n: int) -> np.ndarray:
    """Mask of exactly `top_n` cells per row of padded scores `s`: the row's best entries (ties at the
    cut by smaller `other[at]`), then padding if the row has fewer."""
    # the top_n-th largest; np.sort, as np.partition slows down tenfold on rows of many equal scores
    bound = np.sort(s, axis=1)[:, s.shape[1] - top_n, None]
    keep = s > bound
    tied_row, tied_col = np.nonzero((s == bound) & valid)
    if len(tied_row):
        room = top_n - keep.sum(axis=1)
        by_other = np.lexsort((other[at[tied_row, tied_col]], tied_row))
        tied_row, tied_col = tied_row[by_other], tied_col[by_other]
        first = offsets(np.bincount(tied_row, minlength=len(s))) < room[tied_row]
        keep[tied_row[first], tied_col[first]] = True
    keep |= ~valid & (np.arange(s.shape[1]) < top_n)  # rows short of top_n entries fill up with padding
    return keep


def _row_chunks(rows: np.ndarray, counts: np.ndarray, budget: int) -> Iterator[np.ndarray]:
    """`rows` in groups of similar count (within a factor 2), each group padded to at most `budget` cells."""
    group = np.floor(np.log2(counts[rows])).astype(np.int64) if len(rows) else np.zeros(0, np.int64)
    for g in np.unique(group):
        members = rows[group == g]
        step = max(1, budget // int(counts[members].max()))
        for lo in range(0, len(members), step):
            yield members[lo : lo + step]
