"""A training split whose label has one class is an error on every source, not AUC 0.5 (issue 15, defect 10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from support import REPO, small_synthetic

FIX = (
    "  fix: check that `data.label` (or `data.label_rule.positive`) gives both 0 and 1 rows "
    "and that the split leaves both in train"
)


def train(tree: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    return subprocess.run(
        [sys.executable, "-m", "recforge", "train", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def single_class_line(path: Path | str, positive: int, negative: int) -> str:
    return (
        f"error: {path}: label 'click' has a single class in the train split ({positive:,} positive, "
        f"{negative:,} negative rows): a ranking model cannot learn from it (its AUC would stay 0.5)"
    )


def test_prebuilt_samples_with_one_class_are_refused(tmp_path: Path) -> None:
    rows = {"user_id": list(range(40)), "item_id": [i % 7 for i in range(40)]}
    pq.write_table(pa.table({**rows, "click": [1] * 40}), tmp_path / "train.parquet")
    pq.write_table(pa.table({**rows, "click": [i % 2 for i in range(40)]}), tmp_path / "valid.parquet")
    tree = small_synthetic(epochs=1)
    tree["data"] = {
        "source": "samples",
        "train": str(tmp_path / "train.parquet"),
        "valid": str(tmp_path / "valid.parquet"),
        "label": "click",
    }
    tree["features"] = [{"name": "user_id", "kind": "id"}, {"name": "item_id", "kind": "id"}]
    tree["eval"] = {"metrics": ["auc"]}
    proc = train(tree, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [single_class_line(tmp_path / "train.parquet", 40, 0), FIX]
    assert not (tmp_path / "run" / "bundle").exists()


def test_a_label_rule_that_gives_one_class_is_refused(tmp_path: Path) -> None:
    tree = small_synthetic(epochs=1)
    tree["data"]["synthetic"]["n_impressions"] = 5000
    tree["data"]["label_rule"] = {"positive": "user_id < 0"}
    proc = train(tree, tmp_path)
    written = tmp_path / "run" / "samples" / "train.parquet"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [single_class_line(written, 0, pq.read_metadata(written).num_rows), FIX]
    assert not (tmp_path / "run" / "bundle").exists()
