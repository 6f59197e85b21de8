"""Attention blocks over behavior sequences: DIN's target attention and a transformer encoder (BST).

Shapes: B rows, L sequence length, D element width.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recforge.models.layers.mlp import ACTIVATIONS, linear
from recforge.models.layers.sequence import recency_ranks


class TargetAttentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: tuple[int, ...] = Field((64, 32), min_length=1)
    activation: str = Field("sigmoid", pattern="^(relu|gelu|silu|tanh|sigmoid)$")
    softmax: bool = Field(False, description="Normalize weights over the sequence (DIN keeps raw weights).")
    recency: bool = Field(
        False,
        description="Scale each element's weight by a learned factor of its recency rank (0 = newest click), "
        "so the latest behaviour can count more than older (time-aware attention).",
    )


class TargetAttention(nn.Module):
    """DIN's local activation unit: weight_l = MLP([q, k_l, q - k_l, q * k_l]); out = sum_l weight_l k_l.

    The first layer is applied in its factored form, W [q, k, q-k, q*k] = (W_q + W_d) q + (W_k - W_d) k +
    W_p (q*k), so the query's share is computed once per row instead of once per element.
    """

    def __init__(self, dim: int, config: TargetAttentionConfig, max_len: int = 0) -> None:
        """`max_len`: the longest sequence (the number of recency factors `recency` learns)."""
        super().__init__()
        first = config.hidden[0]
        self.first = linear(4 * dim, first, "xavier_normal")
        acts = {**ACTIVATIONS, "sigmoid": nn.Sigmoid}
        layers: list[nn.Module] = [acts[config.activation]()]
        width = first
        for size in config.hidden[1:]:
            layers += [linear(width, size, "xavier_normal"), acts[config.activation]()]
            width = size
        layers.append(linear(width, 1, "xavier_normal"))
        self.rest = nn.Sequential(*layers)
        self.dim = dim
        self.softmax = config.softmax
        self.recency = nn.Parameter(torch.ones(max_len)) if config.recency else None

    def weights(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, L] attention weights (0 at padding)."""
        w_q, w_k, w_d, w_p = self.first.weight.split(self.dim, dim=1)
        q_part = nn.functional.linear(query, w_q + w_d, self.first.bias).unsqueeze(1)  # [B, 1, H]
        k_part = nn.functional.linear(keys, w_k - w_d)  # [B, L, H]
        p_part = nn.functional.linear(keys * query.unsqueeze(1), w_p)
        scores = self.rest(q_part + k_part + p_part).squeeze(-1)
        if self.softmax:
            scores = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)
            scores = torch.nan_to_num(scores, nan=0.0)  # a row with no history attends to nothing
        else:
            scores = scores * mask.to(scores.dtype)
        if self.recency is not None:
            scores = scores * self.recency[recency_ranks(mask, len(self.recency))]
        return scores

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """query [B, D], keys [B, L, D], mask [B, L] -> [B, D]."""
        return torch.einsum("bl,bld->bd", self.weights(query, keys, mask), keys)


class TransformerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layers: int = Field(1, ge=1)
    heads: int = Field(2, ge=1)
    ffn: int = Field(128, ge=1, description="Feed-forward width.")
    dropout: float = Field(0.1, ge=0, lt=1)
    positions: Literal["absolute", "recency"] = Field(
        "absolute",
        description="absolute: position from the oldest element; recency: rank from the newest (time-aware, "
        "and the same for a row however far its sequence is padded).",
    )


class SequenceTransformer(nn.Module):
    """Learned positions + a pre-norm transformer encoder over [B, L, D] with a padding mask."""

    def __init__(self, dim: int, max_len: int, config: TransformerConfig) -> None:
        super().__init__()
        if dim % config.heads:
            raise ValueError(f"element width {dim} is not a multiple of heads={config.heads}")
        self.positions = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, config.heads, config.ffn, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, ranks: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, L, D], mask [B, L] (True = real; every row needs one), optional position ids [B, L]
        (default 0..L-1) -> [B, L, D]."""
        x = tokens + (self.positions[: tokens.shape[1]] if ranks is None else self.positions[ranks])
        return self.encoder(x, src_key_padding_mask=~mask)  # type: ignore[no-any-return]
