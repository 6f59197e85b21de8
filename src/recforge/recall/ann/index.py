"""VectorIndex: nearest-item search over item embeddings with Faiss, addressed by int64 item codes.

Shapes: N catalog items, D dims, Q queries, k results. Scores are "higher is better" for every metric
(inner product, cosine, or the negated squared L2 distance); missing results are id -1 with score -inf.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np
import torch
from pydantic import ValidationError
from safetensors.numpy import load_file, save_file

from recforge.config.ann import IndexConfig
from recforge.errors import BundleError, ConfigError, DataError
from recforge.recall.ann.exclude import Exclude, exclusion, first_k, is_excluded, pad, ragged
from recforge.recall.ann.kinds import INDEX_KINDS, IndexKind

log = logging.getLogger(__name__)

FORMAT = "recforge.ann/1"
_ADD_CHUNK = 100_000


@contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Run Faiss with `n` OpenMP threads, restoring the caller's setting afterwards."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _finite_float32(array: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    values = np.asarray(array)
    if values.ndim != 2:
        raise DataError(f"{what} must be a 2-D [rows, dim] array, got shape {values.shape}")
    if dim is not None and values.shape[1] != dim:
        raise DataError(f"{what} have {values.shape[1]} dims but the index holds {dim}-dim vectors")
    if values.dtype.kind not in "fiu":
        raise DataError(f"{what} must be numbers, got dtype {values.dtype}")
    values = np.ascontiguousarray(values, dtype=np.float32)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{what}: {rows.size:,} row(s) hold NaN or inf (in float32), e.g. row {rows[0]}")
    return values


def _normalized(values: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return values / np.where(norms > 0, norms, 1.0).astype(np.float32)


class VectorIndex:
    """Top-k search over a fixed catalog; build with `VectorIndex.build`, persist with `save` / `load`.

    >>> import numpy as np
    >>> from recforge.config.ann import IndexConfig
    >>> items = np.array([[1.0, 0.0], [0.8, 0.2], [0.5, 0.5], [0.0, 1.0]], dtype=np.float32)
    >>> index = VectorIndex.build(items, np.array([10, 11, 12, 13]), IndexConfig(kind="flat"))
    >>> ids, scores = index.search(np.array([[1.0, 0.0]]), k=2, exclude=[np.array([10])])
    >>> ids.tolist(), scores.round(2).tolist()
    ([[11, 12]], [[0.8, 0.5]])
    """

    def __init__(self, index: faiss.Index, ids: np.ndarray, config: IndexConfig, dim: int) -> None:
        self._index = index
        self._dim = dim
        self.ids = ids
        self.config = config
        self._kind: IndexKind = INDEX_KINDS.get(config.kind, yaml_path="kind")()
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        self._kind.tune(index, config)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    @property
    def threads(self) -> int:
        """Faiss threads per call: many for batch jobs, often 1 for a service answering one request at a time."""
        return self.config.threads or torch.get_num_threads()

    @threads.setter
    def threads(self, n: int) -> None:
        if n < 1:
            raise ConfigError("threads", f"must be >= 1 (got {n})")
        self.config = self.config.model_copy(update={"threads": n})

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, config: IndexConfig) -> VectorIndex:
        """Index `vectors` [N, D] under item codes `ids` [N] (unique, >= 0). Training (ivf) uses all vectors."""
        kind = INDEX_KINDS.get(config.kind, yaml_path="kind")()
        values = _finite_float32(vectors, "vectors")
        codes = _check_ids(ids, len(values))
        if config.metric == "cosine":
            zero = np.flatnonzero(~np.linalg.norm(values, axis=1).astype(bool))
            if zero.size:
                raise DataError(
                    f"vectors: {zero.size:,} all-zero row(s) have no direction for cosine, e.g. row {zero[0]}"
                )
            values = _normalized(values)
        index = kind.create(values.shape[1], len(values), config)
        with faiss_threads(config.threads or torch.get_num_threads()):
            stored = kind.items(values, config)
            kind.train(index, stored, config)
            for start in range(0, len(stored), _ADD_CHUNK):
                index.add(stored[start : start + _ADD_CHUNK])
                log.debug(
                    "%s index: added %d of %d vectors", config.kind, min(start + _ADD_CHUNK, len(stored)), len(stored)
                )
        return cls(index, codes, config, values.shape[1])

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change search effort in place (saved with the index); a knob the kind lacks is a ConfigError."""
        self.config = self._kind.with_search(self.config, ef_search, nprobe)
        self._kind.tune(self._index, self.config)

    def search(self, queries: np.ndarray, k: int, exclude: Exclude | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Item codes [Q, k] int64 and scores [Q, k] float32, best first.

        `exclude[q]` lists item codes query q must not get back (a csr matrix whose columns are item
        codes, or a list of arrays); rows still return k items when the catalog has them. k may exceed
        the catalog: rows are then padded with id -1 and score -inf.
        """
        if k < 1:
            raise ConfigError("k", f"must be >= 1 (got {k})")
        values = _finite_float32(queries, "queries", self.dim)
        if self.config.metric == "cosine":
            values = _normalized(values)
        with faiss_threads(self.threads):
            if exclude is None:
                positions, scores = pad(*self._raw(values, min(k, self.count)), k)
            else:
                positions, scores = self._search_excluding(values, k, exclude)
        return np.where(positions >= 0, self.ids[np.maximum(positions, 0)], -1), scores

    def _search_excluding(self, values: np.ndarray, k: int, exclude: Exclude) -> tuple[np.ndarray, np.ndarray]:
        rows, codes = ragged(exclude, len(values))
        excl = exclusion(rows, codes, self._sorted, self._order, len(values))
        query_rows = np.arange(len(values), dtype=np.int64)
        fetch = min(self.count, k + min(int(excl.counts.max(initial=0)), self.config.max_overfetch))
        raw_positions, raw_scores = self._raw(values, fetch)
        drop = is_excluded(raw_positions, query_rows, excl)
        positions, scores = first_k(raw_positions, raw_scores, drop, k)
        # A row whose fetch came back full but lost too many to exclusion gets one deeper search;
        # a row that came back with gaps already saw everything the index would give it.
        short = ((~drop).sum(axis=1) < k) & (raw_positions[:, -1] >= 0) & (fetch < self.count)
        if short.any():
            again = np.flatnonzero(short)
            deeper = min(self.count, k + int(excl.counts[again].max()))
            more_positions, more_scores = self._raw(values[again], deeper)
            drop = is_excluded(more_positions, query_rows[again], excl)
            positions[again], scores[again] = first_k(more_positions, more_scores, drop, k)
            log.debug("ann: re-searched %d of %d queries with k=%d after exclusion", again.size, len(values), deeper)
        return positions, scores

    def _raw(self, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Faiss search: catalog positions [Q, k] and higher-is-better scores (-inf where missing)."""
        distances, positions = self._index.search(self._kind.queries(values, self.config), k)
        scores = self._kind.scores(self._index, values, distances, self.config)
        scores[positions < 0] = -np.inf
        return positions.astype(np.int64, copy=False), scores.astype(np.float32, copy=False)

    def save(self, directory: str | Path) -> None:
        """`index.faiss` (Faiss's own format), `ids.safetensors` and `meta.json`; no pickle."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(path / "index.faiss"))
        save_file({"ids": self.ids}, str(path / "ids.safetensors"))
        meta = {
            "format": FORMAT,
            "kind": self.config.kind,
            "metric": self.config.metric,
            "dim": self.dim,
            "count": self.count,
            "params": self.config.model_dump(mode="json"),
        }
        (path / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path, *, threads: int | None = None) -> VectorIndex:
        """An index written by `save`; `threads` overrides the saved thread count for this machine."""
        path = Path(directory)
        for name in ("meta.json", "index.faiss", "ids.safetensors"):
            if not (path / name).exists():
                raise BundleError(f"{path / name} is missing (not a saved VectorIndex, or an incomplete copy)")
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise BundleError(f"{path / 'meta.json'}: format {meta.get('format')!r}, expected {FORMAT!r}")
        try:
            config = IndexConfig.model_validate(meta["params"])
        except ValidationError as err:
            raise BundleError(f"{path / 'meta.json'}: params do not validate: {err}") from None
        if threads is not None:
            config = config.model_copy(update={"threads": threads})
        index = faiss.read_index(str(path / "index.faiss"))
        ids = load_file(str(path / "ids.safetensors"))["ids"]
        if (int(index.ntotal), len(ids)) != (meta["count"], meta["count"]):
            raise BundleError(
                f"{path}: meta.json says {meta['count']} items, "
                f"but the files hold {index.ntotal} vectors and {len(ids)} ids"
            )
        return cls(index, ids, config, int(meta["dim"]))


def _check_ids(ids: np.ndarray, count: int) -> np.ndarray:
    codes = np.asarray(ids)
    if count == 0:
        raise DataError("the catalog is empty: build an index from at least one vector")
    if codes.shape != (count,):
        raise DataError(f"ids must be a 1-D array with one code per vector ({count}), got shape {codes.shape}")
    if codes.dtype.kind not in "iu":
        raise DataError(f"ids must be integer item codes, got dtype {codes.dtype}")
    codes = codes.astype(np.int64)
    if codes.min() < 0:
        raise DataError(f"ids must be >= 0 (-1 marks a missing result), got {codes.min()}")
    unique, counts = np.unique(codes, return_counts=True)
    if unique.size != count:
        dup = unique[counts > 1]
        raise DataError(f"ids hold {count - unique.size:,} duplicate(s), e.g. item code {dup[0]}; codes must be unique")
    return codes
