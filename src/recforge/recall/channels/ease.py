"""EASE (Steck 2019): a closed-form item-item linear model, strong on catalogs up to ~50k items.

B = I - P diag(1 / diag(P)) with P = (XᵀX + λI)⁻¹, so diag(B) = 0; a user's scores are x_u B.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from recforge.errors import ConfigError
from recforge.recall.channels.base import FitContext, Query, ScoringChannel, register_channel
from recforge.recall.interactions import Interactions


class EASEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reg_weight: float = Field(250.0, gt=0, description="λ on the Gram matrix diagonal (RecBole's default 250).")
    binary: bool = Field(True, description="Fit on 0/1 interactions instead of weights.")
    max_items: int = Field(50_000, ge=1, description="Refuse bigger catalogs (the model is dense n_items²).")


@register_channel("ease")
class EASEChannel(ScoringChannel):
    options_class = EASEOptions
    options: EASEOptions

    def fit(self, train: Interactions, context: FitContext) -> None:
        n = train.n_items
        if n > self.options.max_items:
            raise ConfigError(
                f"recall.channels ({self.name}).max_items",
                f"EASE needs a dense {n:,}² matrix, above max_items={self.options.max_items:,}",
                fix="use itemcf / als for this catalog, or raise max_items if memory allows",
            )
        x = train.binary() if self.options.binary else train.matrix
        gram = torch.from_numpy((x.T @ x).toarray().astype(np.float64))
        gram.diagonal().add_(self.options.reg_weight)
        p = torch.linalg.inv(gram)
        b = -p / p.diagonal().unsqueeze(0)
        b.diagonal().zero_()
        self.n_items = n
        self.weights = b.float()

    def scores(self, query: Query) -> np.ndarray:
        x = query.history if not self.options.binary else query.history.sign()
        scores = np.asarray(x @ self.weights.numpy(), dtype=np.float32)
        scores[np.diff(x.indptr) == 0] = -np.inf  # no history, nothing to recall from
        return scores

    def state(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def load_state(self, state: dict[str, Any]) -> None:
        self.weights = state["weights"]
