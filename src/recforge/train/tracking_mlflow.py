"""The `mlflow` tracker: one MLflow run per `recforge train`, through MlflowClient (no global active run).

Params are the flattened resolved config (`train.optimizer.lr`, `features.user_id.dim`), metrics every
evaluation row at its training step plus the final metrics.json values (`final.test.auc`), artifacts the
bundle, the HTML report, config.yaml, metrics.json and evals.jsonl. The default store is a SQLite file
beside the run directory (`RUN_PARENT/mlflow.db`, artifacts in `RUN_PARENT/mlartifacts`), so
`mlflow ui --backend-store-uri sqlite:///RUN_PARENT/mlflow.db` shows every run trained into that folder.
MLflow names allow only letters, digits and `_ - . / : space`: `gauc@user_id` becomes `gauc_at_user_id`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from recforge.config.schema import TrackingConfig
from recforge.errors import ConfigError
from recforge.train.report import flatten, run_report
from recforge.train.tracking import TRACKERS, Tracker, eval_metrics

log = logging.getLogger(__name__)
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
RUN_DIR_TAG = "recforge.run_dir"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value's length
BATCH = 100  # params per log_batch call (MLflow's limit)
RUN_FILES = ("config.yaml", "metrics.json", "evals.jsonl")  # logged beside the bundle and report.html


def mlflow_key(name: str) -> str:
    """A recforge metric or config path as an MLflow key: `features[user_id].dim` -> `features.user_id.dim`."""
    name = name.replace("[", ".").replace("]", "").replace("@", "_at_")
    return re.sub(r"[^\w./\- ]", "_", name)


def default_uri(run_dir: Path) -> str:
    return f"sqlite:///{run_dir.resolve().parent / DB_FILE}"


def config_params(tree: dict[str, Any]) -> dict[str, str]:
    """The flattened config as MLflow params; a value over MLflow's limit is cut (config.yaml keeps it whole)."""
    params = {}
    for path, value in flatten(tree).items():
        text = str(value)
        if len(text) > MAX_PARAM_VALUE:
            log.warning("mlflow: param %s is %d characters; logged cut to %d", path, len(text), MAX_PARAM_VALUE)
            text = text[:MAX_PARAM_VALUE]
        params[mlflow_key(path)] = text
    return params


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise ConfigError(
            "train.tracking.kind",
            f"tracking kind 'mlflow' needs the mlflow package, which is not installed ({exc})",
            fix="pip install 'recforge[mlflow]', or set train.tracking.kind: none",
        ) from exc
    return mlflow


class MlflowTracker:
    """An MLflow run opened in the experiment `cfg.experiment` (created with its artifacts beside the store)."""

    def __init__(self, cfg: TrackingConfig, run_dir: Path, tree: dict[str, Any]) -> None:
        self.mlflow = mlflow = _import_mlflow()
        uri = cfg.uri or default_uri(run_dir)
        if cfg.uri is None:
            run_dir.resolve().parent.mkdir(parents=True, exist_ok=True)
        name = cfg.experiment or str(tree.get("name", "recforge"))
        try:
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            experiment = self._experiment(name, run_dir)
            run = self.client.create_run(experiment, run_name=run_dir.name, tags={RUN_DIR_TAG: str(run_dir.resolve())})
        except mlflow.exceptions.MlflowException as exc:
            raise ConfigError(
                "train.tracking.uri", f"MLflow cannot open a run at {uri}: {exc}", fix="check the tracking URI"
            ) from exc
        self.run_id = run.info.run_id
        log.info("mlflow: run %s in experiment %r at %s", self.run_id, name, uri)
        items = [mlflow.entities.Param(k, v) for k, v in config_params(tree).items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH])

    def _experiment(self, name: str, run_dir: Path) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = (run_dir.resolve().parent / ARTIFACTS_DIR).as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except self.mlflow.exceptions.MlflowException:  # another process created it between the lookup and here
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [self.mlflow.entities.Metric(mlflow_key(k), v, now, step) for k, v in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_eval(self, row: dict[str, Any]) -> None:
        self._log_metrics(eval_metrics(row), int(row.get("step", 0)))

    def log_run(self, run_dir: Path) -> None:
        """metrics.json as `final.*` metrics; the bundle, a fresh report.html and the run's record files."""
        self._log_metrics(eval_metrics(flatten(json.loads((run_dir / "metrics.json").read_text()), "final")), 0)
        report = run_report(run_dir)
        self.client.log_artifacts(self.run_id, str(run_dir / "bundle"), artifact_path="bundle")
        for path in (report, *(run_dir / name for name in RUN_FILES)):
            if path.exists():
                self.client.log_artifact(self.run_id, str(path))

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


@TRACKERS.register("mlflow")
def mlflow_tracker(cfg: TrackingConfig, run_dir: Path, tree: dict[str, Any]) -> Tracker:
    return MlflowTracker(cfg, run_dir, tree)
