"""dssm / youtube_dnn channels: they learn planted user-item clusters, save/load exactly, reject bad options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import TypeAdapter

from recforge.config.features import FeatureConfig
from recforge.config.recall import ChannelConfig
from recforge.errors import ConfigError
from recforge.recall.channels.base import CHANNELS, FitContext, Query, RecallChannel, build_channel, masked_topk
from recforge.recall.channels.two_tower import DSSMChannel, YouTubeDNNChannel
from recforge.recall.interactions import Interactions, RecallData, Vocab
from recforge.recall.metrics import topk_metrics
from recforge.recall.retrieval import candidate_log_q, softmax_logits

N_USERS, N_ITEMS, N_CLUSTERS, PER_USER = 400, 200, 8, 25
FEATURES = TypeAdapter(list[FeatureConfig]).validate_python(
    [
        {"name": "user_id", "kind": "id", "side": "user"},
        {"name": "segment", "kind": "id", "side": "user"},
        {"name": "age", "kind": "numeric", "side": "user", "n_buckets": 4},
        {"name": "item_id", "kind": "id", "side": "item"},
        {"name": "category", "kind": "id", "side": "item"},
        {"name": "tags", "kind": "tag", "side": "item"},
    ]
)
FAST = {"epochs": 3, "batch_size": 256, "threads": 1, "patience": 2, "dim": 32, "hidden": [64], "lr": 0.005}


def planted_world(seed: int = 0) -> tuple[RecallData, pa.Table, pa.Table]:
    """Users and items in 8 clusters; 85% of a user's items come from its cluster (Zipf within it).

    Side tables: users.segment is the user's cluster (10% noise), items.category the item's cluster.
    Split per user at random 8:1:1 (RecBole's general protocol).
    """
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, N_CLUSTERS, N_USERS)
    item_cluster = np.arange(N_ITEMS) % N_CLUSTERS
    popularity = 1.0 / (1.0 + rng.permutation(N_ITEMS)) ** 0.7
    pairs: list[tuple[int, int, int]] = []
    for user in range(N_USERS):
        weights = popularity * np.where(item_cluster == user_cluster[user], 0.85 * N_CLUSTERS, 0.15)
        items = rng.choice(N_ITEMS, PER_USER, replace=False, p=weights / weights.sum())
        splits = rng.permutation(np.repeat([0, 1, 2], [PER_USER - 6, 3, 3]))
        pairs += [(user, int(i), int(s)) for i, s in zip(items, splits, strict=True)]
    arr = np.array(pairs)
    vocab = Vocab(pa.array([f"u{u}" for u in range(N_USERS)]), pa.array([f"i{i}" for i in range(N_ITEMS)]))

    def part(code: int) -> Interactions:
        rows = arr[arr[:, 2] == code]
        return Interactions(rows[:, 0], rows[:, 1], np.ones(len(rows), np.float32), None, N_USERS, N_ITEMS)

    noisy = np.where(rng.random(N_USERS) < 0.1, rng.integers(0, N_CLUSTERS, N_USERS), user_cluster)
    users = pa.table(
        {"user_id": vocab.user_ids, "segment": [f"s{c}" for c in noisy], "age": rng.integers(18, 70, N_USERS)}
    )
    items = pa.table(
        {
            "item_id": vocab.item_ids,
            "category": [f"c{c}" for c in item_cluster],
            "tags": [[f"t{c}", f"t{(c + 1) % N_CLUSTERS}"] for c in item_cluster],
        }
    )
    return RecallData(vocab, part(0), part(1), part(2)), users, items


@pytest.fixture(scope="module")
def world() -> tuple[RecallData, pa.Table, pa.Table]:
    return planted_world()


def context(world: tuple[RecallData, pa.Table, pa.Table], **extra: Any) -> FitContext:
    data, users, items = world
    kwargs: dict[str, Any] = {"users": users, "items": items, "features": FEATURES, "embedding_dim": 16}
    kwargs.update(extra)
    return FitContext(vocab=data.vocab, valid=data.valid, seed=7, progress=False, **kwargs)


def held_out_query(data: RecallData) -> tuple[Query, Any]:
    assert data.test is not None
    truth = data.test.binary()
    users = np.flatnonzero(np.diff(truth.indptr))
    return Query(users, data.train.matrix[users], data.seen_before("test")[users]), truth[users]


def recall_at_10(channel: RecallChannel, data: RecallData) -> float:
    query, truth = held_out_query(data)
    return topk_metrics(channel.recommend(query, 10).items, truth, [10], ["recall"])["recall@10"]


def popularity_recall_at_10(data: RecallData) -> float:
    query, truth = held_out_query(data)
    counts = data.train.item_counts().astype(np.float32)
    ranked = masked_topk(np.tile(counts, (len(query), 1)), 10, query.exclude).items
    return topk_metrics(ranked, truth, [10], ["recall"])["recall@10"]


def fit(kind: str, world: tuple[RecallData, pa.Table, pa.Table], **options: Any) -> RecallChannel:
    channel = build_channel(ChannelConfig(name=kind, **{**FAST, **options}))
    channel.fit(world[0].train, context(world))
    return channel


@pytest.fixture(scope="module")
def trained(world: tuple[RecallData, pa.Table, pa.Table]) -> dict[str, RecallChannel]:
    return {kind: fit(kind, world) for kind in ("dssm", "youtube_dnn")}


def test_channels_are_registered() -> None:
    assert CHANNELS.get("dssm") is DSSMChannel
    assert CHANNELS.get("youtube_dnn") is YouTubeDNNChannel


@pytest.mark.parametrize("kind", ["dssm", "youtube_dnn"])
def test_learns_the_planted_clusters(kind: str, world: Any, trained: dict[str, RecallChannel]) -> None:
    # Measured on this world: popularity 0.153, dssm 0.686, youtube_dnn 0.694 (3 epochs at most).
    popular = popularity_recall_at_10(world[0])
    learned = recall_at_10(trained[kind], world[0])
    assert 0.1 < popular < 0.2, popular
    assert learned > 0.55 and learned > 3 * popular, (learned, popular)


def test_sampled_softmax_with_logq_learns_too(world: Any) -> None:
    options = {"loss": "sampled_softmax", "num_negatives": 64, "negative_sampler": "popularity"}
    channel = fit("dssm", world, **options)
    assert recall_at_10(channel, world[0]) > 0.55  # measured 0.688


def test_logq_corrects_by_how_often_an_item_is_a_candidate() -> None:
    # item 0 is 3x as frequent as item 1: in a batch of 2 it is expected 1.5 times, item 1 0.5 times
    data_probs = torch.tensor([0.75, 0.25], dtype=torch.float64)
    uniform = torch.tensor([0.5, 0.5], dtype=torch.float64)
    codes = torch.tensor([0, 1])
    log_q = candidate_log_q(codes, data_probs, uniform, n_inbatch=2, n_negatives=0)
    torch.testing.assert_close(log_q, torch.log(torch.tensor([1.5, 0.5])))
    # mixed: + 4 uniform negatives add 2 expected draws to each item
    mixed = candidate_log_q(codes, data_probs, uniform, n_inbatch=2, n_negatives=4)
    torch.testing.assert_close(mixed, torch.log(torch.tensor([3.5, 2.5])))
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    raw = softmax_logits(users, users, codes, 1.0)
    fixed = softmax_logits(users, users, codes, 1.0, log_q=log_q)
    # every logit of the popular item drops by log 1.5, of the rare one rises by log 2
    torch.testing.assert_close(fixed - raw, -log_q.expand(2, 2))
    # so user 1 (positive: the rare item) loses less to the popular negative than without the correction
    assert fixed.softmax(1)[1, 1] > raw.softmax(1)[1, 1]


def test_save_load_round_trip_is_exact(world: Any, trained: dict[str, RecallChannel], tmp_path: Path) -> None:
    query, _ = held_out_query(world[0])
    for kind, channel in trained.items():
        before = channel.recommend(query, 20)
        channel.save(tmp_path / kind)
        loaded = build_channel(ChannelConfig(name=kind, **FAST))
        loaded.load(tmp_path / kind)
        after = loaded.recommend(query, 20)
        np.testing.assert_array_equal(after.items, before.items)
        np.testing.assert_array_equal(after.scores, before.scores)
        assert isinstance(loaded, DSSMChannel | YouTubeDNNChannel)
        assert (tmp_path / kind / "user_features" / "features.json").exists()


def test_vectors_score_like_recommend(world: Any, trained: dict[str, RecallChannel]) -> None:
    channel = trained["youtube_dnn"]
    assert isinstance(channel, YouTubeDNNChannel)
    query, _ = held_out_query(world[0])
    items, users = channel.item_vectors(), channel.user_vectors(query)
    assert items.shape == (N_ITEMS, 32) and users.shape == (len(query), 32)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)
    best = masked_topk(users @ items.T, 5, query.exclude).items
    np.testing.assert_array_equal(best, channel.recommend(query, 5).items)


def test_cold_users_get_candidates(world: Any, trained: dict[str, RecallChannel]) -> None:
    data = world[0]
    cold = Query(np.array([-1, -1]), data.train.matrix[[0, 1]])
    dssm = trained["dssm"].recommend(cold, 10)
    assert (dssm.items >= 0).all() and (dssm.items[0] == dssm.items[1]).all()  # default features: one list
    youtube = trained["youtube_dnn"].recommend(cold, 10)
    assert (youtube.items >= 0).all() and not (youtube.items[0] == youtube.items[1]).all()  # history tells apart


def test_same_seed_same_model(world: Any) -> None:
    options = {"epochs": 1, "patience": None}
    a, b = fit("youtube_dnn", world, **options), fit("youtube_dnn", world, **options)
    assert isinstance(a, YouTubeDNNChannel) and isinstance(b, YouTubeDNNChannel)
    np.testing.assert_array_equal(a.item_vectors(), b.item_vectors())


def test_users_missing_from_the_side_table_are_counted(world: Any) -> None:
    data, users, items = world
    channel = build_channel(ChannelConfig(name="dssm", **{**FAST, "epochs": 1}))
    channel.fit(data.train, context((data, users.slice(0, N_USERS - 30), items)))
    assert isinstance(channel, DSSMChannel) and channel.users is not None and channel.items is not None
    assert (channel.users.missing, channel.items.missing) == (30, 0)


@pytest.mark.parametrize(
    "options",
    [
        {"hiden": [64]},
        {"loss": "bpr"},
        {"loss": "sampled_softmax"},  # needs num_negatives
        {"monitor": "auc@10"},
        {"temperature": 0},
        {"features": [{"name": "x", "kind": "nope"}]},
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"recall\.channels\[0\]"):
        build_channel(ChannelConfig(name="dssm", **options))


def test_feature_reading_the_other_side_is_a_config_error(world: Any) -> None:
    features = [*FEATURES, {"name": "user_x_item", "kind": "cross", "side": "user", "inputs": ["user_id", "item_id"]}]
    channel = build_channel(ChannelConfig(name="dssm", **FAST, features=features))
    with pytest.raises(ConfigError, match="user_x_item"):
        channel.fit(world[0].train, context(world))
