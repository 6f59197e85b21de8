"""MMoE (Ma et al., KDD 2018): shared experts, one softmax gate and one tower per task."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import MLPConfig
from recforge.models.layers.experts import Experts, Gate, Towers
from recforge.models.layers.wide import TaskWide
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class MMoEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experts: int = Field(4, ge=1, description="Experts shared by every task.")
    expert: MLPConfig = MLPConfig(hidden=(128, 64), dropout=0.1)
    tower: MLPConfig = MLPConfig(hidden=(32,))
    wide: bool = Field(True, description="Add DeepFM's wide part (per-task first-order weights + FM) to each task.")


@register_model("mmoe", config=MMoEConfig, multitask=True)
class MMoE(nn.Module):
    """x = concat(E); task t: tower_t(sum_e softmax(gate_t(x))_e * expert_e(x)) [+ wide_t] -> logits [B, T]."""

    def __init__(self, schema: InputSchema, config: MMoEConfig) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema)
        width = self.embeddings.output_dim
        self.experts = Experts(width, config.experts, config.expert)
        self.gates = nn.ModuleList(Gate(width, config.experts) for _ in schema.tasks)
        self.towers = Towers(self.experts.output_dim, len(schema.tasks), config.tower)
        self.wide = TaskWide(schema, len(schema.tasks)) if config.wide else None

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.embeddings(batch)
        x = embedded.flat()
        experts = self.experts(x)
        logits = self.towers([gate(x, experts) for gate in self.gates])
        return logits if self.wide is None else logits + self.wide(batch, embedded.stacked())
