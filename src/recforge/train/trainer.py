"""The training loop: per-task losses (BCE on logits or MSE) summed by task weight, evaluation every N steps
or epoch with metrics per task, early stop, checkpoints, best model."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recforge.batch import Batch
from recforge.config.schema import PipelineConfig
from recforge.config.tasks import Task, is_multitask, pipeline_tasks
from recforge.embedding import EmbeddingCollection, evict_all
from recforge.models.outputs import task_columns
from recforge.progress import Progress
from recforge.state_io import load_state, save_state
from recforge.train.distill import TEACHER_COLUMN, distill_loss, teacher_tensor
from recforge.train.metrics import HIGHER_IS_BETTER, MetricSpec, compute, parse_metrics
from recforge.train.optim import build_optimizers

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    best: dict[str, float]  # valid metrics of the exported model
    best_step: int
    steps: int
    epochs: int
    samples_per_s: float
    history: list[dict[str, Any]] = field(default_factory=list)


def autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CPU (AVX-512 bf16 kernels) or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict_logits(
    model: nn.Module, batches: Iterable[Batch], precision: str = "fp32"
) -> Iterator[tuple[Batch, np.ndarray]]:
    """(batch, float64 outputs [B] or [B, T]) per batch, in eval mode without gradients."""
    model.eval()
    with torch.inference_mode(), autocast(precision):
        for batch in batches:
            yield batch, model(batch).float().numpy().astype(np.float64)


def evaluate(
    model: nn.Module, batches: Iterable[Batch], specs: list[MetricSpec], label: str, precision: str = "fp32"
) -> dict[str, float]:
    """Metrics of a single-task model over all batches (scores gathered, then computed once)."""
    task = Task("", label, metrics=tuple(s.name for s in specs))
    return evaluate_tasks(model, batches, (task,), precision)


def evaluate_tasks(
    model: nn.Module, batches: Iterable[Batch], tasks: tuple[Task, ...], precision: str = "fp32", mean: bool = False
) -> dict[str, float]:
    """Each task's metrics (`ctr/auc`; bare names for an unnamed task); `mean` adds bare means over tasks."""
    labels: dict[str, list[np.ndarray]] = {t.label: [] for t in tasks}
    outputs: list[np.ndarray] = []
    keys: dict[str, list[np.ndarray]] = {}
    for batch, out in predict_logits(model, batches, precision):
        for name in labels:
            labels[name].append(batch.labels[name].numpy())
        outputs.append(out.reshape(len(out), -1))
        for name, values in batch.extras.items():
            keys.setdefault(name, []).append(values)
    if not outputs:
        return {}
    columns = np.concatenate(outputs)
    gathered = {k: np.concatenate(v) for k, v in keys.items()}
    metrics: dict[str, float] = {}
    for t, task in enumerate(tasks):
        found = compute(
            parse_metrics(list(task.metrics)),
            np.concatenate(labels[task.label]),
            columns[:, t],
            gathered,
            link="sigmoid" if task.loss == "bce" else "identity",
        )
        metrics.update({task.key(k): v for k, v in found.items()})
    if mean:
        for name in dict.fromkeys(m for task in tasks for m in task.metrics):
            metrics[name] = float(np.mean([metrics[t.key(name)] for t in tasks if name in t.metrics]))
    return metrics


