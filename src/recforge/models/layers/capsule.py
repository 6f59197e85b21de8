"""Behavior-to-interest capsule routing (MIND, Li et al. 2019): a behavior sequence -> K interest capsules.

Legend: B = rows, L = sequence length, K = capsules, C = capsule width.
"""

from __future__ import annotations

import torch
from torch import nn


def squash(z: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """|z|^2 / (1 + |z|^2) * z / |z| over the last dim: long vectors keep their direction, length < 1."""
    norm2 = z.square().sum(dim=-1, keepdim=True)
    return norm2 / (1 + norm2) * z / torch.sqrt(norm2 + eps)


class CapsuleRouting(nn.Module):
    """B2I dynamic routing with one shared bilinear map: [B, L, E] behaviors -> [B, K, C] interest capsules.

    The routing logits start from fixed random capsule seeds (b_jk = <S e_j, seed_k>) instead of fresh noise
    per call, so serving is deterministic while the K capsules still start apart. Capsule k of row b is
    zero when k >= n_interests[b] (MIND's dynamic interest number); padded behaviors route nowhere.
    """

    def __init__(self, in_dim: int, capsule_dim: int, capsules: int, iterations: int) -> None:
        super().__init__()
        self.bilinear = nn.Linear(in_dim, capsule_dim, bias=False)
        self.register_buffer("seeds", torch.randn(capsules, capsule_dim))
        self.capsules = capsules
        self.iterations = iterations

    def forward(self, behaviors: torch.Tensor, mask: torch.Tensor, n_interests: torch.Tensor) -> torch.Tensor:
        """behaviors [B, L, E], mask [B, L] (True = real), n_interests [B] in 1..K -> capsules [B, K, C]."""
        mapped = self.bilinear(behaviors)  # [B, L, C]
        active = torch.arange(self.capsules) < n_interests.unsqueeze(1)  # [B, K]
        logits = (mapped @ self.seeds.T).detach()  # [B, L, K]
        capsules = mapped.new_zeros(mapped.shape[0], self.capsules, mapped.shape[2])
        for step in range(self.iterations):
            weights = logits.masked_fill(~active.unsqueeze(1), float("-inf")).softmax(dim=2)
            weights = weights * mask.unsqueeze(2)  # [B, L, K]
            capsules = squash(weights.transpose(1, 2) @ mapped)  # [B, K, C]
            if step + 1 < self.iterations:
                logits = logits + (mapped @ capsules.transpose(1, 2)).detach()
        return capsules * active.unsqueeze(2)
