"""The Trainer as one of several processes: the same loop, with the model placed across processes (DDP by
default), metrics over every rank's rows, early stop decided once, one writer of run outputs, DCP checkpoints.

Every rank runs the same steps (ShardedBatchLoader gives all the same batch count) and the same
evaluations, so each collective below is reached by every rank at the same point of the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recforge.batch import Batch
from recforge.config.schema import PipelineConfig
from recforge.errors import ConfigError
from recforge.train import rng_state
from recforge.train.checkpoint import CHECKPOINT, recover_checkpoint
from recforge.train.distributed.context import DistContext
from recforge.train.distributed.dcp_checkpoint import (
    is_dcp_checkpoint,
    load_dcp_state,
    read_dcp_counters,
    save_dcp_checkpoint,
)
from recforge.train.distributed.evaluation import evaluate_all_ranks
from recforge.train.distributed.placement import place
from recforge.train.distributed.torchrec_embeddings import embedding_collections
from recforge.train.evals_log import keep_evals, read_evals
from recforge.train.trainer import Trainer, TrainResult

log = logging.getLogger(__name__)


class DistributedTrainer(Trainer):
    """Trains one rank's share; rank 0 alone writes evals.jsonl and tensorboard."""

    def __init__(
        self,
        model: nn.Module,
        cfg: PipelineConfig,
        out_dir: Path,
        ctx: DistContext,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.writes_outputs = ctx.is_main
        super().__init__(model, cfg, out_dir, on_eval)
        self.placement = place(model, self.optimizers, ctx, cfg)
        self.forward_model = self.placement.module
        self.optimizers = self.placement.optimizers
        self.collections = embedding_collections(self.forward_model)  # a sharder's own tables track L2 too
        for collection in self.collections:
            collection.l2_tracking = cfg.train.optimizer.embedding_l2 > 0

    def fit(self, train: Iterable[Batch], valid: Iterable[Batch] | None, resume: bool = False) -> TrainResult:
        """Trainer.fit on this rank's share; the result's samples/s is every rank's together."""
        result = super().fit(train, valid, resume)
        result.samples_per_s = self.ctx.sum(result.samples_per_s)[0]
        return result

    def evaluate(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Metrics over every rank's rows of `batches` (the same numbers on every rank)."""
        precision = self.cfg.train.precision
        self._sync_model()
        return evaluate_all_ranks(self.ctx, self.model, batches, self.tasks, precision, mean=self.multitask)

    def _sync_model(self) -> None:
        """The placement's trained weights into the ordinary model on every rank (collective)."""
        self.placement.sync(self.model, self.ctx)

    def _eval_and_track(self, valid: Iterable[Batch], train_loss: float) -> bool:
        return self.ctx.agree(super()._eval_and_track(valid, train_loss))

    def _epoch_loss(self) -> float:
        """Mean training loss of the epoch so far over every rank's rows."""
        total, rows = self.ctx.sum(*self.epoch_loss)
        return total / max(rows, 1)

    def _keep_evals(self, rows: int) -> list[dict[str, Any]]:
        """Rank 0 cuts evals.jsonl; the others read the rows it kept."""
        self.ctx.on_main(lambda: keep_evals(self.out_dir, rows))
        return read_evals(self.out_dir)[:rows]

    # -------------------------------------------------------- checkpoint
    def save_checkpoint(self, extra: dict[str, Any] | None = None) -> None:
        """A DCP checkpoint: model and optimizers by parameter name, best weights, each rank's RNG, counters."""
        state = self.placement.state()
        if self.best_state is not None:
            state["best"] = self.best_state
        counters = self._counters(extra)
        counters["epoch_loss"] = list(self.ctx.sum(*self.epoch_loss))  # the whole epoch's, over every rank
        counters["has_best"] = self.best_state is not None
        counters["embeddings"] = self.cfg.train.distributed.embeddings
        save_dcp_checkpoint(self.ctx, self.out_dir, state, rng_state.capture(self.model), counters)

    def load_checkpoint(self) -> dict[str, Any]:
        """Resume from a DCP checkpoint of any world size, or from a single-process checkpoint (1 -> N)."""
        where = self.out_dir / CHECKPOINT
        if not is_dcp_checkpoint(self.out_dir):
            self.ctx.on_main(lambda: recover_checkpoint(self.out_dir))
            extra = super().load_checkpoint()
            self._share_epoch_loss()
            return extra
        counters = read_dcp_counters(self.ctx, self.out_dir)
        self._check_resumable(counters, where)
        state = self.placement.state()
        if counters.get("has_best"):
            state["best"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        rng = load_dcp_state(self.ctx, self.out_dir, state, counters)
        self.placement.load(state)
        self.best_state = state.get("best")
        if rng is not None:
            rng_state.restore(self.model, rng, str(where))
        else:  # written by another number of processes: fresh streams per rank, seeded by the position
            torch.manual_seed(self.cfg.train.seed + 1000 * counters["step"] + self.ctx.rank)
            log.info("%s was written by %s processes: random streams reseeded", where, counters.get("world_size"))
        extra = self._restore_counters(counters, where)
        self._share_epoch_loss()
        return extra

    def _check_resumable(self, counters: dict[str, Any], where: Path) -> None:
        """ConfigError for a checkpoint this placement cannot load: another placement's, or another world
        size's where the placement's state does not reshard."""
        written = (counters.get("embeddings", "replicated"), counters.get("world_size"))
        now = (self.cfg.train.distributed.embeddings, self.ctx.world_size)
        if written[0] != now[0] or (written[1] != now[1] and not self.placement.reshards):
            raise ConfigError(
                "train.distributed.embeddings",
                f"{where} was written with `embeddings: {written[0]}` by {written[1]} processes and cannot resume "
                f"with `embeddings: {now[0]}` in {now[1]}",
                fix=f"resume with `--set train.distributed.embeddings={written[0]}` and --nproc {written[1]}, "
                "or train afresh into a new --out",
            )

    def _share_epoch_loss(self) -> None:
        """Split the saved epoch loss (summed over the writer's ranks) evenly over this run's ranks."""
        total, rows = self.epoch_loss
        self.epoch_loss = (total / self.ctx.world_size, int(rows) // self.ctx.world_size)
