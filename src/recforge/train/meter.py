"""Training throughput and the progress bar of the SGD loop."""

from __future__ import annotations

import time

from recforge.progress import Progress


class Meter:
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
