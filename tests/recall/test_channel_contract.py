"""Contract every registered recall channel passes with its default options: fit on a tiny planted world,
recommend k items per user best first (never an excluded one, -1 padding only after the real ones, cold users
answered), and save / load into a fresh channel that recommends the same. Channels are enrolled from CHANNELS,
so a new channel is checked without editing this file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
import torch

from recforge.config.features import IdFeatureConfig
from recforge.config.recall import ChannelConfig
from recforge.recall.channels import CHANNELS, Candidates, FitContext, Query, build_channel
from recforge.recall.channels.base import RecallChannel
from recforge.recall.interactions import Interactions, Vocab

N_USERS, N_ITEMS, GROUPS, K = 48, 30, 3, 5


def planted(seed: int = 0) -> Interactions:
    """Each user took 6 items of their own group (items of group g: code % GROUPS == g) and one other."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(N_USERS):
        own = np.flatnonzero(np.arange(N_ITEMS) % GROUPS == user % GROUPS)
        picks = [*rng.choice(own, 6, replace=False), rng.integers(0, N_ITEMS)]
        users += [user] * len(picks)
        items += picks
    pairs = np.unique(np.array([users, items]).T, axis=0)
    times = np.arange(len(pairs), dtype=np.int64) + 1_700_000_000
    return Interactions(pairs[:, 0], pairs[:, 1], np.ones(len(pairs), np.float32), times, N_USERS, N_ITEMS)


def context(train: Interactions) -> FitContext:
    """Vocab, side tables with a group column and id features: what any channel may ask for."""
    users = pa.table({"user_id": np.arange(N_USERS), "group": np.arange(N_USERS) % GROUPS})
    items = pa.table({"item_id": np.arange(N_ITEMS), "genre": np.arange(N_ITEMS) % GROUPS})
    features = [
        IdFeatureConfig(name="user_id", kind="id", side="user"),
        IdFeatureConfig(name="group", kind="id", side="user"),
        IdFeatureConfig(name="item_id", kind="id", side="item"),
        IdFeatureConfig(name="genre", kind="id", side="item"),
    ]
    vocab = Vocab(users["user_id"].combine_chunks(), items["item_id"].combine_chunks())
    return FitContext(
        vocab=vocab, valid=train, users=users, items=items, features=features, embedding_dim=8, progress=False
    )


def query(train: Interactions) -> Query:
    """Every user with their history excluded, then a cold user with a history and one with none."""
    seen = train.binary().tocsr()
    history = sp.vstack([seen, seen[[4]], sp.csr_matrix((1, N_ITEMS), dtype=seen.dtype)]).tocsr()
    users = np.concatenate([np.arange(N_USERS), [-1, -1]])
    return Query(users, history, history)


def check_candidates(got: Candidates, q: Query) -> None:
    """k per user, best first, codes in range, no excluded item, -1 (score -inf) only after the real ones."""
    assert got.items.shape == got.scores.shape == (len(q), K) and got.items.dtype == np.int64
    real = got.items >= 0
    assert (got.items < N_ITEMS).all() and (np.isneginf(got.scores) | real).all()
    assert (np.diff(real.astype(int), axis=1) <= 0).all()  # padding only at the end
    assert q.exclude is not None
    for row in range(len(q)):
        assert (np.diff(got.scores[row][real[row]]) <= 0).all(), row
        excluded = set(q.exclude[row].indices.tolist())
        assert not excluded & set(got.items[row][real[row]].tolist()), row
    assert real[:N_USERS].all()  # every known user gets k of the items it has not seen


def fresh(name: str) -> RecallChannel:
    torch.manual_seed(1)
    return build_channel(ChannelConfig.model_validate({"name": name}))


@pytest.mark.parametrize("name", CHANNELS.names())
def test_every_channel_fits_recommends_unseen_items_and_round_trips(name: str, tmp_path: Path) -> None:
    train = planted()
    torch.manual_seed(0)
    channel = build_channel(ChannelConfig.model_validate({"name": name}))
    channel.fit(train, context(train))
    q = query(train)
    got = channel.recommend(q, K)
    check_candidates(got, q)

    channel.save(tmp_path / name)
    loaded = fresh(name)
    loaded.load(tmp_path / name)
    again = loaded.recommend(q, K)
    np.testing.assert_array_equal(again.items, got.items)
    np.testing.assert_allclose(again.scores, got.scores, rtol=0, atol=1e-6)
