"""YouTube-DNN (Covington et al. 2016) candidate generation: the user is the mean of their watched items plus features.

User vector = MLP([mean of history item embeddings, user feature embeddings]); item vector = the item
tower over item features (by default one linear map of the item id embedding, i.e. the softmax weights).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from recforge.batch import Batch
from recforge.embedding.tables import init_rows
from recforge.models.recall.towers import History, Tower, TwoTower, TwoTowerConfig
from recforge.schema import InputSchema


class YouTubeDNNConfig(TwoTowerConfig):
    item_hidden: tuple[int, ...] | None = Field((), description="Item tower MLP layers ([] = one linear map).")
    dropout: float = Field(0.2, ge=0, lt=1)
    history_dim: int = Field(64, ge=1, description="Width of the history item embeddings.")
    max_history: int | None = Field(
        None, ge=1, description="Most recent history items pooled per user (None = all of them)."
    )


class YouTubeDNN(TwoTower):
    """score(u, i) = <MLP([mean(E_hist[history(u)]), user features]), tower_i(item features)>."""

    def __init__(
        self, user_schema: InputSchema, item_schema: InputSchema, n_items: int, config: YouTubeDNNConfig
    ) -> None:
        super().__init__()
        item_hidden = config.hidden if config.item_hidden is None else config.item_hidden
        self.history = nn.Parameter(init_rows(n_items, config.history_dim))  # [n_items, history_dim]
        self.user_tower = Tower(user_schema, config.hidden, config, extra_dim=config.history_dim)
        self.item_tower = Tower(item_schema, item_hidden, config)

    @property
    def uses_history(self) -> bool:
        return True

    def user_vectors(self, batch: Batch, history: History | None = None) -> torch.Tensor:
        if history is None:
            pooled = torch.zeros(batch.size, self.history.shape[1], dtype=self.history.dtype)
        else:
            pooled = history.pool(self.history)
        return self.user_tower(batch, pooled)  # type: ignore[no-any-return]

    def item_vectors(self, batch: Batch) -> torch.Tensor:
        return self.item_tower(batch)  # type: ignore[no-any-return]
