"""Which training process this is (torchrun's RANK / WORLD_SIZE), its process group, and the few collectives
the trainer needs: a barrier, "main first", agreement on a flag, sums and gathers of Python objects.

One process (no torchrun) is world size 1: every collective is then the identity, so the same code runs
whether or not several processes train.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from recforge.errors import ConfigError

T = TypeVar("T")
RANK_LOGS = "logs"
TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a slow rank (an epoch's evaluation included)


@dataclass(frozen=True)
class DistContext:
    """This process's place among the training processes (rank 0 is the one that writes run outputs)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def from_env() -> DistContext:
        """The context torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK); one process without."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise ConfigError(
                "", f"torchrun's environment is not numbers ({exc})", fix="unset RANK / WORLD_SIZE / LOCAL_RANK"
            ) from None
        if world < 1 or not 0 <= rank < world:
            raise ConfigError("", f"RANK={rank} is not a rank of WORLD_SIZE={world}", fix="launch through torchrun")
        return DistContext(rank, world, local)

    # ------------------------------------------------------- collectives
    def barrier(self) -> None:
        if self.several:
            dist.barrier()

    def main_first(self, work: Callable[[bool], T]) -> T:
        """`work(False)` on rank 0, then `work(True)` on the others once rank 0 is done (they reuse what it wrote)."""
        if self.is_main:
            result = work(False)
            self.barrier()
            return result
        self.barrier()
        return work(True)

    def on_main(self, work: Callable[[], Any]) -> None:
        """Run `work` on rank 0 only, the others waiting until it is done (e.g. a rename the others then read)."""
        if self.is_main:
            work()
        self.barrier()

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank, so a decision (early stop) cannot differ between processes."""
        return bool(self.broadcast(flag))

    def broadcast(self, value: T) -> T:
        """Rank 0's `value` (any picklable object) on every rank."""
        if not self.several:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's `value` in rank order, on every rank."""
        if not self.several:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def sum(self, *values: float) -> tuple[float, ...]:
        """Each of `values` summed over the ranks (float64)."""
        if not self.several:
            return values
        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total)
        return tuple(float(v) for v in total)

    def sum_counts(self, counts: dict[str, int]) -> dict[str, int]:
        """Counters by name summed over the ranks (a name only some ranks counted included)."""
        if not self.several:
            return counts
        total: dict[str, int] = {}
        for part in self.gather(counts):
            for name, n in part.items():
                total[name] = total.get(name, 0) + n
        return total


def backend() -> str:
    """gloo for CPU tensors (where recforge's trainer keeps its model); with CUDA, nccl for CUDA tensors beside it."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


@contextmanager
def process_group(ctx: DistContext) -> Iterator[DistContext]:
    """The default process group for `ctx` while the block runs (none for one process, or when one exists)."""
    if not ctx.several or dist.is_initialized():
        yield ctx
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group(backend(), timeout=TIMEOUT)
    try:
        yield ctx
    finally:
        dist.destroy_process_group()


def route_logs(ctx: DistContext, out_dir: Path) -> Path | None:
    """Send a non-main rank's log records to OUT/logs/rank{N}.log (rank 0 keeps the console); returns the file."""
    if ctx.is_main:
        return None
    path = out_dir / RANK_LOGS / f"rank{ctx.rank}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(f"%(asctime)s rank {ctx.rank} %(levelname)s %(name)s: %(message)s"))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # a rank file keeps the run's story, whatever the console level
    return path
