"""All field embeddings of an InputSchema, looked up in as few kernels as possible.

Static tables of one dim are fused into a single weight with per-table row offsets, so the id
fields of a batch are one gather ([B, F_id] -> [B, F_id, D]) instead of F small ones. When some
tables are not static (dynamic, multi_hash) the static ones are still fused among themselves and
only the others are looked up one by one. With `linear=True` and every table fused, each row carries
one extra column, the field's first-order (linear) weight, so FM-family models get their linear term
from the same gather; otherwise the linear term is a separate dim-1 collection.
Field order everywhere: id fields, then bag fields, then dense fields (InputSchema order within each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from recforge.batch import Bag, Batch
from recforge.embedding.multi_hash import MultiHashTable
from recforge.embedding.tables import StaticTable, build_table, init_rows
from recforge.errors import ConfigError
from recforge.schema import FieldSpec, InputSchema

FieldHook = Callable[[list[torch.Tensor]], list[torch.Tensor]]


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


@dataclass(frozen=True)
class Embedded:
    """One batch's field embeddings: `parts` of [B, F_i, D_i] and, when asked for, the linear term [B]."""

    parts: list[torch.Tensor]
    linear: torch.Tensor | None
    fields: tuple[FieldSpec, ...]
    dims: tuple[int, ...]

    def stacked(self) -> torch.Tensor:
        """[B, F, D]; needs one dim for every field (FM-style models)."""
        if len(set(self.dims)) > 1:
            first = next(f.name for f, d in zip(self.fields, self.dims, strict=True) if d != self.dims[0])
            raise ConfigError(
                f"features ({first})",
                f"this model needs one embedding dim for all fields, {first!r} has another",
                fix="give every feature the same `dim` (or drop per-feature dims)",
            )
        return torch.cat(self.parts, dim=1)

    def flat(self) -> torch.Tensor:
        """[B, sum of field dims]: every field's embedding side by side (MLP-style models)."""
        return torch.cat([p.reshape(p.shape[0], -1) for p in self.parts], dim=1)


