"""DIN reads recency: on a world where the last clicked categories raise clicks, DIN with `attention.recency`
beats DeepFM without the history and comes close to the true click probability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from safetensors.torch import load_file

from recforge import pipeline
from recforge.config.loader import build_config
from recforge.data import oracle_auc

from support import REPO

WORLD = {"n_users": 1000, "n_items": 200, "n_impressions": 150_000, "seed": 1}
GAP_TO_TRUTH = 0.02  # at this size; the full-size figures are in bench/RESULTS.md


def recency_world(model: str) -> dict[str, Any]:
    """examples/synthetic_recency_din.yaml at test size; `deepfm` drops the history."""
    tree = yaml.safe_load((REPO / "examples" / "synthetic_recency_din.yaml").read_text())
    tree["data"]["synthetic"].update(WORLD)
    tree["train"].update(threads=2, progress=False, max_epochs=8)
    if model == "din_recency":
        tree["model"]["attention"]["recency"] = True
    else:
        tree["features"] = [f for f in tree["features"] if f["kind"] != "sequence"]
        tree["model"] = {"name": "deepfm", "deep": {"hidden": [64, 32], "dropout": 0.0}}
    return tree


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, float, Path]]:
    """(test AUC, true-probability AUC on the same rows, bundle) per model."""
    out = {}
    for model in ("din_recency", "deepfm"):
        run = pipeline.train(build_config(recency_world(model)), tmp_path_factory.mktemp(model))
        out[model] = (run.metrics["test"]["auc"], oracle_auc(pq.read_table(run.samples.test)), run.bundle)
    return out


def test_din_with_recency_beats_deepfm_without_history(trained: dict[str, tuple[float, float, Path]]) -> None:
    din, deepfm = trained["din_recency"][0], trained["deepfm"][0]
    assert din >= deepfm + 0.01, trained


def test_din_with_recency_comes_close_to_the_true_probability(trained: dict[str, tuple[float, float, Path]]) -> None:
    din, truth, _ = trained["din_recency"]
    assert din >= truth - GAP_TO_TRUTH, trained


def test_the_learned_recency_factors_single_out_the_planted_window(
    trained: dict[str, tuple[float, float, Path]],
) -> None:
    """The world counts the last 5 clicks (recency_window 5) of a history of 10: ranks 0-4 must weigh more."""
    factors = load_file(str(trained["din_recency"][2] / "model.safetensors"))["/attention.0.recency"]
    assert factors.shape == (10,)
    assert float(factors[:5].min()) > 2 * float(factors[5:].max()), factors
