"""The training loop: per-task losses (BCE on logits or MSE) summed by task weight, evaluation every N steps
or epoch with metrics per task, early stop, checkpoints, best model."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from recforge.batch import Batch
from recforge.config.schema import PipelineConfig
from recforge.config.tasks import Task, is_multitask, pipeline_tasks
from recforge.embedding import EmbeddingCollection, evict_all
from recforge.errors import BundleError
from recforge.models.outputs import task_columns
from recforge.train import rng_state
from recforge.train.checkpoint import CHECKPOINT, checkpoint_exists, read_checkpoint, write_checkpoint
from recforge.train.distill import TEACHER_COLUMN, distill_loss, teacher_tensor
from recforge.train.evals_log import append_eval, keep_evals
from recforge.train.evaluation import autocast as autocast
from recforge.train.evaluation import evaluate as evaluate
from recforge.train.evaluation import evaluate_tasks as evaluate_tasks
from recforge.train.evaluation import predict_logits as predict_logits
from recforge.train.loader import epoch_batches
from recforge.train.meter import Meter
from recforge.train.metrics import HIGHER_IS_BETTER
from recforge.train.optim import build_optimizers
from recforge.train.schedule import check_schedule, set_lr
from recforge.train.stopping import EarlyStopper, epoch_limit

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    best: dict[str, float]  # valid metrics of the exported model
    best_step: int
    steps: int
    epochs: int
    samples_per_s: float
    history: list[dict[str, Any]] = field(default_factory=list)


def task_loss(task: Task, outputs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """One task's mean loss over the batch (sample-weighted when the data has weights)."""
    if task.loss == "bce":
        return nn.functional.binary_cross_entropy_with_logits(outputs, labels, weight=weights)
    squared = (outputs - labels) ** 2
    return squared.mean() if weights is None else (squared * weights).mean()


class L2Tracked(Protocol):
    """A field-embedding module whose read rows feed `train.optimizer.embedding_l2` (ordinary or TorchRec-held)."""

    l2_tracking: bool

    def pop_penalty(self) -> torch.Tensor | float: ...


