"""mind channel: learns users with two planted interests, interests are distinct, the index path agrees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
import torch
from pydantic import TypeAdapter

from recforge.config.ann import IndexConfig
from recforge.config.features import FeatureConfig
from recforge.config.recall import ChannelConfig
from recforge.models.layers import CapsuleRouting
from recforge.recall.channels.base import CHANNELS, FitContext, Query, RecallChannel, build_channel, masked_topk
from recforge.recall.channels.mind import MINDChannel
from recforge.recall.interactions import Interactions, RecallData, Vocab
from recforge.recall.metrics import topk_metrics

N_USERS, N_ITEMS, N_CLUSTERS, PER_USER = 500, 240, 12, 30
FEATURES = TypeAdapter(list[FeatureConfig]).validate_python(
    [{"name": "user_id", "kind": "id", "side": "user"}, {"name": "item_id", "kind": "id", "side": "item"}]
)
FAST = {"epochs": 8, "batch_size": 256, "threads": 1, "patience": 2, "dim": 32, "hidden": [64], "lr": 0.005}


def two_interest_world(seed: int = 0) -> RecallData:
    """Items in 12 clusters; each user draws half its items from one cluster and half from another."""
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(N_ITEMS) % N_CLUSTERS
    pairs: list[tuple[int, int, int]] = []
    for user in range(N_USERS):
        a, b = rng.choice(N_CLUSTERS, 2, replace=False)
        weights = np.where(np.isin(item_cluster, [a, b]), 1.0, 0.02)
        items = rng.choice(N_ITEMS, PER_USER, replace=False, p=weights / weights.sum())
        splits = rng.permutation(np.repeat([0, 1, 2], [PER_USER - 8, 4, 4]))
        pairs += [(user, int(i), int(s)) for i, s in zip(items, splits, strict=True)]
    arr = np.array(pairs)
    vocab = Vocab(pa.array([f"u{u}" for u in range(N_USERS)]), pa.array([f"i{i}" for i in range(N_ITEMS)]))

    def part(code: int) -> Interactions:
        rows = arr[arr[:, 2] == code]
        return Interactions(rows[:, 0], rows[:, 1], np.ones(len(rows), np.float32), None, N_USERS, N_ITEMS)

    return RecallData(vocab, part(0), part(1), part(2))


@pytest.fixture(scope="module")
def world() -> RecallData:
    return two_interest_world()


def fit(kind: str, data: RecallData, **options: Any) -> RecallChannel:
    users = pa.table({"user_id": data.vocab.user_ids})
    items = pa.table({"item_id": data.vocab.item_ids})
    context = FitContext(
        vocab=data.vocab, valid=data.valid, seed=7, progress=False, users=users, items=items, features=FEATURES
    )
    channel = build_channel(ChannelConfig(name=kind, **{**FAST, **options}))
    channel.fit(data.train, context)
    return channel


def held_out(data: RecallData) -> tuple[Query, Any]:
    assert data.test is not None
    truth = data.test.binary()
    users = np.flatnonzero(np.diff(truth.indptr))
    return Query(users, data.train.matrix[users], data.seen_before("test")[users]), truth[users]


def recall_at(channel: RecallChannel, data: RecallData, k: int) -> float:
    query, truth = held_out(data)
    return topk_metrics(channel.recommend(query, k).items, truth, [k], ["recall"])[f"recall@{k}"]


@pytest.fixture(scope="module")
def mind(world: RecallData) -> RecallChannel:
    return fit("mind", world, interests=3)


def test_registered() -> None:
    assert CHANNELS.get("mind") is MINDChannel


def test_learns_two_interest_users(world: RecallData, mind: RecallChannel) -> None:
    query, truth = held_out(world)
    counts = world.train.item_counts().astype(np.float32)
    popular = masked_topk(np.tile(counts, (len(query), 1)), 50, query.exclude).items
    popular_recall = topk_metrics(popular, truth, [50], ["recall"])["recall@50"]
    learned = recall_at(mind, world, 50)
    # A user's two clusters hold 40 of 240 items; popularity gets about 0.25 here, mind about 0.8.
    assert popular_recall < 0.35, popular_recall
    assert learned > 0.6 and learned > 2 * popular_recall, (learned, popular_recall)


def test_interests_are_distinct_and_the_dynamic_count_follows_history(world: RecallData, mind: Any) -> None:
    query, _ = held_out(world)
    vectors, active = mind.interest_vectors(query.rows(0, 50))
    assert vectors.shape == (50, 3, 32) and active.shape == (50, 3)
    lengths = np.diff(query.history[:50].indptr)
    expected = np.clip(np.floor(np.log2(np.maximum(lengths, 1))), 1, 3)
    np.testing.assert_array_equal(active.sum(axis=1), expected)
    cos = np.einsum("ud,ud->u", vectors[:, 0], vectors[:, 1])
    assert np.median(cos) < 0.95, np.median(cos)  # interests are not copies of one vector
    cold = Query(np.array([-1]), sp.csr_matrix((1, N_ITEMS), dtype=np.float32), None)
    cold_vectors, cold_active = mind.interest_vectors(cold)
    assert cold_active.tolist() == [[True, False, False]] and np.isfinite(cold_vectors).all()


def test_index_search_per_interest_matches_exact_scoring(world: RecallData, mind: Any) -> None:
    query, _ = held_out(world)
    query = query.rows(0, 40)
    exact = mind.recommend(query, 20)
    mind.build_index(IndexConfig(kind="flat"))
    try:
        searched = mind.recommend(query, 20)
    finally:
        mind.vector_index = None
    np.testing.assert_array_equal(searched.items, exact.items)
    np.testing.assert_allclose(searched.scores, exact.scores, rtol=0, atol=1e-5)


def test_save_load_round_trip(world: RecallData, mind: Any, tmp_path: Path) -> None:
    mind.save(tmp_path / "mind")
    loaded = build_channel(ChannelConfig(name="mind", **FAST, interests=3))
    loaded.load(tmp_path / "mind")
    query, _ = held_out(world)
    np.testing.assert_array_equal(loaded.recommend(query, 50).items, mind.recommend(query, 50).items)


def test_capsule_routing_masks_padding_and_inactive_capsules() -> None:
    torch.manual_seed(0)
    routing = CapsuleRouting(4, 4, capsules=3, iterations=3)
    behaviors = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    out = routing(behaviors, mask, torch.tensor([1, 3]))
    assert out.shape == (2, 3, 4)
    assert torch.all(out[0, 1:] == 0) and torch.all(out[1].norm(dim=1) > 0)
    assert torch.all(out.norm(dim=2) < 1)  # squashed
    changed = behaviors.clone()
    changed[0, 3:] = 100.0  # padding rows do not move row 0's capsule
    torch.testing.assert_close(routing(changed, mask, torch.tensor([1, 3]))[0], out[0])
