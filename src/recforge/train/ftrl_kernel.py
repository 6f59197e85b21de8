"""One FTRL-Proximal kernel: each row's coordinates are resolved inside it (hashed, bucketed or given), then learned.

A row's K coordinates come from K slots, in the order `LinearCoordinates.encode` lists them:

    GIVEN   column c of given idx/val [B, G]        (coordinates computed outside: vocabularies, bags, dense)
    HASH    base + 1 + splitmix64(key) % buckets    (an id with `hash_buckets`; a null key -> base, its row 0)
    BUCKET  base + 1 + #{boundaries <= value}       (a bucketized number; NaN -> base)
    CONST   coordinate c with value 1               (the bias)

HASH and BUCKET read the raw columns ([F, B] keys / values), so a stream's ids are hashed and learned in one
call with no per-row Python: CHUNK rows are resolved into a [CHUNK, K] buffer that stays in cache, then learned
(a per-row, per-slot resolve inside the update loop measured 20x slower). They give exactly the coordinates that
`FeatureSet.transform` + `encode` give (`recforge.hashing`, `features.numeric.apply_numeric`). The update is
`recforge.train.ftrl`'s (see its docstring): the batch trainer's pre-encoded rows are all-GIVEN slots of this
same kernel, so both paths learn through one implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from recforge.hashing import GOLDEN, MIX1, MIX2

LOGIT_CLIP = 35.0
CHUNK = 256  # rows whose coordinates are resolved before they are learned: [CHUNK, K] stays in L1/L2
GIVEN, HASH, BUCKET, CONST = 0, 1, 2, 3
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_ONE, _ZERO = np.uint64(1), np.uint64(0)  # uint64 literals: numba turns uint64 - int64 into float64


@dataclass(frozen=True)
class Slots:
    """Where each of a row's K coordinates comes from: kind [K] (GIVEN...), col [K] (or the CONST coordinate),
    base [K] (the coordinate of row 0 of the field's table)."""

    kind: np.ndarray
    col: np.ndarray
    base: np.ndarray

    @classmethod
    def given(cls, k: int) -> Slots:
        return cls(np.full(k, GIVEN, np.int64), np.arange(k, dtype=np.int64), np.zeros(k, np.int64))

    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.kind, self.col, self.base


@dataclass(frozen=True)
class Columns:
    """One batch's inputs for `Slots`: given idx/val [B, G]; hashed keys [Fh, B] with valid [Fh, B], mix [Fh]
    (numbers' bits still to mix; strings' digests not), buckets [Fh]; bucketized values [Fn, B] with every
    field's boundaries back to back in `bounds` (field f's are bounds[starts[f]:starts[f + 1]])."""

    rows: int
    given_idx: np.ndarray
    given_val: np.ndarray
    keys: np.ndarray
    valid: np.ndarray
    mix: np.ndarray
    buckets: np.ndarray
    values: np.ndarray
    bounds: np.ndarray
    starts: np.ndarray

    @classmethod
    def given(cls, idx: np.ndarray, val: np.ndarray) -> Columns:
        """Rows whose coordinates are all computed already (idx int64, val float64 [B, K])."""
        rows = idx.shape[0]
        return cls(
            rows,
            np.ascontiguousarray(idx, dtype=np.int64),
            np.ascontiguousarray(val, dtype=np.float64),
            *no_hashed(rows),
            *no_bucketed(rows),
        )

    def packed(self) -> tuple[np.ndarray, ...]:
        return (
            self.given_idx,
            self.given_val,
            self.keys,
            self.valid,
            self.mix,
            self.buckets,
            self.values,
            self.bounds,
            self.starts,
        )


def no_hashed(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Empty keys, valid, mix, buckets (the kernel's types, so every call shares one compiled kernel)."""
    return np.zeros((0, rows), np.uint64), np.zeros((0, rows), np.bool_), np.zeros(0, np.bool_), np.zeros(0, np.uint64)


def no_bucketed(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty values, bounds, starts."""
    return np.zeros((0, rows), np.float64), np.zeros(0, np.float64), np.zeros(1, np.int64)


@numba.njit(inline="always")
def _mix(x):  # type: ignore[no-untyped-def]  # pragma: no cover
    """recforge.hashing.splitmix64 of one uint64 (the same constants; tests check the two agree)."""
    z = x + GOLDEN
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


@numba.njit(nogil=True)
def _resolve(lo, hi, kind, col, base, gi, gv, keys, valid, mix, buckets, values, bounds, starts, idx, val):  # type: ignore[no-untyped-def]  # pragma: no cover
    """idx/val [hi - lo, K]: the coordinates of rows lo..hi, one slot at a time (a tight loop per field)."""
    for k in range(kind.shape[0]):
        c, first = col[k], base[k]
        if kind[k] == GIVEN:
            for r in range(lo, hi):
                idx[r - lo, k] = gi[r, c]
                val[r - lo, k] = gv[r, c]
        elif kind[k] == HASH:
            b = buckets[c]
            mask = b - _ONE if b & (b - _ONE) == _ZERO else _ZERO  # a power of two: & instead of a 64-bit division
            for r in range(lo, hi):
                h = _mix(keys[c, r]) if mix[c] else keys[c, r]
                bucket = h & mask if mask != _ZERO else h % b
                idx[r - lo, k] = first + 1 + np.int64(bucket) if valid[c, r] else first
                val[r - lo, k] = 1.0
        elif kind[k] == BUCKET:
            for r in range(lo, hi):
                idx[r - lo, k] = first + _bucket(values[c, r], bounds, starts[c], starts[c + 1])
                val[r - lo, k] = 1.0
        else:
            for r in range(lo, hi):
                idx[r - lo, k] = c
                val[r - lo, k] = 1.0


@numba.njit(inline="always")
def _bucket(v, bounds, lo, hi):  # type: ignore[no-untyped-def]  # pragma: no cover
    """1 + #{bounds[lo:hi] <= v} (searchsorted side="right", + 1), or 0 for NaN. A short list is counted without
    branches (a binary search's data-dependent branches cost more there); a long one is searched."""
    if math.isnan(v):
        return 0
    if hi - lo <= 64:
        count = 0
        for j in range(lo, hi):
            count += bounds[j] <= v
        return 1 + count
    start = lo
    while lo < hi:
        mid = (lo + hi) // 2
        if bounds[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return 1 + lo - start


@numba.njit(nogil=True)
def _learn_rows(idx, val, y, z, n, alpha, beta, l1, l2, out):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Per-sample FTRL over rows idx/val [B, K] in order (a row's weights are read before its updates).

    sqrt(n_i) is taken once per coordinate and row and reused by the update unless an earlier field of the same
    row updated n_i already (a bag naming one coordinate twice): the same numbers, one square root fewer."""
    rows, fields = idx.shape
    w = np.empty(fields)
    n_seen = np.empty(fields)
    root = np.empty(fields)
    for r in range(rows):
        s = 0.0
        for f in range(fields):
            i = idx[r, f]
            zi = z[i]
            n_seen[f] = n[i]
            root[f] = math.sqrt(n_seen[f])
            if abs(zi) <= l1:
                w[f] = 0.0
            else:
                w[f] = -(zi - math.copysign(l1, zi)) / ((beta + root[f]) / alpha + l2)
            s += w[f] * val[r, f]
        s = min(max(s, -LOGIT_CLIP), LOGIT_CLIP)
        p = 1.0 / (1.0 + math.exp(-s))
        out[r] = p
        g = p - y[r]
        for f in range(fields):
            i = idx[r, f]
            grad = g * val[r, f]
            ni = n[i]
            root_ni = root[f] if ni == n_seen[f] else math.sqrt(ni)
            sigma = (math.sqrt(ni + grad * grad) - root_ni) / alpha
            z[i] += grad - sigma * w[f]
            n[i] = ni + grad * grad


@numba.njit(cache=True, nogil=True)
def learn_exact(kind, col, base, gi, gv, keys, valid, mix, buckets, values, bounds, starts, y, z, n, hyper, out):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Per-sample FTRL over the rows (`Slots.packed()`, `Columns.packed()`), in order; out[r] = row r's prediction
    before it is learned. Coordinates are resolved CHUNK rows at a time into a buffer that stays in cache."""
    alpha, beta, l1, l2 = hyper
    idx = np.empty((CHUNK, kind.shape[0]), np.int64)
    val = np.empty((CHUNK, kind.shape[0]))
    for lo in range(0, y.shape[0], CHUNK):
        hi = min(lo + CHUNK, y.shape[0])
        _resolve(lo, hi, kind, col, base, gi, gv, keys, valid, mix, buckets, values, bounds, starts, idx, val)
        _learn_rows(idx[: hi - lo], val[: hi - lo], y[lo:hi], z, n, alpha, beta, l1, l2, out[lo:hi])


@numba.njit(cache=True, nogil=True)
def encode(kind, col, base, gi, gv, keys, valid, mix, buckets, values, bounds, starts, idx, val):  # type: ignore[no-untyped-def]  # pragma: no cover
    """idx/val [B, K] of every row (for the mini-batch mode and predictions, which need them as arrays)."""
    _resolve(0, idx.shape[0], kind, col, base, gi, gv, keys, valid, mix, buckets, values, bounds, starts, idx, val)


def materialize(slots: Slots, cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """The idx int64 / val float64 [B, K] arrays the slots describe."""
    idx = np.empty((cols.rows, len(slots.kind)), np.int64)
    val = np.empty((cols.rows, len(slots.kind)), np.float64)
    encode(*slots.packed(), *cols.packed(), idx, val)  # type: ignore[call-arg]  # a numba dispatcher
    return idx, val
