"""Channel `mind`: multi-interest two towers (recforge.models.recall.mind); each interest queries the items.

Exact scoring gives each item its best score over the user's active interests. With an `index:` every
active interest searches the index for k items and the lists merge by best score (an item found by two
interests counts once), which is what the exact path returns when the index is exact (flat).
"""

from __future__ import annotations

import numpy as np
import torch

from recforge.models.recall import MIND, MINDConfig, TwoTower
from recforge.models.recall.towers import cap_rows, history_rows
from recforge.recall.channels.base import Candidates, Query, register_channel
from recforge.recall.channels.two_tower import TwoTowerChannel, TwoTowerOptions


class MINDOptions(MINDConfig, TwoTowerOptions):
    """`mind` channel options: towers, history and routing (MINDConfig) + training + features + index."""


@register_channel("mind")
class MINDChannel(TwoTowerChannel):
    """MIND: K interest vectors per user from capsule routing over its history, label-aware attention in training."""

    options_class = MINDOptions
    options: MINDOptions  # type: ignore[assignment]

    def build_model(self) -> TwoTower:
        assert self.users is not None and self.items is not None
        return MIND(self.users.features.schema(), self.items.features.schema(), self.n_items, self.options)

    def interest_vectors(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """float32 [U, K, D] interests and bool [U, K] active flags, from the query's history."""
        self.require_fitted(self.model is not None)
        assert isinstance(self.model, MIND) and self.users is not None
        self.model.eval()
        history = history_rows(cap_rows(query.history, self.history_cap), np.arange(len(query)))
        with torch.no_grad():
            vectors, active = self.model.interest_vectors(self.users.take(np.asarray(query.users)), history)
        return vectors.numpy(), active.numpy()

    def scores(self, query: Query) -> np.ndarray:
        vectors, active = self.interest_vectors(query)
        per_interest = vectors @ self.item_vectors().T  # [U, K, n_items]
        per_interest[~active] = -np.inf
        return np.asarray(per_interest.max(axis=1), dtype=np.float32)

    def recommend(self, query: Query, k: int) -> Candidates:
        if self.vector_index is None:
            return super().recommend(query, k)
        k = min(k, self.n_items)
        vectors, active = self.interest_vectors(query)
        users, slots = np.nonzero(active)
        exclude = None if query.exclude is None else query.exclude[users]
        found, found_scores = self.vector_index.search(vectors[users, slots], k, exclude)  # [A, k]
        items = np.full((len(query), k), -1, dtype=np.int64)
        scores = np.full((len(query), k), -np.inf, dtype=np.float32)
        for user in range(len(query)):
            rows = users == user
            ids, best = found[rows].ravel(), found_scores[rows].ravel()
            keep = ids >= 0
            ids, best = ids[keep], best[keep]
            order = np.lexsort((ids, -best))  # best score first; the first hit of an item is its best
            ids, best = ids[order], best[order]
            _, first = np.unique(ids, return_index=True)
            first = np.sort(first)[:k]
            items[user, : len(first)], scores[user, : len(first)] = ids[first], best[first]
        return Candidates(items, scores)
