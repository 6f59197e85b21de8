"""Id -> row lookups for the request path: built once, a few microseconds per request.

`pyarrow.compute.index_in` rebuilds its hash table on every call (milliseconds for a large catalog);
here integer ids use a sorted array + binary search and other ids a dict, both built at load time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat


class IdIndex:
    """Maps ids to their position in `ids`; unknown ids (or ids of another type) map to -1."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray) -> None:
        values = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        self.type = values.type
        self.size = len(values)
        self._integer = pat.is_integer(values.type)
        if self._integer:
            raw = np.asarray(values.fill_null(np.iinfo(np.int64).min).to_numpy(zero_copy_only=False), dtype=np.int64)
            self._order = np.argsort(raw, kind="stable")
            self._sorted = raw[self._order]
            self._lookup: dict[Any, int] = {}
        else:
            self._lookup = {v: i for i, v in enumerate(values.to_pylist()) if v is not None}

    def __len__(self) -> int:
        return self.size

    def codes(self, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Positions of `keys` (int64), -1 where a key is unknown or not of the index's id type."""
        if not self._integer:
            get = self._lookup.get
            return np.fromiter((get(k, -1) if isinstance(k, str | bytes) else -1 for k in keys), np.int64, len(keys))
        wanted, valid = _as_int64(keys)
        if self.size == 0:
            return np.full(len(wanted), -1, np.int64)
        pos = np.searchsorted(self._sorted, wanted)
        pos_clipped = np.minimum(pos, self.size - 1)
        found = valid & (self._sorted[pos_clipped] == wanted)
        return np.where(found, self._order[pos_clipped], -1).astype(np.int64)


def _as_int64(keys: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys as int64 and a mask of which keys were integers at all (bools and strings are not)."""
    if isinstance(keys, np.ndarray) and np.issubdtype(keys.dtype, np.integer):
        return keys.astype(np.int64, copy=False), np.ones(len(keys), bool)
    valid = np.fromiter((_is_int64(k) for k in keys), bool, len(keys))
    values = np.fromiter((int(k) if ok else 0 for k, ok in zip(keys, valid, strict=True)), np.int64, len(keys))
    return values, valid


def _is_int64(key: Any) -> bool:
    return isinstance(key, int | np.integer) and not isinstance(key, bool) and -(2**63) <= int(key) < 2**63
