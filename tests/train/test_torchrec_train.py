"""`recforge train --nproc 2 --set train.distributed.embeddings=torchrec`: TorchRec-sharded tables through the
ordinary train path reach the 1-process AUC, export a bundle the serving Predictor scores, and checkpoint with DCP
(resumed by 2 processes; refused, in one line, by 1)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

pytest.importorskip("torchrec", reason="torchrec is not installed (bash scripts/setup_torchrec.sh installs it)")

from recforge.config import build_config
from recforge.errors import ConfigError
from recforge.pipeline import RunResult, train
from recforge.serving.predictor import Predictor
from recforge.train.distributed.checks import check_distributed
from recforge.train.evals_log import read_evals
from recforge.train.metrics import auc

from support import recforge, small_synthetic

pytestmark = pytest.mark.slow
SHARDED = ("--nproc", "2", "--set", "train.distributed.embeddings=torchrec")


@dataclass
class Runs:
    root: Path
    one: RunResult  # 1 process, ordinary tables, the same optimizers
    two: Path  # 2 processes, TorchRec-sharded tables


def tree(epochs: int) -> dict[str, Any]:
    """The small world with the sparse optimizer TorchRec runs on CPU (FBGEMM's exact row-wise Adagrad)."""
    config = small_synthetic(threads=1, epochs=epochs)
    config["train"]["optimizer"] = {"sparse": "rowwise_adagrad"}
    return config


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def metrics(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "metrics.json").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("torchrec_train")
    one = train(build_config(tree(2)), root / "one")
    recforge("train", write(root / "p.yaml", tree(2)), "--out", root / "two", *SHARDED)
    return Runs(root, one, root / "two")


def test_sharded_tables_reach_the_one_process_test_auc(runs: Runs) -> None:
    one, two = runs.one.metrics, metrics(runs.two)
    assert two["samples"] == one["samples"]
    assert two["train"]["steps"] == one["train"]["steps"] == 94  # global batch 1024 = 2 x 512
    assert abs(two["test"]["auc"] - one["test"]["auc"]) <= 0.003, (two["test"], one["test"])
    assert two["test"]["auc"] > 0.62  # 2 epochs of row-wise Adagrad at lr 1e-3 (0.64 on the keyed-hash split)
    assert [row["step"] for row in read_evals(runs.two)] == [47, 94]
    plan = (runs.two / "logs" / "rank1.log").read_text().split("torchrec sharding plan: ", 1)[1].splitlines()[0]
    assert "user_id" in plan and ("table_wise" in plan or "row_wise" in plan)  # the planner's choice, per table


def test_the_exported_bundle_is_the_ordinary_one_and_the_predictor_scores_it(runs: Runs) -> None:
    test = pq.read_table(runs.one.samples.test)
    scores = Predictor.load(runs.two / "bundle").score_table(test)
    assert len(scores) == test.num_rows
    assert auc(test["click"].to_numpy(), scores) == pytest.approx(metrics(runs.two)["test"]["auc"], abs=1e-6)


def test_a_sharded_checkpoint_resumes_in_two_processes_and_is_refused_by_one(runs: Runs) -> None:
    run = runs.root / "resumed"
    shutil.copytree(runs.two, run)
    refused = recforge("train", write(runs.root / "p3.yaml", tree(3)), "--out", run, "--resume", check=False)
    assert refused.returncode == 2, refused.stderr
    error = [line for line in refused.stderr.splitlines() if line.startswith("error")]
    assert len(error) == 1 and "train.distributed.embeddings" in error[0] and "Traceback" not in refused.stderr

    recforge("train", runs.root / "p3.yaml", "--out", run, "--resume", *SHARDED)
    assert [row["step"] for row in read_evals(run)] == [47, 94, 141]
    assert metrics(run)["train"]["steps"] == 141
    assert metrics(run)["test"]["auc"] >= metrics(runs.two)["test"]["auc"] - 0.003


@pytest.mark.parametrize(
    ("optimizer", "path"),
    [
        ({"sparse": "sparse_adam"}, "train.optimizer.sparse"),  # FBGEMM has no CPU Adam
        ({"sparse": "rowwise_adagrad", "schedule": {"decay": "exponential"}}, "train.optimizer.schedule"),
    ],
)
def test_a_config_the_sharded_tables_cannot_train_fails_before_any_work(optimizer: dict[str, Any], path: str) -> None:
    config = small_synthetic()
    config["train"]["optimizer"] = optimizer
    config["train"]["distributed"] = {"embeddings": "torchrec"}
    with pytest.raises(ConfigError) as raised:
        check_distributed(build_config(config), world_size=2)
    assert raised.value.path == path
