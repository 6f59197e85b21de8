"""A BatchLoader over one rank's share of the samples, with the same number of batches on every rank.

DDP averages gradients in lock step, so a rank that ran out of batches first would leave the others
waiting forever: every rank takes `steps` batches per epoch, computed from the Parquet footers alone.
Shares differ by at most one row, so a longer share only ever folds its last row(s) into its last batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from recforge.batch import Batch
from recforge.errors import DataError
from recforge.features import TransformReport
from recforge.train.distributed.shards import Shard, iter_shard, plan_shard
from recforge.train.loader import AUTO_MEMORY_ROWS, BatchLoader


@dataclass
class ShardedBatchLoader(BatchLoader):
    """Rank `rank` of `world_size`'s mini-batches of `path` (`batch_size` is this rank's, not the global one)."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        self.shard: Shard = plan_shard(self.path, self.rank, self.world_size)
        if self.shard.min_rows < 1:
            raise DataError(
                f"{self.path}: {self.shard.total_rows} rows cannot be shared by {self.world_size} training processes"
                "\n  fix: train with fewer processes (--nproc) or on more data"
            )
        if self.mode == "auto":
            self.mode = "memory" if self.shard.rows <= AUTO_MEMORY_ROWS else "stream"
        super().__post_init__()

    @property
    def steps(self) -> int:
        """Batches per epoch, the same on every rank: those of the smallest share."""
        return math.ceil(self.shard.min_rows / self.batch_size)

    def chunks(self, report: TransformReport | None) -> Iterator[Batch]:
        """This rank's record batches of the file, transformed (one pass)."""
        for record_batch in iter_shard(self.shard, self.columns, self.read_rows):
            yield self.features.transform(
                record_batch, report=report, labels=self.labels, extras=self.extras, source=self.path
            )

    def epoch(self, number: int, skip: int = 0) -> Iterator[Batch]:
        """Epoch `number`'s `steps` batches after the first `skip` (shuffled by `seed + number` within the share)."""
        return itertools.islice(equal_steps(super().epoch(number), self.steps), skip, None)


def equal_steps(batches: Iterator[Batch], steps: int) -> Iterator[Batch]:
    """Exactly `steps` batches: the first `steps - 1` as they come, then everything left as one last batch."""
    for _ in range(steps - 1):
        batch = next(batches, None)
        if batch is None:
            return
        yield batch
    rest = list(batches)
    if rest:
        yield Batch.concat(rest) if len(rest) > 1 else rest[0]
