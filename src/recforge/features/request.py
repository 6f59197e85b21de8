"""One request's Batch (a user, n candidate items, a context) without joining the rows first.

Each feature is computed by its own `Feature.transform` on the fewest rows it needs (see `layout`):
item-side features once per item per model version (`ItemCache`, row r = item row r), request-side
(user + context) features once on the request's row, broadcast to the n candidates, and joint features
on the n joined rows. The result equals, bit for bit, `FeatureSet.transform` of the joined rows: a
candidate the cache does not hold is what a left join gives, its id with every other item column null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recforge.batch import Batch
from recforge.features.assembler import Assembler, Block
from recforge.features.base import TransformReport
from recforge.features.featureset import FeatureSet
from recforge.features.layout import GROUPS, Layout


@dataclass(frozen=True)
class ItemCache:
    """Item-side model inputs computed once per model version: `block` row r belongs to `table` row r."""

    table: pa.Table  # the item key and the item-side columns, one row per item
    block: Block
    key: str

    def keys(self, values: np.ndarray) -> pa.Array:
        """Candidate ids (int64 or str NumPy) as Arrow values of the item key's type."""
        return pa.array(values).cast(self.table.schema.field(self.key).type)


class RequestAssembler:
    """Request rows -> Batch through the shared Assembler: request group broadcast, item group cached, joint per row."""

    def __init__(self, features: FeatureSet, item_key: str) -> None:
        self.layout = Layout.of(features.features)
        self.item_key = item_key
        groups = {g: self.layout.group(g) for g in GROUPS}
        self.assembler = Assembler(features.features, features.states, features.schema(), groups)
        self.joint_columns = self.layout.columns(features.features, "joint")

    def items(self, table: pa.Table, report: TransformReport, source: str = "set_items") -> ItemCache:
        """Transform the item-side features of every row of `table` (distinct items, keyed by `item_key`)."""
        return ItemCache(table, self.assembler.block("item", table, report, source), self.item_key)

    def batch(
        self, request: pa.Table, cache: ItemCache, keys: np.ndarray, rows: np.ndarray, report: TransformReport
    ) -> Batch:
        """The Batch of `request` (one row of user and context columns) x candidates `keys` at cache `rows`
        (-1: not in the cache)."""
        blocks = {
            "request": self.assembler.block("request", request, report, "request"),
            "item": self._items(cache, keys, rows, report),
        }
        if self.layout.joint:
            joined = self._joined(cache, request, keys, rows)
            blocks["joint"] = self.assembler.block("joint", joined, report, "request x items")
        report.rows += len(keys)
        return self.assembler.batch(len(keys), blocks)

    def _items(self, cache: ItemCache, keys: np.ndarray, rows: np.ndarray, report: TransformReport) -> Block:
        """Cached item rows; unknown candidates transformed as the id-only rows a left join gives them."""
        block = cache.block.take(np.maximum(rows, 0))
        unknown = rows < 0
        if unknown.any():
            schema = cache.table.schema
            arrays = [
                cache.keys(keys[unknown]) if f.name == self.item_key else pa.nulls(int(unknown.sum()), f.type)
                for f in schema
            ]
            id_only = pa.Table.from_arrays(arrays, schema=schema)
            block.put(unknown, self.assembler.block("item", id_only, report, "items"))
        return block

    def _joined(self, cache: ItemCache, request: pa.Table, keys: np.ndarray, rows: np.ndarray) -> pa.Table:
        """The n joined rows, only the columns that the joint features read."""
        item_rows = pa.array(rows, mask=rows < 0)  # a null index takes a null: unknown items
        user_rows = pa.array(np.zeros(len(keys), dtype=np.int64))
        arrays = []
        for column in self.joint_columns:
            if column == self.item_key:
                arrays.append(cache.keys(keys))
            elif self.layout.sides[column] == "item":
                arrays.append(cache.table[column].take(item_rows))
            else:
                arrays.append(request[column].take(user_rows))
        return pa.Table.from_arrays(arrays, names=self.joint_columns)
