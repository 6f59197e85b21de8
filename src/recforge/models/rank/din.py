"""DIN (Zhou et al., KDD 2018): the user's interest is the behavior sequence weighted by its relevance
to the target item, then an MLP over it beside every other field."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.errors import ConfigError
from recforge.models.layers import (
    MLP,
    Dedup,
    FactorizationMachine,
    MLPConfig,
    SequenceInputs,
    TargetAttention,
    TargetAttentionConfig,
    sequence_fields,
    without_sequences,
)
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class DINConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attention: TargetAttentionConfig = TargetAttentionConfig()
    deep: MLPConfig = MLPConfig(hidden=(200, 80), dropout=0.0)
    dedup: Dedup = "auto"  # auto: per distinct item when elements carry attrs
    fm: bool = Field(False, description="Add DeepFM's linear and FM terms over the non-sequence fields.")


def require_sequences(schema: InputSchema, model: str) -> None:
    if not sequence_fields(schema):
        raise ConfigError("features", f"{model} needs a `kind: sequence` feature", fix="add one, e.g. the history")


@register_model("din", config=DINConfig)
class DIN(nn.Module):
    """logit = MLP([E_other, interest_s, target_s, interest_s * target_s for each sequence s])
    (+ linear(x) + FM(E_other) with `fm: true`)."""

    onnx_dense_split = False  # attention reads the sequence itself, not only the field embeddings

    def __init__(self, schema: InputSchema, config: DINConfig) -> None:
        super().__init__()
        require_sequences(schema, "din")
        self.embeddings = EmbeddingCollection(without_sequences(schema), linear=config.fm)
        self.fm = FactorizationMachine() if config.fm else None
        self.sequences = [SequenceInputs(schema, f, self.embeddings, config.dedup) for f in sequence_fields(schema)]
        self.attention = nn.ModuleList(
            TargetAttention(s.output_dim, config.attention, s.field.max_len) for s in self.sequences
        )
        width = self.embeddings.output_dim + sum(3 * s.output_dim for s in self.sequences)
        self.deep = MLP(width, config.deep, out_dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.embeddings(batch)
        parts = [embedded.flat()]
        for seq, attention in zip(self.sequences, self.attention, strict=True):
            keys, mask = seq.elements(batch)
            query = seq.target(batch)
            interest = attention(query, keys, mask)
            parts += [interest, query, interest * query]
        logit = self.deep(torch.cat(parts, dim=1)).squeeze(1)
        if self.fm is not None and embedded.linear is not None:
            logit = logit + embedded.linear + self.fm(embedded.stacked())
        return logit
