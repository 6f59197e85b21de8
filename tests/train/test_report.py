"""Report pieces: config flattening and diff, inline SVG charts, tables."""

from __future__ import annotations

from recforge.train.report import config_diff, flatten, html_table, page
from recforge.train.svg import bar_chart, line_chart


def test_flatten_keys_named_lists_by_name() -> None:
    tree = {"train": {"optimizer": {"lr": 0.01}}, "features": [{"name": "user_id", "dim": 8}], "tags": [1, 2]}
    assert flatten(tree) == {
        "train.optimizer.lr": 0.01,
        "features[user_id].name": "user_id",
        "features[user_id].dim": 8,
        "tags": [1, 2],
    }


def test_config_diff_lists_changed_added_and_removed_paths() -> None:
    base = {"model": {"deep": {"hidden": [128], "dropout": 0.2}}, "features": [{"name": "a"}, {"name": "b"}]}
    other = {"model": {"deep": {"hidden": [64], "dropout": 0.2}, "x": 1}, "features": [{"name": "a"}]}
    assert config_diff(base, other) == [
        ("model.deep.hidden", [128], [64]),
        ("features[b].name", "b", None),
        ("model.x", None, 1),
    ]
    assert config_diff(base, base) == []


def test_line_chart_draws_one_point_per_finite_value() -> None:
    svg = line_chart({"a": [(1, 0.5), (2, 0.6), (3, float("nan"))], "b": [(1, 0.4)]}, "auc", "epoch")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<circle") == 3 and svg.count("<polyline") == 2
    assert line_chart({"a": []}, "empty", "epoch") == "<p>empty: no data</p>"


def test_bar_chart_and_table_escape_text() -> None:
    svg = bar_chart(["<f>", "g"], [0.5, -0.25], "importance")
    assert "&lt;f&gt;" in svg and svg.count("<rect") == 2
    table = html_table(["name", "value"], [["a&b", 0.123456], ["c", None]], highlight=0)
    assert "a&amp;b" in table and "0.12346" in table and 'class="best"' in table
    assert page("t", [("h", table)]).startswith("<!DOCTYPE html>")
