"""Logistic regression: one learned weight per feature value (a dim-1 embedding) plus a bias."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class LRConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register_model("lr", config=LRConfig)
class LogisticRegression(nn.Module):
    """logit = bias + sum_f w[x_f]."""

    def __init__(self, schema: InputSchema, config: LRConfig) -> None:
        super().__init__()
        self.weights = EmbeddingCollection(schema, dim=1)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.weights(batch).stacked().sum(dim=(1, 2)) + self.bias
