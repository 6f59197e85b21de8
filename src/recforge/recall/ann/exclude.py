"""Remove each query's excluded items (a user's seen items) from search results, without a Python loop.

Shapes: Q queries, F fetched neighbors per query, k kept; `positions` are rows of the catalog (0..N-1), -1 = none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import scipy.sparse as sp

from recforge.errors import DataError

Exclude: TypeAlias = sp.csr_matrix | sp.csr_array | Sequence[np.ndarray]


@dataclass(frozen=True)
class Exclusion:
    """Excluded (query, catalog position) pairs as sorted keys `query * N + position`, and a count per query."""

    keys: np.ndarray  # int64, sorted, unique
    counts: np.ndarray  # int64 [Q]
    n: int


def ragged(exclude: Exclude, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(row per excluded code, code) from a csr matrix (row q, column = item code) or a list of code arrays."""
    if sp.issparse(exclude):
        csr = exclude if isinstance(exclude, sp.csr_matrix) else sp.csr_matrix(exclude)  # no per-query copy
        rows_given = csr.shape[0]
        indptr, codes = csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
    elif isinstance(exclude, Sequence):
        rows_given = len(exclude)
        arrays = [np.asarray(row).reshape(-1) for row in exclude]
        bad = next((i for i, row in enumerate(arrays) if row.size and row.dtype.kind not in "iu"), None)
        if bad is not None:
            raise DataError(f"exclude[{bad}] holds {arrays[bad].dtype} values; exclude lists item codes (integers)")
        indptr = np.concatenate([[0], np.cumsum([row.size for row in arrays])]).astype(np.int64)
        codes = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
    else:
        raise DataError(
            f"exclude must be a scipy csr matrix or a list of item-code arrays, not {type(exclude).__name__}"
        )
    if rows_given != n_queries:
        raise DataError(f"exclude has {rows_given} rows for {n_queries} queries; give one row per query")
    return np.repeat(np.arange(n_queries, dtype=np.int64), np.diff(indptr)), codes


def exclusion(
    rows: np.ndarray, codes: np.ndarray, sorted_ids: np.ndarray, order: np.ndarray, n_queries: int
) -> Exclusion:
    """Map item codes to catalog positions (`sorted_ids = ids[order]`); codes not in the catalog are ignored."""
    n = len(sorted_ids)
    at = np.minimum(np.searchsorted(sorted_ids, codes), n - 1)
    hit = sorted_ids[at] == codes
    keys = np.unique(rows[hit] * n + order[at[hit]])
    return Exclusion(keys=keys, counts=np.bincount(keys // n, minlength=n_queries).astype(np.int64), n=n)


def is_excluded(positions: np.ndarray, query_rows: np.ndarray, excl: Exclusion) -> np.ndarray:
    """Bool [Q, F]: True where a result is missing (-1) or excluded for that result row's query."""
    keys = query_rows[:, None] * excl.n + positions
    if excl.keys.size:
        at = np.minimum(np.searchsorted(excl.keys, keys), excl.keys.size - 1)
        hit = excl.keys[at] == keys
    else:
        hit = np.zeros(keys.shape, dtype=bool)
    return hit | (positions < 0)


def first_k(positions: np.ndarray, scores: np.ndarray, drop: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first k results not in `drop`, order kept; short rows padded with -1 / -inf."""
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    positions = np.take_along_axis(positions, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    gone = np.take_along_axis(drop, order, axis=1)
    positions[gone] = -1
    scores[gone] = -np.inf
    return pad(positions, scores, k)


def pad(positions: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen [Q, F<k] results to [Q, k] with -1 / -inf (a catalog smaller than k)."""
    missing = k - positions.shape[1]
    if missing <= 0:
        return positions, scores
    rows = positions.shape[0]
    return (
        np.hstack([positions, np.full((rows, missing), -1, np.int64)]),
        np.hstack([scores, np.full((rows, missing), -np.inf, np.float32)]),
    )
