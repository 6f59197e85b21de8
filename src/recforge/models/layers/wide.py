"""DeepFM's wide part for T tasks: per-task first-order weights of every field plus the shared FM term.

Multi-task models add it to their towers' logits (`wide: true`, the default): first-order id effects
and pairwise field interactions are what a DNN tower learns slowest, and DeepFM gets them for free.
"""

from __future__ import annotations

import torch
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers.fm import FactorizationMachine
from recforge.schema import InputSchema


class TaskWide(nn.Module):
    """(batch, field embeddings [B, F, D]) -> [B, T]: bias_t + sum_f w_{f,t}(x_f) + scale_t * FM(E)."""

    def __init__(self, schema: InputSchema, n_tasks: int) -> None:
        super().__init__()
        self.linear = EmbeddingCollection(schema, dim=n_tasks)  # one weight per field value and task
        self.fm = FactorizationMachine()
        self.scale = nn.Parameter(torch.ones(n_tasks))
        self.bias = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, batch: Batch, embedded: torch.Tensor) -> torch.Tensor:
        first_order = self.linear(batch).stacked().sum(dim=1)  # [B, T]
        return self.bias + first_order + self.fm(embedded).unsqueeze(1) * self.scale
