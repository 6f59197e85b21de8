"""The FeatureStore interface every store kind implements, its lookup result, counters and registry.

The serving path calls a store once per request with all its keys (batch-first), and a store never
raises on a lookup because its backend is down: missing rows come back as None / nulls so the caller
applies its feature defaults, and the store counts what happened in `stats()`.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import numpy as np
import pyarrow as pa

from recforge.errors import DataError, RecforgeError
from recforge.ids import coerce_key
from recforge.registry import Registry
from recforge.serving.store.options import StoreOptions

Row = dict[str, Any]
S = TypeVar("S", bound="FeatureStore")
STAT_NAMES = ("requests", "keys", "hits", "misses", "errors", "fallbacks")


class StoreError(RecforgeError):
    """A store operation outside the request path (a push, a load) failed; names the store and the fix."""


@dataclass(frozen=True)
class Lookup:
    """Rows for the requested keys in request order; where `found[i]` is False row i is nulls but its key."""

    table: pa.Table
    found: np.ndarray  # bool [K]

    @property
    def missing(self) -> int:
        return int(len(self.found) - int(self.found.sum()))


class StoreStats:
    """Thread-safe counters: requests, keys, hits, misses, errors (failed backend calls), fallbacks.

    `fallbacks` counts keys answered while the backend was unreachable (by a fallback store or by defaults).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(STAT_NAMES, 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class FeatureStore(ABC):
    """Entity rows (user, item, ...) by key, batch-first. Use as a context manager or call `close()`."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.counters = StoreStats()

    @classmethod
    @abstractmethod
    def from_options(cls, options: StoreOptions) -> FeatureStore:
        """Build from validated options (relative paths already resolved)."""

    @abstractmethod
    def get(self, entity: str, keys: Sequence[Any] | np.ndarray) -> list[Row | None]:
        """One dict of column -> value per key, in key order; None where the key has no row (use defaults)."""

    @abstractmethod
    def lookup(self, entity: str, keys: Sequence[Any] | np.ndarray, columns: Sequence[str] | None = None) -> Lookup:
        """Rows as one Arrow table (key column first unless `columns` places it) plus which keys were found."""

    def get_table(
        self, entity: str, keys: Sequence[Any] | np.ndarray, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """`lookup(...).table`: rows in key order, missing keys as nulls except the key (counted in stats)."""
        return self.lookup(entity, keys, columns).table

    @abstractmethod
    def schema(self, entity: str) -> pa.Schema | None:
        """Column names and types of `entity` (None when the store does not know it yet)."""

    @abstractmethod
    def healthy(self) -> bool:
        """Whether lookups are answered by the backend now (not by a fallback or defaults)."""

    def stats(self) -> dict[str, Any]:
        """Counters since start plus the last known health (no I/O)."""
        return {**self.counters.snapshot(), "healthy": self._last_healthy()}

    def _last_healthy(self) -> bool:
        return True

    def close(self) -> None:  # noqa: B027 - stores without resources need no cleanup
        """Release connections and memory."""

    def table(self, entity: str) -> pa.Table | None:
        """The whole table of `entity` where it is held in memory (embedded; a Redis store's fallback), else None."""
        return None

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


STORES: Registry[type[FeatureStore]] = Registry("feature store kind")


def output_columns(schema: pa.Schema, key: str, columns: Sequence[str] | None, where: str) -> list[str]:
    """Columns a lookup returns: all (schema order) or `columns`, with the key first when not listed."""
    if columns is None:
        return list(schema.names)
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise DataError(f"{where}: unknown column(s) {unknown}; it has {schema.names}\n  fix: request existing columns")
    return list(columns) if key in columns else [key, *columns]


def key_array(keys: Sequence[Any] | np.ndarray, key_type: pa.DataType) -> pa.Array:
    """The requested keys as an Arrow array of the key type: as Redis keys are text, 12 and "12" are one key
    (to an integer key type "12" parses, to a string key type 12 formats); keys that fit neither are null."""
    try:
        return pa.array(keys, type=key_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return pa.array([coerce_key(k, key_type) for k in keys], type=key_type)


def missing_table(
    keys: Sequence[Any] | np.ndarray, schema: pa.Schema | None, key: str, columns: Sequence[str] | None, where: str
) -> pa.Table:
    """Every key missing: the key column plus null columns, typed where the schema is known."""
    n = len(keys)
    if schema is not None:
        names = output_columns(schema, key, columns, where)
        fields = [schema.field(c) for c in names]
    else:
        names = list(columns) if columns is not None and key in columns else [key, *(columns or [])]
        fields = [pa.field(c, pa.null()) for c in names]
    arrays = [pa.nulls(n, f.type) for f in fields]
    at = names.index(key)
    if schema is not None:
        arrays[at] = key_array(keys, fields[at].type)
    else:
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):  # mixed key types: leave them null
            arrays[at] = pa.array(keys)
    fields[at] = pa.field(key, arrays[at].type)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
