"""User or item side features for the neural channels: a FeatureSet fitted on the side table, rows by code.

The side table is left-joined to the vocab (row = code), so a user or item without a side row keeps
its id and gets every other feature at its default (counted and logged); one extra all-missing row
serves unknown codes (-1). The rows are transformed once at fit time and saved with the channel, so
`recommend` needs no side table; the FeatureSet is saved too, for transforming new rows online.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from recforge.batch import Bag, Batch
from recforge.config.features import CrossFeatureConfig, FeatureConfig, IdFeatureConfig, SequenceFeatureConfig
from recforge.errors import ConfigError, DataError
from recforge.features import FeatureSet

log = logging.getLogger(__name__)


def side_configs(configs: Sequence[FeatureConfig], side: str, key: str) -> list[FeatureConfig]:
    """The `side` features of `configs` (an id feature on `key` when there are none)."""
    chosen = [c for c in configs if c.side == side]
    if not chosen:
        return [IdFeatureConfig(name=f"{side}_id", column=key, kind="id", side=side)]  # type: ignore[arg-type]
    names = {c.name for c in chosen}
    for c in chosen:
        refs = [c.of] if isinstance(c, SequenceFeatureConfig) else c.inputs if isinstance(c, CrossFeatureConfig) else []
        outside = [r for r in refs if r not in names]
        if outside:
            raise ConfigError(
                f"features ({c.name})",
                f"a {side}-side feature of a two-tower/graph channel reads {outside}, which are not {side}-side",
                fix=f"give {outside} `side: {side}`, or leave {c.name!r} out of the channel's `features`",
            )
    return chosen


def align(table: pa.Table | None, key: str, ids: pa.Array, what: str) -> tuple[pa.Table, int]:
    """`table` rows in the order of `ids` (+ one all-null row at the end) and how many ids had no row."""
    if table is None:
        table = pa.table({key: pa.array([], ids.type)})
    if key not in table.column_names:
        raise DataError(f"the {what} table has no key column {key!r}; it has {table.column_names}")
    keys = table[key].combine_chunks()
    if keys.type != ids.type:
        try:
            keys = keys.cast(ids.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"{what} table key {key!r} is {keys.type}, interaction ids are {ids.type}") from None
    duplicates = len(keys) - len(pc.unique(keys))
    if duplicates:
        log.warning("%s table: %d repeated %s values; the first row of each is used", what, duplicates, key)
    position = pc.index_in(ids, value_set=keys)
    missing = position.null_count
    rows = table.take(position)
    rows = rows.set_column(rows.column_names.index(key), key, ids)
    default = pa.table({name: pa.nulls(1, rows.schema.field(name).type) for name in rows.column_names})
    return pa.concat_tables([rows, default]).combine_chunks(), missing


@dataclass
class SideRows:
    """A fitted FeatureSet and the Batch of every code's features; row `n` is the unknown-code default."""

    features: FeatureSet
    rows: Batch
    missing: int = 0

    @property
    def n(self) -> int:
        return self.rows.size - 1

    @classmethod
    def fit(
        cls,
        configs: list[FeatureConfig],
        table: pa.Table | None,
        key: str,
        ids: pa.Array,
        trained: np.ndarray,
        *,
        what: str,
        dim: int,
    ) -> SideRows:
        """Fit on the rows of codes with `trained` True (training interactions), transform all of them."""
        aligned, missing = align(table, key, ids, what)
        if missing:
            log.warning(
                "%d of %d %ss have no row in the %s table: their features other than %r are at defaults",
                missing,
                len(ids),
                what,
                what,
                key,
            )
        features = FeatureSet(configs, default_dim=dim, labels=())
        absent = [c for c in features.input_columns() if c not in aligned.column_names]
        if absent:
            raise ConfigError(
                "features",
                f"{what}-side features read columns {absent} that the {what} table does not have",
                fix=f"use columns of the {what} table: {aligned.column_names}",
            )
        features.fit([aligned.filter(pa.array(np.append(trained, False)))])
        return cls(features, features.transform(aligned, labels=False, source=f"{what} table"), missing)

    def take(self, codes: np.ndarray) -> Batch:
        """Feature rows of item or user codes; -1 takes the default row."""
        return self.rows.index(torch.from_numpy(np.where(codes >= 0, codes, self.n)))

    def save(self, directory: Path) -> None:
        self.features.save(directory)

    def state(self) -> dict[str, Any]:
        bags = {k: {"values": b.values, "weights": b.weights} for k, b in self.rows.bags.items()}
        return {"ids": self.rows.ids, "dense": self.rows.dense, "bags": bags, "missing": self.missing}

    @classmethod
    def from_state(cls, features: FeatureSet, state: dict[str, Any]) -> SideRows:
        bags = {k: Bag(b["values"], b["weights"]) for k, b in state["bags"].items()}
        return cls(features, Batch(state["ids"], bags, state["dense"]), int(state["missing"]))
