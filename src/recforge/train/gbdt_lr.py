"""Fits GBDT+LR: LightGBM on the model-input matrix, then L-BFGS logistic regression over one-hot leaves.

Both stages read every training row at once (LightGBM bins the whole matrix), so the data must fit in
RAM as float64 [rows, columns] plus int64 [rows, trees]. Early stopping on the valid set's AUC picks
the number of trees; the LR starts from LightGBM's own leaf values, so it can only lower the train loss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import torch
from scipy import optimize, sparse, special
from torch import nn

from recforge.batch import Batch
from recforge.config.schema import PipelineConfig
from recforge.errors import ConfigError, DataError
from recforge.models.rank.gbdt_lr import GBDTLR
from recforge.models.trees import Forest
from recforge.train.families import TRAINERS
from recforge.train.metrics import parse_metrics
from recforge.train.trainer import TrainResult, evaluate

log = logging.getLogger(__name__)


@TRAINERS.register("gbdt_lr")
class GBDTLRTrainer:
    """Boost trees, then weigh their leaves; one pass, no checkpoints (a rerun retrains in full)."""

    @staticmethod
    def has_checkpoint(out_dir: Path) -> bool:
        """Never: one pass, nothing to continue from."""
        return False

    def __init__(self, model: nn.Module, cfg: PipelineConfig, out_dir: Path) -> None:
        if not isinstance(model, GBDTLR):
            raise ConfigError("model.name", f"{cfg.model.name!r} is not fitted by the gbdt_lr trainer")
        self.model = model
        self.cfg = cfg
        self.out_dir = out_dir
        self.label = cfg.data.label

    def fit(self, train: Iterable[Batch], valid: Iterable[Batch] | None, resume: bool = False) -> TrainResult:
        if resume:
            raise ConfigError(
                "train", "gbdt_lr trains in one pass and keeps no checkpoint", fix="rerun without --resume"
            )
        started = time.perf_counter()
        x, y, w = self._gather(train)
        booster = self._boost(x, y, w, self._gather(valid) if valid is not None else None)
        forest = Forest(booster.model_to_string())
        self.model.set_forest(forest)
        fit_logistic(self.model, forest.leaves(x), y, w)
        elapsed = time.perf_counter() - started
        specs = parse_metrics(self.cfg.eval.metrics)
        best = evaluate(self.model, valid, specs, self.label) if valid is not None else {}
        trees = forest.n_trees
        row: dict[str, Any] = {"epoch": 1, "step": trees, **{f"valid_{k}": v for k, v in best.items()}}
        log.info("gbdt_lr: %d trees, %d leaves, valid %s", trees, self.model.weight.numel(), best)
        return TrainResult(best, trees, trees, 1, len(y) / max(elapsed, 1e-9), [row])

    def _gather(self, batches: Iterable[Batch]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        xs, ys, ws = [], [], []
        for batch in batches:
            xs.append(self.model.inputs.matrix(batch))
            ys.append(batch.labels[self.label].numpy())
            if batch.weights is not None:
                ws.append(batch.weights.numpy())
        if not xs:
            raise DataError("gbdt_lr: the training file has no rows")
        return np.concatenate(xs), np.concatenate(ys).astype(np.float64), np.concatenate(ws) if ws else None

    def _boost(
        self,
        x: np.ndarray,
        y: np.ndarray,
        w: np.ndarray | None,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
    ) -> lgb.Booster:
        c = self.model.config
        params: dict[str, Any] = {
            "objective": "binary",
            "metric": "auc",
            "num_leaves": c.num_leaves,
            "learning_rate": c.learning_rate,
            "min_data_in_leaf": c.min_data_in_leaf,
            "feature_fraction": c.feature_fraction,
            "seed": self.cfg.train.seed,
            "deterministic": True,
            "num_threads": self.cfg.train.threads or 0,
            "verbosity": -1,
            **c.lightgbm,
        }
        inputs = self.model.inputs
        data = lgb.Dataset(x, y, weight=w, feature_name=inputs.names, categorical_feature=inputs.categorical)
        sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if valid is not None and c.early_stop_rounds:
            sets = [lgb.Dataset(valid[0], valid[1], weight=valid[2], reference=data)]
            callbacks = [lgb.early_stopping(c.early_stop_rounds, verbose=False)]
        booster = lgb.train(params, data, num_boost_round=c.trees, valid_sets=sets, callbacks=callbacks)
        if booster.best_iteration > 0:
            return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        return booster


def fit_logistic(model: GBDTLR, leaves: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> None:
    """L-BFGS on mean log loss + l2/(2N) |w|^2 over the leaf weights and bias, in float64.

    The rows are one-hot over leaves (a CSR matrix with T ones per row), so the loss and its gradient
    are two sparse products per step.
    """
    n, t = leaves.shape
    x = sparse.csr_matrix(
        (np.ones(leaves.size), leaves.ravel(), np.arange(0, leaves.size + 1, t)), shape=(n, model.weight.numel())
    )
    sample = (w if w is not None else np.ones(n)) / n
    l2 = model.config.l2 / n

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = x @ theta[:-1] + theta[-1]
        loss = sample @ (np.logaddexp(0.0, logits) - y * logits) + 0.5 * l2 * theta[:-1] @ theta[:-1]
        residual = sample * (special.expit(logits) - y)
        return float(loss), np.concatenate([x.T @ residual + l2 * theta[:-1], [residual.sum()]])

    start = np.concatenate([model.weight.detach().double().numpy(), model.bias.detach().double().numpy()])
    fitted = optimize.minimize(
        loss_and_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": model.config.lr_iters}
    )
    log.info("gbdt_lr: LR over %d leaves: loss %.5f after %d iterations", len(start) - 1, fitted.fun, fitted.nit)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(fitted.x[:-1]))
        model.bias.copy_(torch.from_numpy(fitted.x[-1:]))
