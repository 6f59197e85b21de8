"""IdIndex: the one id -> position index (feature vocabularies, the served item catalog, recall ids, store tables).

Built once per id column and queried per request without rehashing (`pyarrow.compute.index_in` rebuilds
its hash table on every call, milliseconds for a large column): integer ids by binary search over a
sorted copy, other ids (text, bytes, dates, ...) by a dict. What used to differ between four copies is
now an explicit policy, chosen by the caller:

- `duplicates`: "first" or "last", the position an id that occurs more than once resolves to;
- nulls in the column are never indexed, and a null (None) key finds nothing;
- `coerce`: "exact" finds a key only as a value of the column's kind (an int for integer ids, a str
  for text ids; a bool, a float or a list finds nothing); "text" also finds 12 under "12" and "12"
  under 12, as Redis keys and URLs spell ids (`coerce_key`);
- a key that finds nothing gets position -1.

Callers and their policies: feature vocabularies (`features.categorical.vocab_index`: distinct values,
exact), the served item catalog (`serving.predictor`: first, exact, after the request's ids were checked),
the recommender's catalog filters and recall ids (`serving.recommender`: first, exact), and the embedded
feature store (`serving.store.embedded`: last, text, as Redis keys are text). Not here, on purpose: the
dynamic embedding table's open-addressing index (`embedding.dynamic`, mutable, grown and evicted with its
rows), and whole-column mappings done once per job (`pc.index_in` in recall and i2i preparation), where
one hash build per call is the cheap way.

    >>> index = IdIndex(pa.array([7, 3, None, 7]), duplicates="last")
    >>> index.positions([7, 3, 5, None, "7"]).tolist()
    [3, 1, -1, -1, -1]
    >>> IdIndex(pa.array(["a", "12"]), coerce="text").positions(["12", 12, 1.0]).tolist()
    [1, 1, -1]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Duplicates = Literal["first", "last"]
Coerce = Literal["exact", "text"]
Keys: TypeAlias = Sequence[Any] | np.ndarray | pa.Array | pa.ChunkedArray


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def coerce_key(key: Any, key_type: pa.DataType) -> Any:
    """One key as a value of `key_type` when it spells one (12 -> "12" for text, "12" -> 12 for integers), else
    None; bools and floats are never ids."""
    if key is None or isinstance(key, bool | float):
        return None
    if is_text(key_type):
        return key if isinstance(key, str) else str(key)
    try:
        return pa.scalar(int(key), type=key_type).as_py()
    except (pa.ArrowInvalid, TypeError, ValueError, OverflowError):
        return None


def first_rows(table: pa.Table, key: str) -> pa.Table:
    """The first row of every distinct non-null `key` value, in table order (what a "first" index keeps)."""
    keys = table[key].combine_chunks()
    return table.take(pc.index_in(pc.drop_null(pc.unique(keys)), value_set=keys))


class IdIndex:
    """Position of each id in one id column; see the module docstring for the policies."""

    def __init__(
        self, ids: pa.Array | pa.ChunkedArray, *, duplicates: Duplicates = "first", coerce: Coerce = "exact"
    ) -> None:
        column = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        self.type = column.type
        self.size = len(column)
        self.null_ids = column.null_count
        self.policy = (duplicates, coerce)
        self.integer = pa.types.is_integer(self.type)
        rows = np.arange(len(column), dtype=np.int64)
        if self.null_ids:
            rows = rows[pc.is_valid(column).to_numpy(zero_copy_only=False)]
            column = pc.drop_null(column)
        self._dict: dict[Any, int] | None = None
        if self.integer:
            values = column.to_numpy(zero_copy_only=False)
            order = np.argsort(values, kind="stable")
            self._sorted, self._rows = values[order], rows[order]
            self.duplicates = int(np.count_nonzero(self._sorted[1:] == self._sorted[:-1]))
        else:
            pairs = zip(column.to_pylist(), rows.tolist(), strict=True)
            self._dict = dict(pairs) if duplicates == "last" else dict(reversed(list(pairs)))
            self.duplicates = len(column) - len(self._dict)

    def __len__(self) -> int:
        return self.size

    def positions(self, keys: Keys) -> np.ndarray:
        """int64 [K] position of each key, -1 where it has none."""
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        if self._dict is not None:
            return self._dict_positions(keys.to_pylist() if isinstance(keys, pa.Array) else keys)
        query, valid = self._as_id_dtype(keys)
        if not len(self._sorted):
            return np.full(len(query), -1, dtype=np.int64)
        if self.policy[0] == "first":
            at = np.minimum(np.searchsorted(self._sorted, query, side="left"), len(self._sorted) - 1)
        else:
            at = np.maximum(np.searchsorted(self._sorted, query, side="right") - 1, 0)
        hit = valid & (self._sorted[at] == query)
        return np.where(hit, self._rows[at], -1)

    def _dict_positions(self, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        get = self._dict.get  # type: ignore[union-attr]
        if self.policy[1] == "text" and is_text(self.type):
            keys = [k if isinstance(k, str) else coerce_key(k, self.type) for k in keys]
        return np.fromiter((get(k, -1) if isinstance(k, Hashable) else -1 for k in keys), np.int64, len(keys))

    def _as_id_dtype(self, keys: Sequence[Any] | np.ndarray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Keys in the index's dtype and a mask of those that convert exactly (no wrap-around, no rounding)."""
        dtype = self._sorted.dtype
        if isinstance(keys, pa.Array):
            if pa.types.is_integer(keys.type) and not keys.null_count:
                return _exact_cast(keys.to_numpy(), dtype)
            if pa.types.is_integer(keys.type):
                query, valid = _exact_cast(pc.fill_null(keys, 0).to_numpy(zero_copy_only=False), dtype)
                return query, valid & pc.is_valid(keys).to_numpy(zero_copy_only=False)
            keys = keys.to_pylist()
        try:
            raw = keys if isinstance(keys, np.ndarray) else np.asarray(keys)
        except ValueError:  # ragged nested lists: no key is an id
            raw = np.empty(0)
        mixed = raw.dtype.kind in "iu" and not isinstance(keys, np.ndarray) and any(type(k) is bool for k in keys)
        if raw.ndim == 1 and raw.dtype.kind in "iu" and not mixed:  # numpy reads [True, 2] as [1, 2]
            return _exact_cast(raw, dtype)
        items = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
        out = np.zeros(len(items), dtype=dtype)
        valid = np.zeros(len(items), dtype=bool)
        for i, key in enumerate(items):
            value = self._read(key)
            if value is not None:
                out[i], valid[i] = value, True
        return out, valid

    def _read(self, key: Any) -> Any:
        """One key as an integer id under the coerce policy, or None."""
        if self.policy[1] == "exact" and not (isinstance(key, int | np.integer) and not isinstance(key, bool)):
            return None
        return coerce_key(key, self.type)


def _exact_cast(raw: np.ndarray, dtype: np.dtype[Any]) -> tuple[np.ndarray, np.ndarray]:
    """`raw` integers as `dtype`, and a mask of those whose value survived (no wrap-around)."""
    if raw.dtype == dtype:
        return raw, np.ones(len(raw), dtype=bool)
    query = raw.astype(dtype, copy=False)
    valid = query.astype(raw.dtype, copy=False) == raw
    if raw.dtype.kind != dtype.kind:  # signed <-> unsigned: a negative value on either side has wrapped
        valid &= (raw >= 0) if raw.dtype.kind == "i" else (query >= 0)
    return query, valid
