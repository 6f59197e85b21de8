"""Recall core: metrics against hand-computed cases, interaction building, masking, merge, EASE, save/load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from recforge.config.recall import ChannelConfig, InteractionsConfig, RecallConfig
from recforge.data.raw import RawTables
from recforge.errors import ConfigError, DataError
from recforge.recall.build import build_recall_data, k_core
from recforge.recall.channels import FitContext, Query, build_channel
from recforge.recall.channels.base import Candidates, masked_topk
from recforge.recall.interactions import Interactions, Vocab
from recforge.recall.merge import FALLBACK, merge_candidates
from recforge.recall.metrics import topk_metrics
from recforge.recall.model import RecallModel


def test_metrics_match_hand_computation() -> None:
    # user 0 holds out {1, 4, 7}; list [4, 2, 7, 9]: hits at ranks 1 and 3
    # user 1 holds out {5}; list [0, 1, 3, 5]: hit at rank 4 only
    truth = sp.csr_matrix((np.ones(4), ([0, 0, 0, 1], [1, 4, 7, 5])), shape=(3, 10))  # user 2: nothing held out
    ranked = np.array([[4, 2, 7, 9], [0, 1, 3, 5], [1, 2, 3, 4]])
    m = topk_metrics(ranked, truth, [2, 4], n_items=10)
    assert m["users"] == 2
    assert m["recall@2"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["recall@4"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["precision@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert m["hit@2"] == pytest.approx(0.5) and m["hit@4"] == pytest.approx(1.0)
    assert m["mrr@4"] == pytest.approx((1 + 1 / 4) / 2)
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@4"] == pytest.approx((dcg0 / idcg0 + (1 / math.log2(5)) / 1) / 2)
    assert m["ndcg@2"] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 0) / 2)
    assert m["coverage@2"] == pytest.approx(len({4, 2, 0, 1}) / 10)


def test_metrics_ignore_padding_and_reject_short_lists() -> None:
    truth = sp.csr_matrix(np.array([[0, 1, 0]]))
    m = topk_metrics(np.array([[-1, -1]]), truth, [2], n_items=3)
    assert m["recall@2"] == 0.0 and m["coverage@2"] == 0.0
    with pytest.raises(ConfigError, match="k=5"):
        topk_metrics(np.array([[1, 2]]), truth, [5])


def test_masked_topk_excludes_and_pads() -> None:
    scores = np.array([[0.1, 0.9, 0.5, -np.inf], [3.0, 2.0, 1.0, 0.0]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 1, 1, 0]]))
    top = masked_topk(scores, 3, exclude)
    assert top.items.tolist() == [[2, 0, -1], [3, -1, -1]]
    ties = masked_topk(np.zeros((1, 4), np.float32), 2, None)
    assert ties.items.tolist() == [[0, 1]]  # equal scores: lower code first, deterministic


def _behavior() -> RawTables:
    rows = [  # (user, item, rating, t)
        ("a", "x", 5, 1), ("a", "y", 4, 2), ("a", "y", 5, 3), ("a", "z", 1, 4),
        ("b", "x", 4, 1), ("b", "z", 5, 2), ("c", "w", 5, 1), ("c", "x", 0, 2),
    ]  # fmt: skip
    users, items, ratings, times = zip(*rows, strict=True)
    table = pa.table({"user_id": users, "item_id": items, "rating": ratings, "timestamp": times})
    return RawTables(behavior=table, origin="hand.csv")


def test_build_counts_every_removed_row() -> None:
    cfg = InteractionsConfig(positive="rating >= 4", weight="rating", split={"method": "random", "ratios": [1, 0, 0]})
    data = build_recall_data(_behavior(), cfg)
    c = data.counts
    assert c["rows"] == 8 and c["filtered_out"] == 2  # (a,z,1) and (c,x,0)
    assert c["duplicate_rows_merged"] == 1  # (a,y) twice -> weight max 5
    assert c["train"] == 5 and c["valid"] == 0 and data.valid is None
    assert data.vocab.n_users == 3 and data.vocab.n_items == 4  # w, x, y, z (z via b)
    a, y = data.vocab.encode_users(["a"])[0], data.vocab.encode_items(["y"])[0]
    assert data.train.matrix[a, y] == 5.0
    assert data.vocab.encode_users(["nobody"]).tolist() == [-1]


def test_build_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="leaves no interactions"):
        build_recall_data(_behavior(), InteractionsConfig(positive="rating > 99"))
    with pytest.raises(ConfigError, match="rating_typo"):
        build_recall_data(_behavior(), InteractionsConfig(positive="rating_typo > 1"))
    with pytest.raises(DataError, match="no column 'uid'"):
        build_recall_data(_behavior(), InteractionsConfig(user_column="uid"))
    with pytest.raises(DataError, match="int64"):
        Vocab(pa.array([1, 2]), pa.array([1])).encode_users(["not-a-number"])


def test_nonpositive_weights_are_counted_not_kept() -> None:
    data = build_recall_data(_behavior(), InteractionsConfig(weight="rating - 1", split={"ratios": [1, 0, 0]}))
    assert data.counts["null_id_or_nonpositive_weight"] == 2  # rating 1 -> 0 and rating 0 -> -1
    assert (data.train.weights > 0).all()


def test_k_core_is_iterative() -> None:
    # user u3 has 2 rows but item i9 has 1, dropping it leaves u3 with 1 row -> u3 goes too
    table = pa.table({"user": ["u1", "u1", "u2", "u2", "u3", "u3"], "item": ["i1", "i2", "i1", "i2", "i1", "i9"]})
    assert k_core(table, 2, 2).tolist() == [True, True, True, True, False, False]


def test_recbole_general_preset_and_floor_rounding() -> None:
    rng = np.random.default_rng(0)
    n_users, per_user = 30, 15
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(20, per_user, replace=False) for _ in range(n_users)])
    table = pa.table({"user_id": users, "item_id": items, "rating": np.full(len(users), 4.0), "timestamp": users})
    cfg = InteractionsConfig(preset="recbole_general")
    assert cfg.min_user_interactions == 10 and cfg.split.holdout_rounding == "floor"
    data = build_recall_data(RawTables(behavior=table), cfg)
    per_user_valid = np.bincount(data.valid.users, minlength=data.vocab.n_users) if data.valid else None
    assert per_user_valid is not None
    kept = data.train.user_counts() + per_user_valid + data.test.user_counts()  # type: ignore[union-attr]
    expected_holdout = np.floor(kept * 0.1)
    assert (per_user_valid == expected_holdout).all()


def test_a_preset_merges_with_overrides_of_its_nested_keys() -> None:
    cfg = InteractionsConfig(preset="recbole_general", split={"seed": 7}, min_item_interactions=2)  # type: ignore[arg-type]
    assert (cfg.split.seed, cfg.split.holdout_rounding, cfg.split.method) == (7, "floor", "per_user")
    assert (cfg.min_item_interactions, cfg.min_user_interactions, cfg.positive) == (2, 10, "rating >= 3")


def test_merge_dedupes_keeps_provenance_and_fills_cold_users() -> None:
    a = Candidates(np.array([[1, 2, 3], [-1, -1, -1]]), np.ones((2, 3), np.float32))
    b = Candidates(np.array([[3, 4, 5], [-1, -1, -1]]), np.ones((2, 3), np.float32))
    exclude = sp.csr_matrix((np.ones(1), ([1], [9])), shape=(2, 10))
    merged = merge_candidates(
        [("a", a, 1.0), ("b", b, 0.5)], k=5, popular=np.array([9, 3, 8, 7, 1, 0]), exclude=exclude
    )
    assert merged.items[0].tolist() == [3, 1, 2, 4, 5]  # 3 is in both lists: 1/63 + 0.5/61 beats 1/61
    assert merged.channel_names(0, 0) == ["a", "b"] and merged.channel_names(0, 1) == ["a"]
    assert merged.items[1].tolist() == [3, 8, 7, 1, 0]  # cold user: popular items, excluded 9 skipped
    assert merged.channel_names(1, 0) == [FALLBACK]
    priority = merge_candidates([("a", a, 1.0), ("b", b, 1.0)], k=5, strategy="priority")
    assert priority.items[0].tolist() == [1, 2, 3, 4, 5]


def _planted(n_users: int = 400, n_items: int = 200, groups: int = 8, seed: int = 0) -> Interactions:
    """Users like items of their own group: the structure every channel should find."""
    rng = np.random.default_rng(seed)
    group_of_user = rng.integers(0, groups, n_users)
    users, items = [], []
    for u in range(n_users):
        own = np.flatnonzero(np.arange(n_items) % groups == group_of_user[u])
        picks = rng.choice(own, 12, replace=False)
        noise = rng.choice(n_items, 2, replace=False)
        users += [u] * 14
        items += [*picks, *noise]
    pairs = np.unique(np.array([users, items]).T, axis=0)
    return Interactions(pairs[:, 0], pairs[:, 1], np.ones(len(pairs), np.float32), None, n_users, n_items)


def test_ease_matches_closed_form_and_channels_beat_popular(tmp_path: Path) -> None:
    inter = _planted()
    rng = np.random.default_rng(1)
    holdout = rng.random(len(inter)) < 0.2
    train = Interactions(inter.users[~holdout], inter.items[~holdout], inter.weights[~holdout], None, 400, 200)
    test = Interactions(inter.users[holdout], inter.items[holdout], inter.weights[holdout], None, 400, 200)
    cfg = RecallConfig.model_validate(
        {"channels": [{"name": "ease", "reg_weight": 10.0}, {"name": "als", "factors": 8}, {"name": "popular"}]}
    )
    vocab = Vocab(pa.array(np.arange(400)), pa.array(np.arange(200)))
    model = RecallModel.fit(cfg, train, FitContext(vocab=vocab, progress=False))
    x = train.binary().toarray()
    p = np.linalg.inv(x.T @ x + 10.0 * np.eye(200))
    b = np.eye(200) - p / np.diag(p)
    np.testing.assert_allclose(model.channels["ease"].weights.numpy(), b, atol=1e-5)  # type: ignore[attr-defined]

    users = np.arange(400)
    query = model.query(users, exclude=train.binary())
    truth = test.binary()
    recall = {
        name: topk_metrics(cand.items, truth, [10])["recall@10"]
        for name, cand in model.channel_candidates(query, 10).items()
    }
    assert recall["popular"] < 0.15
    assert recall["ease"] > 0.45 and recall["als"] > 0.35

    model.save(tmp_path / "recall")
    loaded = RecallModel.load(tmp_path / "recall")
    again = loaded.recall(loaded.query(users, exclude=train.binary()))
    first = model.recall(query)
    assert np.array_equal(first.items, again.items) and np.array_equal(first.sources, again.sources)


def recbole_ease_scores(x: sp.csr_matrix, reg_weight: float) -> np.ndarray:
    """RecBole 1.2.1 EASE, step for step in numpy: G = XᵀX + λI, P = G⁻¹, B = P / -diag(P), diag(B) = 0, XB."""
    gram = (x.T @ x).toarray().astype(np.float64) + reg_weight * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return np.asarray(x @ b)


def test_ease_scores_equal_recboles_closed_form_at_its_default() -> None:
    inter = _planted(n_users=120, n_items=96)
    channel = build_channel(ChannelConfig(name="ease"))
    assert channel.options.reg_weight == 250.0  # type: ignore[attr-defined]  # RecBole EASE's default
    vocab = Vocab(pa.array(np.arange(120)), pa.array(np.arange(96)))
    channel.fit(inter, FitContext(vocab=vocab, progress=False))
    x = inter.binary()
    ours = channel.scores(Query(np.arange(120), x))  # type: ignore[attr-defined]
    np.testing.assert_allclose(ours, recbole_ease_scores(x, 250.0), rtol=0, atol=1e-6)


def test_cold_users_get_fallback_and_als_folds_in_history() -> None:
    inter = _planted()
    cfg = RecallConfig.model_validate({"channels": [{"name": "als", "factors": 8}, {"name": "ease"}]})
    vocab = Vocab(pa.array(np.arange(400)), pa.array(np.arange(200)))
    model = RecallModel.fit(cfg, inter, FitContext(vocab=vocab, progress=False))
    history = inter.binary()[[5]]
    cold = Query(np.array([-1]), history.tocsr(), None)
    als = model.channels["als"].recommend(cold, 10)
    known = model.channels["als"].recommend(Query(np.array([5]), history.tocsr(), None), 10)
    assert len(set(als.items[0]) & set(known.items[0])) >= 7  # folded-in factors land near the trained ones
    empty = model.recall(model.query(np.array([-1])), k=5)
    assert (empty.items[0] >= 0).all() and empty.channel_names(0, 0) == [FALLBACK]


def test_channel_options_are_validated() -> None:
    from recforge.config.recall import ChannelConfig
    from recforge.recall.channels import build_channel

    with pytest.raises(ConfigError, match=r"recall.channels\[0\].reg_weigth"):
        build_channel(ChannelConfig.model_validate({"name": "ease", "reg_weigth": 1}))
    with pytest.raises(ConfigError, match="did you mean 'ease'"):
        build_channel(ChannelConfig.model_validate({"name": "easy"}))
