"""Behavior-sequence inputs: per element, the item's embedding beside its side info; and the target's.

A sequence field (`kind: sequence`, `of: item_id`, `attrs: [genre, ...]`) holds rows of the `of` table;
each element's vector is [emb(item) | mean emb(attr_1) | ...] ([B, L, D_e]), and the target's vector is
built the same way from the batch's own `item_id`, `genre`, ... fields ([B, D_e]), so attention can
compare them. With dedup, element vectors are computed once per distinct item of the batch
(`Bag.unique`) and gathered back, which saves the per-element attribute lookups and pooling.
Shapes: B rows, L sequence length, G attribute values per element, D_e element width.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.errors import ConfigError
from recforge.schema import FieldSpec, InputSchema

Dedup = Literal["auto", "on", "off"]


def sequence_fields(schema: InputSchema) -> tuple[FieldSpec, ...]:
    return tuple(f for f in schema.bag_fields if f.sequence_of is not None)


def without_sequences(schema: InputSchema) -> InputSchema:
    """The schema minus its sequence fields (their tables stay: the target id field shares them)."""
    seq = set(sequence_fields(schema))
    return dataclasses.replace(schema, fields=tuple(f for f in schema.fields if f not in seq))


def masked_mean(rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[..., G, D] -> [..., D]: mean over the non-zero ids (0 where there is none)."""
    mask = (ids != 0).to(rows.dtype).unsqueeze(-1)
    return (rows * mask).sum(dim=-2) / mask.sum(dim=-2).clamp_min(1.0)


def recency_ranks(mask: torch.Tensor, size: int) -> torch.Tensor:
    """[B, L] rank of each element from the newest (0) in right-padded, oldest-first rows; padding gets 0
    (it is masked anyway) and ranks past `size` - 1 share the last one."""
    lengths = mask.sum(dim=1, keepdim=True)
    ranks = lengths - 1 - torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return ranks.clamp(0, size - 1)


class SequenceInputs:
    """Element vectors of one sequence field and the target vector they are compared with.

    Holds no parameters: it reads the model's own EmbeddingCollection (the tables the target fields use).
    """

    def __init__(self, schema: InputSchema, field: FieldSpec, embeddings: EmbeddingCollection, dedup: Dedup) -> None:
        self.field = field
        self.embeddings = embeddings
        self.parts = (field.sequence_of or "", *field.attrs)
        cols = {f.name: j for j, f in enumerate(schema.id_fields)}
        bags = {f.name for f in schema.bag_fields}
        for name in self.parts:
            if name not in cols and name not in bags:
                raise ConfigError(
                    f"features ({field.name})",
                    f"the target has no field {name!r} to match the sequence elements with",
                    fix=f"add the feature {name!r} (the sequence's `of`/`attrs` must be model inputs)",
                )
        self.target_cols = {n: cols[n] for n in self.parts if n in cols}
        self.tables = {n: schema.field(n).table or "" for n in self.parts}
        self.output_dim = sum(embeddings.dims[t] for t in self.tables.values())
        self.dedup = dedup == "on" or (dedup == "auto" and bool(field.attrs))

    def _vectors(self, values: torch.Tensor, attrs: dict[str, torch.Tensor]) -> torch.Tensor:
        """[...] element rows and [..., G] attribute rows -> [..., D_e]."""
        lookup = self.embeddings.lookup
        out = [lookup(self.tables[self.parts[0]], values)]
        out += [masked_mean(lookup(self.tables[a], attrs[a]), attrs[a]) for a in self.parts[1:]]
        return torch.cat(out, dim=-1)

    def elements(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(element vectors [B, L, D_e], zero at padding; mask [B, L])."""
        bag = batch.bags[self.field.name]
        mask = bag.mask
        if self.dedup:
            values, inverse, attrs = bag.unique()
            keys = self._vectors(values, attrs)[inverse]
        else:
            keys = self._vectors(bag.values, bag.attrs)
        return keys * mask.unsqueeze(-1).to(keys.dtype), mask

    def target(self, batch: Batch) -> torch.Tensor:
        """[B, D_e]: the row's own item vector, built like an element's."""
        lookup = self.embeddings.lookup
        out = []
        for name in self.parts:
            if name in self.target_cols:
                out.append(lookup(self.tables[name], batch.ids[:, self.target_cols[name]]))
            else:
                values = batch.bags[name].values
                out.append(masked_mean(lookup(self.tables[name], values), values))
        return torch.cat(out, dim=-1)
