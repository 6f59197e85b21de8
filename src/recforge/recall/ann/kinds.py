"""Index kinds (flat, hnsw, ivf): how each one creates its Faiss index and applies search-time knobs.

A kind is registered by name; `IndexConfig.kind` picks it. Adding a kind adds one class here, no branches elsewhere.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import faiss
import numpy as np

from recforge.config.ann import IndexConfig
from recforge.errors import ConfigError, DataError
from recforge.registry import Registry

METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "cosine": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


class IndexKind(ABC):
    """Creates an empty Faiss index for a catalog, trains it, and applies search knobs to it."""

    @abstractmethod
    def create(self, dim: int, count: int, config: IndexConfig) -> faiss.Index:
        """An empty index for `count` vectors of `dim` floats."""

    def train(self, index: faiss.Index, vectors: np.ndarray, config: IndexConfig) -> None:  # noqa: B027 (optional hook)
        """Fit whatever the index learns from the catalog before vectors are added (graphs learn nothing)."""

    def items(self, vectors: np.ndarray, config: IndexConfig) -> np.ndarray:
        """The vectors as the index stores them (cosine normalization is already applied)."""
        return vectors

    def queries(self, queries: np.ndarray, config: IndexConfig) -> np.ndarray:
        """The queries as the index searches them."""
        return queries

    def scores(self, index: faiss.Index, queries: np.ndarray, distances: np.ndarray, config: IndexConfig) -> np.ndarray:
        """Faiss distances as higher-is-better scores: similarity, or the negated squared L2 distance."""
        return -distances if config.metric == "l2" else distances

    def tune(self, index: faiss.Index, config: IndexConfig) -> None:  # noqa: B027 (optional hook)
        """Apply `config`'s search-time knobs to a built or loaded index (exact search has none)."""

    def with_search(self, config: IndexConfig, ef_search: int | None, nprobe: int | None) -> IndexConfig:
        """`config` with new search knobs; a knob that means nothing for this kind is a ConfigError."""
        _reject(config.kind, ef_search=ef_search, nprobe=nprobe)
        return config


INDEX_KINDS: Registry[type[IndexKind]] = Registry("index kind")


def _reject(kind: str, **knobs: int | None) -> None:
    given = [name for name, value in knobs.items() if value is not None]
    if given:
        raise ConfigError(
            given[0],
            f"does not apply to a {kind!r} index",
            fix="ef_search: hnsw (or an ivf hnsw quantizer); nprobe: ivf",
        )


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(name, f"must be >= 1 (got {value})")


@INDEX_KINDS.register("flat")
class FlatKind(IndexKind):
    """Exact search: every query scans every vector. The reference the others are measured against."""

    def create(self, dim: int, count: int, config: IndexConfig) -> faiss.Index:
        return faiss.IndexFlat(dim, METRICS[config.metric])


