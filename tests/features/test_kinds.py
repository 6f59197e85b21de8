"""Each feature kind on tiny hand-built Arrow tables with exact expected ids."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from recforge.config import build_config
from recforge.errors import ConfigError, DataError, FeatureError
from recforge.features import FeatureSet


def featureset(*features: dict, label: str = "label") -> FeatureSet:
    cfg = build_config({"features": list(features), "data": {"label": label}})
    return FeatureSet.from_config(cfg)


def test_id_vocab_orders_by_count_and_maps_rare_and_unseen_to_zero() -> None:
    train = pa.table({"city": ["b", "a", "b", "c", "b", "a"], "label": [0] * 6})
    fs = featureset({"name": "city", "kind": "id", "min_count": 2}).fit([train])
    batch = fs.transform(pa.table({"city": ["a", "b", "c", "zz", None], "label": [0] * 5}))
    assert batch.ids[:, 0].tolist() == [2, 1, 0, 0, 0]  # b most frequent -> 1; c rare, zz unseen, null -> 0
    assert fs.schema().table("city").num_embeddings == 3


def test_id_hash_buckets_are_stable_and_in_range() -> None:
    fs = featureset({"name": "u", "kind": "id", "hash_buckets": 7}).fit([pa.table({"u": [1, 2], "label": [0, 1]})])
    ids = fs.transform(pa.table({"u": [1, 2, 3, 1, None], "label": [0] * 5})).ids[:, 0].numpy()
    assert ids[0] == ids[3] and ids[4] == 0
    assert ((ids[:4] >= 1) & (ids[:4] <= 7)).all()
    again = featureset({"name": "u", "kind": "id", "hash_buckets": 7}).fit([pa.table({"u": [5], "label": [0]})])
    assert again.transform(pa.table({"u": [1, 2, 3], "label": [0] * 3})).ids[:, 0].tolist() == ids[:3].tolist()


def test_numeric_explicit_boundaries_bucketize_with_missing_zero() -> None:
    fs = featureset({"name": "age", "kind": "numeric", "boundaries": [18, 25]})
    fs.fit([pa.table({"age": [20.0], "label": [1]})])
    batch = fs.transform(pa.table({"age": [1.0, None, 30.0, 50.0, 17.0, float("nan"), float("inf")], "label": [0] * 7}))
    assert batch.ids[:, 0].tolist() == [1, 0, 3, 3, 1, 0, 0]


def test_numeric_quantile_boundaries_fit_on_train_and_standard_is_dense() -> None:
    values = np.arange(1000, dtype=float)
    fs = featureset(
        {"name": "x", "kind": "numeric", "n_buckets": 4},
        {"name": "z", "kind": "numeric", "column": "x", "transform": "standard", "fill": -9},
    )
    fs.fit([pa.table({"x": values, "label": np.zeros(1000, dtype=np.int64)})])
    assert fs.states["x"].params["boundaries"] == pytest.approx([249.75, 499.5, 749.25])
    batch = fs.transform(pa.table({"x": [0.0, 499.5, None], "label": [0, 0, 0]}))
    assert batch.ids[:, 0].tolist() == [1, 3, 0]
    assert batch.dense[:, 0].tolist() == pytest.approx([-1.7303, 0.0, -9.0], abs=1e-3)


def test_tag_from_string_with_weights_pads_and_truncates() -> None:
    fs = featureset({"name": "genre", "kind": "tag", "sep": "|", "weight_sep": ":", "max_len": 2})
    fs.fit([pa.table({"genre": ["drama:0.5|comedy", "drama"], "label": [0, 1]})])
    batch = fs.transform(pa.table({"genre": ["comedy|drama:0.25|war", None, ""], "label": [0, 0, 0]}))
    bag = batch.bags["genre"]
    assert bag.values.tolist() == [[2, 1], [0, 0], [0, 0]]  # drama (count 2) -> 1, comedy -> 2; war cut
    assert bag.weights is not None and bag.weights.tolist() == [[1.0, 0.25], [0.0, 0.0], [0.0, 0.0]]


def test_tag_from_list_column() -> None:
    fs = featureset({"name": "genre", "kind": "tag"}).fit([pa.table({"genre": [["a", "b"], ["b"]], "label": [0, 1]})])
    assert fs.transform(pa.table({"genre": [["b", "x", "a"]], "label": [0]})).bags["genre"].values[0, :3].tolist() == [
        1,
        0,
        2,
    ]


def test_sequence_shares_vocab_and_keeps_the_newest() -> None:
    fs = featureset(
        {"name": "item_id", "kind": "id", "side": "item"},
        {"name": "history", "kind": "sequence", "of": "item_id", "max_len": 2, "side": "user"},
    )
    fs.fit([pa.table({"item_id": ["a", "a", "b"], "history": [[], ["a"], ["a", "b"]], "label": [0, 1, 0]})])
    batch = fs.transform(pa.table({"item_id": ["b"], "history": [["b", "a", "zz"]], "label": [1]}))
    assert batch.bags["history"].values.tolist() == [[1, 0]]  # last two: a -> 1, zz -> OOV 0
    spec = fs.schema().field("history")
    assert spec.table == "item_id" and spec.sequence_of == "item_id"


def test_cross_single_and_multi_valued() -> None:
    fs = featureset(
        {"name": "u", "kind": "id"},
        {"name": "g", "kind": "tag", "sep": " "},
        {"name": "u_x_u", "kind": "cross", "inputs": ["u", "u"], "buckets": 1000},
        {"name": "u_x_g", "kind": "cross", "inputs": ["u", "g"], "buckets": 1000},
    )
    table = pa.table({"u": ["1", "2", "1"], "g": ["a b", "a", "b a"], "label": [0, 1, 0]})
    batch = fs.fit([table]).transform(table)
    single = batch.ids[:, fs.schema().id_fields.index(fs.schema().field("u_x_u"))]
    assert single[0] == single[2] != single[1]
    bag = batch.bags["u_x_g"].values
    assert (bag[0] > 0).sum() == 2 and (bag[1] > 0).sum() == 1
    assert sorted(bag[0, :2].tolist()) == sorted(bag[2, :2].tolist())  # same user, same genres, other order


def test_lookup_reads_the_map_value_for_the_rows_key() -> None:
    clicks = pa.array([[("a", 3.0), ("b", 1.0)], [("b", 5.0)], None], type=pa.map_(pa.string(), pa.float64()))
    table = pa.table({"cat_clicks": clicks, "cat": ["b", "a", "a"], "label": [0, 1, 0]})
    fs = featureset({"name": "n", "kind": "lookup", "map_column": "cat_clicks", "key": "cat", "fill": -1})
    assert fs.fit([table]).transform(table).dense[:, 0].tolist() == [1.0, -1.0, -1.0]


def test_save_load_roundtrip_gives_identical_batches(tmp_path) -> None:
    fs = featureset(
        {"name": "city", "kind": "id"},
        {"name": "age", "kind": "numeric", "n_buckets": 3},
        {"name": "genre", "kind": "tag", "sep": "|"},
    )
    table = pa.table(
        {"city": ["x", "y", "x", "z"], "age": [10, 20, 30, 40], "genre": ["a|b", "b", "c", ""], "label": [0, 1, 1, 0]}
    )
    fs.fit([table]).save(tmp_path)
    a, b = fs.transform(table), FeatureSet.load(tmp_path).transform(table)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.bags["genre"].values, b.bags["genre"].values)


def test_labels_must_be_zero_or_one_and_errors_name_the_row() -> None:
    fs = featureset({"name": "city", "kind": "id"}).fit([pa.table({"city": ["a"], "label": [1]})])
    with pytest.raises(DataError, match=r"row 1 has 4"):
        fs.transform(pa.table({"city": ["a", "b"], "label": [1, 4]}), source="x.parquet")
    with pytest.raises(DataError, match=r"does not have"):
        fs.transform(pa.table({"town": ["a"], "label": [1]}))


def test_fit_problems_are_named() -> None:
    with pytest.raises(FeatureError, match="min_count=5"):
        featureset({"name": "c", "kind": "id", "min_count": 5}).fit([pa.table({"c": ["a"], "label": [0]})])
    with pytest.raises(DataError, match="no rows"):
        featureset({"name": "c", "kind": "id"}).fit([])
    with pytest.raises(ConfigError, match=r"features\[1\] \(s\).*must name an id feature"):
        featureset({"name": "c", "kind": "numeric"}, {"name": "s", "kind": "sequence", "of": "c"})
