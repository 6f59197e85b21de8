"""VectorIndex: exact flat search, approximate recall floors, exclusion, save/load and input errors."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
import pydantic
import pytest
import scipy.sparse as sp

from recforge.config.ann import IndexConfig
from recforge.errors import BundleError, ConfigError, DataError
from recforge.recall.ann import VectorIndex


def clustered(n: int, dim: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Embedding-like items: clusters in an 8-d latent space, mapped to `dim` dims plus a little noise.

    The latent space and the map are fixed (seed 0), so calls with other seeds draw from one distribution.
    """
    fixed, rng = np.random.default_rng(0), np.random.default_rng(seed)
    centres, lift = fixed.standard_normal((clusters, 8)) * 2, fixed.standard_normal((8, dim))
    latent = centres[rng.integers(clusters, size=n)] + rng.standard_normal((n, 8))
    return (latent @ lift + 0.1 * rng.standard_normal((n, dim))).astype(np.float32)


def brute_force(
    items: np.ndarray, queries: np.ndarray, k: int, metric: str, seen: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k catalog positions and scores by NumPy, optionally with each query's seen positions removed."""
    if metric == "cosine":
        items = items / np.linalg.norm(items, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        scores = 2 * queries @ items.T - (queries**2).sum(1)[:, None] - (items**2).sum(1)[None, :]
    else:
        scores = queries @ items.T
    for row, positions in enumerate(seen or []):
        scores[row, positions] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(scores, top, axis=1)


@pytest.fixture(scope="module")
def catalog() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4,000 clustered items with sparse, shuffled item codes, and 50 queries."""
    items = clustered(4_050, seed=1)
    codes = np.random.default_rng(2).choice(1_000_000, size=4_000, replace=False).astype(np.int64)
    return items[:4_000], codes, items[4_000:]


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_flat_equals_numpy_top_k(catalog: tuple[np.ndarray, np.ndarray, np.ndarray], metric: str) -> None:
    items, codes, queries = catalog
    index = VectorIndex.build(items, codes, IndexConfig(kind="flat", metric=metric))
    ids, scores = index.search(queries, k=20)
    top, expected = brute_force(items, queries, 20, metric)
    np.testing.assert_array_equal(ids, codes[top])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-3)
    assert ids.dtype == np.int64 and scores.dtype == np.float32


@pytest.mark.parametrize(
    "config",
    [
        IndexConfig(kind="hnsw", threads=1, hnsw={"m": 16, "ef_construction": 40, "ef_search": 64, "mips_to_l2": True}),
        IndexConfig(kind="ivf", threads=1, ivf={"nlist": 64, "nprobe": 8}),
        IndexConfig(kind="ivf", threads=1, metric="l2", ivf={"nlist": 64, "nprobe": 8, "quantizer": "hnsw"}),
        IndexConfig(kind="hnsw", threads=1, metric="cosine", hnsw={"m": 16, "ef_construction": 40, "ef_search": 64}),
    ],
    ids=["hnsw-ip-l2", "ivf-ip", "ivf_hnsw-l2", "hnsw-cosine"],
)
def test_approximate_kinds_reach_recall_floor(config: IndexConfig) -> None:
    items, queries = clustered(5_000, seed=3), clustered(100, seed=4)
    ids, scores = VectorIndex.build(items, np.arange(5_000), config).search(queries, k=50)
    exact, _ = brute_force(items, queries, 50, config.metric)
    recall = np.mean([np.intersect1d(a, b).size / 50 for a, b in zip(ids, exact, strict=True)])
    # Measured: 0.96 for hnsw-ip-l2 (0.83 without the L2 reduction: norms vary widely here), 0.97-1.00
    # for the others; 0.9 leaves room for Faiss version drift.
    assert recall >= 0.9, recall
    if config.metric == "ip":  # scores are true inner products, also through hnsw's L2 reduction
        np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, items[ids]), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("form", ["list", "csr"])
def test_exclusion_removes_exactly_the_seen_items(
    catalog: tuple[np.ndarray, np.ndarray, np.ndarray], form: str, caplog: pytest.LogCaptureFixture
) -> None:
    items, codes, queries = catalog
    rng = np.random.default_rng(5)
    top, _ = brute_force(items, queries, 80, "ip")
    # Seen items are mostly each query's own best matches (the hard case), plus random ones; query 0
    # has seen its top 80 and 1,500 more, so the first fetch (k + max_overfetch = 89) comes up short and
    # the row goes through the deeper re-search.
    seen = [np.union1d(top[q, : rng.integers(0, 30)], rng.choice(4_000, size=rng.integers(0, 40))) for q in range(50)]
    seen[0] = np.union1d(top[0], rng.choice(4_000, size=1_500, replace=False))
    seen_codes = [codes[s] for s in seen]
    if form == "csr":
        rows = np.repeat(np.arange(50), [s.size for s in seen_codes])
        exclude = sp.csr_matrix((np.ones(rows.size), (rows, np.concatenate(seen_codes))), shape=(50, 1_000_000))
    else:
        exclude = [*seen_codes[:-1], list(seen_codes[-1])]
    index = VectorIndex.build(items, codes, IndexConfig(kind="flat", max_overfetch=64))
    with caplog.at_level(logging.DEBUG, logger="recforge.recall.ann.index"):
        ids, scores = index.search(queries, k=25, exclude=exclude)
    assert "re-searched 1 of 50 queries" in caplog.text
    expected, expected_scores = brute_force(items, queries, 25, "ip", seen)
    np.testing.assert_array_equal(ids, codes[expected])
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-3)


def test_exclusion_on_hnsw_keeps_k_unseen_items(catalog: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    items, codes, queries = catalog
    index = VectorIndex.build(items, codes, IndexConfig(kind="hnsw", threads=1, hnsw={"m": 8, "ef_construction": 40}))
    first, _ = index.search(queries, k=10)
    ids, _ = index.search(queries, k=10, exclude=list(first))
    assert (ids >= 0).all()
    assert not any(np.intersect1d(a, b).size for a, b in zip(ids, first, strict=True))


def test_k_beyond_the_catalog_pads_with_minus_one() -> None:
    items = clustered(5, dim=4)
    index = VectorIndex.build(items, np.arange(100, 105), IndexConfig(kind="flat"))
    ids, scores = index.search(items[:2], k=8, exclude=[np.array([100]), np.array([], np.int64)])
    assert (ids[0, :4] >= 0).all() and (ids[0, 4:] == -1).all()
    assert (ids[1, :5] >= 0).all() and (ids[1, 5:] == -1).all()
    assert np.isneginf(scores[ids == -1]).all() and np.isfinite(scores[ids >= 0]).all()
    assert 100 not in ids[0]


@pytest.mark.parametrize(
    "config",
    [
        IndexConfig(kind="flat", metric="cosine"),
        IndexConfig(kind="hnsw", threads=1, hnsw={"m": 8, "ef_construction": 40, "ef_search": 16}),
        IndexConfig(kind="ivf", threads=1, metric="l2", ivf={"nlist": 16, "nprobe": 2, "quantizer": "hnsw"}),
    ],
    ids=["flat", "hnsw", "ivf"],
)
def test_save_then_load_gives_identical_results(tmp_path: Path, config: IndexConfig) -> None:
    items, queries = clustered(3_000, seed=6), clustered(40, seed=7)
    index = VectorIndex.build(items, np.arange(3_000) * 7, config)
    if config.kind != "flat":
        index.set_search_params(**({"ef_search": 24} if config.kind == "hnsw" else {"nprobe": 3}))
    index.save(tmp_path / "ann")
    loaded = VectorIndex.load(tmp_path / "ann")
    assert loaded.config == index.config and loaded.count == 3_000 and loaded.dim == 32
    for got, want in zip(loaded.search(queries, k=15), index.search(queries, k=15), strict=True):
        np.testing.assert_array_equal(got, want)


def test_search_params_change_effort_and_reject_foreign_knobs() -> None:
    items = clustered(2_000, seed=8)
    ivf = VectorIndex.build(items, np.arange(2_000), IndexConfig(kind="ivf", threads=1, ivf={"nlist": 32, "nprobe": 1}))
    narrow, _ = ivf.search(items[:20], k=30)
    ivf.set_search_params(nprobe=32)  # every list: exact
    exact, _ = ivf.search(items[:20], k=30)
    np.testing.assert_array_equal(exact, brute_force(items, items[:20], 30, "ip")[0])
    assert (narrow != exact).any()
    with pytest.raises(ConfigError, match="ef_search"):
        ivf.set_search_params(ef_search=64)
    flat = VectorIndex.build(items, np.arange(2_000), IndexConfig(kind="flat"))
    with pytest.raises(ConfigError, match="nprobe"):
        flat.set_search_params(nprobe=4)


def test_threads_apply_during_calls_only() -> None:
    before = faiss.omp_get_max_threads()
    index = VectorIndex.build(clustered(500), np.arange(500), IndexConfig(kind="hnsw", threads=1))
    index.search(clustered(3, seed=9), k=5)
    assert index.threads == 1 and faiss.omp_get_max_threads() == before


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    items, ids, flat = clustered(100, dim=8), np.arange(100), IndexConfig(kind="flat")
    with pytest.raises(DataError, match="empty"):
        VectorIndex.build(np.zeros((0, 8), np.float32), np.zeros(0, np.int64), flat)
    with pytest.raises(DataError, match="2-D"):
        VectorIndex.build(items[0], ids[:1], flat)
    with pytest.raises(DataError, match="row 7"):
        VectorIndex.build(np.where(np.arange(100)[:, None] == 7, np.nan, items), ids, flat)
    with pytest.raises(DataError, match=r"duplicate.*item code 3"):
        VectorIndex.build(items, np.where(ids == 4, 3, ids), flat)
    with pytest.raises(DataError, match="one code per vector"):
        VectorIndex.build(items, ids[:99], flat)
    with pytest.raises(DataError, match="all-zero"):
        VectorIndex.build(np.zeros((3, 8), np.float32), ids[:3], IndexConfig(kind="flat", metric="cosine"))
    with pytest.raises(DataError, match="nlist=500 exceeds"):
        VectorIndex.build(items, ids, IndexConfig(kind="ivf", ivf={"nlist": 500}))
    with pytest.raises(ConfigError, match=r"(?s)unknown index kind 'hnws'.*did you mean 'hnsw'"):
        VectorIndex.build(items, ids, IndexConfig(kind="hnws"))
    with pytest.raises(pydantic.ValidationError, match="ef_serch"):
        IndexConfig(kind="hnsw", hnsw={"ef_serch": 10})

    index = VectorIndex.build(items, ids, flat)
    with pytest.raises(DataError, match="16 dims but the index holds 8"):
        index.search(np.zeros((2, 16), np.float32), k=5)
    with pytest.raises(DataError, match="NaN or inf"):
        index.search(np.full((1, 8), np.inf), k=5)
    with pytest.raises(ConfigError, match="k: must be >= 1"):
        index.search(items[:1], k=0)
    with pytest.raises(DataError, match="2 rows for 1 queries"):
        index.search(items[:1], k=5, exclude=[np.array([1]), np.array([2])])
    with pytest.raises(BundleError, match=r"meta.json is missing"):
        VectorIndex.load(tmp_path / "nothing")
