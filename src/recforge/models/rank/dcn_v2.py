"""DCN-v2: a cross network and an MLP over the concatenated embeddings (stacked or parallel)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import MLP, CrossNetV2, MLPConfig
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class DCNv2Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cross_layers: int = Field(3, ge=1)
    low_rank: int | None = Field(None, ge=1, description="Rank of each cross matrix (None = full).")
    structure: Literal["parallel", "stacked"] = "parallel"
    deep: MLPConfig = MLPConfig(hidden=(256, 128, 64), dropout=0.1)


@register_model("dcn_v2", config=DCNv2Config)
class DCNv2(nn.Module):
    """x0 = concat(E); parallel: head([cross(x0), MLP(x0)]); stacked: head(MLP(cross(x0)))."""

    def __init__(self, schema: InputSchema, config: DCNv2Config) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema)
        width = self.embeddings.output_dim
        self.cross = CrossNetV2(width, config.cross_layers, config.low_rank)
        self.deep = MLP(width, config.deep)
        self.stacked = config.structure == "stacked"
        head_in = self.deep.output_dim if self.stacked else width + self.deep.output_dim
        self.head = nn.Linear(head_in, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        x0 = self.embeddings(batch).flat()
        crossed = self.cross(x0)
        if self.stacked:
            return self.head(self.deep(crossed)).squeeze(1)
        return self.head(torch.cat([crossed, self.deep(x0)], dim=1)).squeeze(1)
