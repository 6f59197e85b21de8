"""HPO: space parsing, applying values, pruning from trainer evaluations, a resumable study, the CLI."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from recforge.config import load_config
from recforge.config.tune import TuneSpace, load_space
from recforge.errors import ConfigError
from recforge.pipeline import train
from recforge.pipeline.tune import check_space, objective_spec, tune
from recforge.train.tune import INTERRUPTED, PruningReporter, apply_params, run_study, storage_url, trials_table

from support import REPO, small_synthetic


def tiny(epochs: int = 2) -> dict[str, Any]:
    """300 users x 100 items, 20k impressions: a trial trains in a few seconds and still learns (AUC ~0.75)."""
    tree = small_synthetic(epochs=epochs, optimizer={"lr": 0.01})
    tree["data"]["synthetic"].update(n_users=300, n_items=100, n_impressions=20000)
    tree["model"]["deep"]["hidden"] = [16]
    tree["eval"]["metrics"] = ["auc", "logloss"]
    return tree


def test_space_validation_names_the_path(tmp_path: Path) -> None:
    file = tmp_path / "space.yaml"
    file.write_text(yaml.safe_dump({"params": {"train.optimizer.lr": {"type": "float", "low": 0.1, "high": 0.01}}}))
    with pytest.raises(ConfigError, match=r"params\.train\.optimizer\.lr"):
        load_space(file)
    file.write_text(yaml.safe_dump({"params": {"features[0].dim": {"type": "feature"}}}))
    with pytest.raises(ConfigError, match=r"features\.NAME"):
        load_space(file)


def test_apply_params_sets_paths_and_switches_features() -> None:
    tree = tiny()
    out = apply_params(tree, {"model.deep.hidden": [8, 4], "features[0].dim": 4, "features.position": False})
    assert out["model"]["deep"]["hidden"] == [8, 4]
    assert out["features"][0]["dim"] == 4
    assert [f["name"] for f in out["features"]] == [f["name"] for f in tree["features"] if f["name"] != "position"]
    assert tree["model"]["deep"]["hidden"] == [16] and len(tree["features"]) == 7  # the base is not touched
    with pytest.raises(ConfigError, match="no feature named 'nope'"):
        apply_params(tree, {"features.nope": True})


def test_reporter_prunes_a_trial_below_the_median() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(1, 0))
    first = study.ask()
    reporter = PruningReporter(first, "valid_auc", higher_is_better=True)
    for value in (0.70, 0.72, 0.71):
        reporter({"valid_auc": value})
    study.tell(first, 0.72)
    assert first.storage.get_trial(first._trial_id).intermediate_values == {1: 0.70, 2: 0.72, 3: 0.72}  # best so far
    second = study.ask()
    with pytest.raises(optuna.TrialPruned, match=r"valid_auc=0\.60000 after 1"):
        PruningReporter(second, "valid_auc", higher_is_better=True)({"valid_auc": 0.60})
    # a lower-is-better metric is reported as its running minimum to a minimizing study
    losses = optuna.create_study(direction="minimize", pruner=optuna.pruners.MedianPruner(1, 0))
    good = losses.ask()
    reporter = PruningReporter(good, "valid_logloss", higher_is_better=False)
    for value in (0.30, 0.28, 0.29):
        reporter({"valid_logloss": value})
    losses.tell(good, 0.28)
    assert good.storage.get_trial(good._trial_id).intermediate_values == {1: 0.30, 2: 0.28, 3: 0.28}
    with pytest.raises(optuna.TrialPruned):
        PruningReporter(losses.ask(), "valid_logloss", higher_is_better=False)({"valid_logloss": 0.5})


class Quadratic:
    """A real objective with a known optimum (x = 2), cheap enough for study mechanics."""

    def __call__(self, trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -5.0, 5.0)
        return -((x - 2.0) ** 2)


def test_study_resumes_and_requeues_interrupted_trials(tmp_path: Path) -> None:
    space = TuneSpace.model_validate(
        {"params": {"x": {"type": "float", "low": -5, "high": 5}}, "sampler": {"startup_trials": 2}}
    )
    storage = storage_url(tmp_path / "s.db")
    run_study(space, storage, "q", "maximize", Quadratic(), n_trials=3)
    # a run killed mid-trial leaves it RUNNING; the next run fails it and queues its params again
    dead = optuna.load_study(study_name="q", storage=storage).ask({"x": optuna.distributions.FloatDistribution(-5, 5)})
    study = run_study(space, storage, "q", "maximize", Quadratic(), n_trials=5)
    trials = study.get_trials()
    assert len(trials) == 6
    assert trials[dead.number].user_attrs[INTERRUPTED] is True
    requeued = trials[dead.number + 1]
    assert requeued.params["x"] == dead.params["x"] and requeued.state.name == "COMPLETE"
    table = trials_table(study)
    assert table.column("state").to_pylist().count("complete") == 5
    assert table.column("state").to_pylist().count("interrupted") == 1
    assert table.schema.field("x").type == "double"


def test_tune_prunes_writes_best_config_that_reproduces_and_resumes(tmp_path: Path) -> None:
    space = TuneSpace.model_validate(
        {
            "params": {"train.optimizer.lr": {"type": "float", "low": 1e-6, "high": 3e-2, "log": True}},
            "pruner": {"startup_trials": 1, "warmup_evals": 0},
            "sampler": {"kind": "random", "seed": 3},
        }
    )
    # queue a good and a hopeless learning rate first, so the second must be pruned at its first evaluation
    storage = storage_url(tmp_path / "study.db")
    study = optuna.create_study(storage=storage, study_name="small", direction="maximize")
    study.enqueue_trial({"train.optimizer.lr": 0.01})
    study.enqueue_trial({"train.optimizer.lr": 1e-6})
    result = tune(tiny(), space, tmp_path / "out", 2, study_db=tmp_path / "study.db")
    rows = result.table.to_pylist()
    assert [r["state"] for r in rows] == ["complete", "pruned"]
    assert rows[0]["value"] > 0.65 and rows[0]["evals"] == 2
    assert rows[1]["evals"] == 1 and rows[1]["value"] < rows[0]["value"] - 0.05
    assert result.best_trial == 0 and math.isclose(result.best_values["train.optimizer.lr"], 0.01)

    best = load_config(result.best_config, ["train.progress=false"])
    assert best.train.optimizer.lr == 0.01
    again = train(best, tmp_path / "again")
    assert again.metrics["valid"]["auc"] == pytest.approx(result.best_value, abs=1e-6)

    html = result.report.read_text()
    assert "<svg" in html and "train.optimizer.lr" in html and "<script" not in html
    with result.trials_csv.open() as f:
        assert [r["state"] for r in csv.DictReader(f)] == ["complete", "pruned"]

    # a rerun resumes the study: the trials it holds already count, none is trained again
    resumed = tune(tiny(), space, tmp_path / "out", 2, study_db=tmp_path / "study.db")
    assert resumed.table.column("duration_s").to_pylist() == result.table.column("duration_s").to_pylist()
    assert resumed.best_trial == 0


def test_tune_cli_runs_trials_in_worker_processes(tmp_path: Path) -> None:
    tree = tiny(epochs=2)
    tree["data"]["synthetic"]["n_impressions"] = 10000
    tree["train"]["batch_size"] = 256
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    space = {
        "params": {
            "model.deep.hidden": {"type": "categorical", "choices": [[8], [16, 8]]},
            "features.position": {"type": "feature"},
        },
        "pruner": {"kind": "none"},
        "sampler": {"kind": "random", "seed": 0},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "recforge", "tune", tmp_path / "p.yaml", "--space", tmp_path / "space.yaml"),
            *("--trials", "2", "--jobs", "2", "--out", tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "best config:" in proc.stdout and "model.deep.hidden" in proc.stdout
    with (tmp_path / "out" / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["state"] == "complete" and float(r["value"]) > 0.6 for r in rows)
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["model"]["deep"]["hidden"] in ([8], [16, 8])
    assert sorted(p.name for p in (tmp_path / "out" / "trials").iterdir()) == ["0000", "0001"]


def test_tune_rejects_an_objective_the_pipeline_does_not_evaluate(tmp_path: Path) -> None:
    space = TuneSpace.model_validate(
        {
            "params": {"train.optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
            "objective": {"metric": "gauc@user_id"},
        }
    )
    with pytest.raises(ConfigError, match=r"objective\.metric.*not among eval\.metrics"):
        tune(tiny(), space, tmp_path, 1)
    bad = TuneSpace.model_validate({"params": {"model.deep.dropout": {"type": "float", "low": 0.0, "high": 2.0}}})
    with pytest.raises(ConfigError, match=r"params\.model\.deep\.dropout: the value 2\.0"):
        tune(tiny(), bad, tmp_path, 1)


def test_the_example_space_fits_the_example_config() -> None:
    tree = yaml.safe_load((REPO / "examples" / "movielens_deepfm.yaml").read_text())
    tree["data"]["path"] = "somewhere"
    space = load_space(REPO / "examples" / "tune" / "movielens_deepfm_space.yaml")
    assert objective_spec(tree, space).name == "auc"
    check_space(tree, space)  # every range end and choice gives a valid pipeline
    assert len(space.params) == 7
