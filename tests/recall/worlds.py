"""Small planted recall worlds shared by the channel tests (each asserts what a channel learns from them)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from recforge.recall.channels.base import Query
from recforge.recall.interactions import Interactions, RecallData, Vocab

N_USERS, N_ITEMS, N_CLUSTERS, PER_USER = 400, 200, 8, 25


def clustered(seed: int = 0) -> RecallData:
    """8 clusters of users and items; 85% of a user's 25 items from its cluster (Zipf popularity); 8:1:1."""
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, N_CLUSTERS, N_USERS)
    item_cluster = np.arange(N_ITEMS) % N_CLUSTERS
    popularity = 1.0 / (1.0 + rng.permutation(N_ITEMS)) ** 0.7
    parts: list[list[tuple[int, int]]] = [[], [], []]
    for user in range(N_USERS):
        weights = popularity * np.where(item_cluster == user_cluster[user], 0.85 * N_CLUSTERS, 0.15)
        items = rng.choice(N_ITEMS, PER_USER, replace=False, p=weights / weights.sum())
        for item, split in zip(items, rng.permutation(np.repeat([0, 1, 2], [PER_USER - 6, 3, 3])), strict=True):
            parts[split].append((user, int(item)))

    def part(pairs: list[tuple[int, int]]) -> Interactions:
        a = np.array(pairs)
        return Interactions(a[:, 0], a[:, 1], np.ones(len(a), np.float32), None, N_USERS, N_ITEMS)

    vocab = Vocab(pa.array(np.arange(N_USERS)), pa.array(np.arange(N_ITEMS)))
    return RecallData(vocab, part(parts[0]), part(parts[1]), part(parts[2]))


def held_out(data: RecallData) -> tuple[Query, sp.csr_matrix]:
    """Test users' query (train history, train + valid masked) and their held-out items."""
    assert data.test is not None
    truth = data.test.binary()
    users = np.flatnonzero(np.diff(truth.indptr))
    return Query(users, data.train.matrix[users], data.seen_before("test")[users]), truth[users]
