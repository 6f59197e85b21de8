"""Hyper-parameter search with Optuna over dotted config paths: sampling, pruning, a resumable study, workers.

This module knows nothing about pipelines: it runs an `objective(trial) -> float` that the caller
builds (recforge.pipeline.tune trains one pipeline per trial). The study lives in SQLite, so a run
that was killed continues where it stopped, and worker processes share it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from optuna.trial import TrialState

from recforge.config.loader import set_path
from recforge.config.tune import CategoricalParam, FeatureSwitch, FloatParam, IntParam, ParamSpec, TuneSpace
from recforge.errors import ConfigError, RecforgeError

log = logging.getLogger(__name__)
Objective = Callable[[optuna.Trial], float]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
INTERRUPTED = "interrupted"


# ------------------------------------------------------------------ sampling
def _choice_label(value: Any) -> Any:
    """Optuna stores scalars only: a list/mapping choice travels as its JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def suggest(trial: optuna.Trial, space: TuneSpace) -> dict[str, Any]:
    """One value per searched path, as the config expects it (lists decoded, switches as bools)."""
    values: dict[str, Any] = {}
    for path, spec in space.params.items():
        values[path] = _suggest_one(trial, path, spec)
    return values


def _suggest_one(trial: optuna.Trial, path: str, spec: ParamSpec) -> Any:
    if isinstance(spec, FloatParam):
        return trial.suggest_float(path, spec.low, spec.high, log=spec.log, step=spec.step)
    if isinstance(spec, IntParam):
        return trial.suggest_int(path, spec.low, spec.high, log=spec.log, step=spec.step)
    if isinstance(spec, FeatureSwitch):
        return trial.suggest_categorical(path, [True, False])
    assert isinstance(spec, CategoricalParam)
    labels = [_choice_label(c) for c in spec.choices]
    return spec.choices[labels.index(trial.suggest_categorical(path, labels))]


def apply_params(tree: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config tree with every searched value set; `features.NAME: false` drops that feature."""
    out = copy.deepcopy(tree)
    for path, value in values.items():
        if path.startswith("features.") and isinstance(value, bool) and "[" not in path:
            name = path.split(".", 1)[1]
            features = out.get("features") or []
            if not any(f.get("name") == name for f in features):
                raise ConfigError(path, f"no feature named {name!r} in the config", fix="use a name from `features:`")
            if not value:
                out["features"] = [f for f in features if f.get("name") != name]
            continue
        set_path(out, path, value)
    return out


# -------------------------------------------------------------------- study
def _sampler(space: TuneSpace, worker: int) -> optuna.samplers.BaseSampler:
    seed = None if space.sampler.seed is None else space.sampler.seed + worker
    if space.sampler.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=space.sampler.startup_trials, constant_liar=True)


def _pruner(space: TuneSpace) -> optuna.pruners.BasePruner:
    if space.pruner.kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=space.pruner.startup_trials, n_warmup_steps=space.pruner.warmup_evals
    )


def storage_url(db: str | Path) -> str:
    """A path becomes an SQLite URL; an URL (sqlite://, postgresql://...) is used as given."""
    text = str(db)
    return text if "://" in text else f"sqlite:///{Path(text).resolve()}"


def open_study(
    space: TuneSpace, storage: str, name: str, direction: str, worker: int = 0, recover: bool = False
) -> optuna.Study:
    """Create or load the study; with `recover`, trials a dead run left RUNNING are failed and queued again."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,  # type: ignore[arg-type]
        sampler=_sampler(space, worker),
        pruner=_pruner(space),
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise ConfigError(
            "objective.metric",
            f"study {name!r} in {storage} was created to {study.direction.name.lower()}, the objective now wants "
            f"to {direction}",
            fix="use another --study-name or the metric the study was started with",
        )
    if recover:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(trial.params)
            log.info("trial %d was left running by a stopped run: queued again", trial.number)
    return study


def counted(study: optuna.Study) -> int:
    """Trials that count toward the target: finished (not interrupted ones) and those running now."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(1 for t in trials if not t.user_attrs.get(INTERRUPTED))


# ------------------------------------------------------------------ pruning
class PruningReporter:
    """Trainer eval hook: reports the best-so-far valid metric per evaluation and prunes hopeless trials."""

    def __init__(self, trial: optuna.Trial, key: str, higher_is_better: bool) -> None:
        self.trial = trial
        self.key = key
        self.sign = 1.0 if higher_is_better else -1.0
        self.best = -math.inf
        self.evals = 0

    def __call__(self, row: dict[str, Any]) -> None:
        value = row.get(self.key)
        if value is None or not math.isfinite(value):
            return
        self.evals += 1
        self.best = max(self.best, self.sign * value)
        self.trial.report(self.sign * self.best, step=self.evals)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.key}={value:.5f} after {self.evals} evaluations")


# ------------------------------------------------------------------ running
def run_worker(
    space: TuneSpace,
    storage: str,
    name: str,
    direction: str,
    objective: Objective,
    n_trials: int,
    worker: int = 0,
    lock: Any = None,
) -> None:
    """Ask/run/tell until the study holds `n_trials` counted trials. A failing trial is recorded, not fatal."""
    study = open_study(space, storage, name, direction, worker)
    while True:
        with lock if lock is not None else contextlib.nullcontext():
            if counted(study) >= n_trials:
                return
            trial = study.ask()
        try:
            value = objective(trial)
        except optuna.TrialPruned as pruned:
            log.info("trial %d pruned: %s", trial.number, pruned)
            study.tell(trial, state=TrialState.PRUNED)
        except (RecforgeError, FloatingPointError, ValueError, RuntimeError) as exc:
            log.warning("trial %d failed: %s", trial.number, exc)
            trial.set_user_attr("error", str(exc)[:500])
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value)


