"""A recforge EmbeddingCollection re-homed in a TorchRec EmbeddingCollection, so DMP can shard its rows.

`TorchRecFieldEmbeddings` is a drop-in for one `recforge.embedding.EmbeddingCollection`: same fields, same
`Embedded` output, same folded linear column, pooling, field hook and L2 tracking, but every table is a
table of a TorchRec `EmbeddingCollection` (unpooled: bags are pooled here by recforge's own `pool_bag`, so
a bag's mask and weights mean what they mean on one process). One thing differs inside: FBGEMM's kernels
need a width that is a multiple of 4, so a table of width W (dim, plus 1 for a folded linear column) is
stored `padded_width(W)` wide; the pad columns start at 0, get no gradient and are dropped on export.

TorchRec is imported lazily: importing this module never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from recforge.batch import Bag, Batch
from recforge.embedding import EmbeddingCollection, pool_bag
from recforge.embedding.collection import FieldHook, FieldRows, RowPenalty
from recforge.errors import ConfigError
from recforge.schema import InputSchema
from recforge.train.trainer import L2Tracked

if TYPE_CHECKING:
    from torchrec import KeyedJaggedTensor

FBGEMM_WIDTH_MULTIPLE = 4
UNREAD = "{table}/unread"  # feature key of a table no field reads (TorchRec needs one per table)


def padded_width(width: int) -> int:
    """The stored width of a table `width` columns wide: the next multiple of 4 (FBGEMM's rule).

    >>> padded_width(9), padded_width(8), padded_width(1)
    (12, 8, 4)
    """
    return -(-width // FBGEMM_WIDTH_MULTIPLE) * FBGEMM_WIDTH_MULTIPLE


def require_static(source: EmbeddingCollection, yaml_path: str = "train.distributed.embeddings") -> None:
    """Refuse tables TorchRec cannot hold as one fixed-size table (dynamic, tiered, multi_hash), by name."""
    for table in source.schema.tables:
        kind = str(table.storage.get("kind", "static"))
        if kind != "static":
            raise ConfigError(
                yaml_path,
                f"table {table.name!r} has `storage: {kind}`, which TorchRec sharding does not support "
                "(a growing or hashed table has no fixed row range to shard)",
                fix=f"give {table.name!r} static storage (`min_count` or `hash_buckets`), or train with "
                "`train.distributed.embeddings: replicated`",
            )


def padding_row(batch: Batch) -> Batch:
    """One row of the empty `batch`'s shape: every id 0 (the OOV row), every bag empty, every dense value 0."""
    bags = {name: Bag(torch.zeros(1, bag.values.shape[1], dtype=torch.int64)) for name, bag in batch.bags.items()}
    return Batch(
        ids=torch.zeros(1, batch.ids.shape[1], dtype=torch.int64),
        bags=bags,
        dense=batch.dense.new_zeros(1, batch.dense.shape[1]),
    )


class TorchRecFieldEmbeddings(RowPenalty, FieldRows, nn.Module):
    """Drop-in for an EmbeddingCollection whose rows live in TorchRec tables (`self.rows`, sharded by DMP)."""

    def __init__(self, source: EmbeddingCollection) -> None:
        super().__init__()
        from torchrec import EmbeddingCollection as TorchRecCollection
        from torchrec import EmbeddingConfig

        require_static(source)
        self.schema: InputSchema = source.schema
        self.fields = source.fields
        self.dims = dict(source.dims)
        self.field_dims = source.field_dims
        self.fold_linear = source.fold_linear
        self.widths = {t: d + (1 if self.fold_linear else 0) for t, d in self.dims.items()}
        self.table_offsets = dict(source.table_offsets)  # the ordinary layout, for export
        self.features = self._feature_keys()
        configs = [
            EmbeddingConfig(
                name=t.name,
                embedding_dim=padded_width(self.widths[t.name]),
                num_embeddings=t.num_embeddings,
                feature_names=[k for k, table in self.features.items() if table == t.name],
            )
            for t in self.schema.tables
        ]
        self.rows = TorchRecCollection(tables=configs, device=torch.device("meta"))  # DMP materializes the shards
        self.dense_vectors = source.dense_vectors
        self.dense_vectors.requires_grad_(bool(self.schema.dense_fields))  # DDP must not wait for an unused one
        self.linear_part = TorchRecFieldEmbeddings(source.linear_part) if source.linear_part else None
        self.l2_tracking = source.l2_tracking
        self.field_hook: FieldHook | None = source.field_hook
        self.penalty: torch.Tensor | float = 0.0

    def _feature_keys(self) -> dict[str, str]:
        """TorchRec feature key -> table, in the fixed order every forward builds its input in."""
        keys = {f.name: f.table or "" for f in (*self.schema.id_fields, *self.schema.bag_fields)}
        read = set(keys.values())
        keys.update({UNREAD.format(table=t.name): t.name for t in self.schema.tables if t.name not in read})
        return keys

    @property
    def num_fields(self) -> int:
        return len(self.field_dims)

    @property
    def output_dim(self) -> int:
        """Width of `Embedded.flat()`."""
        return sum(self.field_dims)

    def full_tables(self, source: EmbeddingCollection) -> dict[str, torch.Tensor]:
        """Every table of the ordinary `source` as [rows, padded width] (pad columns 0): the values to shard."""
        out = {}
        for t in self.schema.tables:
            if t.name in self.table_offsets:
                start = self.table_offsets[t.name]
                rows = source.weight.detach()[start : start + t.num_embeddings]
            else:
                rows = source.tables[t.name].get_parameter("weight").detach()
            out[t.name] = nn.functional.pad(rows, (0, padded_width(self.widths[t.name]) - rows.shape[1]))
        return out

    def ordinary_state(self, tables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state-dict entries (relative to this module) the ordinary EmbeddingCollection holds for `tables`."""
        unpadded = {name: rows[:, : self.widths[name]] for name, rows in tables.items()}
        out: dict[str, torch.Tensor] = {}
        if self.table_offsets:
            fused = sorted(self.table_offsets, key=self.table_offsets.__getitem__)
            out["weight"] = torch.cat([unpadded[name] for name in fused])
        out.update({f"tables.{n}.weight": rows for n, rows in unpadded.items() if n not in self.table_offsets})
        return out

    def _input(self, batch: Batch) -> KeyedJaggedTensor:
        """One KeyedJaggedTensor: id fields one value per row, bags all L padded values per row (pooled here)."""
        from torchrec import KeyedJaggedTensor

        size = batch.size
        cols = {f.name: j for j, f in enumerate(self.schema.id_fields)}
        values, lengths = [], []
        for key in self.features:
            if key in cols:
                values.append(batch.ids[:, cols[key]])
                lengths.append(torch.ones(size, dtype=torch.int64))
            elif key in batch.bags:
                bag = batch.bags[key].values
                values.append(bag.reshape(-1))
                lengths.append(torch.full((size,), bag.shape[1], dtype=torch.int64))
            else:
                lengths.append(torch.zeros(size, dtype=torch.int64))
        return KeyedJaggedTensor(
            keys=list(self.features),
            values=torch.cat(values) if values else torch.zeros(0, dtype=torch.int64),
            lengths=torch.cat(lengths),
        )

    def _raw_parts(self, batch: Batch) -> list[torch.Tensor]:
        """[B, F_i, width] per group, as EmbeddingCollection._raw_parts gives them."""
        if batch.size == 0:  # TorchRec cannot build the output of an empty input, yet every rank must take part
            return [part[:0] for part in self._raw_parts(padding_row(batch))]
        looked_up = self.rows(self._input(batch))
        size = batch.size

        def rows_of(key: str) -> torch.Tensor:
            rows = looked_up[key].values()[:, : self.widths[self.features[key]]]
            self._track(rows)
            return rows

        parts: list[torch.Tensor] = []
        if self.schema.id_fields:
            parts.append(torch.stack([rows_of(f.name) for f in self.schema.id_fields], dim=1))
        for f in self.schema.bag_fields:
            rows = rows_of(f.name).reshape(size, batch.bags[f.name].values.shape[1], -1)
            parts.append(pool_bag(rows, batch.bags[f.name], f.pooling).unsqueeze(1))
        if self.schema.dense_fields:
            parts.append(batch.dense.unsqueeze(2) * self.dense_vectors)
        return parts

    def lookup(self, table: str, ids: torch.Tensor) -> torch.Tensor:
        """Lookups outside the field forward (sequence models) are not routed through TorchRec's collectives."""
        raise ConfigError(
            "train.distributed.embeddings",
            f"this model reads table {table!r} outside its field lookup (a sequence model such as din or bst), "
            "which the TorchRec path does not shard yet",
            fix="train it with `train.distributed.embeddings: replicated`",
        )


def embedding_collections(model: nn.Module) -> list[L2Tracked]:
    """Every field-embedding module under `model`, ordinary or TorchRec-held (the trainer pops their L2 penalty)."""
    return [m for m in model.modules() if isinstance(m, (EmbeddingCollection, TorchRecFieldEmbeddings))]
