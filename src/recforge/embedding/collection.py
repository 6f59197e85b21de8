"""All field embeddings of an InputSchema, looked up in as few kernels as possible.

Static tables of one dim are fused into a single weight with per-table row offsets, so the id
fields of a batch are one gather ([B, F_id] -> [B, F_id, D]) instead of F small ones.
Field order everywhere: id fields, then bag fields, then dense fields (InputSchema order within each).
"""

from __future__ import annotations

import torch
from torch import nn

from recforge.batch import Bag, Batch
from recforge.embedding.tables import StaticTable, build_table, init_rows
from recforge.errors import ConfigError
from recforge.schema import InputSchema


def pool_bag(emb: torch.Tensor, bag: Bag, pooling: str) -> torch.Tensor:
    """[B, L, D] -> [B, D]: masked (weighted) sum or mean over the non-padding positions."""
    weight = bag.mask.to(emb.dtype)
    if bag.weights is not None:
        weight = weight * bag.weights.to(emb.dtype)
    total = (emb * weight.unsqueeze(2)).sum(dim=1)
    if pooling == "sum":
        return total
    count = bag.mask.sum(dim=1, keepdim=True).clamp_min(1).to(emb.dtype)
    return total / count


class EmbeddingCollection(nn.Module):
    """Embeds every field of a batch; `dim` overrides all table dims (e.g. 1 for a linear term)."""

    def __init__(self, schema: InputSchema, dim: int | None = None) -> None:
        super().__init__()
        self.schema = schema
        self.dims = {t.name: dim or t.dim for t in schema.tables}
        self.fused = all(t.storage.get("kind", "static") == "static" for t in schema.tables) and (
            len(set(self.dims.values())) <= 1
        )
        offsets: dict[str, int] = {}
        if self.fused and schema.tables:
            rows = 0
            for t in schema.tables:
                offsets[t.name] = rows
                rows += t.num_embeddings
            self.table_offsets = offsets
            self.weight = nn.Parameter(init_rows(rows, next(iter(self.dims.values()))))
            self.sparse_grad = False
        else:
            self.tables = nn.ModuleDict({t.name: build_table(t, self.dims[t.name]) for t in schema.tables})
        self.l2_tracking = False
        self.penalty: torch.Tensor | float = 0.0
        id_offsets = [offsets.get(f.table or "", 0) for f in schema.id_fields]
        self.id_offsets: torch.Tensor
        self.register_buffer("id_offsets", torch.tensor(id_offsets, dtype=torch.int64), persistent=False)
        dense_dim = dim or (schema.dense_fields[0].dim if schema.dense_fields else 1)
        self.dense_vectors = nn.Parameter(init_rows(len(schema.dense_fields), dense_dim))
        self.field_dims = (
            [self.dims[f.table or ""] for f in schema.id_fields]
            + [self.dims[f.table or ""] for f in schema.bag_fields]
            + [dense_dim] * len(schema.dense_fields)
        )

    @property
    def num_fields(self) -> int:
        return len(self.field_dims)

    @property
    def output_dim(self) -> int:
        """Width of `flat(batch)`."""
        return sum(self.field_dims)

    def lookup(self, table: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of one table for an int64 tensor of any shape -> [..., D]."""
        if self.fused:
            return self._gather(ids + self.table_offsets[table])
        out = self.tables[table](ids)
        self._track(out)
        return out

    def _gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows of the fused weight. index_select's backward (index_add) is ~2x faster on CPU than
        embedding_dense_backward; sparse optimizers need F.embedding's sparse gradient instead."""
        if self.sparse_grad:
            out = nn.functional.embedding(rows, self.weight, sparse=True)
        else:
            out = self.weight.index_select(0, rows.reshape(-1)).view(*rows.shape, self.weight.shape[1])
        self._track(out)
        return out

    def _track(self, rows: torch.Tensor) -> None:
        """Sum of squares of the rows a training step read (for `train.optimizer.embedding_l2`)."""
        if self.training and self.l2_tracking:
            self.penalty = self.penalty + rows.float().pow(2).sum()

    def pop_penalty(self) -> torch.Tensor | float:
        """The squared norm of the rows read since the last call; resets it."""
        penalty, self.penalty = self.penalty, 0.0
        return penalty

    def id_embeddings(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """[B, F_id] -> list of [B, F_id, D] groups (one group when fused)."""
        if ids.shape[1] == 0:
            return []
        if self.fused:
            return [self._gather(ids + self.id_offsets)]
        parts = [self.tables[f.table or ""](ids[:, j]).unsqueeze(1) for j, f in enumerate(self.schema.id_fields)]
        for part in parts:
            self._track(part)
        return parts

    def bag_embeddings(self, batch: Batch) -> list[torch.Tensor]:
        """Each bag field pooled by its own pooling -> list of [B, 1, D]."""
        return [
            pool_bag(self.lookup(f.table or "", batch.bags[f.name].values), batch.bags[f.name], f.pooling).unsqueeze(1)
            for f in self.schema.bag_fields
        ]

    def dense_embeddings(self, batch: Batch) -> torch.Tensor | None:
        """Dense values scale one learned vector per field -> [B, F_dense, D]."""
        if not self.schema.dense_fields:
            return None
        return batch.dense.unsqueeze(2) * self.dense_vectors

    def parts(self, batch: Batch) -> list[torch.Tensor]:
        parts = self.id_embeddings(batch.ids) + self.bag_embeddings(batch)
        dense = self.dense_embeddings(batch)
        return parts + ([dense] if dense is not None else [])

    def stacked(self, batch: Batch) -> torch.Tensor:
        """[B, F, D]; needs one dim for every field (FM-style models)."""
        if len(set(self.field_dims)) > 1:
            names = [f.name for f in self.schema.id_fields + self.schema.bag_fields + self.schema.dense_fields]
            first = next(n for n, d in zip(names, self.field_dims, strict=True) if d != self.field_dims[0])
            raise ConfigError(
                f"features ({first})",
                f"this model needs one embedding dim for all fields, {first!r} has another",
                fix="give every feature the same `dim` (or drop per-feature dims)",
            )
        return torch.cat(self.parts(batch), dim=1)

    def flat(self, batch: Batch) -> torch.Tensor:
        """[B, sum of field dims]: every field's embedding side by side (MLP-style models)."""
        return torch.cat([p.flatten(start_dim=1) for p in self.parts(batch)], dim=1)

    def set_sparse_grad(self, sparse: bool) -> None:
        """Sparse row gradients for the sparse optimizers (set by the trainer, not by models)."""
        if self.fused and self.schema.tables:
            self.sparse_grad = sparse
        else:
            for table in self.tables.values():
                if isinstance(table, StaticTable):
                    table.sparse_grad = sparse
