"""The request path's cheap forms give what the per-item forms gave: candidate ids and channel names, store rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from recforge.recall.merge import names_of
from recforge.serving.candidates import CandidateList
from recforge.serving.store import EmbeddedStore


def test_candidate_list_spells_ids_and_channels_of_the_picked_items() -> None:
    channels = ("als", "itemcf", "popular_fallback")
    recall = CandidateList(np.array([7, 3, 9, 4]), np.array([1, 3, 4, 2]), channels)
    picked = recall.take(np.array([2, 0]))
    assert picked.id_list() == [9, 7] and all(type(i) is int for i in picked.id_list())
    assert picked.channel_names() == [["popular_fallback"], ["als"]]
    assert recall.take(np.array([1])).channel_names() == [list(names_of(channels, 3))] == [["als", "itemcf"]]
    asked = CandidateList.from_request([5, "x", 6])
    assert asked.take(np.array([1, 2])).id_list() == ["x", 6]
    assert asked.channel_names() == [["request"]] * 3
    assert len(recall.take(np.array([], np.int64))) == 0


def test_embedded_store_reads_one_row_as_a_take_would() -> None:
    table = pa.table(
        {
            "user_id": [1, 2, 3],
            "tags": [["a"], None, ["b", "c"]],
            "seen": [dt.datetime(2024, 1, 1), None, dt.datetime(2024, 2, 1)],
            "score": [0.5, None, 1.5],
        }
    )
    store = EmbeddedStore({"user": (table, "user_id")})
    rows = table.to_pylist()
    for i, key in enumerate([1, 2, 3]):
        assert store.get("user", [key]) == [rows[i]]
    assert store.get("user", [3, 99, 1]) == [rows[2], None, rows[0]]
