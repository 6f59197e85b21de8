"""Embedding channels with a Faiss `index:`: same lists as exact scoring, seen items excluded, saved in the bundle."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from pydantic import TypeAdapter

from recforge.config.ann import IndexConfig
from recforge.config.features import FeatureConfig
from recforge.config.recall import ChannelConfig, RecallConfig
from recforge.errors import ConfigError, DataError
from recforge.recall.channels import Candidates, FitContext, Query, build_channel
from recforge.recall.channels.embedding import EmbeddingChannel
from recforge.recall.interactions import Interactions, Vocab
from recforge.recall.model import RecallModel

N_USERS, N_ITEMS, N_CLUSTERS, PER_USER = 1200, 1000, 10, 30
FEATURES = TypeAdapter(list[FeatureConfig]).validate_python(
    [
        {"name": "user_id", "kind": "id", "side": "user"},
        {"name": "segment", "kind": "id", "side": "user"},
        {"name": "item_id", "kind": "id", "side": "item"},
        {"name": "category", "kind": "id", "side": "item"},
    ]
)
NEURAL = {"epochs": 2, "batch_size": 512, "threads": 1, "patience": None, "dim": 32}
HNSW = {"kind": "hnsw", "threads": 1}
CHANNELS = [
    {"name": "als", "factors": 32, "iterations": 10, "index": HNSW},
    {"name": "bpr", **NEURAL, "epochs": 10, "lr": 0.02, "index": {**HNSW, "hnsw": {"mips_to_l2": True}}},
    {"name": "dssm", "hidden": [64], **NEURAL, "index": HNSW},
    {"name": "graphsage", **NEURAL, "index": {"kind": "ivf", "threads": 1, "ivf": {"nprobe": 8}}},
]
K = 50


def planted(seed: int = 0) -> tuple[Interactions, pa.Table, pa.Table]:
    """Users and items in 10 clusters, 30 items per user (80% from its cluster, Zipf within), side tables."""
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, N_CLUSTERS, N_USERS)
    item_cluster = np.arange(N_ITEMS) % N_CLUSTERS
    popularity = 1.0 / (1.0 + rng.permutation(N_ITEMS)) ** 0.7
    users, items = [], []
    for user in range(N_USERS):
        weights = popularity * np.where(item_cluster == user_cluster[user], 0.8 * N_CLUSTERS, 0.2)
        users.append(np.full(PER_USER, user))
        items.append(rng.choice(N_ITEMS, PER_USER, replace=False, p=weights / weights.sum()))
    u, i = np.concatenate(users), np.concatenate(items)
    train = Interactions(u, i, np.ones(len(u), np.float32), None, N_USERS, N_ITEMS)
    user_table = pa.table({"user_id": np.arange(N_USERS), "segment": [f"s{c}" for c in user_cluster]})
    item_table = pa.table({"item_id": np.arange(N_ITEMS), "category": [f"c{c}" for c in item_cluster]})
    return train, user_table, item_table


@pytest.fixture(scope="module")
def world() -> tuple[Interactions, pa.Table, pa.Table]:
    return planted()


def fit_context(world: tuple[Interactions, pa.Table, pa.Table]) -> FitContext:
    _, users, items = world
    vocab = Vocab(pa.array(np.arange(N_USERS)), pa.array(np.arange(N_ITEMS)))
    return FitContext(vocab, users=users, items=items, features=FEATURES, embedding_dim=16, seed=3, progress=False)


@pytest.fixture(scope="module")
def model(world: tuple[Interactions, pa.Table, pa.Table]) -> RecallModel:
    cfg = RecallConfig.model_validate({"channels": CHANNELS, "threads": 1})
    return RecallModel.fit(cfg, world[0], fit_context(world))


@pytest.fixture(scope="module")
def query(model: RecallModel, world: tuple[Interactions, pa.Table, pa.Table]) -> Query:
    users = np.arange(0, N_USERS, 3)
    return model.query(users, exclude=world[0].binary()[users])


def exact(channel: EmbeddingChannel, query: Query, k: int = K) -> Candidates:
    """The channel's answer by scoring the whole catalog (its index detached)."""
    plain = copy.copy(channel)
    plain.vector_index = None
    return plain.recommend(query, k)


def with_index(channel: EmbeddingChannel, config: IndexConfig) -> EmbeddingChannel:
    other = copy.copy(channel)
    other.build_index(config)
    return other


def embedding(model: RecallModel, name: str) -> EmbeddingChannel:
    channel = model.channels[name]
    assert isinstance(channel, EmbeddingChannel)
    return channel


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([np.intersect1d(x, y).size / len(y) for x, y in zip(a, b, strict=True)]))


def test_index_option_builds_an_index_per_channel(model: RecallModel) -> None:
    for cfg in CHANNELS:
        index = embedding(model, str(cfg["name"])).vector_index
        assert index is not None and index.config.kind == cfg["index"]["kind"] and index.count == N_ITEMS


def test_default_is_exact_scoring_without_an_index(world: Any, tmp_path: Path) -> None:
    channel = build_channel(ChannelConfig(name="als", factors=8, iterations=3))
    channel.fit(world[0], fit_context(world))
    assert isinstance(channel, EmbeddingChannel) and channel.vector_index is None
    channel.save(tmp_path / "als")
    assert not (tmp_path / "als" / "index").exists()


