"""What "Spark gives what DuckDB and the local FeatureSet give" means, asserted in one place for every master.

Samples are equal as row sets (Spark writes a directory of part files per split, in no set order); fitted
features are equal as their saved state; transformed features are equal column by column once both sides'
rows are put in one canonical order. The local[2] tests and the standalone-cluster tests share these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from recforge.data import SamplePaths
from recforge.features import FeatureSet, TransformReport
from recforge.features.base import FeatureState
from recforge.features.columns import ColumnLayout
from recforge.features.sequence import RAW

FLOAT_PARAMS = {"mean", "std"}  # sums in another order: equal within 1e-12 relative


def sorted_rows(path: str) -> list[str]:
    """Every row of a Parquet file or directory as text, columns by name, rows sorted."""
    table = pads.dataset(path, format="parquet").to_table()
    return sorted(map(repr, table.select(sorted(table.column_names)).to_pylist()))


def assert_same_samples(spark: SamplePaths | str, duck: SamplePaths) -> None:
    """Each split of `spark` (its SamplePaths, or the directory its job wrote) holds DuckDB's rows, none else."""
    for split in ("train", "valid", "test"):
        expected = getattr(duck, split)
        got = getattr(spark, split) if isinstance(spark, SamplePaths) else f"{spark}/{split}.parquet"
        rows = sorted_rows(got)
        assert len(rows) == duck.counts[split] > 0
        assert rows == sorted_rows(expected), split


def assert_same_state(spark: FeatureSet, local: FeatureSet, tmp: Path, *, same_row_order: bool = True) -> None:
    """Saved states equal: every Arrow array bit for bit (type included), every param (mean/std within 1e-12).

    `same_row_order=False` when the two fits read the same rows in another order (Spark's samples against
    DuckDB's): a sequence's attribute map keeps each item's first row in row order, so it is then compared as
    a set of rows (sorted by its key); every other state is order-free and still compared bit for bit."""
    spark.save(tmp / "spark")
    local.save(tmp / "local")
    spark_doc = json.loads((tmp / "spark" / "features.json").read_text())
    local_doc = json.loads((tmp / "local" / "features.json").read_text())
    assert spark_doc["arrays"] == local_doc["arrays"]
    for name, params in local_doc["states"].items():
        other = spark_doc["states"][name]
        assert sorted(other) == sorted(params), name
        for key, value in params.items():
            if key in FLOAT_PARAMS:
                assert other[key] == pytest.approx(value, rel=1e-12), (name, key)
            else:
                assert other[key] == value, (name, key)
    for name, state in local.states.items():
        got = comparable_arrays(spark.states[name], same_row_order)
        for key, array in comparable_arrays(state, same_row_order).items():
            assert got[key].equals(array), (name, key, array.type)


def comparable_arrays(state: FeatureState, same_row_order: bool) -> dict[str, pa.Array]:
    """The state's arrays; an attribute map (first-seen order) sorted by its key unless both read one row order."""
    key = state.params.get("attr_key")
    if same_row_order or key is None:
        return dict(state.arrays)
    rows = pa.table(state.arrays).sort_by(RAW + str(key))
    return {name: rows[name].combine_chunks() for name in rows.column_names}


def canonical(table: pa.Table) -> dict[str, np.ndarray]:
    """Columns as [rows, width] arrays, rows sorted by every integer column, then every float column."""
    arrays = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        values = column.flatten() if pa.types.is_list(column.type) else column
        arrays[name] = np.asarray(values.to_numpy(zero_copy_only=False)).reshape(table.num_rows, -1)
    ints = [a for a in arrays.values() if a.dtype.kind in "iu"]
    floats = [a for a in arrays.values() if a.dtype.kind == "f"]
    keys = [col for a in [*ints, *floats] for col in a.T]
    order = np.lexsort(keys[::-1])  # lexsort's primary key is its last
    return {name: a[order] for name, a in arrays.items()}


def assert_same_transform(
    local: FeatureSet,
    rows: pa.Table,
    transformed: str | Path,
    extras: Sequence[str] = (),
    report: TransformReport | None = None,
) -> None:
    """The directory a Spark transform wrote holds `local.transform(rows)` as a row set: ids and lengths equal,
    floats within 1e-6 (float32 model inputs). `report`, when given, receives the local transform's counts."""
    layout = ColumnLayout.load(transformed)
    assert layout is not None, f"{transformed} holds no column layout"
    expected = canonical(layout.table(local.transform(rows, report=report, extras=extras)))
    got = canonical(pq.read_table(transformed).select(layout.arrow_schema().names))
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert values.shape == got[name].shape, name
        if values.dtype.kind == "f":
            np.testing.assert_allclose(got[name], values, rtol=0, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], values, err_msg=name)
