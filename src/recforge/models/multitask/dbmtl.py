"""DBMTL (Alibaba's Deep Bayesian Multi-Target Learning): a shared bottom, per-task towers, and relation
layers that let a task read the tasks it depends on (e.g. purchase given click), in task order."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.errors import ConfigError
from recforge.models.layers import MLP, MLPConfig
from recforge.models.layers.wide import TaskWide
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class DBMTLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bottom: MLPConfig = MLPConfig(hidden=(256, 128), dropout=0.1)
    tower: MLPConfig = MLPConfig(hidden=(64,))
    relation: MLPConfig = MLPConfig(hidden=(32,))
    wide: bool = Field(True, description="Add DeepFM's wide part (per-task first-order weights + FM) to each task.")
    depends: dict[str, list[str]] | None = Field(
        None, description="Task -> earlier tasks it reads (default: each task reads the one before it)."
    )


def parents(tasks: tuple[str, ...], depends: dict[str, list[str]] | None) -> list[list[int]]:
    """Indices of the tasks each task reads; only earlier tasks may be read (the outputs form a chain)."""
    if depends is None:
        return [[i - 1] if i else [] for i in range(len(tasks))]
    out = []
    for i, task in enumerate(tasks):
        for parent in depends.get(task, []):
            if parent not in tasks[:i]:
                raise ConfigError(
                    f"model.depends.{task}",
                    f"{parent!r} is not a task listed before {task!r}",
                    fix=f"use tasks among {list(tasks[:i]) or '(none: it is the first task)'}",
                )
        out.append([tasks.index(p) for p in depends.get(task, [])])
    for name in depends:
        if name not in tasks:
            raise ConfigError(f"model.depends.{name}", "is not a task", fix=f"use one of {list(tasks)}")
    return out


@register_model("dbmtl", config=DBMTLConfig, multitask=True)
class DBMTL(nn.Module):
    """h_t = tower_t(bottom(x)); r_t = relation_t([h_t, r_parents...]); logit_t = head_t(r_t) -> [B, T]."""

    def __init__(self, schema: InputSchema, config: DBMTLConfig) -> None:
        super().__init__()
        self.embeddings = EmbeddingCollection(schema)
        self.bottom = MLP(self.embeddings.output_dim, config.bottom)
        self.parents = parents(schema.tasks, config.depends)
        self.towers = nn.ModuleList(MLP(self.bottom.output_dim, config.tower) for _ in schema.tasks)
        tower_dim = config.tower.hidden[-1]
        relation_dim = config.relation.hidden[-1]
        self.relations = nn.ModuleList(MLP(tower_dim + relation_dim * len(p), config.relation) for p in self.parents)
        self.heads = nn.ModuleList(nn.Linear(relation_dim, 1) for _ in schema.tasks)
        self.wide = TaskWide(schema, len(schema.tasks)) if config.wide else None

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.embeddings(batch)
        shared = self.bottom(embedded.flat())
        relations: list[torch.Tensor] = []
        for tower, relation, reads in zip(self.towers, self.relations, self.parents, strict=True):
            relations.append(relation(torch.cat([tower(shared), *(relations[p] for p in reads)], dim=1)))
        logits = torch.cat([head(r) for head, r in zip(self.heads, relations, strict=True)], dim=1)
        return logits if self.wide is None else logits + self.wide(batch, embedded.stacked())
