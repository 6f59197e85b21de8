"""Training: the loop, optimizers, metrics and mini-batch loading."""

from recforge.train import gbdt_lr  # noqa: F401  (registers the gbdt_lr trainer)
from recforge.train.families import TRAINERS, make_trainer
from recforge.train.loader import BatchLoader
from recforge.train.metrics import auc, gauc, logloss
from recforge.train.trainer import Trainer, TrainResult, evaluate, evaluate_tasks

__all__ = [
    "TRAINERS",
    "BatchLoader",
    "TrainResult",
    "Trainer",
    "auc",
    "evaluate",
    "evaluate_tasks",
    "gauc",
    "logloss",
    "make_trainer",
]
