"""DeepFM: a linear term, FM pairwise interactions and an MLP, all over one set of field embeddings."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import MLP, FactorizationMachine, MLPConfig
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class DeepFMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deep: MLPConfig = MLPConfig(hidden=(256, 128, 64), dropout=0.1)


@register_model("deepfm", config=DeepFMConfig)
class DeepFM(nn.Module):
    """logit = bias + linear(x) + FM(E) + MLP(flatten(E)), where E is [B, F, D]."""

    def __init__(self, schema: InputSchema, config: DeepFMConfig) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema, linear=True)  # linear term folded into the rows
        self.fm = FactorizationMachine()
        self.deep = MLP(self.embeddings.output_dim, config.deep, out_dim=1)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits [B]. Loss, optimizer, device and metrics belong to recforge.train."""
        embedded = self.embeddings(batch)
        e = embedded.stacked()
        return embedded.linear + self.fm(e) + self.deep(e.flatten(start_dim=1)).squeeze(1) + self.bias