class Trainer:
    """Owns the loop, the optimizers and checkpoints; the model owns only its forward pass."""

    writes_outputs = True  # evals.jsonl and tensorboard (one writer when several processes train)

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
        self.forward_model: nn.Module = model  # what a training step calls (a DDP wrapper under torchrun)
        self.on_eval = on_eval
        self.cfg = cfg
        self.out_dir = out_dir
        self.tasks = pipeline_tasks(cfg)
        self.multitask = is_multitask(cfg)
        self.first_metric = self.tasks[0].key(self.tasks[0].metrics[0])
        self.optimizers = build_optimizers(model, cfg.train.optimizer)
        check_schedule(cfg.train.optimizer.schedule)
        self.collections: list[L2Tracked] = [m for m in model.modules() if isinstance(m, EmbeddingCollection)]
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
        stop_key = cfg.train.early_stop.metric if cfg.train.early_stop else self.first_metric
        self.stop_key = stop_key
        self.stopper = EarlyStopper(
            cfg.train.early_stop, HIGHER_IS_BETTER[stop_key.rpartition("/")[2].partition("@")[0]]
        )
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.last_logits: torch.Tensor | None = None
        self.writer = _tensorboard(out_dir / "tensorboard") if self.writes_outputs else None

    # ------------------------------------------------------------- steps
    def _forward_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.cfg.train.precision):
            logits = self.forward_model(batch)
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
        set_lr(self.optimizers, self.step, self.cfg.train.optimizer.schedule)
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
            self.history = self._keep_evals(0)
        meter = Meter(self.cfg.train.progress)
        while not self._done():
            self._run_epoch(train, valid, meter)
        meter.close()
        self._sync_model()
        if self.cfg.train.export == "best" and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        evict_all(self.model)  # export time: dynamic tables drop their stale rows
        return TrainResult(self.best, self.best_step, self.step, self.epoch, meter.rate, self.history)

    def _sync_model(self) -> None:
        """Bring the trained weights into `self.model` (one process trains them there: nothing to do)."""

    def _done(self) -> bool:
        tcfg = self.cfg.train
        if self.in_epoch:
            return False
        return self.stopped or self.epoch >= epoch_limit(tcfg) or bool(tcfg.max_steps and self.step >= tcfg.max_steps)

    def _run_epoch(self, train: Iterable[Batch], valid: Iterable[Batch] | None, meter: Meter) -> None:
        """The rest of the epoch in progress (or a new one), its end-of-epoch evaluation, a checkpoint."""
        tcfg = self.cfg.train
        if not self.in_epoch:
            self.epoch, self.in_epoch, self.batch_in_epoch, self.epoch_loss = self.epoch + 1, True, 0, (0.0, 0)
        every = tcfg.checkpoint.every_steps
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
                self.stopped = self._eval_and_track(valid, self._epoch_loss())
                meter.restart(time.perf_counter())
            if self.stopped or (tcfg.max_steps and self.step >= tcfg.max_steps):
                break
            if every and self.step % every == 0:
                self.save_checkpoint()
                meter.restart(time.perf_counter())
        log.info("epoch %d: %d rows in %.1fs", self.epoch, self.epoch_loss[1], time.perf_counter() - started)
        if valid is not None and not (tcfg.eval_every and self.step % tcfg.eval_every == 0) and not self.stopped:
            self.stopped = self._eval_and_track(valid, self._epoch_loss())
        elif valid is None:
            self._record({"epoch": self.epoch, "step": self.step, "train_loss": self._epoch_loss()})
        self.in_epoch = False
        self.save_checkpoint()

    def _epoch_loss(self) -> float:
        total, rows = self.epoch_loss
        return total / max(rows, 1)

    def _eval_and_track(self, valid: Iterable[Batch], train_loss: float) -> bool:
        """Evaluate, log the row, keep the best raw evaluation's weights; True when early stopping says stop."""
        metrics = self.evaluate(valid)
        value = metrics.get(self.stop_key, float("nan"))
        stop = self.stopper.update(value)
        early = self.cfg.train.early_stop
        smoothed = {f"smoothed_{self.stop_key}": self.stopper.smoothed} if early and early.smoothing != "none" else {}
        row = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss}
        self._record({**row, **{f"valid_{k}": v for k, v in metrics.items()}, **smoothed})
        key, higher = self.stop_key, self.stopper.higher_is_better
        better = not self.best or (value > self.best[key] if higher else value < self.best[key])
        if better and math.isfinite(value):
            self.best, self.best_step = metrics, self.step
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if stop:
            log.info("early stop at step %d: %s did not improve for %d evals", self.step, key, self.stopper.bad_evals)
        return stop

    def evaluate(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Every task's metrics of the model over `batches` (means over tasks for a multi-task model)."""
        return evaluate_tasks(self.model, batches, self.tasks, self.cfg.train.precision, mean=self.multitask)

    def _keep_evals(self, rows: int) -> list[dict[str, Any]]:
        """evals.jsonl cut back to its first `rows` rows (what the checkpoint covers), and those rows."""
        return keep_evals(self.out_dir, rows)

    def _record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        log.info("eval %s", json.dumps(row))
        if self.writes_outputs:  # rank 0 under torchrun: one evals.jsonl, one tracked run
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
        write_checkpoint(self.out_dir, states, self._counters(extra))

    def _counters(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        """The data position, early-stop state and evaluation count (trainer.json of a checkpoint)."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "in_epoch": self.in_epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "epoch_loss": list(self.epoch_loss),
            "stopped": self.stopped,
            "best": self.best,
            "best_step": self.best_step,
            "stopper": self.stopper.state(),
            "evals": len(self.history),
            "extra": extra or {},
        }

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
        return self._restore_counters(counters, where)

    def _restore_counters(self, counters: dict[str, Any], where: Path) -> dict[str, Any]:
        """Take back what `_counters` saved and cut evals.jsonl to it; returns the `extra` saved."""
        self.epoch, self.step = counters["epoch"], counters["step"]
        self.in_epoch, self.batch_in_epoch = counters.get("in_epoch", False), counters.get("batch_in_epoch", 0)
        total, rows = counters.get("epoch_loss", (0.0, 0))
        self.epoch_loss, self.stopped = (float(total), int(rows)), counters.get("stopped", False)
        self.best, self.best_step = counters["best"], counters["best_step"]
        self.stopper.load(counters.get("stopper", {"bad_evals": counters.get("bad_evals", 0)}))
        self.history = self._keep_evals(counters.get("evals", 0))
        log.info("resumed from %s at epoch %d, step %d", where, self.epoch, self.step)
        return dict(counters.get("extra", {}))


def _tensorboard(path: Path) -> Any:
    """A SummaryWriter when tensorboard is installed, else None (scalars still go to evals.jsonl)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))
