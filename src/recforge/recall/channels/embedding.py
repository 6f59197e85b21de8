"""What every embedding channel (als, bpr, dssm, youtube_dnn, graphsage) shares: score(u, i) = <user, item>.

`item_vectors()` and `user_vectors(query)` are the export contract (the serving layer reads them). With the
`index:` option the channel builds a Faiss `VectorIndex` over its item vectors after fit, saves it in its
bundle directory (`index/`) and answers `recommend` by searching it with each user's vector, the query's
excluded items removed. Without it (the default) `recommend` scores the whole catalog exactly.

Channel YAML: an IndexConfig, or just its kind; the metric must be `ip`, the channels' own score:
    - {name: als, factors: 64, index: {kind: hnsw, hnsw: {ef_search: 128}}}
    - {name: dssm, index: flat}
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field, field_validator

from recforge.config.ann import IndexConfig
from recforge.errors import ConfigError, DataError, RecforgeError
from recforge.recall.ann import INDEX_KINDS, VectorIndex
from recforge.recall.channels.base import Candidates, FitContext, Query, ScoringChannel
from recforge.recall.interactions import Interactions

log = logging.getLogger(__name__)
INDEX_DIR = "index"  # inside the channel's bundle directory


def history_mean(history: sp.csr_matrix, item_vectors: np.ndarray) -> np.ndarray:
    """float32 [U, D]: each row's mean history item vector (weights ignored), NaN where the history is empty.

    How a channel without a user-side model places a user it was not trained on (a cold user).
    """
    binary = history.tocsr(copy=True)
    binary.data[:] = 1.0
    counts = np.asarray(binary.sum(axis=1)).ravel()
    out = np.asarray(binary @ item_vectors, dtype=np.float32) / np.maximum(counts, 1)[:, None]
    out[counts == 0] = np.nan
    return out


class IndexOption(BaseModel):
    """The `index:` option of an embedding channel's options (mixed into each options class)."""

    index: IndexConfig | None = Field(
        None,
        description="Faiss index over the item vectors for recommend (flat, hnsw, ivf); null: exact scoring "
        "of the whole catalog. Built after fit and saved in the channel's bundle directory.",
    )

    @field_validator("index", mode="before")
    @classmethod
    def _kind_alone(cls, value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("index")
    @classmethod
    def _known_kind_and_dot_product(cls, index: IndexConfig | None) -> IndexConfig | None:
        if index is None:
            return None
        if index.kind not in INDEX_KINDS.names():
            raise ValueError(f"unknown index kind {index.kind!r}; use one of: {', '.join(INDEX_KINDS.names())}")
        if index.metric != "ip":
            raise ValueError(
                f"metric {index.metric!r} would rank differently from the channel, which scores by inner "
                "product (two-tower and graph vectors are unit length when normalized, so ip is their cosine); "
                "use metric: ip"
            )
        return index


class EmbeddingChannel(ScoringChannel):
    """score(u, i) = <user_vectors(u), item_vectors(i)>; a user the channel cannot embed gets no candidates.

    Subclasses implement `fit_vectors` (training) and the two vector methods; `fit` adds the index.
    """

    options: IndexOption

    def __init__(self, name: str, options: BaseModel) -> None:
        super().__init__(name, options)
        self.vector_index: VectorIndex | None = None

    def require_fitted(self, fitted: bool) -> None:
        if not fitted:
            raise RecforgeError(f"recall channel {self.name!r} is not fitted: call fit() or load() first")

    @abstractmethod
    def fit_vectors(self, train: Interactions, context: FitContext) -> None:
        """Learn the user and item vectors (recommend scores exactly meanwhile: validation runs on it)."""

    @abstractmethod
    def item_vectors(self) -> np.ndarray:
        """float32 [n_items, D], row = item code."""

    @abstractmethod
    def user_vectors(self, query: Query) -> np.ndarray:
        """float32 [len(query), D]; an all-NaN row marks a user the channel cannot embed."""

    def fit(self, train: Interactions, context: FitContext) -> None:
        self.vector_index = None
        self.fit_vectors(train, context)
        if self.options.index is not None:
            self.build_index(self.options.index)

    def build_index(self, config: IndexConfig) -> VectorIndex:
        """Index the current item vectors (codes 0..n_items-1); `recommend` searches it from now on."""
        vectors = self.item_vectors()
        where = f"recall.channels ({self.name}).index"
        try:
            index = VectorIndex.build(vectors, np.arange(len(vectors), dtype=np.int64), config)
        except ConfigError as err:
            raise ConfigError(f"{where}.{err.path}", err.problem, fix=err.fix) from None
        except DataError as err:
            raise DataError(f"{where}: cannot build the {config.kind} index: {err}") from None
        log.info("%s: %s index over %d item vectors (%d dims)", self.name, config.kind, index.count, index.dim)
        self.vector_index = index
        return index

    def scores(self, query: Query) -> np.ndarray:
        users = self.user_vectors(query)
        known = ~np.isnan(users).any(axis=1)
        out = np.full((len(query), self.n_items), -np.inf, dtype=np.float32)
        out[known] = users[known] @ self.item_vectors().T
        return out

    def recommend(self, query: Query, k: int) -> Candidates:
        if self.vector_index is None:
            return super().recommend(query, k)
        k = min(k, self.n_items)  # as the exact path: no padding beyond the catalog
        users = self.user_vectors(query)
        known = np.flatnonzero(~np.isnan(users).any(axis=1))
        items = np.full((len(query), k), -1, dtype=np.int64)
        scores = np.full((len(query), k), -np.inf, dtype=np.float32)
        if known.size and k:
            exclude = query.exclude if query.exclude is None or known.size == len(query) else query.exclude[known]
            items[known], scores[known] = self.vector_index.search(users[known], k, exclude)
        return Candidates(items, scores)

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        if self.vector_index is not None:
            self.vector_index.save(Path(directory) / INDEX_DIR)

    def load(self, directory: str | Path) -> None:
        super().load(directory)
        self.vector_index = VectorIndex.load(Path(directory) / INDEX_DIR) if self.options.index is not None else None
