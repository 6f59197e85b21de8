"""IdIndex, the one id -> position index: its policies (duplicates, nulls, int/str coercion) and the answers
index_in gives, for every caller's configuration (vocabularies, item catalog, recall ids, store tables)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from recforge.features.categorical import SMALL_LOOKUP
from recforge.ids import IdIndex, first_rows


@pytest.mark.parametrize("kind", [pa.int64(), pa.int32(), pa.string()])
def test_request_sized_vocabulary_lookups_give_what_index_in_gives(kind: pa.DataType) -> None:
    """Requests look ids up in an IdIndex built once (index_in rehashes the vocabulary per call): same answer."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        vocab = pa.array(rng.permutation(np.unique(rng.integers(-50, 50, rng.integers(0, 40))))).cast(kind)
        wanted = rng.integers(-60, 60, rng.integers(0, SMALL_LOOKUP))
        values = pa.array(wanted, mask=rng.random(len(wanted)) < 0.2).cast(kind)
        expected = pc.index_in(values, value_set=vocab).fill_null(-1).to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(IdIndex(vocab).positions(values), expected)


@pytest.mark.parametrize(
    ("ids", "duplicates", "keys", "expected"),
    [
        ([7, 3, 7, None], "first", [7, 3, 4], [0, 1, -1]),
        ([7, 3, 7, None], "last", [7, 3, 4], [2, 1, -1]),
        (["b", "a", "b", None], "first", ["b", "a", "c"], [0, 1, -1]),
        (["b", "a", "b", None], "last", ["b", "a", "c"], [2, 1, -1]),
    ],
)
def test_duplicates_resolve_by_policy_for_integer_and_text_ids(
    ids: list[Any], duplicates: Any, keys: list[Any], expected: list[int]
) -> None:
    index = IdIndex(pa.array(ids), duplicates=duplicates)
    assert index.positions(keys).tolist() == expected
    assert (index.duplicates, index.null_ids, len(index)) == (1, 1, 4)


def test_a_null_id_is_never_found_not_even_by_the_sentinel_it_was_once_filled_with() -> None:
    index = IdIndex(pa.array([1, None, 2], pa.int64()))
    assert index.positions([None, -(2**63), 2]).tolist() == [-1, -1, 2]
    assert index.positions(pa.array([None, 1], pa.int64())).tolist() == [-1, 0]
    assert IdIndex(pa.array(["x", None])).positions([None, "x"]).tolist() == [-1, 0]


@pytest.mark.parametrize(
    ("ids", "coerce", "keys", "expected"),
    [
        (pa.array([12, 5]), "exact", [12, "12", 12.0, True, None, [12]], [0, -1, -1, -1, -1, -1]),
        (pa.array([12, 5]), "text", [12, "12", 12.0, True, None, "x"], [0, 0, -1, -1, -1, -1]),
        (pa.array(["12", "5"]), "exact", ["12", 12, b"12", None], [0, -1, -1, -1]),
        (pa.array(["12", "5"]), "text", ["12", 12, np.int64(5), 12.0, True], [0, 0, 1, -1, -1]),
        (pa.array([1, 2]), "exact", [True, 2], [-1, 1]),  # numpy would read [True, 2] as [1, 2]
    ],
)
def test_keys_of_another_type_are_read_by_the_coerce_policy(
    ids: pa.Array, coerce: Any, keys: list[Any], expected: list[int]
) -> None:
    assert IdIndex(ids, coerce=coerce).positions(keys).tolist() == expected


def test_integer_keys_that_do_not_fit_the_id_type_never_wrap_onto_an_id() -> None:
    unsigned = IdIndex(pa.array([2**64 - 1, 3], pa.uint64()))
    assert unsigned.positions(np.array([-1, 3], np.int64)).tolist() == [-1, 1]
    assert unsigned.positions([2**64 - 1]).tolist() == [0]
    narrow = IdIndex(pa.array([1, 2], pa.int8()))
    assert narrow.positions(np.array([257, 2], np.int64)).tolist() == [-1, 1]
    signed = IdIndex(pa.array([-(2**63)], pa.int64()))
    assert signed.positions(np.array([2**63], np.uint64)).tolist() == [-1]
    assert signed.positions([2**70, -(2**63)]).tolist() == [-1, 0]


def test_empty_index_and_empty_keys() -> None:
    assert IdIndex(pa.array([], pa.int64())).positions([1, 2]).tolist() == [-1, -1]
    assert IdIndex(pa.array([], pa.string())).positions(["a"]).tolist() == [-1]
    assert IdIndex(pa.array([3])).positions([]).tolist() == []
    assert IdIndex(pa.chunked_array([[4], [5]])).positions(pa.chunked_array([[5], [4, 6]])).tolist() == [1, 0, -1]


def test_first_rows_keeps_the_first_row_of_each_id_in_table_order_and_no_null_id() -> None:
    table = pa.table({"id": [5, None, 3, 5, 3, 9, None], "v": list("abcdefg")})
    assert first_rows(table, "id").to_pydict() == {"id": [5, 3, 9], "v": ["a", "c", "f"]}
    chunked = pa.Table.from_batches([pa.record_batch({"id": ["x", "y"]}), pa.record_batch({"id": ["y", "z"]})])
    assert first_rows(chunked, "id")["id"].to_pylist() == ["x", "y", "z"]
