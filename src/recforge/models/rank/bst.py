"""BST (Chen et al., 2019, Behavior Sequence Transformer): a transformer over the behavior sequence with
the target item appended, so every element is read in the context of the others and of the target."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from recforge.batch import Batch
from recforge.embedding import EmbeddingCollection
from recforge.models.layers import (
    MLP,
    Dedup,
    MLPConfig,
    SequenceInputs,
    SequenceTransformer,
    TransformerConfig,
    recency_ranks,
    sequence_fields,
    without_sequences,
)
from recforge.models.rank.din import require_sequences
from recforge.models.registry import register_model
from recforge.schema import InputSchema


class BSTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transformer: TransformerConfig = TransformerConfig()
    deep: MLPConfig = MLPConfig(hidden=(256, 128, 64), dropout=0.0)
    dedup: Dedup = "auto"


@register_model("bst", config=BSTConfig)
class BST(nn.Module):
    """logit = MLP([E_other, out_target, masked mean of out_elements]) with out = Transformer([seq; target])."""

    onnx_dense_split = False  # attention reads the sequence itself, not only the field embeddings

    def __init__(self, schema: InputSchema, config: BSTConfig) -> None:
        super().__init__()
        require_sequences(schema, "bst")
        self.embeddings = EmbeddingCollection(without_sequences(schema))
        self.sequences = [SequenceInputs(schema, f, self.embeddings, config.dedup) for f in sequence_fields(schema)]
        self.encoders = nn.ModuleList(
            SequenceTransformer(s.output_dim, s.field.max_len + 1, config.transformer) for s in self.sequences
        )
        width = self.embeddings.output_dim + sum(2 * s.output_dim for s in self.sequences)
        self.deep = MLP(width, config.deep, out_dim=1)
        self.positions = config.transformer.positions

    def _ranks(self, mask: torch.Tensor, max_len: int) -> torch.Tensor | None:
        """Position ids of [history; target] with `positions: recency`: the target 0, the newest click 1, ..."""
        if self.positions == "absolute":
            return None
        history = recency_ranks(mask, max_len) + 1
        return torch.cat([history, torch.zeros_like(history[:, :1])], dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [self.embeddings(batch).flat()]
        for seq, encoder in zip(self.sequences, self.encoders, strict=True):
            keys, mask = seq.elements(batch)
            tokens = torch.cat([keys, seq.target(batch).unsqueeze(1)], dim=1)
            full = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)  # the target is always there
            out = encoder(tokens, full, self._ranks(mask, seq.field.max_len))
            weight = mask.unsqueeze(-1).to(out.dtype)
            pooled = (out[:, :-1] * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)
            parts += [out[:, -1], pooled]
        return self.deep(torch.cat(parts, dim=1)).squeeze(1)