@pytest.mark.parametrize("name", [c["name"] for c in CHANNELS])
def test_flat_index_gives_the_exact_lists(model: RecallModel, query: Query, name: str) -> None:
    channel = embedding(model, name)
    want = exact(channel, query)
    got = with_index(channel, IndexConfig(kind="flat", threads=1)).recommend(query, K)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)  # rank by rank
    full = channel.scores(query)
    np.testing.assert_allclose(np.take_along_axis(full, got.items, axis=1), got.scores, rtol=1e-5, atol=1e-5)
    assert (got.items != want.items).mean() < 0.01  # where they differ, the scores tie (checked above)


@pytest.mark.parametrize("name", [c["name"] for c in CHANNELS])
def test_approximate_index_overlaps_exact(model: RecallModel, query: Query, name: str) -> None:
    # measured: als 0.997, bpr 0.991, dssm 1.000, graphsage 1.000 (hnsw ef_search=16 instead: 0.96, 0.69, 0.57, 0.85)
    channel = embedding(model, name)
    got, want = channel.recommend(query, K), exact(channel, query)
    assert overlap(got.items, want.items) >= 0.95, overlap(got.items, want.items)


@pytest.mark.parametrize("name", [c["name"] for c in CHANNELS])
def test_seen_items_never_come_back_and_lists_stay_full(model: RecallModel, query: Query, name: str) -> None:
    channel = embedding(model, name)
    assert query.exclude is not None
    # the seen items, plus each user's exact top 100: the index must dig past everything it would return first
    best = exact(channel, query, 100).items
    rows = np.repeat(np.arange(len(query)), best.shape[1])
    hard = query.exclude + sp.csr_matrix((np.ones(rows.size), (rows, best.ravel())), shape=query.exclude.shape)
    hard_query = Query(query.users, query.history, hard.tocsr())
    got = channel.recommend(hard_query, K)
    assert (got.items >= 0).all() and np.isfinite(got.scores).all()
    for row, items in enumerate(got.items):
        assert not np.intersect1d(items, hard[row].indices).size
        assert np.unique(items).size == K


def test_cold_users(model: RecallModel, world: Any) -> None:
    history = world[0].binary()[[5, 5]]
    cold = Query(np.array([-1, -1]), sp.vstack([sp.csr_matrix((1, N_ITEMS)), history[:1]]).tocsr(), history)
    als = embedding(model, "als").recommend(cold, 10)  # no history: nothing to fold in; history: ALS fold-in
    assert (als.items[0] == -1).all() and (als.items[1] >= 0).all()
    assert not np.intersect1d(als.items[1], history[0].indices).size
    dssm = embedding(model, "dssm").recommend(cold, 10)  # default-feature user vector
    assert (dssm.items >= 0).all()


def test_exported_vectors_score_like_recommend(model: RecallModel, query: Query) -> None:
    channel = embedding(model, "als")
    users, items = channel.user_vectors(query), channel.item_vectors()
    assert users.shape == (len(query), 32) and items.shape == (N_ITEMS, 32)
    assert channel.vector_index is not None
    ids, _ = channel.vector_index.search(users, 10, query.exclude)
    np.testing.assert_array_equal(ids, channel.recommend(query, 10).items)


def test_round_trip_through_the_recall_bundle(model: RecallModel, query: Query, tmp_path: Path) -> None:
    model.save(tmp_path / "recall")
    for cfg in CHANNELS:
        assert (tmp_path / "recall" / "channels" / str(cfg["name"]) / "index" / "index.faiss").exists()
    loaded = RecallModel.load(tmp_path / "recall")
    for name in model.channels:
        before, after = model.channels[name].recommend(query, K), loaded.channels[name].recommend(query, K)
        np.testing.assert_array_equal(after.items, before.items)
        np.testing.assert_array_equal(after.scores, before.scores)
    first, again = model.recall(query), loaded.recall(query)
    assert np.array_equal(first.items, again.items)


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ({"kind": "hnws"}, r"index: .*unknown index kind 'hnws'; use one of: flat, hnsw, ivf"),
        ({"kind": "hnsw", "metric": "l2"}, r"index: .*metric 'l2'.*use metric: ip"),
        ({"kind": "hnsw", "hnsw": {"m": 2}}, r"index\.hnsw\.m"),
        ({"kind": "ivf", "ivf": {"nprobe": 0}}, r"index\.ivf\.nprobe"),
        ({"kind": "flat", "efSearch": 10}, r"index\.efSearch: unknown key 'efSearch'"),
        (7, r"index: .*valid dictionary"),
    ],
)
def test_bad_index_options_name_the_channel(index: Any, message: str) -> None:
    for kind in ("als", "dssm"):
        with pytest.raises(ConfigError, match=rf"channel mf \({kind}\)(.|\n)*recall\.channels\[0\]\.{message}"):
            build_channel(ChannelConfig(name="mf", type=kind, index=index))


def test_kind_alone_is_a_config() -> None:
    channel = build_channel(ChannelConfig(name="als", index="flat"))
    assert channel.options.index == IndexConfig(kind="flat")  # type: ignore[attr-defined]


def test_index_that_does_not_fit_the_catalog_names_the_channel(world: Any) -> None:
    index = {"kind": "ivf", "ivf": {"nlist": 5000}}  # valid config, but more buckets than the 1,000 items
    channel = build_channel(ChannelConfig(name="mf", type="als", factors=4, iterations=1, index=index))
    with pytest.raises(DataError, match=r"recall\.channels \(mf\)\.index: cannot build the ivf index: .*nlist=5000"):
        channel.fit(world[0], fit_context(world))
