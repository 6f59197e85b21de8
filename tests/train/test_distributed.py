"""`recforge train --nproc 2` (torchrun, gloo, CPU): the 1-process AUC, one writer, identical decisions on every
rank, and DCP checkpoints that resume at another world size and export a bundle `recforge serve` serves."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from recforge.bundle import load_bundle, score_table
from recforge.config import build_config
from recforge.pipeline import RunResult, train
from recforge.pipeline.serve import write_serving_files
from recforge.train.evals_log import read_evals
from recforge.train.metrics import auc

from support import recforge, small_synthetic, start_server, stop_server

pytestmark = pytest.mark.slow


@dataclass
class Runs:
    root: Path
    tree: dict[str, Any]
    one: RunResult  # 1 process, in this one
    two: Path  # 2 processes through `recforge train --nproc 2`


def write(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("distributed")
    tree = small_synthetic(threads=1, epochs=2)
    one = train(build_config(tree), root / "one")
    recforge("train", write(root / "p.yaml", tree), "--out", root / "two", "--nproc", "2")
    return Runs(root, tree, one, root / "two")


def metrics(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "metrics.json").read_text()))


def rank1_evals(run: Path) -> list[dict[str, Any]]:
    """The evaluation rows rank 1 logged to its own file (it writes no evals.jsonl)."""
    lines = (run / "logs" / "rank1.log").read_text().splitlines()
    return [json.loads(line.split(" eval ", 1)[1]) for line in lines if " eval {" in line]


def test_two_processes_reach_the_one_process_test_auc(runs: Runs) -> None:
    one, two = runs.one.metrics, metrics(runs.two)
    assert two["samples"] == one["samples"]  # the same samples, built once by rank 0
    assert two["train"]["steps"] == one["train"]["steps"] == 94  # global batch 1024 = 2 x 512
    assert abs(two["test"]["auc"] - one["test"]["auc"]) <= 0.003, (two["test"], one["test"])
    assert two["test"]["auc"] > 0.75  # the small world after 2 epochs (0.76 on its keyed-hash split)


def test_every_rank_sees_the_same_metrics_and_only_rank_0_writes_run_outputs(runs: Runs) -> None:
    written = read_evals(runs.two)
    assert [row["step"] for row in written] == [47, 94]
    assert rank1_evals(runs.two) == written  # exact AUC over both ranks' rows: the same on each, same stop
    assert sorted(p.name for p in (runs.two / "logs").iterdir()) == ["rank1.log"]
    assert sorted(p.name for p in (runs.two / "checkpoint").iterdir()) == [
        "dcp",
        "rng-rank0.json",
        "rng-rank0.safetensors",
        "rng-rank1.json",
        "rng-rank1.safetensors",
        "trainer.json",
    ]


@pytest.fixture(scope="module")
def resumed(runs: Runs) -> RunResult:
    """The 2-process run resumed for a third epoch in this one process (2 -> 1)."""
    run = runs.root / "two-then-one"
    shutil.copytree(runs.two, run)
    return train(build_config(small_synthetic(threads=1, epochs=3)), run, resume=True)


def test_a_two_process_checkpoint_resumes_in_one_process_and_exports_a_bundle_that_serves(
    runs: Runs, resumed: RunResult
) -> None:
    assert (resumed.train.epochs, resumed.train.steps) == (3, 141)
    evals = read_evals(resumed.out_dir)
    assert evals[:2] == read_evals(runs.two) and evals[2]["step"] == 141
    assert resumed.metrics["test"]["auc"] >= metrics(runs.two)["test"]["auc"] - 0.003

    bundle = load_bundle(resumed.bundle)  # the ordinary single-process bundle scores the test rows
    test = pq.read_table(resumed.samples.test)
    assert auc(test["click"].to_numpy(), score_table(bundle, test)) == pytest.approx(
        resumed.metrics["test"]["auc"], abs=1e-6
    )
    serving = write_serving_files(build_config(runs.tree), resumed.out_dir, None, candidates=50)
    server = start_server(resumed.bundle, serving, "watch.enabled=false")
    try:
        candidates = list(range(1, 41))
        answer = server.post("/recommend", json={"user_id": 7, "k": 5, "candidates": candidates})
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        scores = [item["score"] for item in items]
        assert len({item["item_id"] for item in items}) == 5 and {item["item_id"] for item in items} <= set(candidates)
        assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
        assert answer.json()["version"] == bundle.version
    finally:
        stop_server(server)


def test_a_one_process_dcp_checkpoint_resumes_in_two_processes(runs: Runs, resumed: RunResult) -> None:
    """1 -> 2: the run resumed in one process left a DCP checkpoint written by one; two processes go on from it."""
    run = runs.root / "one-then-two"
    shutil.copytree(resumed.out_dir, run)
    assert json.loads((run / "checkpoint" / "trainer.json").read_text())["world_size"] == 1
    config = write(runs.root / "p4.yaml", small_synthetic(threads=1, epochs=4))
    recforge("train", config, "--out", run, "--nproc", "2", "--resume")
    assert [row["step"] for row in read_evals(run)] == [47, 94, 141, 188]
    assert rank1_evals(run)[-1] == read_evals(run)[-1]
    assert metrics(run)["test"]["auc"] >= metrics(runs.two)["test"]["auc"] - 0.003
    assert np.isfinite(metrics(run)["valid"]["auc"])
