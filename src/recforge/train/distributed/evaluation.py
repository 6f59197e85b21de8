"""Exact metrics over every rank's evaluation rows: each rank scores its share, the outputs are gathered,
and every rank computes the metrics once over all rows (an AUC of the union, not a mean of per-rank AUCs),
so every rank sees the same numbers and takes the same early-stop decision."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from recforge.batch import Batch
from recforge.config.tasks import Task
from recforge.train.distributed.context import DistContext
from recforge.train.evaluation import Outputs, collect_outputs, score_outputs


def gather_outputs(ctx: DistContext, outputs: Outputs) -> Outputs:
    """Every rank's outputs, in rank order, on every rank."""
    return Outputs.concat(ctx.gather(outputs)) if ctx.several else outputs


def evaluate_all_ranks(
    ctx: DistContext,
    model: nn.Module,
    batches: Iterable[Batch],
    tasks: tuple[Task, ...],
    precision: str = "fp32",
    mean: bool = False,
) -> dict[str, float]:
    """Each task's metrics over the rows of every rank's `batches` (every rank must call it)."""
    return score_outputs(gather_outputs(ctx, collect_outputs(model, batches, tasks, precision)), tasks, mean)
