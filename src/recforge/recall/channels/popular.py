"""Most popular items: the cold-start fallback and the baseline every channel must beat."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from recforge.recall.channels.base import FitContext, Query, ScoringChannel, register_channel
from recforge.recall.interactions import Interactions


class PopularOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: Literal["users", "weight"] = Field("users", description="users: distinct users per item; weight: sum.")


@register_channel("popular")
class PopularChannel(ScoringChannel):
    """Every user gets the same ranking: items by distinct users (or total weight) in training."""

    options_class = PopularOptions
    options: PopularOptions

    def fit(self, train: Interactions, context: FitContext) -> None:
        self.n_items = train.n_items
        if self.options.by == "users":
            self.popularity = train.item_counts().astype(np.float32)
        else:
            self.popularity = np.bincount(train.items, weights=train.weights, minlength=train.n_items).astype(
                np.float32
            )

    def scores(self, query: Query) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(query), self.n_items))

    def state(self) -> dict[str, Any]:
        return {"popularity": torch.from_numpy(self.popularity)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.popularity = state["popularity"].numpy()