def run_study(
    space: TuneSpace,
    storage: str,
    name: str,
    direction: str,
    objective: Objective,
    n_trials: int,
    jobs: int = 1,
) -> optuna.Study:
    """Run trials until the study holds `n_trials`, in this process or in `jobs` spawned worker processes.

    `objective` must be picklable when jobs > 1 (a module-level class instance with plain fields).
    """
    study = open_study(space, storage, name, direction, recover=True)
    done = counted(study)
    if done:
        log.info("study %r resumes with %d of %d trials", name, done, n_trials)
    if jobs <= 1:
        run_worker(space, storage, name, direction, objective, n_trials)
        return study
    context = multiprocessing.get_context("spawn")
    lock = context.Lock()
    workers = [
        context.Process(
            target=run_worker, args=(space, storage, name, direction, objective, n_trials, worker, lock), daemon=False
        )
        for worker in range(jobs)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    failed = [p.exitcode for p in workers if p.exitcode]
    if failed:
        raise RecforgeError(f"{len(failed)} tune worker process(es) exited with codes {failed}; see the log above")
    return study


# ------------------------------------------------------------------- results
def trials_table(study: optuna.Study) -> pa.Table:
    """One row per trial: number, state, objective value, evaluations, duration, every param, error."""
    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys(p for t in trials for p in t.params))
    rows: dict[str, list[Any]] = {"trial": [], "state": [], "value": [], "evals": [], "duration_s": []}
    rows.update({name: [] for name in names})
    rows["error"] = []
    for t in trials:
        rows["trial"].append(t.number)
        state = "interrupted" if t.user_attrs.get(INTERRUPTED) else t.state.name.lower()
        rows["state"].append(state)
        rows["value"].append(t.value)
        rows["evals"].append(len(t.intermediate_values))
        rows["duration_s"].append(t.duration.total_seconds() if t.duration else None)
        for name in names:
            rows[name].append(t.params.get(name))
        rows["error"].append(t.user_attrs.get("error"))
    for name in names:  # numbers stay numbers; a column of mixed or non-numeric choices becomes text
        values = [v for v in rows[name] if v is not None]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not numbers and not all(isinstance(v, bool) for v in values):
            rows[name] = [None if v is None else str(v) for v in rows[name]]
    return pa.table(rows)


def write_table(table: pa.Table, out: Path) -> tuple[Path, Path]:
    """trials.csv and trials.parquet in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    pcsv.write_csv(table, out / "trials.csv")
    pq.write_table(table, out / "trials.parquet")
    return out / "trials.csv", out / "trials.parquet"


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best completed trial, or a clear error when none completed."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        errors = [t.user_attrs["error"] for t in study.get_trials(deepcopy=False) if "error" in t.user_attrs]
        first = f"; first error: {errors[0]}" if errors else ""
        raise RecforgeError(f"no trial of study {study.study_name!r} completed{first}")
    return study.best_trial
