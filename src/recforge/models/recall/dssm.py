"""DSSM (Huang et al. 2013) as a recall model: a user tower and an item tower over their side's features."""

from __future__ import annotations

import torch

from recforge.batch import Batch
from recforge.models.recall.towers import History, Tower, TwoTower, TwoTowerConfig
from recforge.schema import InputSchema


class DSSMConfig(TwoTowerConfig):
    """Both towers: features -> MLP(`hidden`) -> `dim`, unit length."""


class DSSM(TwoTower):
    """score(u, i) = <tower_u(user features), tower_i(item features)>; the user's behavior is not read."""

    def __init__(self, user_schema: InputSchema, item_schema: InputSchema, config: DSSMConfig) -> None:
        super().__init__()
        item_hidden = config.hidden if config.item_hidden is None else config.item_hidden
        self.user_tower = Tower(user_schema, config.hidden, config)
        self.item_tower = Tower(item_schema, item_hidden, config)

    def user_vectors(self, batch: Batch, history: History | None = None) -> torch.Tensor:
        return self.user_tower(batch)  # type: ignore[no-any-return]

    def item_vectors(self, batch: Batch) -> torch.Tensor:
        return self.item_tower(batch)  # type: ignore[no-any-return]
