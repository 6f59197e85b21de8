"""DCN-v2 cross network: x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, optionally low-rank (W = U V^T)."""

from __future__ import annotations

import torch
from torch import nn


class CrossNetV2(nn.Module):
    """[B, d] -> [B, d] explicit feature crosses of bounded degree (`layers` + 1)."""

    def __init__(self, dim: int, layers: int, rank: int | None = None) -> None:
        super().__init__()
        if rank is None:
            self.maps = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        else:
            self.maps = nn.ModuleList(
                nn.Sequential(nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim)) for _ in range(layers)
            )
        self.output_dim = dim

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for linear in self.maps:
            x = x0 * linear(x) + x
        return x
