"""Learning-rate schedules: a linear warm-up, then a registered decay curve, as a factor of the base lr.

The factor is a pure function of the step count, which the checkpoint holds: a resumed run sets the
same lr at the same step as an uninterrupted one. Dynamic embedding tables keep their own fixed lr.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from recforge.config.schema import ScheduleConfig
from recforge.errors import ConfigError
from recforge.registry import Registry

# (steps since warm-up ended, config) -> factor of the base lr
Decay = Callable[[int, ScheduleConfig], float]
DECAYS: Registry[Decay] = Registry("lr decay")
BASE_LR = "base_lr"  # the param group key holding the lr the factor scales


@DECAYS.register("constant")
def _constant(step: int, cfg: ScheduleConfig) -> float:
    return 1.0


@DECAYS.register("exponential")
def _exponential(step: int, cfg: ScheduleConfig) -> float:
    return 0.5 ** (step / cfg.half_life_steps)


@DECAYS.register("inverse_sqrt")
def _inverse_sqrt(step: int, cfg: ScheduleConfig) -> float:
    """1 / sqrt(1 + step / max(warmup, 1)): the transformer schedule's tail, continuous at the warm-up's end."""
    return 1.0 / math.sqrt(1.0 + step / max(cfg.warmup_steps, 1))


@DECAYS.register("cosine")
def _cosine(step: int, cfg: ScheduleConfig) -> float:
    total = cfg.total_steps or 1
    progress = min(step / total, 1.0)
    return cfg.min_factor + (1.0 - cfg.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def check_schedule(cfg: ScheduleConfig) -> None:
    """The decay is registered and has what it needs (cosine: `total_steps`)."""
    path = "train.optimizer.schedule"
    DECAYS.get(cfg.decay, yaml_path=f"{path}.decay")
    if cfg.decay == "cosine" and cfg.total_steps is None:
        raise ConfigError(f"{path}.total_steps", "cosine decay needs a length", fix="set total_steps (e.g. 5000)")


def lr_factor(step: int, cfg: ScheduleConfig) -> float:
    """The lr of step `step` (0-based) as a share of the base lr."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return DECAYS.get(cfg.decay, yaml_path="train.optimizer.schedule.decay")(step - cfg.warmup_steps, cfg)


def set_lr(optimizers: list[torch.optim.Optimizer], step: int, cfg: ScheduleConfig) -> None:
    """Scale every param group's base lr by the factor of `step` (a no-op for a constant schedule)."""
    if cfg.decay == "constant" and cfg.warmup_steps == 0:
        return
    factor = lr_factor(step, cfg)
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault(BASE_LR, group["lr"])
            group["lr"] = group[BASE_LR] * factor
