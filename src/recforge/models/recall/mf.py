"""Matrix factorization: one free vector per user and per item, scored by their dot product.

The model behind the `bpr` recall channel (Rendle et al. 2009). Rows start from Xavier-normal noise, as
RecBole's BPR does, so both begin from the same scale and the learning rate means the same thing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MatrixFactorization(nn.Module):
    """User table [n_users, dim] and item table [n_items, dim]; no bias, no tower."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.users.weight)
        nn.init.xavier_normal_(self.items.weight)

    def forward(self, users: np.ndarray, items: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(user vectors [B, dim], item vectors [C, dim]) for codes: the retrieval trainer's encoder."""
        return self.users(torch.from_numpy(users)), self.items(torch.from_numpy(items))
