"""What the neural u2i channels add to embedding channels: validation while training.

Dot-product scoring, the vector export and the optional Faiss index live in `channels.embedding`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recforge.recall.channels.base import Candidates, Query
from recforge.recall.channels.embedding import EmbeddingChannel
from recforge.recall.interactions import Interactions
from recforge.recall.metrics import topk_metrics
from recforge.recall.retrieval import RetrievalTrainOptions

VALID_METRICS = ("recall", "ndcg", "mrr", "hit", "precision")
VALID_BLOCK = 2048  # users scored at once while validating


class NeuralChannel(EmbeddingChannel):
    """An embedding channel trained by recforge.recall.retrieval, which monitors it on the valid split."""

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
