from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from recforge.config.schema import DataConfig
from recforge.data import iter_criteo, load_source
from recforge.errors import DataError


def criteo_line(label: int | None, missing_int: int, missing_cat: int) -> str:
    ints = [str(i) if i != missing_int else "" for i in range(13)]
    cats = [f"{i:08x}" if i != missing_cat else "" for i in range(26)]
    head = [] if label is None else [str(label)]
    return "\t".join(head + ints + cats) + "\n"


def test_criteo_types_names_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "day_0.txt"
    path.write_text("".join(criteo_line(i % 2, i, 25 - i) for i in range(5)))
    batches = list(iter_criteo(str(path), batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["label", *[f"I{i}" for i in range(1, 14)], *[f"C{i}" for i in range(1, 27)]]
    assert table.schema.field("label").type == pa.int64()
    assert table.schema.field("I1").type == pa.float64()
    assert table.schema.field("C1").type == pa.string()
    assert table["label"].to_pylist() == [0, 1, 0, 1, 0]
    assert table["I1"].to_pylist() == [None, 0.0, 0.0, 0.0, 0.0]  # empty field -> missing
    assert table["C26"].to_pylist()[0] is None
    assert table["C1"].to_pylist()[0] == "00000000"

    raw = load_source(DataConfig(source="criteo", path=str(path)))
    assert raw.users is None and raw.items is None
    assert raw.behavior.num_rows == 5


def test_criteo_test_file_without_label(tmp_path: Path) -> None:
    path = tmp_path / "test.txt"
    path.write_text(criteo_line(None, 0, 0) * 3)
    table = pa.Table.from_batches(list(iter_criteo(str(path))))
    assert table.num_columns == 39 and "label" not in table.column_names


def test_criteo_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "other.tsv"
    path.write_text("a\tb\tc\n")
    with pytest.raises(DataError, match=r"other\.tsv: line 1 has 3 tab-separated fields"):
        iter_criteo(str(path))
