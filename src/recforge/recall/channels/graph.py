"""`graphsage` u2i channel: node vectors of the training user-item graph, scored by dot product.

fit: the bipartite graph of the training interactions, an encoder trained with in-batch softmax (or BPR,
recforge.recall.retrieval), then the vectors of every user and item once. The default aggregator is
LightGCN's parameter-free propagation, not GraphSAGE's: on MovieLens-100k it reached NDCG@10 0.292
against 0.270 for `aggregator: sage` (same loss and budget); the channel keeps the `graphsage` name.
recommend: a known user's vector comes from the training graph (its query history is not re-read);
a cold user (code -1) is folded in as the mean of its history items' vectors, and gets no candidates
(all -1) when its history is empty.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from recforge.models.recall import GraphConfig, GraphSAGE, bipartite_adjacency
from recforge.recall.channels.base import FitContext, Query, register_channel
from recforge.recall.channels.embedding import IndexOption, history_mean
from recforge.recall.channels.neural import NeuralChannel
from recforge.recall.interactions import Interactions
from recforge.recall.retrieval import RetrievalResult, RetrievalTrainer, RetrievalTrainOptions, torch_threads

log = logging.getLogger(__name__)


class GraphOptions(GraphConfig, RetrievalTrainOptions, IndexOption):
    """`graphsage` channel options: encoder (GraphConfig) + training (RetrievalTrainOptions)."""

    loss: Literal["bpr", "inbatch", "sampled_softmax"] = "inbatch"
    lr: float = Field(0.005, gt=0, description="Adam learning rate.")
    batch_size: int = Field(2048, ge=2, description="Positive pairs per step (one full propagation each).")
    epochs: int = Field(60, ge=1)


@register_channel("graphsage")
class GraphSAGEChannel(NeuralChannel):
    """User and item vectors from neighbour aggregation (LightGCN or GraphSAGE) over the interaction graph."""

    options_class = GraphOptions
    options: GraphOptions

    def __init__(self, name: str, options: Any) -> None:
        super().__init__(name, options)
        self.model: GraphSAGE | None = None
        self.user_table = torch.zeros(0, options.dim)
        self.item_table = torch.zeros(0, options.dim)
        self.result: RetrievalResult | None = None

    def fit_vectors(self, train: Interactions, context: FitContext) -> None:
        opts = self.options
        seed = context.seed if opts.seed is None else opts.seed
        self.n_items = train.n_items
        torch.manual_seed(seed)
        self.model = model = GraphSAGE(train.n_users, train.n_items, opts)
        seen = train.binary()
        adjacency = bipartite_adjacency(seen, model.norm)

        def encode(users: np.ndarray, candidates: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            user_vecs, item_vecs = model.split(model(adjacency))
            return user_vecs[torch.from_numpy(users)], item_vecs[torch.from_numpy(candidates)]

        def refresh() -> None:
            with torch.no_grad():
                self.user_table, self.item_table = model.split(model(adjacency))

        trainer = RetrievalTrainer(
            model, encode, opts, n_items=self.n_items, seed=seed, seen=seen, progress=context.progress
        )
        self.result = trainer.fit(train.users, train.items, self.validator(train, context.valid, opts, refresh))
        with torch_threads(opts.threads):
            refresh()
        result = self.result
        log.info("%s: valid %s in %.1fs (best epoch %d)", self.name, result.best, result.seconds, result.best_epoch)

    def item_vectors(self) -> np.ndarray:
        self.require_fitted(self.model is not None)
        return self.item_table.numpy()

    def user_vectors(self, query: Query) -> np.ndarray:
        """Known users: graph vectors; cold users: mean of their history items' vectors (NaN if none)."""
        self.require_fitted(self.model is not None)
        users = np.asarray(query.users)
        out = np.full((len(users), self.item_table.shape[1]), np.nan, dtype=np.float32)
        known = users >= 0
        out[known] = self.user_table.numpy()[users[known]]
        cold = np.flatnonzero(~known)
        if cold.size:
            out[cold] = history_mean(query.history[cold], self.item_table.numpy())
        return out

    def state(self) -> dict[str, Any]:
        self.require_fitted(self.model is not None)
        assert self.model is not None
        return {
            "model": self.model.state_dict(),
            "n_users": self.model.n_users,
            "user_vectors": self.user_table,
            "item_vectors": self.item_table,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.model = GraphSAGE(int(state["n_users"]), self.n_items, self.options)
        self.model.load_state_dict(state["model"])
        self.user_table, self.item_table = state["user_vectors"], state["item_vectors"]
