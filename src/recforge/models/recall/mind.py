"""MIND (Li et al. 2019): multi-interest recall; capsule routing turns a user's behaviors into K interest vectors.

Each interest = user tower([capsule_k, user features]) (unit length). Training scores candidates against
one user vector per row, the label-aware attention over the interests with the row's positive item as the
query (weights = softmax(p * <interest_k, item>); p -> inf is the paper's hard attention). At serving each
interest queries the items and the results merge by their best score (`interest_vectors`).
Legend: B = rows, K = interests, D = output dim, L = longest history in the rows.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding.tables import init_rows
from recforge.models.layers import CapsuleRouting
from recforge.models.recall.towers import History, Tower, TwoTower
from recforge.models.recall.youtube_dnn import YouTubeDNNConfig
from recforge.schema import InputSchema


class MINDConfig(YouTubeDNNConfig):
    """YouTube-DNN's towers and history, with capsule routing in place of the history mean."""

    interests: int = Field(4, ge=1, le=32, description="Most interest vectors per user (K).")
    routing_iterations: int = Field(3, ge=1, description="Dynamic routing iterations.")
    dynamic_interests: bool = Field(True, description="K_u = max(1, min(K, floor(log2(history length)))).")
    attention_power: float = Field(5.0, gt=0, description="Label-aware attention sharpness p (training only).")


def padded(history: History, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Item codes [B, L] and mask [B, L] (True = a behavior kept; left-out items and padding are False)."""
    counts = torch.diff(history.offsets, append=torch.tensor([len(history.items)]))
    row_of = torch.repeat_interleave(torch.arange(rows), counts)
    position = torch.arange(len(history.items)) - history.offsets[row_of]
    width = int(counts.max()) if rows and len(history.items) else 1
    items = torch.zeros(rows, width, dtype=torch.int64)
    mask = torch.zeros(rows, width, dtype=torch.bool)
    items[row_of, position] = history.items
    mask[row_of, position] = history.weights > 0
    return items, mask


class MIND(TwoTower):
    """interests(u) = tower_u([capsules(E_hist[history(u)])_k, user features]); score = max_k <interest_k, item>."""

    def __init__(self, user_schema: InputSchema, item_schema: InputSchema, n_items: int, config: MINDConfig) -> None:
        super().__init__()
        item_hidden = config.hidden if config.item_hidden is None else config.item_hidden
        self.config = config
        self.history = nn.Parameter(init_rows(n_items, config.history_dim))  # [n_items, history_dim]
        self.routing = CapsuleRouting(
            config.history_dim, config.history_dim, config.interests, config.routing_iterations
        )
        self.user_tower = Tower(user_schema, config.hidden, config, extra_dim=config.history_dim)
        self.item_tower = Tower(item_schema, item_hidden, config)

    @property
    def uses_history(self) -> bool:
        return True

    def interest_vectors(self, batch: Batch, history: History | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Interests [B, K, D] and which are active [B, K] (at least the first one for every row)."""
        k, rows = self.config.interests, batch.size
        if history is None:
            history = History(torch.zeros(0, dtype=torch.int64), torch.zeros(rows, dtype=torch.int64), torch.zeros(0))
        items, mask = padded(history, rows)
        lengths = mask.sum(dim=1)
        if self.config.dynamic_interests:
            n = torch.log2(lengths.clamp_min(1).double()).floor().long().clamp(1, k)
        else:
            n = torch.full((rows,), k)
        capsules = self.routing(self.history[items], mask, n)  # [B, K, history_dim]
        repeated = batch.index(torch.arange(rows).repeat_interleave(k))
        vectors = self.user_tower(repeated, capsules.reshape(rows * k, -1)).reshape(rows, k, -1)
        return vectors, torch.arange(k) < n.unsqueeze(1)

    def user_vectors(self, batch: Batch, history: History | None = None) -> torch.Tensor:
        """One summary vector per user (the normalized mean of its active interests); recall uses all of them."""
        vectors, active = self.interest_vectors(batch, history)
        mean = (vectors * active.unsqueeze(2)).sum(dim=1) / active.sum(dim=1, keepdim=True)
        return nn.functional.normalize(mean, dim=1)

    def train_user_vectors(self, batch: Batch, history: History | None, targets: torch.Tensor) -> torch.Tensor:
        """Label-aware attention: the interests weighted by softmax(p * <interest_k, target item>) [B, D]."""
        vectors, active = self.interest_vectors(batch, history)
        scores = (vectors * targets.unsqueeze(1)).sum(dim=2) * self.config.attention_power
        weights = scores.masked_fill(~active, float("-inf")).softmax(dim=1)
        return (weights.unsqueeze(2) * vectors).sum(dim=1)

    def item_vectors(self, batch: Batch) -> torch.Tensor:
        return self.item_tower(batch)  # type: ignore[no-any-return]
