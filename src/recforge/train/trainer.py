"""The training loop: per-task losses (BCE on logits or MSE) summed by task weight, evaluation every N steps
or epoch with metrics per task, early stop, checkpoints, best model."""

from __future__ import annotations

import contextlib
import json
import logging
import math
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
from recforge.errors import BundleError
from recforge.models.outputs import task_columns
from recforge.progress import Progress
from recforge.train import rng_state
from recforge.train.checkpoint import CHECKPOINT, checkpoint_exists, read_checkpoint, write_checkpoint
from recforge.train.distill import TEACHER_COLUMN, distill_loss, teacher_tensor
from recforge.train.evals_log import append_eval, keep_evals
from recforge.train.loader import epoch_batches
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


class _Meter:
    """Training rows per second and the progress bar.

    The clock counts the whole loop (fetching a batch included) from an epoch's first batch on;
    evaluations and checkpoints are excluded (`restart` after them).
    """

    def __init__(self, show: bool) -> None:
        self.bar = Progress("train", unit="rows", enabled=show)
        self.rows, self.seconds = 0, 0.0
        self.tick: float | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def restart(self, tick: float | None) -> None:
        """Count from `tick` on (None: from the next batch's arrival)."""
        self.tick = tick

    def arrived(self) -> None:
        self.tick = self.tick or time.perf_counter()

    def trained(self, rows: int, epoch: int, step: int, loss: float) -> None:
        now = time.perf_counter()
        self.seconds += now - (self.tick or now)
        self.tick = now
        self.rows += rows
        self.bar.update(rows)
        if step % 20 == 0:
            self.bar.set_note(f"epoch {epoch}, loss {loss:.4f}, {self.rate:,.0f} rows/s")

    def close(self) -> None:
        self.bar.close()


