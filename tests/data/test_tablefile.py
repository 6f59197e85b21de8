"""`data.tables.*` parse options: given column names, bad lines skipped and counted or fatal, derived columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from recforge.config.tables import TableFile
from recforge.data.tablefile import read_table_file
from recforge.errors import ConfigError, DataError

WHERE = "data.tables.behavior"


def write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_columns_name_a_headerless_file_and_bad_lines_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", ["1;10;a", "2;20;b", "3;30", "4;40;d"])
    spec = TableFile(path=path, columns=["u", "i", "t"], bad_lines="skip", max_bad_fraction=0.25)
    table, counts = read_table_file(spec, WHERE)
    assert table.column_names == ["u", "i", "t"] and table["u"].to_pylist() == [1, 2, 4]
    assert counts == {"lines": 4, "bad_lines": 1}


def test_header_true_with_columns_renames(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", ["a,b", "1,2"])
    table, _ = read_table_file(TableFile(path=path, columns=["x", "y"], header=True), WHERE)
    assert table.column_names == ["x", "y"] and table.num_rows == 1


def test_too_many_bad_lines_stop_the_run(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", ["1;10;a", "2;20", "3;30"])
    spec = TableFile(path=path, columns=["u", "i", "t"], bad_lines="skip", max_bad_fraction=0.5)
    with pytest.raises(DataError, match=r"2 of 3 lines \(66.67%\).*max_bad_fraction: 0.5.*first: (line 2: )?'2;20'"):
        read_table_file(spec, WHERE)


def test_bad_lines_error_by_default_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", ["1;10;a", "2;20"])
    with pytest.raises(DataError, match=r"log\.txt: cannot parse"):
        read_table_file(TableFile(path=path, columns=["u", "i", "t"]), WHERE)


def test_header_false_needs_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", ["1,2"])
    with pytest.raises(ConfigError, match=r"data.tables.behavior.columns: a file without a header"):
        read_table_file(TableFile(path=path, header=False), WHERE)


def test_derive_adds_columns_in_order_and_names_the_yaml_path(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", ["id,title", '1,"Heat (1995)"', '2,"Up"'])
    derive = {"year": r"TRY_CAST(regexp_extract(title, '\((\d{4})\)', 1) AS INTEGER)", "old": "year < 2000"}
    table, _ = read_table_file(TableFile(path=path, derive=derive), WHERE)
    assert table["year"].to_pylist() == [1995, None] and table["old"].to_pylist() == [True, None]
    strict = {"year": r"CAST(regexp_extract(title, '\((\d{4})\)', 1) AS INTEGER)"}  # 'Up' has no year
    with pytest.raises(ConfigError, match=r"derive.year: .*Could not convert string '' .*\n.*TRY_CAST"):
        read_table_file(TableFile(path=path, derive=strict), WHERE)
    with pytest.raises(ConfigError, match=r"data.tables.behavior.derive.x: DuckDB cannot evaluate 'nope \+ 1'"):
        read_table_file(TableFile(path=path, derive={"x": "nope + 1"}), WHERE)


def test_a_plain_string_is_a_path() -> None:
    assert TableFile.model_validate("a.csv") == TableFile(path="a.csv")
