"""Warehouse-style CSV tables -> label rule on behavior type -> per-user split -> Wide&Deep -> CSV predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recforge import pipeline
from recforge.bundle import predict_file
from recforge.config import build_config
from recforge.config.schema import SyntheticConfig
from recforge.data.synthetic import generate_synthetic
from recforge.features import FeatureSet


def write_tables(root: Path) -> None:
    """A behavior log with a `behavior` type column (view/click), plus user and item tables, as CSV."""
    raw = generate_synthetic(SyntheticConfig(n_users=1500, n_items=400, n_categories=8, n_impressions=40_000, seed=3))
    log = raw.behavior
    kind = np.where(log["click"].to_numpy() == 1, "click", "view")
    log = log.select(["user_id", "item_id", "timestamp", "position"]).append_column("behavior", pa.array(kind))
    pacsv.write_csv(log, root / "log.csv")
    assert raw.users is not None and raw.items is not None
    pacsv.write_csv(raw.users, root / "users.csv")
    pacsv.write_csv(raw.items, root / "items.csv")


def test_tables_source_trains_and_predicts_csv(tmp_path: Path) -> None:
    write_tables(tmp_path)
    cfg = build_config(
        {
            "data": {
                "source": "tables",
                "tables": {
                    "behavior": str(tmp_path / "log.csv"),
                    "users": str(tmp_path / "users.csv"),
                    "items": str(tmp_path / "items.csv"),
                },
                "label_rule": {"positive": "behavior = 'click'"},
                "split": {"method": "per_user", "seed": 1},
            },
            "embedding_dim": 8,
            "features": [
                {"name": "user_id", "kind": "id", "side": "user"},
                {"name": "age", "kind": "numeric", "side": "user", "n_buckets": 5},
                {"name": "gender", "kind": "id", "side": "user"},
                {"name": "item_id", "kind": "id", "side": "item"},
                {"name": "category_id", "kind": "id", "side": "item"},
                {"name": "price", "kind": "numeric", "side": "item", "transform": "log"},
                {"name": "gender_x_category", "kind": "cross", "side": "context", "inputs": ["gender", "category_id"]},
                {"name": "position", "kind": "id", "side": "context"},
            ],
            "model": {"name": "widedeep", "deep": {"hidden": [32], "dropout": 0.0}},
            "train": {"epochs": 2, "batch_size": 512, "progress": False, "optimizer": {"lr": 0.003}},
            "eval": {"metrics": ["auc", "logloss", "gauc@user_id"]},
        }
    )
    result = pipeline.train(cfg, tmp_path / "run")
    counts = result.samples.counts
    assert counts["raw"] == 40_000 and counts["train"] + counts["valid"] + counts["test"] == 40_000
    assert result.metrics["test"]["auc"] > 0.62, result.metrics  # measured ~0.68; random is 0.5

    test = pq.read_table(result.samples.test).slice(0, 300)  # type: ignore[arg-type]
    strangers = test.set_column(0, "user_id", pa.array(np.full(300, 10**9)))  # users never seen in training
    pacsv.write_csv(strangers.drop_columns(["label"]), tmp_path / "score_me.csv")
    counts = predict_file(result.bundle, str(tmp_path / "score_me.csv"), tmp_path / "scores.parquet", keep=["item_id"])
    assert counts["rows"] == 300 and counts["user_id.oov"] == 300
    scores = pq.read_table(tmp_path / "scores.parquet")["score"].to_numpy()
    assert scores.shape == (300,) and np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()


def write_headerless_log(path: Path) -> pa.Table:
    """A `;`-delimited log without a header, a quoted title column carrying the year, and a truncated last line.

    Returns the good lines as a table.
    """
    raw = generate_synthetic(SyntheticConfig(n_users=800, n_items=200, n_categories=8, n_impressions=12_000, seed=5))
    log = raw.behavior.select(["user_id", "item_id", "timestamp", "click"])
    items = log["item_id"].to_numpy()
    titles = [f"Film {i}; part {i % 3} ({1980 + i % 25})" for i in items]  # `;` inside a quoted field
    log = log.append_column("title", pa.array(titles))
    pacsv.write_csv(log, path, pacsv.WriteOptions(include_header=False, delimiter=";", quoting_style="all_valid"))
    with path.open("a") as handle:
        handle.write("17;42;16")  # the last line, cut off mid-write
    return log


def test_headerless_log_with_bad_line_and_derived_year_trains(tmp_path: Path) -> None:
    log = write_headerless_log(tmp_path / "log.txt")
    good, early = log.num_rows, int((log["item_id"].to_numpy() % 25 < 2).sum())
    behavior = {
        "path": str(tmp_path / "log.txt"),
        "columns": ["user_id", "item_id", "timestamp", "click", "title"],
        "delimiter": ";",
        "bad_lines": "skip",
        "derive": {"year": r"CAST(regexp_extract(title, '\((\d{4})\)', 1) AS INTEGER)"},
    }
    cfg = build_config(
        {
            "data": {
                "source": "tables",
                "tables": {"behavior": behavior},
                "label": "click",
                "label_rule": {"positive": "click = 1", "drop": "year < 1982"},
                "split": {"method": "random", "seed": 1},
            },
            "embedding_dim": 8,
            "features": [
                {"name": "user_id", "kind": "id", "side": "user"},
                {"name": "item_id", "kind": "id", "side": "item"},
                {"name": "year", "kind": "numeric", "side": "item", "boundaries": [1990, 2000]},
            ],
            "model": {"name": "deepfm", "deep": {"hidden": [16], "dropout": 0.0}},
            "train": {"epochs": 1, "batch_size": 512, "progress": False},
        }
    )
    result = pipeline.train(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    counts = metrics["samples"]
    assert counts["behavior_lines"] == good + 1 and counts["behavior_bad_lines"] == 1
    assert counts["raw"] == good and counts["dropped"] == early and counts["rows"] == good - early
    train = pq.read_table(result.samples.train)
    years = train["year"].to_numpy()
    expected = 1980 + train["item_id"].to_numpy() % 25
    assert (years == expected).all() and years.min() >= 1982
    features = FeatureSet.load(tmp_path / "run" / "features")
    assert features.input_columns() == ["user_id", "item_id", "year"]
    batch = features.transform(train)
    column = [f.name for f in features.schema().id_fields].index("year")
    buckets = batch.ids[:, column].unique().tolist()
    assert len(buckets) == 3 and 0 not in buckets  # <1990, 1990s, >=2000: the derived year is a real feature
