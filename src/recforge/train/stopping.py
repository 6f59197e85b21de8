"""Early stopping over smoothed evaluations: one noisy dip of the valid metric must not end a run.

Each evaluation's value enters a smoother (none, EMA or moving mean: a registry); the run stops when the
smoothed value has not beaten its best by more than `min_delta` for `patience` evaluations in a row.
Which weights are exported is not decided here: the trainer keeps the best raw evaluation's weights.
The whole state is plain numbers (`state` / `load`), so a checkpoint carries it and a resume is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recforge.config.schema import EarlyStopConfig, TrainConfig
from recforge.registry import Registry

# (values so far, oldest first; window) -> smoothed value of the last one
Smoother = Callable[[list[float], int], float]
SMOOTHERS: Registry[Smoother] = Registry("early-stop smoothing")


@SMOOTHERS.register("none")
def _raw(values: list[float], window: int) -> float:
    return values[-1]


@SMOOTHERS.register("mean")
def _moving_mean(values: list[float], window: int) -> float:
    recent = values[-window:]
    return sum(recent) / len(recent)


@SMOOTHERS.register("ema")
def _ema(values: list[float], window: int) -> float:
    """EMA with alpha = 2 / (window + 1), started at the first value (no bias towards 0)."""
    alpha = 2.0 / (window + 1)
    smoothed = values[0]
    for value in values[1:]:
        smoothed += alpha * (value - smoothed)
    return smoothed


def epoch_limit(cfg: TrainConfig) -> int:
    """The number of epochs a run may take: `epochs`, or the `max_epochs` cap of `epochs: auto`."""
    return cfg.max_epochs if cfg.epochs == "auto" else cfg.epochs


@dataclass
class EarlyStopper:
    """Tracks one metric's evaluations; `update` says whether to stop."""

    cfg: EarlyStopConfig | None
    higher_is_better: bool = True
    values: list[float] = field(default_factory=list)  # raw values of every evaluation so far
    best_smoothed: float | None = None
    bad_evals: int = 0

    def update(self, value: float) -> bool:
        """Record one evaluation; True when the run should stop (never without an `early_stop` config)."""
        if self.cfg is None or not math.isfinite(value):
            self.bad_evals += self.cfg is not None
            return self.cfg is not None and self.bad_evals >= self.cfg.patience
        self.values.append(value)
        smoothed = SMOOTHERS.get(self.cfg.smoothing, yaml_path="train.early_stop.smoothing")(
            self.values, self.cfg.window
        )
        sign = 1.0 if self.higher_is_better else -1.0
        if self.best_smoothed is None or sign * (smoothed - self.best_smoothed) > self.cfg.min_delta:
            self.best_smoothed, self.bad_evals = smoothed, 0
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.cfg.patience

    @property
    def smoothed(self) -> float | None:
        """The smoothed value after the last evaluation (None before the first)."""
        if self.cfg is None or not self.values:
            return None
        return SMOOTHERS.get(self.cfg.smoothing)(self.values, self.cfg.window)

    def state(self) -> dict[str, Any]:
        return {"values": list(self.values), "best_smoothed": self.best_smoothed, "bad_evals": self.bad_evals}

    def load(self, state: dict[str, Any]) -> None:
        self.values = [float(v) for v in state.get("values", [])]
        self.best_smoothed = state.get("best_smoothed")
        self.bad_evals = int(state.get("bad_evals", 0))
