"""End to end on a synthetic world with a planted cross and noise columns: autocross and importance CLIs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recforge.cli import app
from recforge.config import build_config
from recforge.errors import RecforgeError
from recforge.pipeline import train

from support import planted_synthetic


def invoke(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exit_code != 0:
        raise AssertionError(f"recforge {' '.join(map(str, args))} failed:\n{result.output}") from result.exception
    return result.output


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DeepFM trained without any cross (the planted interaction is left for autocross to find)."""
    root = tmp_path_factory.mktemp("planted")
    (root / "p.yaml").write_text(yaml.safe_dump(planted_synthetic()))
    train(build_config(planted_synthetic()), root / "run")
    return root


def test_autocross_writes_the_planted_cross_and_it_raises_deepfm_auc(base: Path) -> None:
    out = invoke("features", "autocross", base / "p.yaml", "--out", base / "x.yaml", "--max-crosses", "1")
    assert "accepted category_id_x_city_tier: uplift +0.0" in out, out
    tree = yaml.safe_load((base / "x.yaml").read_text())
    assert tree["features"][:-1] == planted_synthetic()["features"]
    assert tree["features"][-1] == {
        "name": "category_id_x_city_tier",
        "kind": "cross",
        "side": "context",
        "inputs": ["category_id", "city_tier"],
        "buckets": 1000,
    }
    crossed = train(build_config(tree), base / "crossed")
    before = json.loads((base / "run" / "metrics.json").read_text())
    # Measured (2-epoch DeepFM, 48k rows): valid AUC 0.792 -> 0.816, test 0.800 -> 0.825.
    gain = crossed.metrics["valid"]["auc"] - before["valid"]["auc"]
    assert gain > 0.01, (before["valid"], crossed.metrics["valid"])


def test_importance_ranks_planted_features_above_noise(base: Path) -> None:
    out = invoke(
        "features", "importance", base / "run" / "bundle",
        "--data", base / "run" / "samples" / "test.parquet", "--out", base / "imp",
    )  # fmt: skip
    with (base / "imp" / "importance.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["feature", "importance", "std", "rank", "kind", "drop_rate"]
    assert [int(r["rank"]) for r in rows] == list(range(1, 11))
    rank = {r["feature"]: int(r["rank"]) for r in rows}
    # Measured: city_tier 0.057 and category_id 0.033 (they carry the planted interaction), noise ~0.001.
    assert {"city_tier", "category_id"} <= {r["feature"] for r in rows[:3]}, rows
    for planted in ("city_tier", "category_id", "item_id", "price", "gender", "position"):
        assert rank[planted] < min(rank["noise_1"], rank["noise_2"]), rows
    drop = {r["feature"]: float(r["drop_rate"]) for r in rows}
    assert drop["noise_1"] > 0.5 and drop["noise_2"] > 0.5, drop
    assert drop["city_tier"] < 0.1 and drop["category_id"] < 0.1, drop
    assert (base / "imp" / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((base / "imp" / "importance.json").read_text())["repeats"] == 5
    assert "rank  feature" in out and "chart:" in out


def test_chart_without_matplotlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from recforge.pipeline.importance import write_chart

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RecforgeError, match=r"pip install 'recforge\[analysis\]'"):
        write_chart([], 0.5, tmp_path / "x.png")


def test_importance_needs_the_label_column(base: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from recforge.errors import DataError
    from recforge.pipeline.importance import feature_importance

    rows = pq.read_table(base / "run" / "samples" / "test.parquet").drop_columns(["click"])
    pq.write_table(rows, tmp_path / "unlabelled.parquet")
    with pytest.raises(DataError, match="no label column 'click'"):
        feature_importance(base / "run" / "bundle", str(tmp_path / "unlabelled.parquet"), tmp_path / "out")
