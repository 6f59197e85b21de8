"""Trainer families by name: how a registered model is fitted (`register_model(..., trainer=...)`).

Every family takes `(model, cfg, out_dir)` and offers `fit(train, valid, resume=False) -> TrainResult`,
so the pipeline picks one by the model's name instead of branching on model kinds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from torch import nn

from recforge.batch import Batch
from recforge.config.schema import PipelineConfig
from recforge.models.registry import model_trainer
from recforge.registry import Registry
from recforge.train.trainer import Trainer, TrainResult


class ModelTrainer(Protocol):
    def fit(self, train: Iterable[Batch], valid: Iterable[Batch] | None, resume: bool = False) -> TrainResult: ...


class TrainerFactory(Protocol):
    def __call__(self, model: nn.Module, cfg: PipelineConfig, out_dir: Path) -> ModelTrainer: ...

    @staticmethod
    def has_checkpoint(out_dir: Path) -> bool:
        """A state that `fit(..., resume=True)` can continue from is in `out_dir` (each family keeps its own)."""


TRAINERS: Registry[TrainerFactory] = Registry("trainer")
TRAINERS.register("sgd")(Trainer)


def make_trainer(family: str, model: nn.Module, cfg: PipelineConfig, out_dir: Path) -> ModelTrainer:
    """The trainer of `family` for `model`."""
    return TRAINERS.get(family, yaml_path="train.trainer")(model, cfg, out_dir)


def can_resume(family: str, out_dir: Path) -> bool:
    """Whether `recforge train --resume` has something of `family` to go on from in `out_dir`."""
    return TRAINERS.get(family, yaml_path="train.trainer").has_checkpoint(out_dir)


def trainer_family(cfg: PipelineConfig) -> str:
    """`train.trainer` when set (e.g. `ftrl` for `lr`), else the family the model registered (`sgd` for most)."""
    if cfg.train.trainer is None:
        return model_trainer(cfg.model)
    TRAINERS.get(cfg.train.trainer, yaml_path="train.trainer")
    return cfg.train.trainer
