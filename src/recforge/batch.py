"""Batch: one training or serving step, built by FeatureSet.transform (the same code online and offline)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Bag:
    """Variable-length ids per row, right-padded with 0.

    rows [[4, 9], [], [7]] -> values [[4, 9], [0, 0], [7, 0]], lengths [2, 0, 1]
    """

    values: torch.Tensor  # int64 [B, L], 0 = padding
    weights: torch.Tensor | None = None  # float32 [B, L] or None (all ones)
    attrs: dict[str, torch.Tensor] = field(default_factory=dict)  # sequences: int64 [B, L, G] side info per element

    def index(self, rows: torch.Tensor | slice) -> Bag:
        return Bag(
            self.values[rows],
            None if self.weights is None else self.weights[rows],
            {k: v[rows] for k, v in self.attrs.items()},
        )

    def unique(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Deduplicated elements: (values [U], inverse [B, L] with values[inverse] == self.values, attrs [U, G]).

        Attributes are a function of the element (a fitted map), so any occurrence's row is the element's.
        """
        values, inverse = torch.unique(self.values, return_inverse=True)
        first = torch.empty(values.shape[0], dtype=torch.int64)
        first.scatter_(0, inverse.reshape(-1), torch.arange(inverse.numel()))
        attrs = {k: v.reshape(-1, v.shape[-1]).index_select(0, first) for k, v in self.attrs.items()}
        return values, inverse, attrs

    @property
    def mask(self) -> torch.Tensor:
        return self.values != 0


@dataclass(frozen=True)
class Batch:
    """ids [B, n_id] (columns in InputSchema.id_fields order), bags per bag field, dense [B, n_dense]."""

    ids: torch.Tensor
    bags: dict[str, Bag]
    dense: torch.Tensor
    labels: dict[str, torch.Tensor] = field(default_factory=dict)  # float32 [B] per label
    weights: torch.Tensor | None = None  # float32 [B] sample weights
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # raw pass-through columns (group keys, ids)

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    def index(self, rows: torch.Tensor | slice) -> Batch:
        """Rows selected by a slice or an int64 index tensor (used for shuffling and mini-batching)."""
        np_rows = rows if isinstance(rows, slice) else rows.numpy()
        return Batch(
            ids=self.ids[rows],
            bags={k: b.index(rows) for k, b in self.bags.items()},
            dense=self.dense[rows],
            labels={k: v[rows] for k, v in self.labels.items()},
            weights=None if self.weights is None else self.weights[rows],
            extras={k: v[np_rows] for k, v in self.extras.items()},
        )

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        """One batch from several with the same fields (bags are re-padded to the longest)."""
        first = batches[0]

        def cat_bags(name: str) -> Bag:
            parts = [b.bags[name] for b in batches]
            width = max(p.values.shape[1] for p in parts)
            values = torch.cat([torch.nn.functional.pad(p.values, (0, width - p.values.shape[1])) for p in parts])
            attrs = {
                k: torch.cat(
                    [
                        torch.nn.functional.pad(
                            p.attrs[k], (0, g - p.attrs[k].shape[2], 0, width - p.attrs[k].shape[1])
                        )
                        for p in parts
                    ]
                )
                for k, g in ((k, max(p.attrs[k].shape[2] for p in parts)) for k in parts[0].attrs)
            }
            if parts[0].weights is None:
                return Bag(values, None, attrs)
            padded = [
                torch.nn.functional.pad(w, (0, width - w.shape[1])) for w in (p.weights for p in parts) if w is not None
            ]
            weights = torch.cat(padded)
            return Bag(values, weights, attrs)

        return Batch(
            ids=torch.cat([b.ids for b in batches]),
            bags={name: cat_bags(name) for name in first.bags},
            dense=torch.cat([b.dense for b in batches]),
            labels={k: torch.cat([b.labels[k] for b in batches]) for k in first.labels},
            weights=None if first.weights is None else torch.cat([b.weights for b in batches]),  # type: ignore[misc]
            extras={k: np.concatenate([b.extras[k] for b in batches]) for k in first.extras},
        )
