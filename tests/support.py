"""Helpers the tests import: the repo root and a small synthetic pipeline config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def recforge_command(*args: str | Path) -> list[str]:
    """The argv of `recforge ARGS` run by this interpreter (so the checkout under test is what runs)."""
    return [sys.executable, "-m", "recforge", *map(str, args)]


def recforge(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real CLI to its end; with `check`, a non-zero exit fails the test with its output."""
    proc = subprocess.run(recforge_command(*args), capture_output=True, text=True, cwd=REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"recforge {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def small_synthetic(**train: Any) -> dict[str, Any]:
    """A 2k-user synthetic world and DeepFM, small enough for a test to train in seconds."""
    return {
        "name": "small",
        "data": {
            "source": "synthetic",
            "label": "click",
            "synthetic": {"n_users": 2000, "n_items": 500, "n_categories": 10, "n_impressions": 60000, "seed": 1},
        },
        "embedding_dim": 8,
        "features": [
            {"name": "user_id", "kind": "id", "side": "user"},
            {"name": "age", "kind": "numeric", "side": "user", "boundaries": [25, 35, 45, 55]},
            {"name": "gender", "kind": "id", "side": "user"},
            {"name": "item_id", "kind": "id", "side": "item"},
            {"name": "category_id", "kind": "id", "side": "item"},
            {"name": "price", "kind": "numeric", "side": "item", "n_buckets": 8},
            {"name": "position", "kind": "id", "side": "context"},
        ],
        "model": {"name": "deepfm", "deep": {"hidden": [64, 32], "dropout": 0.0}},
        "train": {"batch_size": 1024, "epochs": 2, "progress": False, **train},
        "eval": {"metrics": ["auc", "logloss", "gauc@user_id"]},
    }


def small_multitask(model: dict[str, Any], **train: Any) -> dict[str, Any]:
    """The small synthetic world with its `purchase` objective: tasks ctr (click) and ctcvr (purchase)."""
    cfg = small_synthetic(**train)
    cfg["data"]["synthetic"]["purchase"] = True
    cfg["tasks"] = [{"name": "ctr", "label": "click"}, {"name": "ctcvr", "label": "purchase"}]
    cfg["model"] = model
    cfg["eval"] = {"metrics": ["auc", "logloss"]}
    return cfg


def planted_synthetic(**train: Any) -> dict[str, Any]:
    """small_synthetic with a planted category_id x city_tier interaction and two noise columns as features."""
    tree = small_synthetic(**train)
    tree["data"]["synthetic"].update(cross_strength=1.0, noise_columns=2)
    tree["features"] += [
        {"name": "city_tier", "kind": "id", "side": "user"},
        {"name": "noise_1", "kind": "id"},
        {"name": "noise_2", "kind": "id"},
    ]
    return tree
