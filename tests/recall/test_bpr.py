"""bpr channel (torch BPR-MF): learns planted clusters, never recommends a seen item, keeps the best epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from worlds import N_ITEMS, clustered, held_out

from recforge.config.recall import ChannelConfig
from recforge.recall.channels.base import CHANNELS, FitContext, Query, build_channel, masked_topk
from recforge.recall.channels.bpr import BPRChannel
from recforge.recall.interactions import RecallData
from recforge.recall.metrics import topk_metrics
from recforge.recall.retrieval import RetrievalTrainer

FAST = {"lr": 0.02, "batch_size": 256, "epochs": 40, "patience": 3, "dim": 32, "threads": 1}


@pytest.fixture(scope="module")
def data() -> RecallData:
    return clustered()


def fit(data: RecallData, **options: Any) -> BPRChannel:
    channel = build_channel(ChannelConfig(name="b", type="bpr", **{**FAST, **options}))
    assert isinstance(channel, BPRChannel)
    channel.fit(data.train, FitContext(vocab=data.vocab, valid=data.valid, seed=3, progress=False))
    return channel


@pytest.fixture(scope="module")
def trained(data: RecallData) -> BPRChannel:
    return fit(data)


def test_bpr_is_the_torch_channel_with_recboles_defaults() -> None:
    assert CHANNELS.get("bpr") is BPRChannel
    options = build_channel(ChannelConfig(name="bpr")).options
    assert (options.dim, options.lr, options.batch_size, options.epochs) == (64, 1e-3, 2048, 300)
    assert options.weight_decay == 1e-5  # RecBole's BPR has none; +0.01 NDCG@10 on ml-100k (bench/RESULTS.md)
    assert (options.loss, options.monitor, options.patience) == ("bpr", "ndcg@10", 10)


def test_learns_the_planted_clusters(data: RecallData, trained: BPRChannel) -> None:
    # Measured on this world (seed 3): popularity ndcg@10 0.119, bpr 0.489 (best epoch 3 of 6).
    query, truth = held_out(data)
    counts = data.train.item_counts().astype(np.float32)
    popular = topk_metrics(masked_topk(np.tile(counts, (len(query), 1)), 10, query.exclude).items, truth, [10])
    learned = topk_metrics(trained.recommend(query, 10).items, truth, [10])
    assert learned["ndcg@10"] > 0.35 and learned["ndcg@10"] > 3 * popular["ndcg@10"], (learned, popular)


def test_never_recommends_a_seen_item(data: RecallData, trained: BPRChannel) -> None:
    query, _ = held_out(data)
    ranked = trained.recommend(query, N_ITEMS).items
    assert query.exclude is not None
    for row in range(len(query)):
        seen = set(query.exclude[row].indices.tolist())
        returned = set(ranked[row][ranked[row] >= 0].tolist())
        assert returned == set(range(N_ITEMS)) - seen  # every unseen item, no seen one


def test_sampled_negatives_are_unseen(data: RecallData, trained: BPRChannel) -> None:
    seen = data.train.binary()
    trainer = RetrievalTrainer(trained.model, trained.model, trained.options, n_items=N_ITEMS, seed=0, seen=seen)
    users = np.repeat(np.arange(seen.shape[0]), 50)
    negatives = trainer._unseen_negatives(users)
    assert not np.asarray(seen[users, negatives]).any()
    assert len(np.unique(negatives)) > 0.9 * N_ITEMS  # uniform over the catalog, not a few items


def test_stops_early_and_keeps_the_best_epoch(data: RecallData, trained: BPRChannel) -> None:
    result = trained.result
    assert result is not None and result.best_epoch < result.epochs < FAST["epochs"]
    assert result.epochs - result.best_epoch == FAST["patience"]
    validate = trained.validator(data.train, data.valid, trained.options, lambda: None)
    assert validate is not None
    assert validate()["ndcg@10"] == pytest.approx(result.best["ndcg@10"], abs=1e-9)  # the restored weights


def test_save_load_round_trip_and_cold_users(data: RecallData, trained: BPRChannel, tmp_path: Path) -> None:
    query, _ = held_out(data)
    trained.save(tmp_path / "b")
    loaded = build_channel(ChannelConfig(name="b", type="bpr", **FAST))
    loaded.load(tmp_path / "b")
    np.testing.assert_array_equal(loaded.recommend(query, 20).items, trained.recommend(query, 20).items)
    history = sp.vstack([data.train.matrix[5], sp.csr_matrix((1, N_ITEMS), dtype=np.float32)]).tocsr()
    cold = loaded.recommend(Query(np.array([-1, -1]), history, history), 10)
    items = loaded.item_vectors()
    expected = masked_topk((items[history[0].indices].mean(axis=0) @ items.T)[None, :], 10, history[0]).items[0]
    np.testing.assert_array_equal(cold.items[0], expected)
    assert (cold.items[1] == -1).all()  # no history, no vector: nothing to recall
