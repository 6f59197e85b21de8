"""One progress path for every long stage: a tqdm bar on a terminal, a log line every few seconds otherwise.

Off a terminal (CI, nohup, a log file) a bar would flood the log with carriage returns, and silence for
minutes looks like a hang; so there the `recforge.progress` logger gets a line at the start, every
`RECFORGE_PROGRESS_EVERY` seconds (default 5) and at the end of each stage.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger("recforge.progress")
T = TypeVar("T")
EVERY_ENV = "RECFORGE_PROGRESS_EVERY"


def every_seconds() -> float:
    """Seconds between progress lines off a terminal (`RECFORGE_PROGRESS_EVERY`, default 5)."""
    text = os.environ.get(EVERY_ENV, "5")
    try:
        return max(float(text), 0.1)
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using 5", EVERY_ENV, text)
        return 5.0


def on_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """A counted stage (`total` None: open-ended); `with Progress("features") as p: ... p.update(n)`."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True) -> None:
        self.desc, self.total, self.unit, self.enabled = desc, total, unit, enabled
        self.done = 0
        self.note = ""
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._bar: tqdm | None = None
        self._thread: threading.Thread | None = None
        if not enabled:
            return
        if on_terminal():
            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True)
        else:
            log.info("%s: started", desc)
        self._thread = threading.Thread(target=self._beat, name=f"progress {desc}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        """Refresh the bar each second (its clock ticks through a long step) or log a line every N seconds."""
        interval = 1.0 if self._bar is not None else every_seconds()
        while not self._stop.wait(interval):
            if self._bar is not None:
                self._bar.refresh()
            else:
                log.info("%s: %s (%.0fs)", self.desc, self._count(), time.perf_counter() - self.started)

    def _count(self) -> str:
        of = f"/{self.total:,}" if self.total is not None else ""
        return f"{self.done:,}{of} {self.unit}" + (f", {self.note}" if self.note else "")

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def reset(self, total: int | None, done: int = 0) -> None:
        """A new total with `done` already counted (a resumed download learns its size late)."""
        self.total, self.done = total, done
        if self._bar is not None:
            self._bar.reset(total=total)
            self._bar.update(done)

    def set_note(self, note: str) -> None:
        """Shown after the count (loss, rows/s ...)."""
        self.note = note
        if self._bar is not None:
            self._bar.set_postfix_str(note, refresh=False)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            log.info("%s: done, %s in %.1fs", self.desc, self._count(), time.perf_counter() - self.started)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def track(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "it", enabled: bool = True
) -> Iterator[T]:
    """Yield `items`, counting them in a Progress stage."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(desc, total, unit, enabled) as progress:
        for item in items:
            yield item
            progress.update()


def stage(desc: str, enabled: bool = True) -> Progress:
    """An open-ended stage (a DuckDB query, a library fit): the clock shows it is alive."""
    return Progress(desc, None, "steps", enabled)
