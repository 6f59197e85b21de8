"""`recforge tune`: one pipeline training per Optuna trial, scored on the valid split, pruned per evaluation."""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa
import yaml

from recforge.config.loader import build_config
from recforge.config.tune import CategoricalParam, FeatureSwitch, FloatParam, IntParam, TuneSpace
from recforge.errors import ConfigError, RecforgeError
from recforge.pipeline.rank import check, train
from recforge.train.metrics import MetricSpec, parse_metrics
from recforge.train.report import tune_report
from recforge.train.tune import (
    PruningReporter,
    apply_params,
    best_trial,
    run_study,
    storage_url,
    suggest,
    trials_table,
    write_table,
)

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    best_trial: int
    best_value: float
    best_values: dict[str, Any]
    best_config: Path
    best_run: Path
    table: pa.Table
    trials_csv: Path
    trials_parquet: Path
    report: Path


@dataclass
class TrialObjective:
    """Trains the base config with a trial's values in OUT/trials/NNNN; picklable for worker processes."""

    tree: dict[str, Any]
    space: TuneSpace
    out: str
    metric: str
    higher_is_better: bool
    threads: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        values = suggest(trial, self.space)
        trial.set_user_attr("values", values)
        overrides = ["train.progress=false"] + ([f"train.threads={self.threads}"] if self.threads else [])
        cfg = build_config(apply_params(self.tree, values), overrides)
        check(cfg)
        run_dir = Path(self.out) / "trials" / f"{trial.number:04d}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a re-queued interrupted trial starts clean
        reporter = PruningReporter(trial, f"valid_{self.metric}", self.higher_is_better)
        result = train(cfg, run_dir, on_eval=reporter)
        value = result.metrics["valid"].get(self.metric)
        if value is None or not math.isfinite(value):
            raise RecforgeError(f"trial {trial.number}: no finite valid {self.metric} (is there a valid split?)")
        return float(value)


def objective_spec(tree: dict[str, Any], space: TuneSpace) -> MetricSpec:
    """The objective's metric spec; it must be one the pipeline evaluates, and a valid split must exist."""
    cfg = build_config(tree)
    check(cfg)
    specs = {s.name: s for s in parse_metrics(cfg.eval.metrics)}
    if space.objective.metric not in specs:
        raise ConfigError(
            "objective.metric",
            f"{space.objective.metric!r} is not among eval.metrics {list(specs)}",
            fix="add it to eval.metrics or pick one of those",
        )
    return specs[space.objective.metric]


def check_space(tree: dict[str, Any], space: TuneSpace) -> None:
    """Each range end / choice must give a valid config, so a typo fails now, not in trial 17."""
    for path, spec in space.params.items():
        if isinstance(spec, (FloatParam, IntParam)):
            candidates: list[Any] = [spec.low, spec.high]
        elif isinstance(spec, CategoricalParam):
            candidates = list(spec.choices)
        else:
            assert isinstance(spec, FeatureSwitch)
            candidates = [True, False]
        for value in candidates:
            try:
                check(build_config(apply_params(tree, {path: value})))
            except RecforgeError as exc:
                raise ConfigError(
                    f"params.{path}", f"the value {value!r} makes an invalid pipeline config:\n{exc}"
                ) from None


def tune(
    tree: dict[str, Any],
    space: TuneSpace,
    out_dir: str | Path,
    n_trials: int,
    *,
    jobs: int = 1,
    study_db: str | Path | None = None,
    study_name: str | None = None,
    importance: str | Path | None = None,
) -> TuneResult:
    """Run (or resume) the study until it holds `n_trials`; write best.yaml, trials.csv/.parquet, report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = objective_spec(tree, space)
    check_space(tree, space)
    threads = None
    if jobs > 1 and not (tree.get("train") or {}).get("threads"):
        threads = max(1, (os.cpu_count() or 1) // jobs)
    objective = TrialObjective(tree, space, str(out), spec.name, spec.higher_is_better, threads)
    storage = storage_url(study_db or out / "study.db")
    name = study_name or str(tree.get("name") or "recforge")
    direction = "maximize" if spec.higher_is_better else "minimize"
    study = run_study(space, storage, name, direction, objective, n_trials, jobs)
    best = best_trial(study)
    values = dict(best.user_attrs["values"])
    best_tree = apply_params(tree, values)
    (out / "best.yaml").write_text(yaml.safe_dump(best_tree, sort_keys=False))
    table = trials_table(study)
    csv, parquet = write_table(table, out)
    best_run = out / "trials" / f"{best.number:04d}"
    report = tune_report(out, table, spec.name, spec.higher_is_better, tree, best_tree, best_run, importance)
    assert best.value is not None
    return TuneResult(best.number, best.value, values, out / "best.yaml", best_run, table, csv, parquet, report)


__all__ = ["TrialObjective", "TuneResult", "check_space", "objective_spec", "tune"]
