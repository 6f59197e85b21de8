"""The training recipe: smoothed early stopping with min_delta, restore-best, `epochs: auto`, lr schedules,
embedding regularisation, and all of it through a crash and `--resume`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from safetensors.torch import load_file

from recforge.bundle.bundle import load_bundle
from recforge.bundle.predict import score_table
from recforge.config import load_config
from recforge.config.schema import EarlyStopConfig, ScheduleConfig
from recforge.data import rank_auc
from recforge.errors import ConfigError
from recforge.pipeline import train
from recforge.train.schedule import lr_factor
from recforge.train.stopping import EarlyStopper

from support import small_synthetic

# A valid AUC that rises, dips by 0.00004 (the dip that once ended a ml-100k run at epoch 5), then rises.
DIP = [0.800, 0.810, 0.81496, 0.81500, 0.81496, 0.81498, 0.8160, 0.8170]


def stops_at(cfg: EarlyStopConfig, values: list[float], higher: bool = True) -> int | None:
    """1-based evaluation at which the stopper says stop (None: never)."""
    stopper = EarlyStopper(cfg, higher)
    return next((i for i, v in enumerate(values, start=1) if stopper.update(v)), None)


def test_a_tiny_dip_ends_a_raw_run_but_not_a_smoothed_one() -> None:
    assert stops_at(EarlyStopConfig(patience=2), DIP) == 6
    assert stops_at(EarlyStopConfig(patience=2, smoothing="ema", window=3), DIP) is None
    assert stops_at(EarlyStopConfig(patience=2, smoothing="mean", window=3), DIP) is None


def test_min_delta_counts_small_gains_as_no_gain() -> None:
    rising_slowly = [0.80, 0.8001, 0.8002, 0.8003, 0.8004]
    assert stops_at(EarlyStopConfig(patience=2), rising_slowly) is None
    assert stops_at(EarlyStopConfig(patience=2, min_delta=0.001), rising_slowly) == 3


def test_lower_is_better_metrics_and_nan_evaluations() -> None:
    assert stops_at(EarlyStopConfig(metric="logloss", patience=1), [0.5, 0.4, 0.45], higher=False) == 3
    assert stops_at(EarlyStopConfig(patience=2), [0.7, math.nan, math.nan]) == 3


def test_the_stopper_state_round_trips_through_json() -> None:
    cfg = EarlyStopConfig(patience=3, smoothing="ema", window=4, min_delta=0.0001)
    straight, first = EarlyStopper(cfg), EarlyStopper(cfg)
    for v in DIP[:5]:
        straight.update(v)
        first.update(v)
    second = EarlyStopper(cfg)
    second.load(json.loads(json.dumps(first.state())))
    assert [second.update(v) for v in DIP[5:]] == [straight.update(v) for v in DIP[5:]]
    assert second.state() == straight.state()


def test_schedules_warm_up_linearly_then_decay_by_their_curve() -> None:
    warm = ScheduleConfig(warmup_steps=4, decay="exponential", half_life_steps=10)
    assert [lr_factor(s, warm) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_factor(14, warm) == pytest.approx(0.5)
    cosine = ScheduleConfig(decay="cosine", total_steps=100, min_factor=0.1)
    assert [lr_factor(s, cosine) for s in (0, 50, 100, 500)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    inverse = ScheduleConfig(warmup_steps=100, decay="inverse_sqrt")
    assert lr_factor(99, inverse) == 1.0 and lr_factor(400, inverse) == pytest.approx(1 / math.sqrt(4))


def write(tmp_path: Path, tree: dict[str, Any]) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def recipe(**train: Any) -> dict[str, Any]:
    """The small world trained with the whole recipe: auto epochs, warm-up + decay, EMA-smoothed stopping."""
    tree = small_synthetic(
        **{
            "epochs": "auto",
            "max_epochs": 12,
            "threads": 1,
            "batch_size": 512,
            "optimizer": {
                "lr": 0.003,
                "schedule": {"warmup_steps": 20, "decay": "exponential", "half_life_steps": 200},
            },
            "early_stop": {"metric": "auc", "patience": 2, "smoothing": "ema", "window": 3, "min_delta": 0.0005},
            **train,
        }
    )
    tree["data"]["synthetic"].update(n_users=500, n_items=200, n_impressions=20000)
    return tree


def test_auto_epochs_stop_before_the_cap_and_the_bundle_holds_the_best_evaluation(tmp_path: Path) -> None:
    result = train(load_config(write(tmp_path, recipe())), tmp_path / "run")
    rows = result.train.history
    assert 2 < result.train.epochs < 12, rows  # stopped by the smoothed metric, not by the cap
    best = max(rows, key=lambda r: r["valid_auc"])
    assert best["epoch"] < result.train.epochs and rows[-1]["valid_auc"] < best["valid_auc"]
    valid = pq.read_table(result.samples.valid)
    exported = rank_auc(valid["click"].to_numpy(), score_table(load_bundle(result.bundle), valid))
    assert exported == pytest.approx(best["valid_auc"], abs=1e-6)  # restore-best: the bundle is the best eval's
    assert all("smoothed_auc" in r for r in rows)


def test_embedding_weight_decay_shrinks_the_tables(tmp_path: Path) -> None:
    def table_norm(decay: float) -> float:
        tree = small_synthetic(threads=1, epochs=1, optimizer={"embedding_weight_decay": decay})
        run = train(load_config(write(tmp_path, tree)), tmp_path / f"run{decay}")
        weights = load_file(str(run.bundle / "model.safetensors"))
        return sum(float(v.norm()) for k, v in weights.items() if k == "/embeddings.weight")

    assert table_norm(0.05) < 0.8 * table_norm(0.0)


@pytest.mark.parametrize(
    ("train_block", "path"),
    [
        ({"optimizer": {"embedding_weight_decay": 0.01, "sparse": "sparse_adam"}}, "embedding_weight_decay"),
        ({"optimizer": {"schedule": {"decay": "cosine"}}}, "schedule.total_steps"),
        ({"optimizer": {"schedule": {"decay": "cosin", "total_steps": 9}}}, "did you mean 'cosine'"),
        ({"epochs": "auto", "early_stop": None}, "train.epochs"),
    ],
)
def test_bad_recipe_settings_are_named(tmp_path: Path, train_block: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        train(load_config(write(tmp_path, small_synthetic(**train_block))), tmp_path / "run")


class Crash(Exception):
    """Raised from `on_eval` mid-run."""


def test_a_crash_mid_recipe_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """Schedule position, EMA and stop counters come back from the checkpoint: same evals, same weights."""
    cfg = load_config(write(tmp_path, recipe(eval_every=15, checkpoint={"every_steps": 10})))
    straight = train(cfg, tmp_path / "straight")

    def crash(row: dict[str, Any]) -> None:
        if row["step"] == 75:  # mid-epoch 3 (32 steps an epoch), EMA and stop counters under way
            raise Crash

    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", on_eval=crash)
    resumed = train(cfg, tmp_path / "run", resume=True)
    assert resumed.train.history == straight.train.history
    assert (tmp_path / "run" / "evals.jsonl").read_text() == (tmp_path / "straight" / "evals.jsonl").read_text()
    weights = [(r.bundle / "model.safetensors").read_bytes() for r in (straight, resumed)]
    assert weights[0] == weights[1]
