"""Where each weight of an lr model sits among the FTRL coordinates: table rows first, then dense fields, then the bias.

`encode` turns a Batch into the idx/val rows FTRL learns from; `export` writes FTRL's weights back into the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recforge.batch import Batch
from recforge.errors import ConfigError
from recforge.models.rank.lr import LogisticRegression


@dataclass(frozen=True)
class LinearCoordinates:
    """Where each weight of an lr model sits among the FTRL coordinates."""

    id_offsets: np.ndarray  # [F_id] row offset of each id field's table in the fused table
    bags: tuple[tuple[str, int, bool], ...]  # (bag field, its table's row offset, mean pooling)
    rows: int  # rows of the fused table
    dense: int  # dense fields

    @property
    def size(self) -> int:
        return self.rows + self.dense + 1

    @classmethod
    def of(cls, model: LogisticRegression) -> LinearCoordinates:
        emb = model.weights
        if not emb.fused:
            odd = ", ".join(emb.tables)
            raise ConfigError(
                f"features ({odd})",
                "the ftrl trainer learns static tables only; these use another storage kind",
                fix="drop `storage:` from them (hash with `hash_buckets` instead)",
            )
        offsets = emb.table_offsets
        schema = emb.schema
        return cls(
            id_offsets=np.array([offsets[f.table or ""] for f in schema.id_fields], dtype=np.int64),
            bags=tuple((f.name, offsets[f.table or ""], f.pooling == "mean") for f in schema.bag_fields),
            rows=int(emb.weight.shape[0]) if offsets else 0,
            dense=len(schema.dense_fields),
        )

    def encode(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """idx int64 [B, K] and val float64 [B, K] with sum_k w[idx] * val == the lr model's logit."""
        b = batch.size
        idx = [batch.ids.numpy() + self.id_offsets]
        val = [np.ones(idx[0].shape)]
        for name, offset, mean in self.bags:
            bag = batch.bags[name]
            values = bag.values.numpy()
            weight = (values != 0).astype(np.float64)
            if bag.weights is not None:
                weight *= bag.weights.numpy()
            if mean:
                weight /= np.maximum((values != 0).sum(axis=1, keepdims=True), 1)
            idx.append(values + offset)
            val.append(weight)
        if self.dense:
            idx.append(np.broadcast_to(self.rows + np.arange(self.dense), (b, self.dense)))
            val.append(batch.dense.numpy().astype(np.float64))
        idx.append(np.full((b, 1), self.size - 1, dtype=np.int64))
        val.append(np.ones((b, 1)))
        return np.concatenate(idx, axis=1), np.concatenate(val, axis=1)

    def export(self, weights: np.ndarray, model: LogisticRegression) -> None:
        """Write FTRL's weights into the lr model's parameters (float32, as every bundle holds them)."""
        w = torch.from_numpy(weights.astype(np.float32))
        with torch.no_grad():
            if self.rows:
                model.weights.weight[:, 0] = w[: self.rows]
            model.weights.dense_vectors[:, 0] = w[self.rows : self.rows + self.dense]
            model.bias[0] = w[-1]
