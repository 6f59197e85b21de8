from __future__ import annotations

import gzip
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recforge.data import count_rows, iter_batches, read_schema, read_table, readers, write_parquet
from recforge.errors import DataError

TABLE = pa.table({"user_id": [1, 2, 3, 4, 5], "item": ["a", "b", "c", "d", "e"], "y": [0, 1, 0, 1, 1]})
CSV_TEXT = "user_id,item,y\n1,a,0\n2,b,1\n3,c,0\n4,d,1\n5,e,1\n"


def test_parquet_roundtrip_streams_in_batches(tmp_path: Path) -> None:
    path = str(tmp_path / "deep" / "dir" / "t.parquet")
    write_parquet(TABLE, path)  # creates parent dirs
    batches = list(iter_batches(path, columns=["item", "y"], batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert pa.Table.from_batches(batches).equals(TABLE.select(["item", "y"]))
    assert count_rows(path) == 5
    assert read_schema(path).names == ["user_id", "item", "y"]


def test_fsspec_urls(tmp_path: Path) -> None:
    write_parquet(TABLE, "memory://recforge-test/a/t.parquet")
    assert read_table("memory://recforge-test/a/t.parquet").equals(TABLE)
    assert count_rows("memory://recforge-test/a/t.parquet") == 5
    with fsspec.open("memory://recforge-test/a/t.csv", "w") as f:
        f.write(CSV_TEXT)
    assert read_table("memory://recforge-test/a/t.csv").equals(TABLE)
    (tmp_path / "t.csv").write_text(CSV_TEXT)
    assert read_table(f"file://{tmp_path}/t.csv").equals(TABLE)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.csv", CSV_TEXT),
        ("t.tsv", CSV_TEXT.replace(",", "\t")),
        ("t.txt", CSV_TEXT.replace(",", "|")),  # delimiter sniffed from the header
    ],
)
def test_delimited_files(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    batches = list(iter_batches(str(path), batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert pa.Table.from_batches(batches).equals(TABLE)
    assert count_rows(str(path)) is None


def test_gzip_csv_and_parquet_directory(tmp_path: Path) -> None:
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(CSV_TEXT.encode()))
    assert read_table(str(tmp_path / "t.csv.gz")).equals(TABLE)
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(TABLE.slice(0, 3), parts / "part-0.parquet")
    pq.write_table(TABLE.slice(3), parts / "part-1.parquet")
    assert count_rows(str(parts)) == 5
    assert read_table(str(parts)).sort_by("user_id").equals(TABLE)


def test_unknown_suffix_with_parquet_magic(tmp_path: Path) -> None:
    pq.write_table(TABLE, tmp_path / "blob")
    assert read_table(str(tmp_path / "blob")).equals(TABLE)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.parquet: file not found"):
        iter_batches(str(tmp_path / "nope.parquet"))
    with pytest.raises(DataError, match="file not found"):
        count_rows("memory://recforge-test/missing.csv")


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n")
    write_parquet(TABLE.slice(0, 0), str(tmp_path / "empty.parquet"))
    with pytest.raises(DataError, match=r"empty\.csv: is empty"):
        iter_batches(str(tmp_path / "empty.csv"))
    with pytest.raises(DataError, match=r"header\.csv: has no data rows"):
        iter_batches(str(tmp_path / "header.csv"))
    with pytest.raises(DataError, match=r"empty\.parquet: has no rows"):
        iter_batches(str(tmp_path / "empty.parquet"))


def test_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match=r"t\.json: unknown file format '\.json'.*\n  fix: use \.parquet"):
        read_table(str(tmp_path / "t.json"))


def test_missing_columns_list_what_exists(tmp_path: Path) -> None:
    write_parquet(TABLE, str(tmp_path / "t.parquet"))
    (tmp_path / "t.csv").write_text(CSV_TEXT)
    for name in ("t.parquet", "t.csv"):
        with pytest.raises(
            DataError, match=r"missing column\(s\) \['price'\]; the file has \['user_id', 'item', 'y'\]"
        ):
            iter_batches(str(tmp_path / name), columns=["item", "price"])


def test_bad_row_later_in_csv_names_file(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"bad\.csv: cannot parse"):
        read_table(str(tmp_path / "bad.csv"))


def test_csv_streams_block_by_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 64)  # force many Arrow blocks on a small file
    rows = "".join(f"{i},{i * 2}\n" for i in range(500))
    (tmp_path / "big.csv").write_text("a,b\n" + rows)
    batches = list(iter_batches(str(tmp_path / "big.csv"), batch_rows=128))
    assert [b.num_rows for b in batches] == [128, 128, 128, 116]
    assert pa.Table.from_batches(batches)["b"].to_pylist() == [i * 2 for i in range(500)]
    (tmp_path / "late.csv").write_text("a,b\n" + rows + "x,1,2\n")
    with pytest.raises(DataError, match=r"late\.csv: cannot parse after \d+ rows"):
        list(iter_batches(str(tmp_path / "late.csv"), batch_rows=128))
