"""Training: the loop, optimizers, metrics and mini-batch loading."""

# registrations: the ftrl and gbdt_lr trainers, the mlflow tracker (mlflow itself loads only when a run uses it)
from recforge.train import ftrl_lr, gbdt_lr, tracking_mlflow  # noqa: F401
from recforge.train.families import TRAINERS, make_trainer, trainer_family
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
    "trainer_family",
]
