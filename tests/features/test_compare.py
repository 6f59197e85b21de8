"""features.compare: model inputs per feature and row, their JSON round trip, and the rows two Batches differ on."""

from __future__ import annotations

import json
import math

import torch

from recforge.batch import Bag, Batch
from recforge.features.compare import batch_mismatches, field_rows, mismatched_rows
from recforge.schema import FieldSpec, InputSchema

SCHEMA = InputSchema(
    fields=(
        FieldSpec("user", "id", "user"),
        FieldSpec("item", "id", "item"),
        FieldSpec("tags", "bag", "item"),
        FieldSpec("price", "dense", "item"),
    ),
    tables=(),
)


def batch(width: int = 3, weight: float = 0.25, attrs: bool = True) -> Batch:
    """Two rows: a 2-element weighted bag with a per-element attribute, and an empty bag; NaN price in row 1."""
    values = torch.zeros((2, width), dtype=torch.int64)
    values[0, :2] = torch.tensor([4, 9])
    weights = torch.zeros((2, width))
    weights[0, :2] = torch.tensor([0.5, weight])
    cat = torch.zeros((2, width, 1), dtype=torch.int64)
    cat[0, :2, 0] = torch.tensor([7, 8])
    return Batch(
        ids=torch.tensor([[1, 2], [3, 4]]),
        bags={"tags": Bag(values, weights, {"cat": cat} if attrs else {})},
        dense=torch.tensor([[0.1], [math.nan]], dtype=torch.float32),
    )


def test_field_rows_name_each_feature_and_trim_padding() -> None:
    rows = field_rows(batch(), SCHEMA)
    assert rows["user"] == [1, 3] and rows["item"] == [2, 4]
    assert rows["tags"] == [
        {"ids": [4, 9], "weights": [0.5, 0.25], "attrs": {"cat": [[7], [8]]}},
        {"ids": [], "weights": [], "attrs": {"cat": []}},
    ]
    assert rows["price"][0] == float(torch.tensor(0.1, dtype=torch.float32)) and math.isnan(rows["price"][1])
    assert list(field_rows(batch())) == ["ids[0]", "ids[1]", "dense[0]", "tags"]


def test_json_round_trip_and_padding_width_do_not_count_as_differences() -> None:
    rows = field_rows(batch(), SCHEMA)
    assert mismatched_rows(json.loads(json.dumps(rows)), rows) == {}  # float32 values and NaN survive exactly
    assert batch_mismatches(batch(width=6), batch(width=3), SCHEMA) == {}


def test_differences_are_named_by_feature_and_row() -> None:
    assert batch_mismatches(batch(weight=0.75), batch(), SCHEMA) == {"tags": [0]}
    assert batch_mismatches(batch(attrs=False), batch(), SCHEMA) == {"tags": [0, 1]}  # attributes lost online
    rows = field_rows(batch(), SCHEMA)
    assert mismatched_rows({k: v for k, v in rows.items() if k != "item"}, rows) == {"item": [0, 1]}
