"""Experiment tracking: a training run logged to a real local MLflow store, read back with MLflow's own client."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from recforge.config import build_config
from recforge.errors import ConfigError
from recforge.pipeline import train
from recforge.train.evals_log import read_evals
from recforge.train.report import flatten

from support import small_synthetic

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'recforge[mlflow]')")


@dataclass
class Logged:
    run_dir: Path
    client: Any
    run: Any


def tracked(**tracking: Any) -> dict[str, Any]:
    tree = small_synthetic()
    tree["train"]["tracking"] = {"kind": "mlflow", **tracking}
    return tree


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    """One 2-epoch run into the default store (RUNS/mlflow.db beside the run directory)."""
    runs = tmp_path_factory.mktemp("runs")
    train(build_config(tracked()), runs / "first")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("small")  # the pipeline's name
    (run,) = client.search_runs([experiment.experiment_id])
    return Logged(runs / "first", client, run)


def test_params_are_the_flattened_resolved_config(logged: Logged) -> None:
    config = yaml.safe_load((logged.run_dir / "config.yaml").read_text())
    params = logged.run.data.params
    assert len(params) == len(flatten(config))
    assert params["train.optimizer.lr"] == "0.001"
    assert params["train.tracking.kind"] == "mlflow"
    assert params["data.synthetic.n_users"] == "2000"
    assert params["features.price.n_buckets"] == "8"  # `features[price].n_buckets`: brackets become dots
    assert params["model.deep.hidden"] == "[64, 32]"
    assert logged.run.info.status == "FINISHED"
    assert logged.run.info.run_name == "first"
    assert logged.run.data.tags["recforge.run_dir"] == str(logged.run_dir.resolve())


def test_metric_history_per_step_equals_evals_jsonl(logged: Logged) -> None:
    evals = read_evals(logged.run_dir)
    assert [row["epoch"] for row in evals] == [1, 2]
    names = {"train_loss": "train_loss", "valid_auc": "valid_auc", "valid_logloss": "valid_logloss"}
    names["valid_gauc@user_id"] = "valid_gauc_at_user_id"
    for column, key in names.items():
        history = logged.client.get_metric_history(logged.run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(row["step"], row[column]) for row in evals], key


def test_final_metrics_equal_metrics_json(logged: Logged) -> None:
    metrics = json.loads((logged.run_dir / "metrics.json").read_text())
    logged_metrics = logged.run.data.metrics
    assert logged_metrics["final.test.auc"] == metrics["test"]["auc"]
    assert logged_metrics["final.valid.auc"] == metrics["valid"]["auc"]
    assert logged_metrics["final.valid.gauc_at_user_id"] == metrics["valid"]["gauc@user_id"]
    assert logged_metrics["final.train.steps"] == metrics["train"]["steps"]


def test_bundle_report_and_run_files_are_artifacts(logged: Logged) -> None:
    run_id = logged.run.info.run_id
    top = {a.path for a in logged.client.list_artifacts(run_id)}
    assert top == {"bundle", "report.html", "config.yaml", "metrics.json", "evals.jsonl"}
    bundle = logged.run_dir / "bundle"
    assert {Path(a.path).name for a in logged.client.list_artifacts(run_id, "bundle")} == {
        p.name for p in bundle.iterdir()
    }
    local = Path(logged.client.download_artifacts(run_id, "bundle/manifest.json", str(logged.run_dir.parent)))
    assert local.read_bytes() == (bundle / "manifest.json").read_bytes()
    assert "<html" in (logged.run_dir / "report.html").read_text()


def test_a_failing_run_is_marked_failed_with_the_rows_logged_so_far(logged: Logged) -> None:
    def stop(row: dict[str, Any]) -> None:
        raise RuntimeError("stop here")

    tree = tracked(experiment="failing")
    tree["train"]["eval_every"] = 1  # the first evaluation (and so the error) after one step
    with pytest.raises(RuntimeError, match="stop here"):
        train(build_config(tree), logged.run_dir.parent / "failed", on_eval=stop)
    experiment = logged.client.get_experiment_by_name("failing")
    (run,) = logged.client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    first = read_evals(logged.run_dir.parent / "failed")[0]
    assert run.data.metrics["valid_auc"] == first["valid_auc"]  # the hook ran before the error went on


def test_missing_mlflow_is_a_config_error_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets without the extra
    missing = r"train\.tracking\.kind: .*mlflow.*\n  fix: pip install 'recforge\[mlflow\]'"
    with pytest.raises(ConfigError, match=missing):
        train(build_config(tracked()), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_tracker_names_the_known_ones(tmp_path: Path) -> None:
    tree = small_synthetic()
    tree["train"]["tracking"] = {"kind": "mlfow"}
    with pytest.raises(ConfigError, match=r"(?s)unknown tracker 'mlfow'.*mlflow, none.*did you mean 'mlflow'"):
        train(build_config(tree), tmp_path / "run")
