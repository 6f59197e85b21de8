from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from recforge.config.schema import DataConfig
from recforge.data import build_samples, read_table, write_parquet
from recforge.errors import ConfigError, DataError


def changed(cfg: DataConfig, **update: object) -> DataConfig:
    """A validated copy of `cfg` with top-level fields replaced (model_copy would skip validation)."""
    return DataConfig.model_validate({**cfg.model_dump(), **update})


def with_tables(cfg: DataConfig, **update: object) -> DataConfig:
    assert cfg.tables is not None
    return changed(cfg, tables={**cfg.tables.model_dump(), **update})


def test_ml100k_context_protocol_exact_counts(ml100k_dir: Path, tmp_path: Path) -> None:
    ratings = pacsv.read_csv(ml100k_dir / "ml-100k.inter", parse_options=pacsv.ParseOptions(delimiter="\t"))
    n_three = int((ratings["rating:float"].to_numpy() == 3).sum())
    expected = 100_000 - n_three  # 72,855
    cfg = DataConfig(
        source="movielens",
        path=str(ml100k_dir),
        label_rule={"positive": "rating >= 4", "drop": "rating = 3"},
        split={"method": "random", "ratios": (0.8, 0.1, 0.1), "seed": 2020},
    )
    samples = build_samples(cfg, tmp_path / "ml")
    c = samples.counts
    assert (c["raw"], c["dropped"], c["rows"]) == (100_000, n_three, expected)
    assert c["users_unmatched"] == 0 and c["items_unmatched"] == 0
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in (samples.train, samples.valid, samples.test)]
    assert sizes == [c["train"], c["valid"], c["test"]] == [58_290, 7_240, 7_325]  # each row by its hash
    for size, ratio in zip(sizes, (0.8, 0.1, 0.1), strict=True):
        assert abs(size - expected * ratio) <= 3 * (expected * ratio * (1 - ratio)) ** 0.5, sizes  # binomial
    train = pq.read_table(samples.train)
    assert {"label", "rating", "age", "gender", "genre", "title"} <= set(train.column_names)
    assert set(train["label"].to_numpy().tolist()) == {0, 1}
    assert np.array_equal(train["label"].to_numpy(), (train["rating"].to_numpy() >= 4).astype(np.int64))
    assert c["positive"] == int((ratings["rating:float"].to_numpy() >= 4).sum())
    again = build_samples(cfg, tmp_path / "ml2")
    assert pq.read_table(again.valid).equals(pq.read_table(samples.valid))  # deterministic for a seed


def test_synthetic_default_source_without_rule(tmp_path: Path) -> None:
    cfg = DataConfig(
        label="click", synthetic={"n_users": 300, "n_items": 100, "n_categories": 5, "n_impressions": 5_000}
    )
    samples = build_samples(cfg, str(tmp_path))
    assert samples.counts["train"] == 4_004 and samples.counts["dropped"] == 0
    train = read_table(samples.train)
    assert {"click", "age", "gender", "city_tier", "category_id", "brand_id", "price"} <= set(train.column_names)
    assert "__row" not in train.column_names


@pytest.fixture
def tables(tmp_path: Path) -> DataConfig:
    """Behavior (CSV) with one unknown user and one unknown item, joined with Parquet side tables."""
    (tmp_path / "behavior.csv").write_text(
        "uid,iid,ts,clicked,score\n"
        "1,a,100,1,5\n1,b,200,0,2\n2,a,300,1,4\n3,a,400,0,1\n2,zz,500,1,3\n1,c,600,0,3\n2,c,700,1,5\n"
    )
    write_parquet(pa.table({"uid": [1, 2], "age": [30, 40], "score": [0.5, 0.7]}), str(tmp_path / "users.parquet"))
    write_parquet(pa.table({"iid": ["a", "b", "c"], "cat": ["x", "y", "x"]}), str(tmp_path / "items.parquet"))
    return DataConfig(
        source="tables",
        tables={
            "behavior": str(tmp_path / "behavior.csv"),
            "users": str(tmp_path / "users.parquet"),
            "items": str(tmp_path / "items.parquet"),
            "user_key": "uid",
            "item_key": "iid",
        },
        label="clicked",
        split={"method": "leave_last", "user_column": "uid", "time_column": "ts"},
    )


def test_tables_join_counts_unmatched_and_renames(tables: DataConfig, tmp_path: Path) -> None:
    samples = build_samples(tables, tmp_path / "out")
    c = samples.counts
    assert (c["raw"], c["users_unmatched"], c["items_unmatched"], c["rows"]) == (7, 1, 1, 7)
    test = read_table(samples.test).sort_by("uid")
    assert test["ts"].to_pylist() == [600, 700]  # each user's last row; user 3 has one row, kept in train
    assert test["user_score"].to_pylist() == [0.5, 0.7]  # users.score collides with behavior.score
    train = read_table(samples.train)
    assert train.filter(pc.equal(train["uid"], 3))["user_score"].to_pylist() == [None]
    assert c["train"] + c["valid"] + c["test"] == 7 and c["valid"] == 2


