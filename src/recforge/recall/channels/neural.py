"""What the neural u2i channels share: dot-product scoring of user and item vectors, and validation while training.

`item_vectors()` and `user_vectors(query)` are the whole ANN contract: an index built on the item
vectors answers the same top-k as `recommend` (inner product), which scores the full catalog exactly.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import numpy as np

from recforge.errors import RecforgeError
from recforge.recall.channels.base import Candidates, Query, ScoringChannel
from recforge.recall.interactions import Interactions
from recforge.recall.metrics import topk_metrics
from recforge.train.retrieval import RetrievalTrainOptions

VALID_METRICS = ("recall", "ndcg", "mrr", "hit", "precision")
VALID_BLOCK = 2048  # users scored at once while validating


class EmbeddingChannel(ScoringChannel):
    """score(u, i) = <user_vectors(u), item_vectors(i)>; a user the channel cannot embed gets no candidates."""

    def require_fitted(self, fitted: bool) -> None:
        if not fitted:
            raise RecforgeError(f"recall channel {self.name!r} is not fitted: call fit() or load() first")

    @abstractmethod
    def item_vectors(self) -> np.ndarray:
        """float32 [n_items, D], row = item code."""

    @abstractmethod
    def user_vectors(self, query: Query) -> np.ndarray:
        """float32 [len(query), D]; an all-NaN row marks a user the channel cannot embed."""

    def scores(self, query: Query) -> np.ndarray:
        users = self.user_vectors(query)
        known = ~np.isnan(users).any(axis=1)
        out = np.full((len(query), self.n_items), -np.inf, dtype=np.float32)
        out[known] = users[known] @ self.item_vectors().T
        return out

    def validator(
        self,
        train: Interactions,
        valid: Interactions | None,
        options: RetrievalTrainOptions,
        refresh: Callable[[], None],
    ) -> Callable[[], dict[str, float]] | None:
        """A callable that refreshes the vectors from the current weights and returns valid metrics@k
        (train items masked, RecBole's full-sort protocol); None without a valid split."""
        if valid is None or len(valid) == 0:
            return None
        truth = valid.binary()
        users = np.flatnonzero(np.diff(truth.indptr))
        query = Query(users, train.matrix[users], train.binary()[users])
        k = options.monitor_k

        def run() -> dict[str, float]:
            refresh()
            parts = [self.recommend(query.rows(s, s + VALID_BLOCK), k) for s in range(0, len(query), VALID_BLOCK)]
            ranked = Candidates.concat(parts).items
            metrics = topk_metrics(ranked, truth[users], [k], VALID_METRICS, n_items=self.n_items)
            metrics.pop("users", None)
            return metrics

        return run
