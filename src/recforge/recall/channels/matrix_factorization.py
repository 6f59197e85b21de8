"""ALS matrix factorization through `implicit` (its CPU kernels, not a re-implementation).

Scores are user_factors · item_factors. A user unknown at fit time but with history gets factors
solved from that history (one ALS user step), so fresh users still recall. BPR is trained in torch
with validation early stopping instead (channels.bpr).
With `index:` (channels.embedding) recommend searches a Faiss index over the item factors instead.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import ConfigDict, Field
from threadpoolctl import threadpool_limits

from recforge.recall.channels.base import FitContext, Query, register_channel
from recforge.recall.channels.embedding import EmbeddingChannel, IndexOption
from recforge.recall.interactions import Interactions


class ALSOptions(IndexOption):
    model_config = ConfigDict(extra="forbid")
    factors: int = Field(64, ge=1)
    regularization: float = Field(0.05, ge=0)
    alpha: float = Field(2.0, gt=0, description="Confidence = 1 + alpha * weight.")
    iterations: int = Field(15, ge=1)
    binary: bool = Field(True, description="Fit on 0/1 interactions instead of weights.")


def _threads() -> int:
    return int(os.environ.get("RECFORGE_THREADS", 0)) or torch.get_num_threads()


@register_channel("als")
class ALSChannel(EmbeddingChannel):
    """implicit's ALS fitted on the user-item CSR, scored by factor products."""

    options_class = ALSOptions
    options: ALSOptions

    def __init__(self, name: str, options: ALSOptions) -> None:
        super().__init__(name, options)
        self.user_factors = np.zeros((0, options.factors), dtype=np.float32)
        self.item_factors = np.zeros((0, options.factors), dtype=np.float32)

    def fit_vectors(self, train: Interactions, context: FitContext) -> None:
        matrix = train.binary() if self.options.binary else train.matrix
        with threadpool_limits(1, "blas"):  # implicit parallelizes itself (and warns at construction otherwise)
            self.model = self._model(context.seed)
            self.model.fit(matrix, show_progress=False)  # the channel's recforge stage reports progress
        self.n_items = train.n_items
        self.user_factors = np.asarray(self.model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(self.model.item_factors, dtype=np.float32)

    def item_vectors(self) -> np.ndarray:
        """float32 [n_items, factors], row = item code."""
        self.require_fitted(len(self.item_factors) > 0)
        return self.item_factors

    def user_vectors(self, query: Query) -> np.ndarray:
        """[U, factors]; unknown users with history get factors solved from it, the rest are NaN."""
        self.require_fitted(len(self.item_factors) > 0)
        known = (query.users >= 0) & (query.users < len(self.user_factors))
        out = np.full((len(query), self.item_factors.shape[1]), np.nan, dtype=np.float32)
        out[known] = self.user_factors[query.users[known]]
        cold = np.flatnonzero(~known & (np.diff(query.history.indptr) > 0))
        if cold.size:
            out[cold] = self._fold_in(query.history[cold])
        return out

    def state(self) -> dict[str, Any]:
        return {
            "user_factors": torch.from_numpy(self.user_factors),
            "item_factors": torch.from_numpy(self.item_factors),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.user_factors = state["user_factors"].numpy()
        self.item_factors = state["item_factors"].numpy()

    def _model(self, seed: int) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        o = self.options
        return AlternatingLeastSquares(
            factors=o.factors,
            regularization=o.regularization,
            alpha=o.alpha,
            iterations=o.iterations,
            num_threads=_threads(),
            random_state=seed,
        )

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """One ALS user step per row: (YᵀCY + λI)⁻¹ YᵀCp, the same solve as training."""
        y = self.item_factors.astype(np.float64)
        gram = y.T @ y
        out = np.empty((history.shape[0], y.shape[1]), dtype=np.float32)
        for row in range(history.shape[0]):
            items = history.indices[history.indptr[row] : history.indptr[row + 1]]
            values = history.data[history.indptr[row] : history.indptr[row + 1]]
            conf = self.options.alpha * (np.ones_like(values) if self.options.binary else values)
            yi = y[items]
            a = gram + (yi.T * conf) @ yi + self.options.regularization * np.eye(y.shape[1])
            out[row] = np.linalg.solve(a, yi.T @ (1.0 + conf))
        return out
