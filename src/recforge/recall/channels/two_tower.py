"""Two-tower u2i channels `dssm` and `youtube_dnn`: towers over the ranking feature configs, trained on positives.

fit: side FeatureSets (user / item features of `features` or the pipeline's), the model, training by
recforge.recall.retrieval (in-batch or sampled softmax with logQ), then every item's vector once.
recommend: user vectors (features; + the query's history for youtube_dnn) against all item vectors.
A cold user (code -1) has no known features: it gets the default-feature user vector (for youtube_dnn
pooled with its query history), so it still receives candidates. youtube_dnn trains on each user's
training items minus the target; with `max_history`, training keeps the most recent (by time) and a
query row keeps its largest values (pass timestamps as the history values to keep the most recent).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from recforge.config.features import FeatureConfig
from recforge.features import FeatureSet
from recforge.models.recall import DSSM, DSSMConfig, TwoTower, YouTubeDNN, YouTubeDNNConfig
from recforge.models.recall.towers import cap_rows, history_rows
from recforge.recall.channels.base import FitContext, Query, register_channel
from recforge.recall.channels.embedding import IndexOption
from recforge.recall.channels.neural import NeuralChannel
from recforge.recall.channels.side import SideRows, side_configs
from recforge.recall.interactions import Interactions
from recforge.recall.retrieval import RetrievalResult, RetrievalTrainer, RetrievalTrainOptions, torch_threads

log = logging.getLogger(__name__)
BLOCK = 8192  # rows per forward pass when computing vectors


class TwoTowerOptions(RetrievalTrainOptions, IndexOption):
    loss: Literal["inbatch", "sampled_softmax"] = "inbatch"  # type: ignore[assignment]
    features: list[FeatureConfig] | None = Field(
        None, description="Feature configs for the towers (default: the pipeline's `features`); `side` picks the tower."
    )
    embedding_dim: int | None = Field(None, ge=1, description="Default feature embedding dim (default: pipeline's).")


class DSSMOptions(DSSMConfig, TwoTowerOptions):
    """`dssm` channel options: tower shape (DSSMConfig) + training (RetrievalTrainOptions) + features."""


class YouTubeDNNOptions(YouTubeDNNConfig, TwoTowerOptions):
    """`youtube_dnn` channel options: tower shape and history (YouTubeDNNConfig) + training + features."""


class TwoTowerChannel(NeuralChannel):
    """Shared fit / vectors / save of the two-tower channels; subclasses build their model."""

    options: DSSMOptions | YouTubeDNNOptions

    def __init__(self, name: str, options: Any) -> None:
        super().__init__(name, options)
        self.model: TwoTower | None = None
        self.users: SideRows | None = None
        self.items: SideRows | None = None
        self.item_table: torch.Tensor | None = None  # [n_items, D]
        self.result: RetrievalResult | None = None

    @abstractmethod
    def build_model(self) -> TwoTower:
        """The model for the fitted side features (`self.users`, `self.items`)."""

    # ------------------------------------------------------------------ fit
    def fit_vectors(self, train: Interactions, context: FitContext) -> None:
        opts = self.options
        seed = context.seed if opts.seed is None else opts.seed
        configs = list(opts.features if opts.features is not None else context.features)
        dim = opts.embedding_dim or context.embedding_dim
        self.n_items = train.n_items
        with torch_threads(opts.threads):
            self.users = SideRows.fit(
                side_configs(configs, "user", context.user_key),
                context.users,
                context.user_key,
                context.vocab.user_ids,
                train.user_counts() > 0,
                what="user",
                dim=dim,
            )
            self.items = SideRows.fit(
                side_configs(configs, "item", context.item_key),
                context.items,
                context.item_key,
                context.vocab.item_ids,
                train.item_counts() > 0,
                what="item",
                dim=dim,
            )
            torch.manual_seed(seed)
            self.model = model = self.build_model()
        history = self._train_history(train)

        def encode(users: np.ndarray, candidates: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            assert self.users is not None
            hist = history_rows(history, users, leave_out=candidates[: len(users)]) if model.uses_history else None
            unique, inverse = np.unique(candidates, return_inverse=True)
            vectors = self._items(unique)[torch.from_numpy(inverse)]
            return model.train_user_vectors(self.users.take(users), hist, vectors[: len(users)]), vectors

        trainer = RetrievalTrainer(
            model, encode, opts, n_items=self.n_items, seed=seed, seen=train.binary(), progress=context.progress
        )
        evaluate = self.validator(train, context.valid, opts, self._refresh)
        self.result = trainer.fit(train.users, train.items, evaluate)
        with torch_threads(opts.threads):
            self._refresh()
        result = self.result
        log.info("%s: valid %s in %.1fs (best epoch %d)", self.name, result.best, result.seconds, result.best_epoch)

    def _train_history(self, train: Interactions) -> sp.csr_matrix:
        """Each user's training items, the `max_history` most recent (by time, else weight) when capped."""
        if not isinstance(self.options, YouTubeDNNConfig):  # youtube_dnn and mind read the history
            return sp.csr_matrix((train.n_users, train.n_items), dtype=np.float32)
        values = train.weights if train.times is None else train.times.astype(np.float64)
        recency = sp.csr_matrix((values, (train.users, train.items)), shape=(train.n_users, train.n_items))
        return cap_rows(recency, self.history_cap)

    @property
    def history_cap(self) -> int | None:
        return self.options.max_history if isinstance(self.options, YouTubeDNNConfig) else None

    def _items(self, codes: np.ndarray) -> torch.Tensor:
        assert self.model is not None and self.items is not None
        return self.model.item_vectors(self.items.take(codes))

    def _refresh(self) -> None:
        """Item vectors from the current weights (eval mode, no gradients)."""
        assert self.model is not None
        self.model.eval()
        with torch.no_grad():
            codes = np.arange(self.n_items)
            self.item_table = torch.cat([self._items(codes[s : s + BLOCK]) for s in range(0, self.n_items, BLOCK)])

    # ------------------------------------------------------------ vectors
    def item_vectors(self) -> np.ndarray:
        """float32 [n_items, D] from the item tower (computed once after fit), row = item code."""
        self.require_fitted(self.item_table is not None)
        assert self.item_table is not None
        return self.item_table.numpy()

    def user_vectors(self, query: Query) -> np.ndarray:
        """The user tower on request: known users from their features, cold ones from default features."""
        self.require_fitted(self.model is not None)
        assert self.model is not None and self.users is not None
        self.model.eval()
        history = None
        if self.model.uses_history:
            history = history_rows(cap_rows(query.history, self.history_cap), np.arange(len(query)))
        with torch.no_grad():
            return self.model.user_vectors(self.users.take(np.asarray(query.users)), history).numpy()

    # -------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        self.require_fitted(self.model is not None)
        assert self.model is not None and self.users is not None and self.items is not None
        return {
            "model": self.model.state_dict(),
            "users": self.users.state(),
            "items": self.items.state(),
            "item_vectors": self.item_table,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        user_features, item_features = self._saved_features
        self.users = SideRows.from_state(user_features, state["users"])
        self.items = SideRows.from_state(item_features, state["items"])
        self.model = self.build_model()
        self.model.load_state_dict(state["model"])
        self.model.eval()
        self.item_table = state["item_vectors"]

    def save(self, directory: str | Path) -> None:
        """state.safetensors/.json (weights, feature rows, item vectors) + user_features/ + item_features/."""
        super().save(directory)
        assert self.users is not None and self.items is not None
        self.users.save(Path(directory) / "user_features")
        self.items.save(Path(directory) / "item_features")

    def load(self, directory: str | Path) -> None:
        base = Path(directory)
        self._saved_features = (FeatureSet.load(base / "user_features"), FeatureSet.load(base / "item_features"))
        super().load(directory)


@register_channel("dssm")
class DSSMChannel(TwoTowerChannel):
    """DSSM two towers (user features | item features) trained with in-batch / sampled softmax."""

    options_class = DSSMOptions
    options: DSSMOptions

    def build_model(self) -> TwoTower:
        assert self.users is not None and self.items is not None
        return DSSM(self.users.features.schema(), self.items.features.schema(), self.options)


@register_channel("youtube_dnn")
class YouTubeDNNChannel(TwoTowerChannel):
    """YouTube-DNN: mean of the user's history item embeddings + user features vs item tower."""

    options_class = YouTubeDNNOptions
    options: YouTubeDNNOptions

    def build_model(self) -> TwoTower:
        assert self.users is not None and self.items is not None
        return YouTubeDNN(self.users.features.schema(), self.items.features.schema(), self.n_items, self.options)