def test_label_rule_errors_name_yaml_path(tables: DataConfig, tmp_path: Path) -> None:
    bad_sql = changed(tables, label_rule={"positive": "scor >>= 4"})
    with pytest.raises(ConfigError, match=r"data.label_rule.positive: DuckDB cannot evaluate 'scor >>= 4'") as info:
        build_samples(bad_sql, tmp_path)
    assert "score" in str(info.value)  # the fix lists the columns
    not_bool = changed(tables, label_rule={"positive": "score + 1"})
    with pytest.raises(ConfigError, match=r"data.label_rule.positive: 'score \+ 1' is BIGINT, not a boolean"):
        build_samples(not_bool, tmp_path)
    bad_drop = changed(tables, label_rule={"positive": "score >= 4", "drop": "nope = 1"})
    with pytest.raises(ConfigError, match=r"data\.label_rule\.drop: DuckDB cannot evaluate"):
        build_samples(bad_drop, tmp_path)


def test_rule_sql_cannot_read_files(tables: DataConfig, tmp_path: Path) -> None:
    sneaky = changed(tables, label_rule={"positive": "(SELECT count(*) FROM read_csv('/etc/hostname')) > 0"})
    with pytest.raises(ConfigError, match=r"data\.label_rule\.positive: DuckDB cannot evaluate"):
        build_samples(sneaky, tmp_path)


def test_rule_that_drops_everything(tables: DataConfig, tmp_path: Path) -> None:
    cfg = changed(tables, label_rule={"positive": "score >= 4", "drop": "score > 0"})
    with pytest.raises(DataError, match=r"`data.label_rule.drop: score > 0` removed all 7 rows"):
        build_samples(cfg, tmp_path)


def test_rule_with_null_label(tables: DataConfig, tmp_path: Path) -> None:
    cfg = changed(tables, label_rule={"positive": "cat = 'x'"})  # item zz has no cat
    with pytest.raises(DataError, match=r"is NULL \(no label\) at behavior row 4 \(0-based\)"):
        build_samples(cfg, tmp_path)
    cfg = changed(tables, label_rule={"positive": "cat = 'x' AND uid = 1", "drop": "cat IS NULL"})  # train: 0 and 1
    assert build_samples(cfg, tmp_path / "ok").counts["dropped"] == 1


def test_label_column_must_exist_and_be_binary(tables: DataConfig, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no label column 'label'; the data has \['uid', 'iid'"):
        build_samples(changed(tables, label="label"), tmp_path)
    with pytest.raises(
        DataError, match=r"'score' must hold only 0/1, but 6 rows do not; first at behavior row 0 .*: 5"
    ):
        build_samples(changed(tables, label="score"), tmp_path)


def test_duplicate_side_keys_and_missing_key(tables: DataConfig, tmp_path: Path) -> None:
    write_parquet(pa.table({"iid": ["a", "a"], "cat": ["x", "y"]}), str(tmp_path / "dup.parquet"))
    dup = with_tables(tables, items=str(tmp_path / "dup.parquet"))
    with pytest.raises(DataError, match=r"items table has duplicate 'iid' values \(e.g. 'a' appears 2 times\)"):
        build_samples(dup, tmp_path)
    wrong_key = with_tables(tables, user_key="user_id")
    with pytest.raises(DataError, match=r"behavior table has no key column 'user_id'"):
        build_samples(wrong_key, tmp_path)


def test_missing_behavior_file(tables: DataConfig, tmp_path: Path) -> None:
    cfg = with_tables(tables, behavior=str(tmp_path / "x.csv"))
    with pytest.raises(DataError, match=r"x\.csv: file not found"):
        build_samples(cfg, tmp_path)


def test_empty_split_is_an_error(tables: DataConfig, tmp_path: Path) -> None:
    cfg = changed(tables, split={"method": "by_date", "time_column": "ts", "test_from": "100000"})
    with pytest.raises(DataError, match=r"split 'test' \(by_date\) is empty"):
        build_samples(cfg, tmp_path)


def test_prebuilt_samples(tmp_path: Path) -> None:
    write_parquet(pa.table({"label": [0, 1, 1]}), str(tmp_path / "train.parquet"))
    (tmp_path / "valid.csv").write_text("label\n0\n1\n")
    cfg = DataConfig(source="samples", train=str(tmp_path / "train.parquet"), valid=str(tmp_path / "valid.csv"))
    samples = build_samples(cfg, tmp_path / "unused")
    assert (samples.train, samples.valid, samples.test) == (cfg.train, cfg.valid, None)
    assert samples.counts == {"train": 3}
    with pytest.raises(DataError, match="no label column 'click'"):
        build_samples(changed(cfg, label="click"), tmp_path)
    with pytest.raises(DataError, match=r"test\.parquet: file not found"):
        build_samples(changed(cfg, test=str(tmp_path / "test.parquet")), tmp_path)
    with pytest.raises(ConfigError, match=r"data\.train"):
        build_samples(DataConfig(source="samples"), tmp_path)
