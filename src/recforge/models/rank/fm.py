"""Factorization machine: linear term plus pairwise interactions of field embeddings."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import FactorizationMachine
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class FMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register_model("fm", config=FMConfig)
class FM(nn.Module):
    """logit = bias + linear(x) + FM(E), E = [B, F, D]."""

    def __init__(self, schema: InputSchema, config: FMConfig) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema, linear=True)
        self.fm = FactorizationMachine()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.embeddings(batch)
        return embedded.linear + self.fm(embedded.stacked()) + self.bias
