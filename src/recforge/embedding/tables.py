"""Embedding storage kinds by name; `static` is a fixed-size table (vocab rows or hash buckets)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from recforge.registry import Registry
from recforge.schema import TableSpec

TableBuilder = Callable[[TableSpec, int], nn.Module]
TABLES: Registry[TableBuilder] = Registry("embedding storage")


class StaticTable(nn.Module):
    """rows x dim parameter read with F.embedding; row 0 is the OOV/missing row."""

    def __init__(self, num_embeddings: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(init_rows(num_embeddings, dim))
        self.sparse_grad = False

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight, sparse=self.sparse_grad)


def init_rows(rows: int, dim: int) -> torch.Tensor:
    """Small uniform init (scale 1/sqrt(dim)*0.1 keeps FM/dot terms near zero at start)."""
    bound = 0.1 / math.sqrt(dim) if dim > 1 else 1e-3
    return torch.empty(rows, dim).uniform_(-bound, bound)


@TABLES.register("static")
def build_static(spec: TableSpec, dim: int) -> nn.Module:
    return StaticTable(spec.num_embeddings, dim)


def build_table(spec: TableSpec, dim: int | None = None) -> nn.Module:
    """The table module for `spec` with its storage kind; `dim` overrides the spec's dim."""
    kind = str(spec.storage.get("kind", "static"))
    return TABLES.get(kind, yaml_path=f"features[{spec.name}].storage")(spec, dim or spec.dim)
