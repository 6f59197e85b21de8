"""Distillation: the soft-label loss, teacher scores beside the samples, a student that follows its teacher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from recforge.bundle import load_bundle, score_table
from recforge.config import build_config
from recforge.errors import ConfigError
from recforge.pipeline import RunResult, train
from recforge.train.distill import TEACHER_COLUMN, distill_loss

from support import REPO, small_synthetic


def test_distill_loss_blends_labels_and_soft_targets() -> None:
    torch.manual_seed(0)
    logits, teacher = torch.randn(64), torch.randn(64) * 2
    labels = (torch.rand(64) < 0.3).float()
    bce = nn.functional.binary_cross_entropy_with_logits
    assert distill_loss(logits, labels, teacher, 0.0, 3.0).item() == pytest.approx(bce(logits, labels).item(), 1e-6)
    # soft BCE = KL(teacher || student) + the teacher's entropy (constant), scaled by T^2
    t = 2.0
    p, q = torch.sigmoid(teacher / t), torch.sigmoid(logits / t)
    kl = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).mean()
    assert distill_loss(logits, labels, teacher, 1.0, t).item() == pytest.approx((t**2 * (kl + entropy)).item(), 1e-5)
    # the soft term is minimal (zero gradient) where the student equals the teacher
    at_teacher = teacher.clone().requires_grad_(True)
    distill_loss(at_teacher, labels, teacher, 1.0, t).backward()
    assert at_teacher.grad is not None and at_teacher.grad.abs().max().item() < 1e-7


def _tree(model: dict[str, Any], **train_opts: Any) -> dict[str, Any]:
    tree = small_synthetic(epochs=2, **train_opts)
    tree["data"]["synthetic"].update(n_users=300, n_items=100, n_impressions=20000)
    tree["model"] = model
    tree["eval"]["metrics"] = ["auc", "logloss"]
    return tree


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """An item-side-only teacher: its scores differ from what a student with user features learns from labels."""
    tree = _tree({"name": "deepfm", "deep": {"hidden": [32], "dropout": 0.0}}, optimizer={"lr": 0.01})
    tree["features"] = [f for f in tree["features"] if f["side"] == "item"]
    return train(build_config(tree), tmp_path_factory.mktemp("teacher"))


def _agreement(run: RunResult, teacher: RunResult) -> float:
    """Pearson correlation of the student's and the teacher's test logits."""
    test = pq.read_table(teacher.samples.test)
    a, b = score_table(load_bundle(run.bundle), test), score_table(load_bundle(teacher.bundle), test)
    return float(np.corrcoef(np.log(a / (1 - a)), np.log(b / (1 - b)))[0, 1])


@pytest.fixture(scope="module")
def students(teacher: RunResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    """An FM trained on the labels, and one trained on the teacher's scores alone (alpha=1)."""
    root = tmp_path_factory.mktemp("students")
    plain = train(build_config(_tree({"name": "fm"}, optimizer={"lr": 0.01})), root / "plain")
    distill = {"teacher": str(teacher.bundle), "alpha": 1.0, "temperature": 1.0}
    taught = train(build_config(_tree({"name": "fm"}, optimizer={"lr": 0.01}, distill=distill)), root / "taught")
    return plain, taught


def test_student_learns_its_teachers_scores(teacher: RunResult, students: tuple[RunResult, RunResult]) -> None:
    plain, taught = students
    scored = pq.read_table(taught.out_dir / "samples" / "train_teacher.parquet")
    train_rows = pq.read_table(teacher.samples.train)
    assert scored.num_rows == train_rows.num_rows
    probs = score_table(load_bundle(teacher.bundle), train_rows.slice(0, 500))
    expected = np.log(probs / (1 - probs))
    np.testing.assert_allclose(scored[TEACHER_COLUMN].to_numpy()[:500], expected, atol=1e-4)

    # alpha=1 trains on the teacher's scores alone: the student ranks like the teacher, not like the labels
    assert taught.metrics["test"]["auc"] > 0.6
    taught_r, plain_r = _agreement(taught, teacher), _agreement(plain, teacher)
    assert taught_r > 0.85 and taught_r > plain_r + 0.05, (taught_r, plain_r)  # measured 0.90 vs 0.79
    model = load_bundle(taught.bundle).model
    assert taught.metrics["train"]["parameters"] == sum(p.numel() for p in model.parameters())


def test_distill_needs_a_teacher_bundle(tmp_path: Path) -> None:
    tree = _tree({"name": "fm"}, distill={"teacher": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=r"train\.distill\.teacher.*not a bundle"):
        train(build_config(tree), tmp_path / "run")


def test_report_of_a_run_against_its_baseline(students: tuple[RunResult, RunResult], tmp_path: Path) -> None:
    plain, taught = students
    (tmp_path / "importance.csv").write_text("feature,importance\nuser_id,0.02\nitem_id,0.11\nprice,-0.001\n")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "recforge", "report", taught.out_dir),
            *("--baseline", plain.out_dir / "config.yaml", "--importance", tmp_path / "importance.csv"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = (taught.out_dir / "report.html").read_text()
    assert "<script" not in html and "<link" not in html and "src=" not in html  # nothing fetched: offline
    assert html.count("<svg") == 3  # losses (train, valid logloss), valid auc, importance bars
    assert html.count("<circle") == 2 * 2 + 2  # train_loss + valid_logloss, then valid_auc: 2 epochs each
    assert "train.distill.teacher" in html and str(taught.metrics["test"]["auc"])[:6] in html
    order = [html.index(f">{name}<") for name in ("item_id", "user_id", "price")]
    assert order == sorted(order)  # importance rows sorted by magnitude
