"""`recforge train --resume`: a run killed at any moment and resumed ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from recforge.config import load_config
from recforge.errors import BundleError
from recforge.models.layers.dropout import FastDropout
from recforge.pipeline import train
from recforge.state_io import load_state, save_state
from recforge.train import rng_state

from support import REPO, recforge, recforge_command, small_synthetic


def resumable(**train: Any) -> dict[str, Any]:
    """6,400 training rows, dropout and shuffle on, one torch thread (so floating point repeats exactly)."""
    tree = small_synthetic(**{"batch_size": 64, "epochs": 5, "threads": 1, "eval_every": 30, **train})
    tree["data"]["synthetic"].update(n_users=300, n_items=100, n_impressions=8000)
    tree["model"]["deep"]["dropout"] = 0.2
    return tree


def write(tmp_path: Path, tree: dict[str, Any]) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def outcome(run: Path) -> dict[str, Any]:
    """What must not depend on interruptions: every bundle file's bytes, metrics (bar throughput), evals."""
    files = {
        str(f.relative_to(run / "bundle")): f.read_bytes()
        for f in sorted((run / "bundle").rglob("*"))
        if f.is_file() and f.name != "manifest.json"  # the manifest holds the export time
    }
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["train"].pop("samples_per_s")  # a timing
    manifest = json.loads((run / "bundle" / "manifest.json").read_text())
    assert manifest["metrics"]["test"] == metrics["test"]
    return {"files": files, "metrics": metrics, "evals": (run / "evals.jsonl").read_text()}


def test_resume_without_checkpoint_says_so_before_any_work_and_starts_fresh(tmp_path: Path) -> None:
    config = write(tmp_path, resumable(epochs=1))
    proc = recforge("-v", "train", config, "--out", tmp_path / "run", "--resume", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    said = [i for i, line in enumerate(lines) if f"no checkpoint in {tmp_path / 'run' / 'checkpoint'}" in line]
    assert len(said) == 1 and lines[said[0]].endswith(": starting fresh"), proc.stderr
    assert said[0] < next(i for i, line in enumerate(lines) if "samples in" in line), "checked before the samples"
    assert (tmp_path / "run" / "bundle" / "model.safetensors").exists()
    assert len((tmp_path / "run" / "evals.jsonl").read_text().splitlines()) == 4  # steps 30, 60, 90, epoch end


def test_resume_after_a_kill_between_eval_and_checkpoint_keeps_one_row_per_evaluation(tmp_path: Path) -> None:
    """The disk as a kill leaves it after epoch 2's evaluation row and before its checkpoint: resuming
    redoes epoch 2 and writes its row once, equal to an uninterrupted run's."""
    tree = resumable(epochs=2)  # checkpoints at epoch ends only (every_steps 1000)
    straight = train(load_config(write(tmp_path, tree)), tmp_path / "straight")
    run = tmp_path / "run"
    train(load_config(write(tmp_path, {**tree, "train": {**tree["train"], "epochs": 1}})), run)
    shutil.copytree(run / "checkpoint", tmp_path / "after-epoch-1")
    train(load_config(write(tmp_path, tree)), run, resume=True)
    shutil.rmtree(run / "checkpoint")
    shutil.copytree(tmp_path / "after-epoch-1", run / "checkpoint")
    resumed = train(load_config(write(tmp_path, tree)), run, resume=True)
    rows = (run / "evals.jsonl").read_text().splitlines()
    steps = [json.loads(r)["step"] for r in rows]
    per_epoch = steps[3]  # evaluations every 30 steps and at each epoch's end, one row each
    assert steps == [30, 60, 90, per_epoch, 120, 150, 180, 2 * per_epoch] and 95 <= per_epoch <= 105
    assert rows == (tmp_path / "straight" / "evals.jsonl").read_text().splitlines()
    assert resumed.train.history == straight.train.history


class Crash(Exception):
    """Raised from `on_eval`: the run dies right after an evaluation row was written."""


def test_a_crash_mid_epoch_with_dynamic_tables_sparse_adam_and_streaming_resumes_exactly(tmp_path: Path) -> None:
    """Dynamic user ids (lazy Adam and eviction in the table), static item ids (torch SparseAdam), batches
    streamed from disk through a shuffle buffer: a run that dies at step 120, mid-epoch 2 and one step past
    its last checkpoint, resumes to the uninterrupted result."""
    tree = resumable(
        epochs=2, checkpoint={"every_steps": 7}, optimizer={"sparse": "sparse_adam"}, cache="stream", shuffle_buffer=3
    )
    tree["data"]["read_rows"] = 256
    tree["features"][3]["min_count"] = 70  # rarer item ids train as the default row: counted in metrics.json
    tree["features"][0]["storage"] = {"kind": "dynamic", "initial_capacity": 64, "eviction": {"max_rows": 250}}
    cfg = load_config(write(tmp_path, tree))
    train(cfg, tmp_path / "straight")

    def crash(row: dict[str, Any]) -> None:
        if row["step"] == 120:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", on_eval=crash)
    per_epoch = max(
        row["step"] for row in map(json.loads, (tmp_path / "straight" / "evals.jsonl").open()) if row["epoch"] == 1
    )
    checkpointed = 119  # the last multiple of 7 before the crash at step 120
    assert json.loads((tmp_path / "run" / "checkpoint" / "trainer.json").read_text())["batch_in_epoch"] == (
        checkpointed - per_epoch
    )
    built = (tmp_path / "run" / "samples" / "train.parquet").stat().st_mtime_ns
    train(cfg, tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "samples" / "train.parquet").stat().st_mtime_ns == built, "samples reused"
    assert outcome(tmp_path / "run") == outcome(tmp_path / "straight")
    assert outcome(tmp_path / "run")["metrics"]["defaults"]["item_id.oov"] > 0


def test_a_resumed_warm_start_names_its_parent_and_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, resumable(epochs=1, checkpoint={"every_steps": 10})))
    parent = train(cfg, tmp_path / "parent").bundle
    train(cfg, tmp_path / "straight", warm_start=parent)

    def crash(row: dict[str, Any]) -> None:
        raise Crash  # at the first evaluation (step 30), after the checkpoint of step 20

    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", warm_start=parent, on_eval=crash)
    train(cfg, tmp_path / "run", warm_start=parent, resume=True)
    assert outcome(tmp_path / "run") == outcome(tmp_path / "straight")
    version = json.loads((parent / "manifest.json").read_text())["version"]
    assert json.loads((tmp_path / "run" / "bundle" / "manifest.json").read_text())["parent"] == version


