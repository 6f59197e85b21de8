"""ESMM (Ma et al., SIGIR 2018): pCTCVR = pCTR x pCVR, learned over every impression.

The CVR tower is never fit on clicked rows alone (which would bias it to the clicked sample); only
pCTR (label: click) and pCTCVR (label: click and convert) meet labels, both over all impressions.
The model outputs logits, so the ctcvr column is logit(sigmoid(ctr) * sigmoid(cvr)), computed in log
space; `cvr_logits` gives the CVR tower itself.
"""

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


class ESMMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ctr: str = "ctr"
    ctcvr: str = "ctcvr"
    tower: MLPConfig = MLPConfig(hidden=(128, 64, 32), dropout=0.1)
    wide: bool = Field(True, description="DeepFM towers: add per-tower first-order weights + FM to CTR and CVR.")


def product_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """logit(sigmoid(a) * sigmoid(b)) without leaving log space: log p - log(1 - p)."""
    log_p = nn.functional.logsigmoid(a) + nn.functional.logsigmoid(b)
    return log_p - torch.log((-torch.expm1(log_p)).clamp_min(1e-30))


@register_model("esmm", config=ESMMConfig, multitask=True)
class ESMM(nn.Module):
    """Shared embeddings; a CTR tower and a CVR tower; outputs [ctr logit, logit(pCTR * pCVR)] in task order."""

    def __init__(self, schema: InputSchema, config: ESMMConfig) -> None:
        super().__init__()
        if sorted(schema.tasks) != sorted((config.ctr, config.ctcvr)):
            raise ConfigError(
                "tasks",
                f"esmm learns exactly two tasks, named by model.ctr ({config.ctr!r}) and model.ctcvr "
                f"({config.ctcvr!r}); the config has {list(schema.tasks)}",
                fix="name the click task and the click-and-convert task so, or set model.ctr / model.ctcvr",
            )
        self.embeddings = EmbeddingCollection(schema)
        width = self.embeddings.output_dim
        self.ctr = MLP(width, config.tower, out_dim=1)
        self.cvr = MLP(width, config.tower, out_dim=1)
        self.ctr_first = schema.tasks[0] == config.ctr
        self.wide = TaskWide(schema, 2) if config.wide else None  # column 0: CTR tower, 1: CVR tower

    def towers(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """CTR and CVR logits [B] each (CVR: conversion given a click)."""
        embedded = self.embeddings(batch)
        x = embedded.flat()
        ctr, cvr = self.ctr(x).squeeze(1), self.cvr(x).squeeze(1)
        if self.wide is None:
            return ctr, cvr
        wide = self.wide(batch, embedded.stacked())
        return ctr + wide[:, 0], cvr + wide[:, 1]

    def cvr_logits(self, batch: Batch) -> torch.Tensor:
        """The CVR tower alone, [B]."""
        return self.towers(batch)[1]

    def forward(self, batch: Batch) -> torch.Tensor:
        ctr, cvr = self.towers(batch)
        ctcvr = product_logit(ctr, cvr)
        return torch.stack([ctr, ctcvr] if self.ctr_first else [ctcvr, ctr], dim=1)
