"""Replay a logged table into a stream in timestamp order, at a fixed rate (events per second)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from recforge.data.streams.base import open_sink
from recforge.errors import DataError
from recforge.progress import Progress


@dataclass
class ProduceReport:
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def produce(
    table: pa.Table,
    url: str,
    rate: float | None = None,
    time_column: str | None = "timestamp",
    chunk: int = 500,
    progress: bool = True,
) -> ProduceReport:
    """Write `table` to the stream at `url`, oldest first; `rate` rows/s (None: as fast as possible)."""
    if time_column:
        if time_column not in table.column_names:
            raise DataError(f"no time column {time_column!r} to order the replay by (columns: {table.column_names})")
        table = table.take(pc.sort_indices(table, sort_keys=[(time_column, "ascending")]))
    if rate is not None and rate <= 0:
        raise DataError(f"rate must be positive, got {rate}")
    step = max(1, min(chunk, int(rate / 10) if rate else chunk))  # ~10 sends a second keep the rate smooth
    start = time.perf_counter()
    sent = 0
    with open_sink(url) as sink, Progress("produce", table.num_rows, unit="rows", enabled=progress) as bar:
        while sent < table.num_rows:
            if rate:
                wait = start + sent / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            part = table.slice(sent, step)
            sent += sink.write(part)
            bar.update(part.num_rows)
    return ProduceReport(sent, time.perf_counter() - start)
