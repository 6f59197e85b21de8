"""FeatureHasher: missing values, errors, field-aware and stable buckets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recforge.errors import DataError
from recforge.online import FeatureHasher


def test_nan_numerics_default_to_missing_or_raise_when_asked() -> None:
    batch = pa.table({"age": [20.0, float("nan"), None], "score": [1.5, float("nan"), None]})
    idx, val = FeatureHasher(bucketed={"age": [18.0, 30.0]}, raw=["score"], bias=False, bits=16).transform(batch)
    assert idx[1, 0] == idx[2, 0] != idx[0, 0]  # NaN and null share the missing bucket (0)
    assert val[:, 1].tolist() == [1.5, 0.0, 0.0]  # raw NaN/null add nothing
    strict = FeatureHasher(bucketed={"age": [18.0, 30.0]}, on_nan="error")
    with pytest.raises(DataError, match=r"'age': 2 of 3 values are NaN or null \(first at row 1\)"):
        strict.transform(batch)
    with pytest.raises(DataError, match="±inf"):
        FeatureHasher(raw=["score"]).transform(pa.table({"score": [1.0, float("inf")]}))


def test_hashing_is_field_aware_and_stable() -> None:
    hasher = FeatureHasher(categorical=["user_id", "item_id"], bits=20, bias=False)
    idx, _ = hasher.transform(pa.table({"user_id": [5, 5], "item_id": [5, 6]}))
    assert idx[0, 0] != idx[0, 1]  # one value, two fields, two buckets
    again, _ = FeatureHasher.from_json(hasher.to_json()).transform(pa.table({"user_id": [5], "item_id": [5]}))
    np.testing.assert_array_equal(again[0], idx[0])
