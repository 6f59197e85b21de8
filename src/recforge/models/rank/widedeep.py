"""Wide & Deep: a linear (wide) part over every field plus an MLP (deep) over the embeddings."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import MLP, MLPConfig
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class WideDeepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deep: MLPConfig = MLPConfig(hidden=(256, 128, 64), dropout=0.1)


@register_model("widedeep", config=WideDeepConfig)
class WideDeep(nn.Module):
    """logit = bias + wide(x) + MLP(concat of field embeddings); fields may have different dims."""

    def __init__(self, schema: InputSchema, config: WideDeepConfig) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema, linear=True)  # the wide part is the linear term
        self.deep = MLP(self.embeddings.output_dim, config.deep, out_dim=1)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.embeddings(batch)
        return embedded.linear + self.deep(embedded.flat()).squeeze(1) + self.bias
