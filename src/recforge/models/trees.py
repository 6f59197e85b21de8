"""Tree ensembles over a Batch: the model-input matrix trees read and a LightGBM forest kept as text.

The matrix has one column per id field (its code, split as a category), one per dense field (its value)
and, for a tag or sequence bag over a small vocabulary, one 0/1 column per code (multi-hot), so trees
see exactly the features every other recforge model sees. A forest is stored as LightGBM's own text
model: loading it parses text and never runs code from the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from recforge.batch import Batch
from recforge.errors import ConfigError
from recforge.schema import InputSchema

PARALLEL_ROWS = 20_000


@dataclass(frozen=True)
class TreeColumn:
    """One matrix column: the field it comes from, its name, and the bag code it flags (multi-hot only)."""

    field: str
    name: str
    categorical: bool
    code: int = 0


@dataclass(frozen=True)
class TreeInputs:
    """The column layout of the matrix trees are trained on and scored with, fixed by the InputSchema."""

    columns: tuple[TreeColumn, ...]
    id_fields: tuple[str, ...]
    dense_fields: tuple[str, ...]
    bags: tuple[tuple[str, int], ...]  # (bag field, codes 1..n-1 get columns)

    @classmethod
    def of(cls, schema: InputSchema, max_bag_values: int) -> TreeInputs:
        columns = [TreeColumn(f.name, f.name, True) for f in schema.id_fields]
        columns += [TreeColumn(f.name, f.name, False) for f in schema.dense_fields]
        bags = []
        for f in schema.bag_fields:
            n = schema.table(f.table or f.name).num_embeddings - 1
            if n > max_bag_values:
                raise ConfigError(
                    "model.max_bag_values",
                    f"bag feature {f.name!r} has {n} values; trees read a bag as one 0/1 column per value",
                    fix=f"raise model.max_bag_values to {n} or drop {f.name!r} from the features of this model",
                )
            bags.append((f.name, n))
            columns += [TreeColumn(f.name, f"{f.name}__{code}", False, code) for code in range(1, n + 1)]
        return cls(
            tuple(columns),
            tuple(f.name for f in schema.id_fields),
            tuple(f.name for f in schema.dense_fields),
            tuple(bags),
        )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def categorical(self) -> list[int]:
        return [j for j, c in enumerate(self.columns) if c.categorical]

    def matrix(self, batch: Batch) -> np.ndarray:
        """float64 [B, C]: id codes, dense values, then multi-hot bag codes (padding 0 flags nothing)."""
        parts = [batch.ids.numpy().astype(np.float64), batch.dense.numpy().astype(np.float64)]
        for name, n in self.bags:
            values = batch.bags[name].values.numpy()
            hot = np.zeros((batch.size, n + 1))
            np.put_along_axis(hot, values, 1.0, axis=1)
            parts.append(hot[:, 1:])
        return np.concatenate(parts, axis=1) if parts else np.zeros((batch.size, 0))


class Forest:
    """A LightGBM forest parsed from its text model; leaves are numbered globally across trees."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.booster = lgb.Booster(model_str=text)
        self.dump: dict[str, Any] = self.booster.dump_model()
        counts = [int(t["num_leaves"]) for t in self.dump["tree_info"]]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def n_trees(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_leaves(self) -> int:
        return int(self.offsets[-1])

    def leaves(self, matrix: np.ndarray) -> np.ndarray:
        """int64 [B, T]: the global leaf index each row reaches in each tree."""
        if self.n_trees == 0 or len(matrix) == 0:
            return np.zeros((len(matrix), self.n_trees), dtype=np.int64)
        # one thread for request-sized batches: OpenMP start-up and spinning cost more than they save there
        threads = 1 if len(matrix) < PARALLEL_ROWS else 0
        leaves = self.booster.predict(matrix, pred_leaf=True, num_threads=threads)
        local = np.asarray(leaves, dtype=np.int64).reshape(len(matrix), -1)
        return local + self.offsets[:-1]

    def leaf_values(self) -> np.ndarray:
        """float64 [n_leaves]: LightGBM's own leaf outputs (the starting point of the LR on top)."""
        out = np.zeros(self.n_leaves)
        for t, tree in enumerate(self.dump["tree_info"]):
            for leaf in walk_leaves(tree["tree_structure"]):
                out[self.offsets[t] + leaf.get("leaf_index", 0)] = leaf["leaf_value"]
        return out

    def importance(self, inputs: TreeInputs) -> list[dict[str, Any]]:
        """Per feature (bag columns summed): total split gain, split count, gain share; largest gain first."""
        gains = self.booster.feature_importance(importance_type="gain")
        splits = self.booster.feature_importance(importance_type="split")
        rows: dict[str, dict[str, Any]] = {}
        for column, gain, split in zip(inputs.columns, gains, splits, strict=True):
            row = rows.setdefault(column.field, {"feature": column.field, "gain": 0.0, "splits": 0})
            row["gain"] += float(gain)
            row["splits"] += int(split)
        total = sum(r["gain"] for r in rows.values()) or 1.0
        for row in rows.values():
            row["gain_share"] = row["gain"] / total
        return sorted(rows.values(), key=lambda r: (-r["gain"], r["feature"]))


def walk_leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaf nodes of one tree of LightGBM's JSON dump, left to right."""
    if "leaf_value" in node and "split_index" not in node:
        return [node]
    return walk_leaves(node["left_child"]) + walk_leaves(node["right_child"])


def importance_table(rows: list[dict[str, Any]]) -> str:
    """The importance rows as a fixed-width text table (what `recforge model importance` prints)."""
    width = max([len("feature"), *(len(r["feature"]) for r in rows)])
    lines = [f"{'feature':<{width}}  {'gain':>14}  {'splits':>7}  {'gain %':>7}"]
    lines += [
        f"{r['feature']:<{width}}  {r['gain']:>14.2f}  {r['splits']:>7d}  {100 * r['gain_share']:>6.2f}%" for r in rows
    ]
    return "\n".join(lines)


def importance_csv(rows: list[dict[str, Any]]) -> str:
    return "feature,gain,splits,gain_share\n" + "".join(
        f"{r['feature']},{r['gain']!r},{r['splits']},{r['gain_share']!r}\n" for r in rows
    )
