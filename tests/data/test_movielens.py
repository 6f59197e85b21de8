from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from recforge.data import load_movielens
from recforge.errors import DataError

BEHAVIOR = pa.schema(
    [("user_id", pa.string()), ("item_id", pa.string()), ("rating", pa.float64()), ("timestamp", pa.int64())]
)
USER_TYPES = {
    "user_id": pa.string(),
    "age": pa.int64(),
    "gender": pa.string(),
    "occupation": pa.string(),
    "zip_code": pa.string(),
}


def check_types(raw) -> None:
    assert raw.behavior.select(BEHAVIOR.names).schema.equals(BEHAVIOR), raw.behavior.schema
    assert {f.name: f.type for f in raw.users.schema} == USER_TYPES
    assert raw.items.column_names == ["item_id", "title", "release_year", "genre"]
    assert raw.items.schema.field("genre").type.value_type == pa.string()


def test_atomic_ml100k_exact_counts(ml100k_dir: Path) -> None:
    raw = load_movielens(str(ml100k_dir))
    check_types(raw)
    assert raw.summary() == {"behavior": 100_000, "users": 943, "items": 1_682}
    assert len(raw.behavior["user_id"].unique()) == 943
    assert raw.behavior.slice(0, 1).to_pylist() == [
        {"user_id": "196", "item_id": "242", "rating": 3.0, "timestamp": 881250949}
    ]
    assert raw.users.slice(0, 1).to_pylist() == [
        {"user_id": "1", "age": 24, "gender": "M", "occupation": "technician", "zip_code": "85711"}
    ]
    first = raw.items.slice(0, 1).to_pylist()[0]
    assert first == {
        "item_id": "1",
        "title": "Toy Story",
        "release_year": "1995",
        "genre": ["Animation", "Children's", "Comedy"],
    }


def test_raw_100k(raw_100k_dir: Path) -> None:
    raw = load_movielens(str(raw_100k_dir))
    check_types(raw)
    assert raw.behavior["rating"].to_pylist() == [5.0, 3.0, 4.0]
    assert raw.users["age"].to_pylist() == [24, 53]
    assert raw.items.to_pylist() == [
        {
            "item_id": "10",
            "title": "Misérables, Les",
            "release_year": "1995",
            "genre": ["Animation", "Children's", "Comedy"],
        },
        {"item_id": "20", "title": "unknown", "release_year": None, "genre": ["unknown"]},
    ]


def test_raw_1m(raw_1m_dir: Path) -> None:
    raw = load_movielens(str(raw_1m_dir))
    check_types(raw)
    assert raw.behavior["item_id"].to_pylist() == ["1193", "661", "1193"]
    assert raw.behavior["timestamp"].to_pylist() == [978300760, 978302109, 978298413]
    assert raw.users.to_pylist()[1] == {
        "user_id": "2",
        "age": 56,
        "gender": "M",
        "occupation": "16",
        "zip_code": "70072",
    }
    assert raw.items.to_pylist() == [
        {
            "item_id": "1193",
            "title": "One Flew Over the Cuckoo's Nest",
            "release_year": "1975",
            "genre": ["Drama"],
        },
        {
            "item_id": "661",
            "title": "Cité des enfants perdus, La",
            "release_year": "1995",
            "genre": ["Adventure", "Sci-Fi"],
        },
    ]


def test_directory_without_movielens_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"holds no MovieLens files.*notes\.txt"):
        load_movielens(str(tmp_path))
    with pytest.raises(DataError, match="is not a directory"):
        load_movielens(str(tmp_path / "missing"))
