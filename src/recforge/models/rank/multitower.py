"""MultiTower: one MLP tower per feature side (user / item / context), concatenated into a final MLP."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import MLP, MLPConfig
from recforge.models.registry import register_model
from recforge.schema import FieldSpec, InputSchema


class MultiTowerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tower: MLPConfig = MLPConfig(hidden=(128, 64), dropout=0.0)
    final: MLPConfig = MLPConfig(hidden=(64,), dropout=0.0)


@register_model("multitower", config=MultiTowerConfig)
class MultiTower(nn.Module):
    """Each side's field embeddings -> its own tower; towers concatenated -> final MLP -> logit."""

    def __init__(self, schema: InputSchema, config: MultiTowerConfig) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema)
        order: list[FieldSpec] = [*schema.id_fields, *schema.bag_fields, *schema.dense_fields]
        self.sides = sorted({f.side for f in order})
        starts, pos = [], 0
        for width in self.embeddings.field_dims:
            starts.append(pos)
            pos += width
        columns = {
            side: [
                c
                for f, s, w in zip(order, starts, self.embeddings.field_dims, strict=True)
                if f.side == side
                for c in range(s, s + w)
            ]
            for side in self.sides
        }
        for side in self.sides:
            self.register_buffer(f"cols_{side}", torch.tensor(columns[side], dtype=torch.int64), persistent=False)
        towers = {side: MLP(len(columns[side]), config.tower) for side in self.sides}
        self.towers = nn.ModuleDict(towers)
        self.final = MLP(sum(t.output_dim for t in towers.values()), config.final, out_dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        flat = self.embeddings(batch).flat()
        towers = [self.towers[s](flat.index_select(1, getattr(self, f"cols_{s}"))) for s in self.sides]
        return self.final(torch.cat(towers, dim=1)).squeeze(1)
