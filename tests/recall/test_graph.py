"""graphsage channel: learns planted clusters from the graph alone, saves and loads exactly, folds in cold users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from worlds import N_ITEMS, clustered, held_out

from recforge.config.recall import ChannelConfig
from recforge.errors import ConfigError, RecforgeError
from recforge.models.recall import bipartite_adjacency
from recforge.recall.channels.base import CHANNELS, FitContext, Query, RecallChannel, build_channel, masked_topk
from recforge.recall.channels.graph import GraphSAGEChannel
from recforge.recall.interactions import RecallData
from recforge.recall.metrics import topk_metrics

FAST = {"epochs": 4, "batch_size": 256, "threads": 1, "patience": 2, "dim": 32}


@pytest.fixture(scope="module")
def data() -> RecallData:
    return clustered()


def recall_at_10(ranked: np.ndarray, truth: sp.csr_matrix) -> float:
    return topk_metrics(ranked, truth, [10], ["recall"])["recall@10"]


def fit(data: RecallData, **options: Any) -> GraphSAGEChannel:
    channel = build_channel(ChannelConfig(name="g", type="graphsage", **{**FAST, **options}))
    assert isinstance(channel, GraphSAGEChannel)
    channel.fit(data.train, FitContext(vocab=data.vocab, valid=data.valid, seed=3, progress=False))
    return channel


@pytest.fixture(scope="module")
def trained(data: RecallData) -> GraphSAGEChannel:
    return fit(data)


def test_registered() -> None:
    assert CHANNELS.get("graphsage") is GraphSAGEChannel


@pytest.mark.parametrize("options", [{}, {"aggregator": "sage"}, {"loss": "bpr", "lr": 0.01, "epochs": 6}])
def test_learns_the_planted_clusters(data: RecallData, trained: GraphSAGEChannel, options: dict[str, Any]) -> None:
    # Measured on this world: popularity 0.153; lightgcn/in-batch 0.670, sage 0.680, lightgcn/bpr 0.672.
    query, truth = held_out(data)
    counts = data.train.item_counts().astype(np.float32)
    popular = recall_at_10(masked_topk(np.tile(counts, (len(query), 1)), 10, query.exclude).items, truth)
    channel = fit(data, **options) if options else trained
    learned = recall_at_10(channel.recommend(query, 10).items, truth)
    assert 0.1 < popular < 0.2, popular
    assert learned > 0.55 and learned > 3 * popular, (learned, popular)


def test_save_load_round_trip_is_exact(data: RecallData, trained: GraphSAGEChannel, tmp_path: Path) -> None:
    query, _ = held_out(data)
    before = trained.recommend(query, 20)
    trained.save(tmp_path / "g")
    loaded = build_channel(ChannelConfig(name="g", type="graphsage", **FAST))
    loaded.load(tmp_path / "g")
    after = loaded.recommend(query, 20)
    np.testing.assert_array_equal(after.items, before.items)
    np.testing.assert_array_equal(after.scores, before.scores)


def test_cold_user_is_folded_in_from_history(data: RecallData, trained: GraphSAGEChannel) -> None:
    history = sp.vstack([data.train.matrix[5], sp.csr_matrix((1, N_ITEMS), dtype=np.float32)]).tocsr()
    cold = trained.recommend(Query(np.array([-1, -1]), history, history), 10)
    expected = trained.item_vectors()[history[0].indices].mean(axis=0) @ trained.item_vectors().T
    ranked = masked_topk(expected[None, :], 10, history[0]).items[0]
    np.testing.assert_array_equal(cold.items[0], ranked)
    assert (cold.items[1] == -1).all() and np.isneginf(cold.scores[1]).all()  # no history: nothing to recall


def test_adjacency_means_and_symmetric_norms() -> None:
    m = sp.csr_matrix(np.array([[1.0, 1.0], [0.0, 1.0]]))
    mean = bipartite_adjacency(m, "mean").to_dense()
    torch.testing.assert_close(mean.sum(dim=1), torch.ones(4))  # each node averages its neighbours
    sym = bipartite_adjacency(m, "symmetric").to_dense()
    torch.testing.assert_close(sym, sym.T)
    assert sym[0, 3].item() == pytest.approx(1 / np.sqrt(2 * 2))  # user 0 (degree 2) - item 1 (degree 2)


@pytest.mark.parametrize("options", [{"layers": 4}, {"aggregator": "gat"}, {"loss": "pairwise"}, {"dims": 8}])
def test_bad_options_raise_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"graphsage"):
        build_channel(ChannelConfig(name="g", type="graphsage", **options))


def test_unfitted_channel_says_so(tmp_path: Path) -> None:
    channel: RecallChannel = build_channel(ChannelConfig(name="g", type="graphsage"))
    with pytest.raises(RecforgeError, match="not fitted"):
        channel.save(tmp_path)