def test_resume_with_a_different_model_is_a_clear_error(tmp_path: Path) -> None:
    tree = resumable(epochs=1)
    train(load_config(write(tmp_path, tree)), tmp_path / "run")
    tree["model"]["deep"]["hidden"] = [16]
    with pytest.raises(BundleError, match="does not fit the model of this config"):
        train(load_config(write(tmp_path, tree)), tmp_path / "run", resume=True)


def test_rng_state_round_trips_through_a_checkpoint_file(tmp_path: Path) -> None:
    """Every generator draws after a restore what it drew after the capture: globals and FastDropout's own."""
    model = torch.nn.Sequential(FastDropout(0.5), torch.nn.Linear(2, 2), FastDropout(0.2))

    def draws() -> list[Any]:
        generators = [m.rng for m in model if isinstance(m, FastDropout)]
        return [np.random.rand(3).tolist(), random.random(), torch.rand(3).tolist(), *(g.random() for g in generators)]

    save_state(rng_state.capture(model), tmp_path / "rng")
    first = draws()
    rng_state.restore(model, load_state(tmp_path / "rng"), "test")
    assert draws() == first
    with pytest.raises(BundleError, match="do not match the model"):
        rng_state.restore(torch.nn.Sequential(FastDropout(0.5)), load_state(tmp_path / "rng"), "test")


def checkpoint_step(run: Path) -> int:
    """The step of the checkpoint on disk now (-1: none yet, or caught between its renames)."""
    try:
        return int(json.loads((run / "checkpoint" / "trainer.json").read_text())["step"])
    except (OSError, ValueError):
        return -1


def trained_past(run: Path, step: int | None) -> bool:
    """The checkpoint on disk is of `step` or later (None: the features are fitted, training is starting)."""
    if step is None:
        return (run / "features" / "features.json").exists()
    return checkpoint_step(run) >= step


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], delay: float) -> bool:
    """SIGKILL `proc` `delay` s after `ready()` holds; False when it exited first (the run was over)."""
    deadline = time.monotonic() + 300
    while not ready():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the run made no progress within 300 s"
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.slow
def test_kill_9_at_ten_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    every = 10
    recipe = {  # the training recipe's state (lr schedule position, EMA of the stop metric) must resume too
        "optimizer": {"schedule": {"warmup_steps": 20, "decay": "exponential", "half_life_steps": 100}},
        "early_stop": {"patience": 3, "smoothing": "ema", "window": 3, "min_delta": 0.0002},
    }
    config = write(tmp_path, resumable(checkpoint={"every_steps": every}, **recipe))
    recforge("train", config, "--out", tmp_path / "straight")
    expected = outcome(tmp_path / "straight")
    rng = random.Random(15)
    run = tmp_path / "run"
    killed = []
    for i in range(10):
        args = ["train", config, "--out", run, *(["--resume"] if i else [])]
        # the first kill lands between the feature fit and the first checkpoint; each later one after this
        # process wrote 1 or 2 checkpoints, plus a random delay: mid-step, mid-evaluation or mid-checkpoint
        target = checkpoint_step(run) + every * rng.randint(1, 2) if i else None
        proc = subprocess.Popen(recforge_command(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kill_when(proc, partial(trained_past, run, target), rng.uniform(0.0, 0.05)):
            killed.append(checkpoint_step(run))
        errors = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode in (0, -signal.SIGKILL) and "Traceback" not in errors, errors
    assert len(killed) == 10 and killed[0] == -1 and killed[-1] < expected["metrics"]["train"]["steps"], killed
    recforge("train", config, "--out", run, "--resume")
    assert outcome(run) == expected