class Trainer:
    """Owns the loop, the optimizers and checkpoints; the model owns only its forward pass."""

    @staticmethod
    def has_checkpoint(out_dir: Path) -> bool:
        """A complete checkpoint (weights, optimizers, RNG states, data position) is in `out_dir`."""
        return checkpoint_exists(out_dir)

    def __init__(
        self,
        model: nn.Module,
        cfg: PipelineConfig,
        out_dir: Path,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`on_eval` sees every row written to evals.jsonl (HPO reports and prunes there, trackers log it; it may
        raise to stop)."""
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
        # data position: epochs started, steps taken, batches of the current epoch trained (and their loss)
        self.epoch = 0
        self.step = 0
        self.in_epoch = False
        self.batch_in_epoch = 0
        self.epoch_loss = (0.0, 0)  # (loss summed over rows, rows) of the current epoch
        self.stopped = False  # early stop
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
        """Epochs over `train`, evaluating on `valid`; returns with the exported (best or last) weights loaded.

        `resume` continues from the checkpoint in `out_dir` at the batch it was written after, with
        every random generator as it was then, so the result equals an uninterrupted run's; without
        a checkpoint it says so and starts fresh.
        """
        if resume and checkpoint_exists(self.out_dir):
            self.load_checkpoint()
        else:
            if resume:
                log.warning("no checkpoint in %s: starting fresh", self.out_dir / CHECKPOINT)
            self.history = keep_evals(self.out_dir, 0)
        meter = _Meter(self.cfg.train.progress)
        while not self._done():
            self._run_epoch(train, valid, meter)
        meter.close()
        if self.cfg.train.export == "best" and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        evict_all(self.model)  # export time: dynamic tables drop their stale rows
        return TrainResult(self.best, self.best_step, self.step, self.epoch, meter.rate, self.history)

    def _done(self) -> bool:
        tcfg = self.cfg.train
        if self.in_epoch:
            return False
        return self.stopped or self.epoch >= tcfg.epochs or bool(tcfg.max_steps and self.step >= tcfg.max_steps)

    def _run_epoch(self, train: Iterable[Batch], valid: Iterable[Batch] | None, meter: _Meter) -> None:
        """The rest of the epoch in progress (or a new one), its end-of-epoch evaluation, a checkpoint."""
        tcfg = self.cfg.train
        if not self.in_epoch:
            self.epoch, self.in_epoch, self.batch_in_epoch, self.epoch_loss = self.epoch + 1, True, 0, (0.0, 0)
        every = tcfg.checkpoint.every_steps
        stop_metric = tcfg.early_stop.metric if tcfg.early_stop else None
        started = time.perf_counter()
        meter.restart(None)
        for batch in epoch_batches(train, self.epoch, self.batch_in_epoch):
            meter.arrived()
            loss = self.train_step(batch)
            self.batch_in_epoch += 1
            total, rows = self.epoch_loss
            self.epoch_loss = (total + loss * batch.size, rows + batch.size)
            meter.trained(batch.size, self.epoch, self.step, loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at step {self.step}; lower train.optimizer.lr")
            if tcfg.eval_every and self.step % tcfg.eval_every == 0 and valid is not None:
                self.stopped = self._eval_and_track(valid, stop_metric, self._epoch_loss())
                meter.restart(time.perf_counter())
            if self.stopped or (tcfg.max_steps and self.step >= tcfg.max_steps):
                break
            if every and self.step % every == 0:
                self.save_checkpoint()
                meter.restart(time.perf_counter())
        log.info("epoch %d: %d rows in %.1fs", self.epoch, self.epoch_loss[1], time.perf_counter() - started)
        if valid is not None and not (tcfg.eval_every and self.step % tcfg.eval_every == 0) and not self.stopped:
            self.stopped = self._eval_and_track(valid, stop_metric, self._epoch_loss())
        elif valid is None:
            self._record({"epoch": self.epoch, "step": self.step, "train_loss": self._epoch_loss()})
        self.in_epoch = False
        self.save_checkpoint()

    def _epoch_loss(self) -> float:
        total, rows = self.epoch_loss
        return total / max(rows, 1)

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
        append_eval(self.out_dir, row)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("epoch", "step") and isinstance(v, float):
                    self.writer.add_scalar(k, v, self.step)
            self.writer.flush()
        if self.on_eval is not None:  # last: it may raise (a pruned trial) once the row is recorded everywhere
            self.on_eval(row)

    # -------------------------------------------------------- checkpoint
    def save_checkpoint(self, extra: dict[str, Any] | None = None) -> None:
        """Everything a resume needs to go on as if never stopped (+ `extra`, e.g. stream positions).

        Model, optimizers (dense and sparse; dynamic tables keep theirs in the model), best weights,
        every random generator, the data position, early-stop state and the evaluation log's length.
        """
        if evicted := evict_all(self.model):
            log.info("step %d: evicted %d dynamic embedding rows", self.step, evicted)
        states: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "rng": rng_state.capture(self.model),
        }
        if self.best_state is not None:
            states["best"] = self.best_state
        counters = {
            "epoch": self.epoch,
            "step": self.step,
            "in_epoch": self.in_epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "epoch_loss": list(self.epoch_loss),
            "stopped": self.stopped,
            "best": self.best,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "evals": len(self.history),
            "extra": extra or {},
        }
        write_checkpoint(self.out_dir, states, counters)

    def load_checkpoint(self) -> dict[str, Any]:
        """Restore what `save_checkpoint` saved and cut evals.jsonl back to it; returns the `extra` saved."""
        where = self.out_dir / CHECKPOINT
        states, counters = read_checkpoint(self.out_dir, ("model", "optimizers", "best", "rng"))
        try:
            self.model.load_state_dict(states["model"])
            for opt, state in zip(self.optimizers, states["optimizers"], strict=True):
                opt.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise BundleError(
                f"{where} does not fit the model of this config ({exc})"
                "\n  fix: resume with the config the run was started with, or train without --resume"
            ) from exc
        self.best_state = states.get("best")
        if "rng" in states:
            rng_state.restore(self.model, states["rng"], str(where))
        self.epoch, self.step = counters["epoch"], counters["step"]
        self.in_epoch, self.batch_in_epoch = counters.get("in_epoch", False), counters.get("batch_in_epoch", 0)
        total, rows = counters.get("epoch_loss", (0.0, 0))
        self.epoch_loss, self.stopped = (float(total), int(rows)), counters.get("stopped", False)
        self.best, self.best_step, self.bad_evals = counters["best"], counters["best_step"], counters["bad_evals"]
        self.history = keep_evals(self.out_dir, counters.get("evals", 0))
        log.info("resumed from %s at epoch %d, step %d", where, self.epoch, self.step)
        return dict(counters.get("extra", {}))


def _tensorboard(path: Path) -> Any:
    """A SummaryWriter when tensorboard is installed, else None (scalars still go to evals.jsonl)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))
