"""Sampled negatives: exact counts, no seen item, rows placed after their positive and sharing its split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recforge.config import build_config
from recforge.config.negatives import NegativesConfig
from recforge.config.split import SplitConfig
from recforge.data.negatives import SAMPLED, add_negatives, draw_items, split_with_negatives
from recforge.data.raw import RawTables
from recforge.errors import ConfigError


def test_uniform_draws_avoid_seen_items_and_cover_the_rest() -> None:
    users = np.array([0, 0, 0, 1])
    items = np.array([0, 1, 2, 3])  # user 0 saw items 0-2, so only item 3 is left for it
    source, drawn, counts = draw_items(users, items, 4, np.arange(4), NegativesConfig(per_positive=5, seed=1))
    assert source.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    assert (drawn[:15] == 3).all() and (drawn[15:] != 3).all()
    assert counts["negatives_sampled"] == 20 and counts["negatives_short"] == 0
    assert counts["negatives_redrawn_seen"] > 0


def test_a_user_who_saw_every_item_gets_no_negatives_and_they_are_counted() -> None:
    users, items = np.array([0, 0, 1]), np.array([0, 1, 0])
    _, drawn, counts = draw_items(users, items, 2, np.arange(3), NegativesConfig(per_positive=2, seed=0))
    assert counts["negatives_sampled"] == 2 and counts["negatives_short"] == 4 and (drawn == 1).all()


def test_sampled_rows_follow_their_positive_and_share_its_split() -> None:
    log = pa.table({"user_id": [1, 1, 2, 3], "item_id": ["a", "b", "c", "d"], "ts": [1, 2, 3, 4]})
    raw = add_negatives(RawTables(log), NegativesConfig(per_positive=3, seed=0), "click")
    table = raw.behavior
    assert table.num_rows == 16 and table["click"].to_pylist() == [1, 0, 0, 0] * 4
    assert table["ts"].to_pylist() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    assert raw.counts["negatives_sampled"] == 12 and raw.counts["log_positive"] == 4
    table, codes = split_with_negatives(table, SplitConfig(ratios=(0.5, 0.25, 0.25), seed=0), "log")
    assert SAMPLED not in table.column_names and table.num_rows == 16
    assert (codes.reshape(4, 4) == codes[::4, None]).all()


def test_negatives_with_a_label_rule_is_a_config_error() -> None:
    tree = {"data": {"source": "synthetic", "label_rule": {"positive": "click = 1"}, "negatives": {}}}
    with pytest.raises(ConfigError, match=r"data\.negatives: sampled negatives are for a log of positives"):
        build_config(tree)
