"""PLE (Tang et al., RecSys 2020): stacked extraction levels of task-specific and shared experts."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import MLPConfig
from recforge.models.layers.experts import Extraction, Towers
from recforge.models.layers.wide import TaskWide
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class PLEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    levels: int = Field(2, ge=1, description="Extraction levels (1 = CGC).")
    specific_experts: int = Field(1, ge=1, description="Experts of each task, per level.")
    shared_experts: int = Field(2, ge=1, description="Experts shared by all tasks, per level.")
    expert: MLPConfig = MLPConfig(hidden=(64,), dropout=0.1)
    tower: MLPConfig = MLPConfig(hidden=(32,))
    wide: bool = Field(True, description="Add DeepFM's wide part (per-task first-order weights + FM) to each task.")


@register_model("ple", config=PLEConfig, multitask=True)
class PLE(nn.Module):
    """x = concat(E); each level maps T task inputs + 1 shared input to new ones; towers read the task outputs."""

    def __init__(self, schema: InputSchema, config: PLEConfig) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema)
        n_tasks = len(schema.tasks)
        width = self.embeddings.output_dim
        levels: list[Extraction] = []
        for level in range(config.levels):
            last = level == config.levels - 1
            levels.append(
                Extraction(
                    width, n_tasks, config.specific_experts, config.shared_experts, config.expert, shared_out=not last
                )
            )
            width = levels[-1].output_dim
        self.levels = nn.ModuleList(levels)
        self.towers = Towers(width, n_tasks, config.tower)
        self.n_tasks = n_tasks
        self.wide = TaskWide(schema, n_tasks) if config.wide else None

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.embeddings(batch)
        inputs = [embedded.flat()] * (self.n_tasks + 1)
        for level in self.levels:
            inputs = level(inputs)
        logits = self.towers(inputs[: self.n_tasks])
        return logits if self.wide is None else logits + self.wide(batch, embedded.stacked())