@INDEX_KINDS.register("hnsw")
class HnswKind(IndexKind):
    """HNSW graph: no training, log-time search; recall traded against `ef_search`.

    With `mips_to_l2`, inner product is searched in L2 over items padded with sqrt(R² - |x|²) (R the
    largest norm) and queries padded with 0: |q - x'|² = |q|² + R² - 2 q·x ranks exactly like q·x, and
    the graph routes by a true distance instead of hubs of large-norm items.
    """

    def create(self, dim: int, count: int, config: IndexConfig) -> faiss.Index:
        if _mips(config):
            index = faiss.IndexHNSWFlat(dim + 1, config.hnsw.m, faiss.METRIC_L2)
        else:
            index = faiss.IndexHNSWFlat(dim, config.hnsw.m, METRICS[config.metric])
        index.hnsw.efConstruction = config.hnsw.ef_construction
        return index

    def items(self, vectors: np.ndarray, config: IndexConfig) -> np.ndarray:
        if not _mips(config):
            return vectors
        norms2 = np.einsum("nd,nd->n", vectors, vectors, dtype=np.float64)
        return np.hstack([vectors, np.sqrt(norms2.max() - norms2)[:, None].astype(np.float32)])

    def queries(self, queries: np.ndarray, config: IndexConfig) -> np.ndarray:
        return np.hstack([queries, np.zeros((len(queries), 1), np.float32)]) if _mips(config) else queries

    def scores(self, index: faiss.Index, queries: np.ndarray, distances: np.ndarray, config: IndexConfig) -> np.ndarray:
        if not _mips(config):
            return super().scores(index, queries, distances, config)
        radius2 = float(np.square(index.reconstruct(0), dtype=np.float64).sum())  # every padded item has norm R
        norms2 = np.einsum("qd,qd->q", queries, queries, dtype=np.float64)[:, None]
        return ((norms2 + radius2 - distances) / 2).astype(np.float32)

    def tune(self, index: faiss.Index, config: IndexConfig) -> None:
        graph: Any = faiss.downcast_index(index)
        graph.hnsw.efSearch = config.hnsw.ef_search

    def with_search(self, config: IndexConfig, ef_search: int | None, nprobe: int | None) -> IndexConfig:
        _reject("hnsw", nprobe=nprobe)
        _positive("ef_search", ef_search)
        if ef_search is None:
            return config
        return config.model_copy(update={"hnsw": config.hnsw.model_copy(update={"ef_search": ef_search})})


def _mips(config: IndexConfig) -> bool:
    return config.metric == "ip" and config.hnsw.mips_to_l2


def default_nlist(count: int) -> int:
    """4*sqrt(N) buckets, but never fewer than 39 training points per bucket (faiss's k-means minimum)."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


@INDEX_KINDS.register("ivf")
class IvfKind(IndexKind):
    """Inverted lists over k-means buckets (trained on the catalog); recall traded against `nprobe`."""

    def create(self, dim: int, count: int, config: IndexConfig) -> faiss.Index:
        params, metric = config.ivf, METRICS[config.metric]
        nlist = params.nlist or default_nlist(count)
        if nlist > count:
            raise DataError(
                f"ivf.nlist={nlist} exceeds the catalog's {count} items; use at most {max(1, count // 39)} "
                "(39 items per bucket) or leave nlist unset"
            )
        quantizer = faiss.IndexFlat(dim, metric) if params.quantizer == "flat" else faiss.IndexHNSWFlat(dim, 32, metric)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        index.cp.seed = config.seed
        return index

    def train(self, index: faiss.Index, vectors: np.ndarray, config: IndexConfig) -> None:
        # k-means assigns points with an exact scan even when queries will use an HNSW quantizer:
        # assigning through a graph that is rebuilt every k-means iteration would be slow.
        ivf: Any = faiss.extract_index_ivf(index)
        exact = faiss.IndexFlat(index.d, ivf.metric_type)
        ivf.clustering_index = exact
        try:
            ivf.train(vectors)
        finally:
            ivf.clustering_index = None

    def tune(self, index: faiss.Index, config: IndexConfig) -> None:
        ivf: Any = faiss.extract_index_ivf(index)
        ivf.nprobe = config.ivf.nprobe
        if config.ivf.quantizer == "hnsw":
            hnsw: Any = faiss.downcast_index(ivf.quantizer)
            hnsw.hnsw.efSearch = max(config.ivf.quantizer_ef_search, config.ivf.nprobe)

    def with_search(self, config: IndexConfig, ef_search: int | None, nprobe: int | None) -> IndexConfig:
        if config.ivf.quantizer == "flat":
            _reject("ivf with a flat quantizer", ef_search=ef_search)
        _positive("ef_search", ef_search)
        _positive("nprobe", nprobe)
        update: dict[str, int] = {}
        if nprobe is not None:
            update["nprobe"] = nprobe
        if ef_search is not None:
            update["quantizer_ef_search"] = ef_search
        return config.model_copy(update={"ivf": config.ivf.model_copy(update=update)})