class SquaredSum(torch.autograd.Function):
    """sum(x**2) whose backward is one multiply (x * 2g); `pow(2).sum()` takes three full-size ops in backward,
    a fifth of a small-batch DeepFM step. The gradient is the same bit for bit."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        flat = x.reshape(-1)
        return torch.dot(flat, flat)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return x * (grad * 2)


class RowPenalty:
    """The squared norm of the embedding rows a training step read (`train.optimizer.embedding_l2`).

    A mixin of the modules that look rows up (this collection, the TorchRec one); they set `l2_tracking`,
    `penalty` and `linear_part` in `__init__`.
    """

    training: bool
    l2_tracking: bool
    penalty: torch.Tensor | float
    linear_part: Any  # None, or a module of the subclass's own kind (its dim-1 linear term)

    def _track(self, rows: torch.Tensor) -> None:
        """Sum of squares of the rows a training step read (for `train.optimizer.embedding_l2`)."""
        if self.training and self.l2_tracking:
            self.penalty = self.penalty + SquaredSum.apply(rows.float())

    def pop_penalty(self) -> torch.Tensor | float:
        """The squared norm of the rows read since the last call; resets it."""
        penalty, self.penalty = self.penalty, 0.0
        if self.linear_part is not None:
            penalty = penalty + self.linear_part.pop_penalty()
        return penalty


class FieldRows:
    """The forward pass of the modules that look rows up (this collection, the TorchRec one): their raw
    per-group rows, through the field hook, with the linear term split off (folded column or its own module).

    Subclasses set `fields`, `field_dims`, `fold_linear`, `linear_part` and `field_hook` in `__init__`
    and define `_raw_parts`.
    """

    fields: tuple[FieldSpec, ...]
    field_dims: Any
    fold_linear: bool
    linear_part: Any
    field_hook: FieldHook | None

    def _raw_parts(self, batch: Batch) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: Batch) -> Embedded:
        parts = self._raw_parts(batch)
        if self.field_hook is not None:
            parts = self.field_hook(parts)
        linear: torch.Tensor | None = None
        if self.fold_linear:
            linear = sum(p[..., -1].sum(dim=1) for p in parts)  # type: ignore[assignment]
            parts = [p[..., :-1] for p in parts]
        elif self.linear_part is not None:
            linear = self.linear_part(batch).stacked().sum(dim=(1, 2))
        return Embedded(parts, linear, self.fields, self.field_dims)

    def set_field_hook(self, hook: FieldHook | None) -> None:
        """Pass the per-group field rows through `hook` on every forward until reset with None.

        The hook gets and returns `[B, F_i, W]` tensors, fields in `fields` order, a folded linear column
        included (a separate linear collection gets the same hook). Feature-selection methods use it to
        fade fields out of a frozen model; models never set it.
        """
        self.field_hook = hook
        if self.linear_part is not None:
            self.linear_part.set_field_hook(hook)


class EmbeddingCollection(RowPenalty, FieldRows, nn.Module):
    """Embeds every field of a batch; `dim` overrides all table dims (e.g. 1 for logistic regression)."""

    def __init__(self, schema: InputSchema, dim: int | None = None, linear: bool = False) -> None:
        super().__init__()
        self.schema = schema
        self.fields = (*schema.id_fields, *schema.bag_fields, *schema.dense_fields)
        self.dims = {t.name: dim or t.dim for t in schema.tables}
        static = [t for t in schema.tables if t.storage.get("kind", "static") == "static"]
        # static tables of one dim share one weight; the rest (other storage kinds) stay separate modules
        fused_tables = static if len({self.dims[t.name] for t in static}) <= 1 else []
        separate = [t for t in schema.tables if t not in fused_tables]
        self.fused = not separate  # every table in the one weight
        dense_dim = dim or (schema.dense_fields[0].dim if schema.dense_fields else 1)
        self.field_dims = tuple(
            [self.dims[f.table or ""] for f in (*schema.id_fields, *schema.bag_fields)]
            + [dense_dim] * len(schema.dense_fields)
        )
        # the linear column rides along in fused tables; otherwise it is a separate dim-1 collection
        self.fold_linear = linear and self.fused and len(set(self.field_dims)) <= 1
        self.linear_part = EmbeddingCollection(schema, dim=1) if linear and not self.fold_linear else None
        extra = 1 if self.fold_linear else 0
        offsets: dict[str, int] = {}
        if fused_tables:
            rows = 0
            for t in fused_tables:
                offsets[t.name] = rows
                rows += t.num_embeddings
            self.weight = nn.Parameter(self._init(rows, self.dims[fused_tables[0].name], extra))
        self.table_offsets = offsets  # row offset of each fused table in `weight`
        self.tables = nn.ModuleDict({t.name: build_table(t, self.dims[t.name]) for t in separate})
        self.sparse_grad = False
        self.l2_tracking = False
        self.field_hook: FieldHook | None = None  # see set_field_hook
        self.penalty: torch.Tensor | float = 0.0
        self.id_offsets: torch.Tensor
        # id fields in runs of consecutive fused (one slice of a single gather) or separate fields
        fused_cols = [j for j, f in enumerate(schema.id_fields) if (f.table or "") in offsets]
        self.id_runs: list[tuple[int, int, bool]] = []
        for j, f in enumerate(schema.id_fields):
            is_fused = (f.table or "") in offsets
            if self.id_runs and self.id_runs[-1][2] == is_fused:
                self.id_runs[-1] = (self.id_runs[-1][0], j + 1, is_fused)
            else:
                self.id_runs.append((j, j + 1, is_fused))
        self.all_ids_fused = len(fused_cols) == len(schema.id_fields)
        self.fused_cols: torch.Tensor
        self.register_buffer("fused_cols", torch.tensor(fused_cols, dtype=torch.int64), persistent=False)
        id_offsets = [offsets[schema.id_fields[j].table or ""] for j in fused_cols]
        self.register_buffer("id_offsets", torch.tensor(id_offsets, dtype=torch.int64), persistent=False)
        self.dense_vectors = nn.Parameter(self._init(len(schema.dense_fields), dense_dim, extra))

    @staticmethod
    def _init(rows: int, dim: int, extra: int) -> torch.Tensor:
        """Embedding columns at their init scale; a folded linear column starts near zero like LR weights."""
        weight = init_rows(rows, dim)
        return torch.cat([weight, init_rows(rows, 1)], dim=1) if extra else weight

    @property
    def num_fields(self) -> int:
        return len(self.field_dims)

    @property
    def output_dim(self) -> int:
        """Width of `Embedded.flat()`."""
        return sum(self.field_dims)

    def _gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows of the fused weight. index_select's backward (index_add) is ~2x faster on CPU than
        embedding_dense_backward; sparse optimizers need F.embedding's sparse gradient instead."""
        if self.sparse_grad:
            out = nn.functional.embedding(rows, self.weight, sparse=True)
        else:
            out = self.weight.index_select(0, rows.reshape(-1)).view(*rows.shape, self.weight.shape[1])
        self._track(out)
        return out

    def lookup(self, table: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of one table for an int64 tensor of any shape -> [..., D] (without the linear column)."""
        if table in self.table_offsets:
            rows = self._gather(ids + self.table_offsets[table])
            return rows[..., : self.dims[table]] if self.fold_linear else rows
        out: torch.Tensor = self.tables[table](ids)
        self._track(out)
        return out

    def _raw_parts(self, batch: Batch) -> list[torch.Tensor]:
        """[B, F_i, width] per group: id fields (runs of fused fields share one gather), each pooled bag,
        dense fields."""
        parts: list[torch.Tensor] = []
        ids = batch.ids
        together = self._gather_together(batch)
        if ids.shape[1]:
            if self.all_ids_fused:
                parts.append(together[""])
            else:
                fused = (
                    self._gather(ids.index_select(1, self.fused_cols) + self.id_offsets)
                    if self.fused_cols.numel()
                    else None
                )
                done = 0  # fused columns consumed so far
                for start, stop, is_fused in self.id_runs:
                    if is_fused and fused is not None:
                        parts.append(fused[:, done : done + stop - start])
                        done += stop - start
                        continue
                    for j in range(start, stop):
                        part = self.tables[self.schema.id_fields[j].table or ""](ids[:, j]).unsqueeze(1)
                        self._track(part)
                        parts.append(part)
        for f in self.schema.bag_fields:
            bag = batch.bags[f.name]
            # fused rows keep the linear column (forward splits it off)
            rows = together[f.name] if f.name in together else self.lookup(f.table or "", bag.values)
            parts.append(pool_bag(rows, bag, f.pooling).unsqueeze(1))
        if self.schema.dense_fields:
            parts.append(batch.dense.unsqueeze(2) * self.dense_vectors)
        return parts

    def _gather_together(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Rows of the id fields (key "", when all are fused) and of each fused bag field, from one gather.

        Each gather's backward writes a table-sized dense gradient (a zero fill and an add into `weight.grad`),
        so one gather instead of one per field group saves that per step; the gradient is the same.
        """
        index: dict[str, torch.Tensor] = {}
        if self.all_ids_fused and batch.ids.shape[1]:
            index[""] = batch.ids + self.id_offsets
        for f in self.schema.bag_fields:
            if (f.table or "") in self.table_offsets:
                index[f.name] = batch.bags[f.name].values + self.table_offsets[f.table or ""]
        if not index:
            return {}
        rows = self._gather(torch.cat(list(index.values()), dim=1))
        return dict(zip(index, rows.split([i.shape[1] for i in index.values()], dim=1), strict=True))

    def set_sparse_grad(self, sparse: bool) -> None:
        """Sparse row gradients for the sparse optimizers (set by the trainer, not by models)."""
        self.sparse_grad = sparse
        for table in self.tables.values():
            if isinstance(table, (StaticTable, MultiHashTable)):  # dynamic tables update rows themselves
                table.sparse_grad = sparse
        if self.linear_part is not None:
            self.linear_part.set_sparse_grad(sparse)
