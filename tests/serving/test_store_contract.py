"""Contract every registered feature-store kind passes: every value type round trips, missing keys come back as
None / nulls with exact counts, and int and text forms of a key find one row. Kinds come from STORES and are
built from their options (entity tables as Parquet files; a kind fed by `push` gets the files pushed and is read
by a fresh store), so a new kind is checked without editing this file. Redis is a real redis-server.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recforge.serving.store import FeatureStore, build_store
from recforge.serving.store.base import STORES

from support import assert_bit_equal, expected_rows, odd_types

PREFIXES = itertools.count()


def decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns as their values (a store may keep the encoding or not; the values must be the same)."""
    for i, column in enumerate(table.schema):
        if pa.types.is_dictionary(column.type):
            table = table.set_column(i, column.name, table[column.name].cast(column.type.value_type))
    return table


def build(kind: str, tables: dict[str, tuple[pa.Table, str]], root: Path, redis_url: str) -> FeatureStore:
    """A store of `kind` holding `tables`: entity files in its options, pushed first where the kind is fed so."""
    entities = {}
    for entity, (table, key) in tables.items():
        pq.write_table(table, root / f"{entity}.parquet")
        entities[entity] = {"path": str(root / f"{entity}.parquet"), "key": key}
    options = {"kind": kind, "url": redis_url, "prefix": f"contract{next(PREFIXES)}", "entities": entities}
    feeder = build_store(options)
    push = getattr(feeder, "push", None)
    if push is None:
        return feeder
    for entity, (table, key) in tables.items():
        push(entity, table, key, progress=False)
    feeder.close()
    return build_store(options)


@pytest.fixture(params=STORES.names())
def make(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[Any]:
    """kind -> a builder of stores of that kind; every store built is closed after the test."""
    built: list[FeatureStore] = []

    def make_store(tables: dict[str, tuple[pa.Table, str]]) -> FeatureStore:
        built.append(build(request.param, tables, tmp_path, redis_url))
        return built[-1]

    yield make_store
    for store in built:
        store.close()


def test_every_value_type_round_trips(make: Any) -> None:
    table = odd_types()
    store = make({"sku": (table, "sku")})
    keys = ["d", "nope", "a", 'ü-"q"', "b"]
    want = decoded(expected_rows(table, "sku", keys))
    assert_bit_equal(decoded(store.get_table("sku", keys)), want)
    assert store.schema("sku").names == table.schema.names
    rows, want_rows = store.get("sku", keys), want.to_pylist()
    assert rows[1] is None
    assert math.isnan(rows[0]["f64"]) and math.copysign(1, rows[4]["f64"]) == -1
    for got, expected in zip(rows[:1] + rows[2:], want_rows[:1] + want_rows[2:], strict=True):
        assert {**got, "f64": None} == {**expected, "f64": None}  # NaN != NaN: f64 checked above
    assert store.get_table("sku", keys, ["ts", "blob"]).column_names == ["sku", "ts", "blob"]


def test_missing_keys_are_none_and_nulls_with_exact_counts(make: Any) -> None:
    users = pa.table({"user_id": pa.array([3, 7, 11], pa.int64()), "age": [30.5, None, 41.0], "city": ["a", "b", "c"]})
    store = make({"user": (users, "user_id")})
    keys = [3, -5, 10**12, 7, 3]
    result = store.lookup("user", np.array(keys), ["age"])
    assert result.found.tolist() == [True, False, False, True, True] and result.missing == 2
    assert result.table.column_names == ["user_id", "age"]
    assert result.table.to_pydict() == {"user_id": keys, "age": [30.5, None, None, None, 30.5]}
    assert store.get("user", keys) == [
        {"user_id": 3, "age": 30.5, "city": "a"},
        None,
        None,
        {"user_id": 7, "age": None, "city": "b"},
        {"user_id": 3, "age": 30.5, "city": "a"},
    ]
    assert store.get("user", []) == [] and store.get("nobody", [1]) == [None]
    stats = store.stats()
    assert (stats["requests"], stats["keys"], stats["hits"], stats["misses"]) == (4, 11, 6, 5), stats
    assert (stats["errors"], stats["fallbacks"], stats["healthy"]) == (0, 0, True)


def test_int_and_text_forms_of_a_key_find_one_row(make: Any) -> None:
    store = make(
        {
            "user": (pa.table({"user_id": ["7", "12"], "v": [1, 2]}), "user_id"),
            "item": (pa.table({"item_id": pa.array([7, 12], pa.int32()), "v": [3, 4]}), "item_id"),
        }
    )
    assert store.get("user", [12, "7", 9.5]) == [{"user_id": "12", "v": 2}, {"user_id": "7", "v": 1}, None]
    assert store.get("item", ["12", np.int64(7), 2**40]) == [{"item_id": 12, "v": 4}, {"item_id": 7, "v": 3}, None]
    table = store.get_table("item", ["12", "x"])
    assert table["item_id"].to_pylist() == [12, None] and table["v"].to_pylist() == [4, None]