def task_loss(task: Task, outputs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """One task's mean loss over the batch (sample-weighted when the data has weights)."""
    if task.loss == "bce":
        return nn.functional.binary_cross_entropy_with_logits(outputs, labels, weight=weights)
    squared = (outputs - labels) ** 2
    return squared.mean() if weights is None else (squared * weights).mean()


class Trainer:
    """Owns the loop, the optimizers and checkpoints; the model owns only its forward pass."""

    def __init__(
        self,
        model: nn.Module,
        cfg: PipelineConfig,
        out_dir: Path,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`on_eval` sees every evaluation row (HPO reports and prunes there; it may raise to stop)."""
        self.model = model
        self.on_eval = on_eval
        self.cfg = cfg
        self.out_dir = out_dir
        self.tasks = pipeline_tasks(cfg)
        self.multitask = is_multitask(cfg)
        self.first_metric = self.tasks[0].key(self.tasks[0].metrics[0])
        self.optimizers = build_optimizers(model, cfg.train.optimizer)
        self.collections = [m for m in model.modules() if isinstance(m, EmbeddingCollection)]
        for collection in self.collections:
            collection.l2_tracking = cfg.train.optimizer.embedding_l2 > 0
        self.step_fn = torch.compile(self._forward_loss) if cfg.train.compile else self._forward_loss
        self.epoch = 0
        self.step = 0
        self.best: dict[str, float] = {}
        self.best_step = -1
        self.bad_evals = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.last_logits: torch.Tensor | None = None
        self.writer = _tensorboard(out_dir / "tensorboard")

    # ------------------------------------------------------------- steps
    def _forward_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.cfg.train.precision):
            logits = self.model(batch)
        distill = self.cfg.train.distill
        outputs = task_columns(logits).float()
        if distill is not None:  # single-task (checked at config time): soft labels from the teacher
            task = self.tasks[0]
            teacher = teacher_tensor(batch.extras[TEACHER_COLUMN])
            loss = distill_loss(
                outputs[:, 0], batch.labels[task.label], teacher, distill.alpha, distill.temperature, batch.weights
            )
        else:
            loss = torch.zeros(())
            for t, task in enumerate(self.tasks):
                loss = loss + task.weight * task_loss(task, outputs[:, t], batch.labels[task.label], batch.weights)
        l2 = self.cfg.train.optimizer.embedding_l2
        if l2:
            loss = loss + l2 * sum(c.pop_penalty() for c in self.collections) / batch.size
        return loss, logits

    def train_step(self, batch: Batch) -> float:
        self.model.train()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss, logits = self.step_fn(batch)
        self.last_logits = logits.detach()  # scored before this step's update: progressive validation
        loss.backward()
        for opt in self.optimizers:
            opt.step()
        self.step += 1
        return float(loss.detach())

    # --------------------------------------------------------------- fit
    def fit(self, train: Iterable[Batch], valid: Iterable[Batch] | None, resume: bool = False) -> TrainResult:
        """Epochs over `train`, evaluating on `valid`; returns with the exported (best or last) weights loaded."""
        tcfg = self.cfg.train
        if resume:
            self.load_checkpoint()
        stop_metric = tcfg.early_stop.metric if tcfg.early_stop else None
        trained, train_time = 0, 0.0
        stopped = False
        bar = Progress("train", unit="rows", enabled=tcfg.progress)
        while self.epoch < tcfg.epochs and not stopped:
            self.epoch += 1
            loss_sum, loss_n, started = 0.0, 0, time.perf_counter()
            # samples/s counts the whole loop (fetching a batch included) from the epoch's first batch
            # on; evaluation time is excluded.
            tick: float | None = None
            for batch in train:
                tick = tick or time.perf_counter()
                loss = self.train_step(batch)
                now = time.perf_counter()
                train_time += now - tick
                tick = now
                trained += batch.size
                loss_sum += loss * batch.size
                loss_n += batch.size
                bar.update(batch.size)
                if self.step % 20 == 0:
                    bar.set_note(f"epoch {self.epoch}, loss {loss:.4f}, {trained / max(train_time, 1e-9):,.0f} rows/s")
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss} at step {self.step}; lower train.optimizer.lr")
                if tcfg.eval_every and self.step % tcfg.eval_every == 0 and valid is not None:
                    stopped = self._eval_and_track(valid, stop_metric, loss_sum / max(loss_n, 1))
                    if stopped:
                        break
                    tick = time.perf_counter()
                if tcfg.max_steps and self.step >= tcfg.max_steps:
                    stopped = True
                    break
            log.info("epoch %d: %d rows in %.1fs", self.epoch, loss_n, time.perf_counter() - started)
            if valid is not None and not (tcfg.eval_every and self.step % tcfg.eval_every == 0) and not stopped:
                stopped = self._eval_and_track(valid, stop_metric, loss_sum / max(loss_n, 1))
            elif valid is None:
                self._record({"epoch": self.epoch, "step": self.step, "train_loss": loss_sum / max(loss_n, 1)})
            self.save_checkpoint()
        bar.close()
        if tcfg.export == "best" and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        evict_all(self.model)  # export time: dynamic tables drop their stale rows
        rate = trained / train_time if train_time else 0.0
        return TrainResult(self.best, self.best_step, self.step, self.epoch, rate, self.history)

    def _eval_and_track(self, valid: Iterable[Batch], stop_metric: str | None, train_loss: float) -> bool:
        metrics = evaluate_tasks(self.model, valid, self.tasks, self.cfg.train.precision, mean=self.multitask)
        self._record(
            {
                "epoch": self.epoch,
                "step": self.step,
                "train_loss": train_loss,
                **{f"valid_{k}": v for k, v in metrics.items()},
            }
        )
        if self.on_eval is not None:
            self.on_eval(self.history[-1])
        key = stop_metric or self.first_metric
        higher = HIGHER_IS_BETTER[key.rpartition("/")[2].partition("@")[0]]
        value = metrics.get(key, float("nan"))
        better = not self.best or (value > self.best[key] if higher else value < self.best[key])
        if better and math.isfinite(value):
            self.best, self.best_step, self.bad_evals = metrics, self.step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return False
        self.bad_evals += 1
        patience = self.cfg.train.early_stop.patience if self.cfg.train.early_stop else None
        if patience is not None and self.bad_evals >= patience:
            log.info("early stop at step %d: %s did not improve for %d evals", self.step, key, self.bad_evals)
            return True
        return False

    def _record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        log.info("eval %s", json.dumps(row))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / "evals.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("epoch", "step") and isinstance(v, float):
                    self.writer.add_scalar(k, v, self.step)
            self.writer.flush()

    # -------------------------------------------------------- checkpoint
    def save_checkpoint(self, extra: dict[str, Any] | None = None) -> None:
        """model + optimizers + loop counters + best weights (+ `extra`, e.g. stream positions), renamed into place.

        A crash at any moment leaves either the new checkpoint or the previous one (`load_checkpoint`
        finds `checkpoint.old` when it died between the two renames).
        """
        if evicted := evict_all(self.model):
            log.info("step %d: evicted %d dynamic embedding rows", self.step, evicted)
        directory = self.out_dir / "checkpoint"
        old = self.out_dir / "checkpoint.old"
        tmp = self.out_dir / "checkpoint.tmp"
        if directory.exists() and old.exists():  # an earlier save died while deleting the old one
            shutil.rmtree(old)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_state(self.model.state_dict(), tmp / "model")
        save_state([opt.state_dict() for opt in self.optimizers], tmp / "optimizers")
        if self.best_state is not None:
            save_state(self.best_state, tmp / "best")
        (tmp / "trainer.json").write_text(
            json.dumps(
                {
                    "epoch": self.epoch,
                    "step": self.step,
                    "best": self.best,
                    "best_step": self.best_step,
                    "bad_evals": self.bad_evals,
                    "extra": extra or {},
                }
            )
        )
        if directory.exists():
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old)
        else:
            tmp.rename(directory)

    def load_checkpoint(self) -> dict[str, Any]:
        """Restore model, optimizers and counters; returns the `extra` saved with them."""
        directory = self.out_dir / "checkpoint"
        old = self.out_dir / "checkpoint.old"
        if not (directory / "trainer.json").exists() and (old / "trainer.json").exists():
            if directory.exists():
                shutil.rmtree(directory)
            old.rename(directory)
        counters = json.loads((directory / "trainer.json").read_text())
        self.model.load_state_dict(load_state(directory / "model"))
        for opt, state in zip(self.optimizers, load_state(directory / "optimizers"), strict=True):
            opt.load_state_dict(state)
        if (directory / "best.json").exists():
            self.best_state = load_state(directory / "best")
        self.epoch, self.step = counters["epoch"], counters["step"]
        self.best, self.best_step, self.bad_evals = counters["best"], counters["best_step"], counters["bad_evals"]
        log.info("resumed from %s at epoch %d, step %d", directory, self.epoch, self.step)
        return dict(counters.get("extra", {}))


def checkpoint_exists(out_dir: Path) -> bool:
    """A complete checkpoint (or the previous one, when a save died between its renames) is in `out_dir`."""
    return any((out_dir / name / "trainer.json").exists() for name in ("checkpoint", "checkpoint.old"))


def _tensorboard(path: Path) -> Any:
    """A SummaryWriter when tensorboard is installed, else None (scalars still go to evals.jsonl)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))
