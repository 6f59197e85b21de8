"""The validation gate on real trained bundles: label-shuffled models are rejected, better ones published."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from recforge.bundle.stream import current, prune, rejections, rollback, versions
from recforge.config import build_config
from recforge.config.gate import GateConfig
from recforge.pipeline.rank import train
from recforge.train.gate import publish_gated

from support import REPO, small_synthetic


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate")
    good = train(build_config(small_synthetic(epochs=2)), root / "good")  # epoch 1 is still at the bias
    samples = good.samples
    shuffled = pq.read_table(samples.train)
    labels = shuffled["click"].to_numpy().copy()
    np.random.default_rng(0).shuffle(labels)
    shuffled = shuffled.set_column(shuffled.column_names.index("click"), "click", pa.array(labels))
    pq.write_table(shuffled, root / "shuffled.parquet")
    tree = small_synthetic(epochs=2)
    tree["data"] = {"source": "samples", "label": "click", "train": str(root / "shuffled.parquet"),
                    "valid": str(samples.valid), "test": str(samples.test)}  # fmt: skip
    noise = train(build_config(tree), root / "noise")
    better = train(build_config(small_synthetic(epochs=3)), root / "better")
    return {"good": good.bundle, "noise": noise.bundle, "better": better.bundle, "holdout": Path(str(samples.test))}


def test_label_shuffled_version_is_rejected_and_a_better_one_is_served(runs: dict[str, Path], tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    holdout = pq.read_table(runs["holdout"])
    rules = GateConfig(min_auc=0.6, max_auc_drop=0.01)
    first = publish_gated(runs["good"], stream, holdout, rules)
    assert first.passed and current(stream).path == first.published
    noise = publish_gated(runs["noise"], stream, holdout, rules)
    assert not noise.passed and noise.published is None
    assert any("below the serving version" in r for r in noise.reasons), noise.reasons
    assert any("floor" in r for r in noise.reasons), noise.reasons
    assert current(stream).version == first.version, "a rejected version is never served"
    assert [r["version"] for r in rejections(stream)] == [noise.version]
    better = publish_gated(runs["better"], stream, holdout, rules)
    assert better.passed, better.reasons
    assert better.metrics["auc"] >= first.metrics["auc"] - 0.01
    assert current(stream).version == better.version
    held = publish_gated(runs["good"], stream, holdout, rules, hold="drift alarm: price PSI 0.9")
    assert not held.passed and "on hold: drift alarm" in held.reasons[-1]
    assert current(stream).version == better.version
    assert rollback(stream) == first.published.name if first.published else False
    assert current(stream).version == first.version


def test_nan_weights_and_collapsed_scores_are_rejected(runs: dict[str, Path], tmp_path: Path) -> None:
    holdout = pq.read_table(runs["holdout"])
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(runs["good"]), str(broken)], check=True)
    weights = load_file(str(broken / "model.safetensors"))
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.ndim == 2)
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(broken / "model.safetensors"))
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["version"] = "broken-1"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    result = publish_gated(broken, tmp_path / "s", holdout, GateConfig())
    assert not result.passed
    assert any("non-finite weights" in r for r in result.reasons) and any(
        "non-finite scores" in r for r in result.reasons
    )
    assert not (tmp_path / "s" / "broken-1").exists()


def test_prune_keeps_the_newest_and_the_served_version(runs: dict[str, Path], tmp_path: Path) -> None:
    from recforge.bundle.stream import point_to, publish

    stream = tmp_path / "stream"
    for i in range(4):
        publish(runs["good"], stream, name=f"v{i}")
    point_to(stream, "v0")
    assert prune(stream, keep=2) == ["v1"]
    assert [p.name for p in versions(stream)] == ["v0", "v2", "v3"]


def test_model_cli_publish_list_rollback(runs: dict[str, Path], tmp_path: Path) -> None:
    stream = tmp_path / "cli-stream"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "recforge", "model", *args], capture_output=True, text=True,
                              cwd=REPO, timeout=300)  # fmt: skip

    ok = cli("publish", str(runs["good"]), str(stream), "--holdout", str(runs["holdout"]), "--set", "min_auc=0.6")
    assert ok.returncode == 0 and "published" in ok.stdout, ok.stderr
    bad = cli("publish", str(runs["noise"]), str(stream), "--holdout", str(runs["holdout"]), "--set", "min_auc=0.6")
    assert bad.returncode == 1 and "rejected" in bad.stdout and "floor" in bad.stdout
    listed = cli("list", str(stream)).stdout.splitlines()
    assert listed[0].startswith("* ") and listed[1].startswith("x ")
    assert "nothing to roll back" in cli("rollback", str(stream)).stderr
    out = tmp_path / "scores.parquet"
    scored = subprocess.run(
        [sys.executable, "-m", "recforge", "predict", str(stream), str(runs["holdout"]), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert scored.returncode == 0 and pq.read_table(out).num_rows == pq.read_table(runs["holdout"]).num_rows
