"""GraphSAGE-style encoder of the bipartite user-item graph, in plain PyTorch (sparse matmul, full neighbours).

Nodes are users 0..U-1 then items U..U+I-1, each with a free id embedding h0. Two aggregators:
  sage:     h_l = act(W_l [h_{l-1} || mean of neighbours' h_{l-1}]), unit-normalized (Hamilton et al. 2017)
  lightgcn: h_l = D^-1/2 A D^-1/2 h_{l-1}, output = mean(h_0..h_L) (He et al. 2020; no weights, no act)
Every step aggregates all neighbours of all nodes (a sparse [N, N] @ [N, D]); fine up to a few million
edges on CPU, beyond that neighbour sampling per mini-batch would be needed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class GraphConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(64, ge=1, description="Node embedding and output width.")
    layers: int = Field(2, ge=1, le=3, description="Aggregation rounds (hops).")
    aggregator: Literal["sage", "lightgcn"] = Field(
        "lightgcn", description="sage: mean of neighbours + self through a linear layer; lightgcn: normalized sum."
    )
    normalize: bool = Field(True, description="L2-normalize the final user and item vectors (cosine scores).")


def bipartite_adjacency(matrix: sp.csr_matrix, norm: Literal["mean", "symmetric"]) -> torch.Tensor:
    """[U+I, U+I] sparse COO of the user-item graph: rows divided by degree (mean) or by sqrt(d_i d_j)."""
    n_users, n_items = matrix.shape
    binary = matrix.tocoo()
    rows = np.concatenate([binary.row, binary.col + n_users])
    cols = np.concatenate([binary.col + n_users, binary.row])
    degree = np.bincount(rows, minlength=n_users + n_items).astype(np.float64)
    safe = np.maximum(degree, 1.0)
    values = 1.0 / safe[rows] if norm == "mean" else 1.0 / np.sqrt(safe[rows] * safe[cols])
    index = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    size = (n_users + n_items, n_users + n_items)
    values_t = torch.from_numpy(values.astype(np.float32))
    return torch.sparse_coo_tensor(index, values_t, size, check_invariants=True).coalesce()


class GraphSAGE(nn.Module):
    """adjacency [N, N] -> node vectors [N, D] (users first); the adjacency must match `aggregator`'s norm."""

    def __init__(self, n_users: int, n_items: int, config: GraphConfig) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.config = config
        self.embedding = nn.Parameter(torch.randn(n_users + n_items, config.dim) * 0.1)  # h0, one row per node
        if config.aggregator == "sage":
            self.maps = nn.ModuleList(nn.Linear(2 * config.dim, config.dim) for _ in range(config.layers))

    @property
    def norm(self) -> Literal["mean", "symmetric"]:
        return "mean" if self.config.aggregator == "sage" else "symmetric"

    def forward(self, adjacency: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.embedding
        if self.config.aggregator == "lightgcn":
            total = h
            for _ in range(self.config.layers):
                h = torch.sparse.mm(adjacency, h)
                total = total + h
            out = total / (self.config.layers + 1)
        else:
            for layer, linear in enumerate(self.maps):
                h = linear(torch.cat([h, torch.sparse.mm(adjacency, h)], dim=1))
                if layer < len(self.maps) - 1:
                    h = nn.functional.normalize(torch.relu(h), dim=1)
            out = h
        return nn.functional.normalize(out, dim=1) if self.config.normalize else out

    def split(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Node vectors -> (users [U, D], items [I, D])."""
        return nodes[: self.n_users], nodes[self.n_users :]
