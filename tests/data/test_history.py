"""Behavior histories: exact contents (same user, strictly earlier, newest last, cut to max_len)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recforge.config.schema import DataConfig, HistoryConfig
from recforge.data import build_samples
from recforge.data.history import add_history, history_column
from recforge.data.movielens import load_movielens
from recforge.errors import ConfigError


def behavior() -> pa.Table:
    return pa.table(
        {
            "user_id": ["a", "a", "b", "a", "a", "b", "a"],
            "item_id": ["i1", "i2", "i9", "i3", "i4", "i8", "i5"],
            "timestamp": [10, 20, 15, 20, 30, 5, 40],
            "click": [1, 0, 1, 1, 1, 1, 0],
        }
    )


def test_history_holds_earlier_items_of_the_same_user_newest_last() -> None:
    events = behavior()
    out = history_column(events, events, HistoryConfig(max_len=10)).to_pylist()
    assert out == [
        [],  # a@10
        ["i1"],  # a@20: i3 shares the timestamp, so neither sees the other
        ["i8"],  # b@15
        ["i1"],  # a@20
        ["i1", "i2", "i3"],  # a@30
        [],  # b@5
        ["i1", "i2", "i3", "i4"],  # a@40
    ]


def test_history_keeps_the_newest_max_len_and_applies_where() -> None:
    events = behavior()
    cut = history_column(events, events, HistoryConfig(max_len=2)).to_pylist()
    assert cut[6] == ["i3", "i4"] and cut[4] == ["i2", "i3"]
    clicked = history_column(events, events, HistoryConfig(max_len=10, where="click = 1")).to_pylist()
    assert clicked[6] == ["i1", "i3", "i4"] and clicked[4] == ["i1", "i3"]


def test_history_errors_name_the_yaml_path() -> None:
    events = behavior()
    with pytest.raises(ConfigError, match=r"data.history.where"):
        history_column(events, events, HistoryConfig(where="nope > 1"))
    with pytest.raises(ConfigError, match=r"no column 'ts'"):
        history_column(events, events, HistoryConfig(time="ts"))
    assert add_history(events, events, HistoryConfig(column="h")).column_names[-1] == "h"


def test_ml100k_history_matches_a_brute_force_scan(ml100k_dir: Path, tmp_path: Path) -> None:
    cfg = DataConfig.model_validate(
        {
            "source": "movielens",
            "path": str(ml100k_dir),
            "label_rule": {"positive": "rating >= 4", "drop": "rating = 3"},
            "history": {"max_len": 20},
        }
    )
    samples = build_samples(cfg, tmp_path)
    raw = load_movielens(str(ml100k_dir)).behavior
    users = np.asarray(raw["user_id"].to_pylist())
    items = np.asarray(raw["item_id"].to_pylist())
    times = raw["timestamp"].to_numpy()
    import pyarrow.parquet as pq

    table = pq.read_table(samples.test)
    assert table.num_rows == 7325  # histories never add or drop rows (nor move rows: lists are not hashed)
    rows = table.slice(0, 400).to_pylist()
    for row in rows:
        mine = (users == row["user_id"]) & (times < row["timestamp"])
        order = np.argsort(times[mine], kind="stable")  # ties keep file order, as the builder does
        expected = items[mine][order][-20:].tolist()
        assert row["history"] == expected, row
    lengths = [len(r["history"]) for r in rows]
    assert max(lengths) == 20 and min(lengths) < 20
