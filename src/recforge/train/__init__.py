"""Training: the loop, optimizers, metrics and mini-batch loading."""

from recforge.train.loader import BatchLoader
from recforge.train.metrics import auc, gauc, logloss
from recforge.train.trainer import Trainer, TrainResult, evaluate

__all__ = ["BatchLoader", "TrainResult", "Trainer", "auc", "evaluate", "gauc", "logloss"]
