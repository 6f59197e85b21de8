"""Experiment trackers by name (`train.tracking.kind`): where a training run's params, metrics and artifacts go.

A tracker is opened once per `recforge train` run, sees every evaluation row the trainer appends to
`evals.jsonl` (through the trainer's `on_eval` hook), then the finished run directory (final metrics,
artifacts), and is closed as finished or failed. `none` (the default) keeps nothing beyond the run directory;
`mlflow` lives in `train/tracking_mlflow.py`. A new tracker registers a factory
`(tracking config, run dir, config tree) -> Tracker` in TRACKERS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from recforge.config.schema import TrackingConfig
from recforge.registry import Registry


class Tracker(Protocol):
    def log_eval(self, row: dict[str, Any]) -> None:
        """One evaluation row (`epoch`, `step`, `train_loss`, `valid_*`), logged at its step."""

    def log_run(self, run_dir: Path) -> None:
        """The finished run: its final metrics (metrics.json) and artifacts (bundle, report, config)."""

    def close(self, failed: bool) -> None:
        """End the run: finished, or failed when training raised."""


TrackerFactory = Callable[[TrackingConfig, Path, dict[str, Any]], Tracker]
TRACKERS: Registry[TrackerFactory] = Registry("tracker")


class NoTracker:
    """Tracking off: the run directory (evals.jsonl, metrics.json, bundle) is the whole record."""

    def log_eval(self, row: dict[str, Any]) -> None:
        pass

    def log_run(self, run_dir: Path) -> None:
        pass

    def close(self, failed: bool) -> None:
        pass


@TRACKERS.register("none")
def no_tracker(cfg: TrackingConfig, run_dir: Path, tree: dict[str, Any]) -> Tracker:
    return NoTracker()


@contextmanager
def tracked_run(cfg: TrackingConfig, run_dir: Path, tree: dict[str, Any]) -> Iterator[Tracker]:
    """The tracker `cfg.kind` names, opened for the run in `run_dir` with the resolved config `tree`, and closed
    as failed if the block raises (the error goes on), else as finished."""
    tracker = TRACKERS.get(cfg.kind, yaml_path="train.tracking.kind")(cfg, run_dir, tree)
    try:
        yield tracker
    except BaseException:
        tracker.close(failed=True)
        raise
    tracker.close(failed=False)


def eval_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The finite numeric values of an evaluation row, without its position (`epoch`, `step`)."""
    return {
        k: float(v)
        for k, v in row.items()
        if k not in ("epoch", "step") and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
