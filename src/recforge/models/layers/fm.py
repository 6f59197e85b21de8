"""Factorization-machine pairwise interaction term."""

from __future__ import annotations

import torch
from torch import nn


class FactorizationMachine(nn.Module):
    """[B, F, D] -> [B]: sum over field pairs of <e_i, e_j>, via 0.5 * ((sum e)^2 - sum e^2)."""

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        square_of_sum = emb.sum(dim=1).pow(2)
        sum_of_square = emb.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)
