"""Two-tower building blocks shared by DSSM and YouTube-DNN: a side's fields -> MLP -> unit vector.

A `Tower` embeds the fields of one side (user or item) with the same EmbeddingCollection the ranking
models use, runs an MLP and L2-normalizes, so a user-item score is a cosine (divided by the training
temperature). `History` carries each user's behavior as a flattened bag of item codes, pooled with
`embedding_bag` (one kernel, gradients to the rows it read).
Legend: B = rows, D = output dim, H = history entries of all rows together.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import MLP, MLPConfig
from recforge.schema import InputSchema


class TwoTowerConfig(BaseModel):
    """The towers' shape: hidden MLP layers, then a linear map to `dim`, then L2 normalization."""

    model_config = ConfigDict(extra="forbid")
    dim: int = Field(64, ge=1, description="Width of the user and item vectors (the ANN index dim).")
    hidden: tuple[int, ...] = Field((256,), description="User tower MLP layers before the output map.")
    item_hidden: tuple[int, ...] | None = Field(
        None, description="Item tower MLP layers (default: same as `hidden`; [] = one linear map)."
    )
    dropout: float = Field(0.0, ge=0, lt=1)
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    normalize: bool = Field(True, description="L2-normalize both vectors (scores are cosines).")


class Tower(nn.Module):
    """[B] rows of one side (+ optional extra input [B, E]) -> [B, D] (unit length when `normalize`)."""

    def __init__(
        self, schema: InputSchema, hidden: tuple[int, ...], config: TwoTowerConfig, extra_dim: int = 0
    ) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema)
        in_dim = self.embeddings.output_dim + extra_dim
        self.net: nn.Module
        if hidden:
            mlp = MLPConfig(hidden=hidden, dropout=config.dropout, activation=config.activation)
            self.net = MLP(in_dim, mlp, out_dim=config.dim)
        else:
            self.net = nn.Linear(in_dim, config.dim)
        self.normalize = config.normalize

    def forward(self, batch: Batch, extra: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embeddings(batch).flat()
        if extra is not None:
            x = torch.cat([x, extra], dim=1)
        out: torch.Tensor = self.net(x)
        return nn.functional.normalize(out, dim=1) if self.normalize else out


@dataclass(frozen=True)
class History:
    """Behavior of B rows as one bag: item codes [H], row starts [B], pooling weights [H] (1/n, 0 = left out)."""

    items: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor

    def pool(self, table: torch.Tensor) -> torch.Tensor:
        """[B, D]: weighted sum of the rows of `table` (a mean when weights are 1/n; zeros for empty rows)."""
        return nn.functional.embedding_bag(self.items, table, self.offsets, mode="sum", per_sample_weights=self.weights)


def history_rows(matrix: sp.csr_matrix, rows: np.ndarray, leave_out: np.ndarray | None = None) -> History:
    """Mean-pooling bag of `matrix` rows `rows`; `leave_out[b]` (an item code) is dropped from row b's mean.

    >>> m = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]]))
    >>> h = history_rows(m, np.array([0, 1]), leave_out=np.array([0, 2]))
    >>> h.items.tolist(), h.offsets.tolist(), h.weights.tolist()
    ([0, 1, 1, 2], [0, 2], [0.0, 1.0, 1.0, 0.0])
    """
    sub = matrix[rows]
    counts = np.diff(sub.indptr)
    items = sub.indices.astype(np.int64)
    row_of = np.repeat(np.arange(len(rows)), counts)
    keep = np.ones(len(items), dtype=bool) if leave_out is None else items != leave_out[row_of]
    n = np.bincount(row_of[keep], minlength=len(rows)).astype(np.float32)
    weights = np.where(keep, 1.0 / np.maximum(n[row_of], 1.0), 0.0).astype(np.float32)
    return History(
        torch.from_numpy(items), torch.from_numpy(sub.indptr[:-1].astype(np.int64)), torch.from_numpy(weights)
    )


def cap_rows(matrix: sp.csr_matrix, max_len: int | None) -> sp.csr_matrix:
    """Each row's `max_len` entries with the largest values (ties: higher column first), values set to 1.

    Pass recency as the value (a timestamp) to keep each user's most recent items.
    >>> m = sp.csr_matrix(np.array([[5.0, 1.0, 9.0], [0, 2.0, 2.0]]))
    >>> cap_rows(m, 2).toarray().tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    """
    matrix = matrix.tocsr()
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    keep = np.ones(matrix.nnz, dtype=bool)
    if max_len is not None and (counts > max_len).any():
        order = np.lexsort((-matrix.indices, -matrix.data, rows))  # by row, then value desc, column desc
        rank = np.empty(matrix.nnz, dtype=np.int64)
        rank[order] = np.arange(matrix.nnz) - matrix.indptr[rows[order]]
        keep = rank < max_len
    out = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], matrix.indices[keep])), shape=matrix.shape)
    out.sort_indices()
    return out


class TwoTower(nn.Module, ABC):
    """A user tower and an item tower whose vectors [B, D] are compared by a dot product."""

    @abstractmethod
    def user_vectors(self, batch: Batch, history: History | None = None) -> torch.Tensor:
        """User rows of the user features (and their behavior, for models that read it) -> [B, D]."""

    @abstractmethod
    def item_vectors(self, batch: Batch) -> torch.Tensor:
        """Item rows of the item features -> [B, D]."""

    def train_user_vectors(self, batch: Batch, history: History | None, targets: torch.Tensor) -> torch.Tensor:
        """User vectors while training, where each row's positive item vectors `targets` [B, D] are known
        (MIND attends over its interests with them); the serving vectors for single-vector towers."""
        return self.user_vectors(batch, history)

    @property
    def uses_history(self) -> bool:
        return False
