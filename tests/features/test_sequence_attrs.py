"""Sequence side info: each element carries its item's attributes, aligned, through fit/save/load."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import torch

from recforge.batch import Batch
from recforge.config import build_config
from recforge.errors import FeatureError
from recforge.features import FeatureSet

FEATURES = [
    {"name": "user_id", "kind": "id", "side": "user"},
    {"name": "item_id", "kind": "id", "side": "item"},
    {"name": "year", "kind": "id", "side": "item"},
    {"name": "genre", "kind": "tag", "side": "item", "sep": "|"},
    {"name": "hist", "kind": "sequence", "side": "user", "of": "item_id", "max_len": 3, "attrs": ["year", "genre"]},
]
TRAIN = pa.table(
    {
        "user_id": ["u1", "u2", "u1", "u3"],
        "item_id": ["a", "b", "c", "a"],
        "year": ["1990", "2000", "1990", "1990"],
        "genre": ["x|y", "y", "", "x|y"],
        "hist": [["b"], [], ["a", "b", "c", "zz"], ["c", "a"]],
        "label": [1, 0, 1, 0],
    }
)


def fitted(features: list[dict[str, object]] = FEATURES) -> FeatureSet:
    return FeatureSet.from_config(build_config({"features": features})).fit([TRAIN])


def decode(fs: FeatureSet, feature: str, rows: torch.Tensor) -> list[object]:
    vocab = fs.states[feature].arrays["vocab"].to_pylist()
    return [vocab[int(r) - 1] if r else None for r in rows]


def test_elements_carry_their_items_attributes() -> None:
    fs = fitted()
    bag = fs.transform(TRAIN).bags["hist"]
    assert bag.attrs["year"].shape == (4, 3, 1) and bag.attrs["genre"].shape == (4, 3, 2)
    row = 2  # newest three of [a, b, c, zz]: b, c, zz (zz is out of vocabulary)
    assert decode(fs, "item_id", bag.values[row]) == ["b", "c", None]
    assert decode(fs, "year", bag.attrs["year"][row, :, 0]) == ["2000", "1990", None]
    assert [decode(fs, "genre", g) for g in bag.attrs["genre"][row]] == [["y", None], [None, None], [None, None]]
    assert decode(fs, "year", bag.attrs["year"][1, :, 0]) == [None, None, None]  # empty history: all padding


def test_attrs_survive_save_load_index_and_concat(tmp_path: Path) -> None:
    fs = fitted()
    fs.save(tmp_path)
    again = FeatureSet.load(tmp_path).transform(TRAIN)
    batch = fs.transform(TRAIN)
    for name in ("year", "genre"):
        assert torch.equal(again.bags["hist"].attrs[name], batch.bags["hist"].attrs[name])
    joined = Batch.concat([batch.index(slice(0, 1)), batch.index(slice(1, 4))])
    assert torch.equal(joined.bags["hist"].attrs["genre"], batch.bags["hist"].attrs["genre"])


def test_unique_gives_each_distinct_element_once_with_its_attributes() -> None:
    bag = fitted().transform(TRAIN).bags["hist"]
    values, inverse, attrs = bag.unique()
    assert values.tolist() == sorted(set(bag.values.flatten().tolist()))
    assert torch.equal(values[inverse], bag.values)
    assert torch.equal(attrs["genre"][inverse], bag.attrs["genre"])


@pytest.mark.parametrize(
    ("attr", "problem"),
    [("user_id", "is a user feature"), ("price", "must name an id or tag feature")],
)
def test_bad_attrs_are_named(attr: str, problem: str) -> None:
    features = [*FEATURES[:4], {"name": "price", "kind": "numeric", "side": "item"}]
    features.append({**FEATURES[4], "attrs": [attr]})
    with pytest.raises(FeatureError, match=problem):
        FeatureSet.from_config(build_config({"features": features}))
