"""The executors' side of the one-pass Spark fit, run here on Arrow batches: exact partial statistics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recforge.features import spark_pass
from recforge.features.spark_pass import ROWS, ValueCounter, partial_stats, pass_schema


def test_value_counts_merged_in_steps_equal_the_exact_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_pass, "MERGE_ROWS", 64)  # merge many times within the partition
    rng = np.random.default_rng(0)
    batches = [pa.array(rng.integers(0, 500, 400), mask=rng.random(400) < 0.1) for _ in range(30)]
    counter = ValueCounter(pa.int64())
    for batch in batches:
        counter.add(batch)
    merged = counter.merged()
    values = np.concatenate([b.drop_null().to_numpy() for b in batches])
    expected_values, expected_counts = np.unique(values, return_counts=True)
    order = np.argsort(merged["v"].to_numpy())
    assert merged["v"].to_numpy()[order].tolist() == expected_values.tolist()
    assert merged["n"].to_numpy()[order].tolist() == expected_counts.tolist()


def test_one_partition_emits_its_row_count_value_counts_and_moments() -> None:
    table = pa.table({"city": ["a", "b", None, "a", "c", "a"], "price": [1.5, None, 4.0, -2.0, 8.0, 1.5]})
    schema = pass_schema({0: pa.string(), 1: pa.float64()})
    run = partial_stats([lambda t: t["city"], lambda t: t["price"]], [False, True], schema)
    out = pa.Table.from_batches(list(run(iter(table.to_batches(max_chunksize=4)))), schema=schema).to_pylist()
    assert [r["n"] for r in out if r["f"] == ROWS] == [6]
    assert sorted((r["v0"], r["n"]) for r in out if r["f"] == 0) == [("a", 3), ("b", 1), ("c", 1)]
    assert sorted((r["v1"], r["n"]) for r in out if r["f"] == 1 and r["s"] is None) == [
        (-2.0, 1),
        (1.5, 2),
        (4.0, 1),
        (8.0, 1),
    ]
    [moments] = [r for r in out if r["f"] == 1 and r["s"] is not None]
    assert (moments["n"], moments["s"], moments["ss"], moments["mn"], moments["mx"]) == (5, 13.0, 88.5, -2.0, 8.0)
