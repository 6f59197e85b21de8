"""The main job on embedded defaults, through the real CLI: it learns the synthetic world's true CTR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from recforge.data import oracle_auc

from support import REPO


def test_quickstart_reaches_the_true_click_probability_auc(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "recforge", "quickstart", "--out", str(tmp_path / "qs")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "qs" / "metrics.json").read_text())
    ceiling = oracle_auc(pq.read_table(tmp_path / "qs" / "samples" / "test.parquet"))
    # Done-when of the core issue: DeepFM within 0.01 AUC of the generator's true click probability.
    assert metrics["test"]["auc"] >= ceiling - 0.01, (metrics["test"], ceiling)
    assert "test: auc=" in proc.stdout and proc.stdout.count("top items for user") == 3
    assert (tmp_path / "qs" / "bundle" / "manifest.json").exists()
