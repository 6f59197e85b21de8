"""EmbeddedStore: entity tables held in process as Arrow, looked up by a vectorized key index.

For single-process services, tests and as the fallback of a remote store. Measured for 300 keys on 20k-
and 1M-row tables (2 busy cores): 0.07-0.2 ms as an Arrow table (`get_table`), 0.15-0.3 ms as dicts (`get`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.data.readers import read_table
from recforge.errors import ConfigError, DataError
from recforge.ids import IdIndex
from recforge.serving.store.base import (
    STORES,
    FeatureStore,
    Lookup,
    Row,
    key_array,
    missing_table,
    output_columns,
)
from recforge.serving.store.options import StoreOptions

log = logging.getLogger(__name__)


class _Entity:
    """One loaded table with its key column and index."""

    def __init__(self, name: str, table: pa.Table, key: str, origin: str) -> None:
        if key not in table.column_names:
            raise DataError(
                f"{origin}: entity {name!r} has no key column {key!r}; it has {table.column_names}\n"
                f"  fix: set `entities.{name}.key` to one of them"
            )
        self.table = table.combine_chunks()  # one chunk per column: `take` on it is a single gather
        self.key = key
        self.index = IdIndex(self.table[key], duplicates="last", coerce="text")  # as Redis: 12 finds "12"
        if self.index.null_ids or self.index.duplicates:
            log.warning(
                "%s: entity %r: %s rows with a null %r cannot be looked up; %s duplicate keys resolve to their "
                "last row",
                origin,
                name,
                f"{self.index.null_ids:,}",
                key,
                f"{self.index.duplicates:,}",
            )


@STORES.register("embedded")
class EmbeddedStore(FeatureStore):
    """In-process store over Arrow tables: `{entity: (table, key column)}`."""

    kind = "embedded"

    def __init__(self, tables: Mapping[str, tuple[pa.Table, str]], *, origins: Mapping[str, str] | None = None) -> None:
        super().__init__()
        origins = origins or {}
        self._entities = {
            name: _Entity(name, table, key, origins.get(name, f"entity {name!r}"))
            for name, (table, key) in tables.items()
        }
        self._warned: set[str] = set()

    @classmethod
    def from_options(cls, options: StoreOptions) -> EmbeddedStore:
        """Reads each entity's `path` (Parquet file or directory, CSV) once, at start; none: an empty store."""
        tables, origins = {}, {}
        for name, entity in options.entities.items():
            if not entity.path:
                raise ConfigError(
                    f"serving.store.entities.{name}.path",
                    "the embedded store reads each entity from a file",
                    fix="set `path` to a Parquet file or directory (or a CSV file)",
                )
            tables[name] = (read_table(entity.path), options.key_of(name))
            origins[name] = entity.path
        return cls(tables, origins=origins)

    def _entity(self, entity: str) -> _Entity | None:
        """The loaded entity, or None (warned once): a store without a table answers every key as missing."""
        ent = self._entities.get(entity)
        if ent is None and entity not in self._warned:
            self._warned.add(entity)
            log.warning(
                "the embedded store has no %r table (it has %s): every %r lookup returns defaults; add it to the "
                "store's `entities`",
                entity,
                sorted(self._entities),
                entity,
            )
        return ent

    def schema(self, entity: str) -> pa.Schema | None:
        ent = self._entities.get(entity)
        return ent.table.schema if ent else None

    def table(self, entity: str) -> pa.Table | None:
        ent = self._entities.get(entity)
        return ent.table if ent else None

    def lookup(self, entity: str, keys: Sequence[Any] | np.ndarray, columns: Sequence[str] | None = None) -> Lookup:
        ent = self._entity(entity)
        if ent is None:
            self._count(len(keys), 0)
            return Lookup(
                missing_table(keys, None, f"{entity}_id", columns, "embedded store"), np.zeros(len(keys), bool)
            )
        names = output_columns(ent.table.schema, ent.key, columns, f"entity {entity!r}")
        rows = ent.index.positions(keys)
        found = rows >= 0
        taken = ent.table.select(names).take(pa.array(rows, mask=~found))  # a null index gives a null row
        if not found.all():
            at = names.index(ent.key)
            requested = key_array(keys, ent.table.schema.field(ent.key).type)
            taken = taken.set_column(at, ent.key, pc.coalesce(taken.column(at), requested))
        self._count(len(rows), int(found.sum()))
        return Lookup(taken, found)

    def get(self, entity: str, keys: Sequence[Any] | np.ndarray) -> list[Row | None]:
        ent = self._entity(entity)
        if ent is None:
            self._count(len(keys), 0)
            return [None] * len(keys)
        rows = ent.index.positions(keys)
        found = np.flatnonzero(rows >= 0)
        values = _rows(ent.table, rows[found])
        out: list[Row | None] = [None] * len(rows)
        for at, row in zip(found.tolist(), values, strict=True):
            out[at] = row
        self._count(len(rows), len(found))
        return out

    def _count(self, n: int, hits: int) -> None:
        self.counters.add(requests=1, keys=n, hits=hits, misses=n - hits)

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        self._entities.clear()


def _rows(table: pa.Table, rows: np.ndarray) -> list[Row]:
    """Rows as dicts, as `take(rows).to_pylist()` gives them; one row (a request's user) is read scalar by scalar,
    ~15x cheaper than building a one-row table for it."""
    if len(rows) == 1:
        at = int(rows[0])
        return [{name: column[at].as_py() for name, column in zip(table.column_names, table.columns, strict=True)}]
    rows_as_dicts: list[Row] = table.take(rows).to_pylist()
    return rows_as_dicts
