"""Mini-batches for training and evaluation: transformed in a background thread, shuffled, streamed.

`memory` keeps every transformed chunk in RAM (fast epochs on data that fits); `stream` re-reads
the file each epoch and shuffles within a buffer of record batches, so a file larger than RAM trains.
A directory written by the Spark transform (`features.spark_transform`) holds model inputs already:
its batches are read back through its `ColumnLayout` instead of transformed again.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from recforge.batch import Batch
from recforge.data.readers import count_rows, iter_batches
from recforge.errors import DataError
from recforge.features import FeatureSet, TransformReport
from recforge.features.columns import ColumnLayout, load_report

log = logging.getLogger(__name__)
AUTO_MEMORY_ROWS = 5_000_000
_DONE = object()


def background(make: Callable[[], Iterator[Batch]], depth: int = 4) -> Iterator[Batch]:
    """Run an iterator in a thread (Arrow and NumPy release the GIL) and hand items over a queue."""
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in make():
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            items.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


@dataclass
class BatchLoader:
    """Transformed mini-batches of one Parquet/CSV file for a fitted FeatureSet."""

    path: str
    features: FeatureSet
    batch_size: int
    read_rows: int = 65_536
    shuffle: bool = True
    mode: str = "auto"  # auto | memory | stream
    shuffle_buffer: int = 8
    seed: int = 0
    extras: tuple[str, ...] = ()
    labels: bool = True
    report: TransformReport = field(default_factory=TransformReport)
    _cache: Batch | None = None
    _epoch: int = 0
    _counted: bool = False  # stream mode: a pass has counted into `report` already

    def __post_init__(self) -> None:
        if self.mode == "auto":
            rows = count_rows(self.path)
            self.mode = "memory" if rows is not None and rows <= AUTO_MEMORY_ROWS else "stream"
        self.layout = ColumnLayout.load(self.path) if Path(self.path).is_dir() else None
        if self.layout is not None:
            self.columns = self._transformed_columns(self.layout)
            return
        self.columns = self.features.input_columns() + list(self.features.labels)
        if self.features.weight:
            self.columns.append(self.features.weight)
        self.columns += [c for c in self.extras if c not in self.columns]

    def _transformed_columns(self, layout: ColumnLayout) -> list[str]:
        """The columns of a transformed directory this loader needs; it must hold these features' inputs."""
        layout.check_matches(self.features.schema(), self.path)
        missing = [c for c in self.extras if c not in layout.extras]
        if missing or (self.labels and not layout.labels):
            what = f"pass-through columns {missing}" if missing else "labels"
            raise DataError(
                f"{self.path}: the transformed directory has no {what}; fix: run the Spark transform with them"
            )
        return layout.arrow_schema().names

    def chunks(self, report: TransformReport | None) -> Iterator[Batch]:
        """Each record batch of the file, transformed (one pass); values mapped to defaults counted in `report`."""
        if self.layout is not None:
            if report is not None:
                load_report(self.path, report)
            yield from self._read_transformed(self.layout)
            return
        for record_batch in iter_batches(self.path, columns=self.columns, batch_rows=self.read_rows):
            yield self.features.transform(
                record_batch, report=report, labels=self.labels, extras=self.extras, source=self.path
            )

    def _read_transformed(self, layout: ColumnLayout) -> Iterator[Batch]:
        """Batches of a transformed directory (its defaults are the counts the transform saved beside it)."""
        for record_batch in iter_batches(self.path, columns=self.columns, batch_rows=self.read_rows):
            batch = layout.batch(record_batch, self.path)
            yield replace(
                batch,
                labels=batch.labels if self.labels else {},
                weights=batch.weights if self.labels else None,
                extras={k: batch.extras[k] for k in self.extras},
            )

    def __iter__(self) -> Iterator[Batch]:
        self._epoch += 1
        return self.epoch(self._epoch)

    def epoch(self, number: int, skip: int = 0) -> Iterator[Batch]:
        """Epoch `number`'s batches after its first `skip`: the shuffle is seeded by `seed + number`,
        so a resumed run sees the same order as an uninterrupted one and goes on from where it stopped."""
        generator = torch.Generator().manual_seed(self.seed + number)
        if self.mode == "memory":
            if self._cache is None:
                self._cache = Batch.concat(list(background(lambda: self.chunks(self.report))))
            return itertools.islice(self._split(self._cache, generator), skip, None)
        # `report` counts one pass over the file, as in memory mode, whichever epoch this loader starts in
        report, self._counted = (None if self._counted else self.report), True
        return itertools.islice(background(lambda: self._stream(generator, report)), skip, None)

    def _split(self, data: Batch, generator: torch.Generator) -> Iterator[Batch]:
        if self.shuffle:
            data = data.index(torch.randperm(data.size, generator=generator))
        for start in range(0, data.size, self.batch_size):
            yield data.index(slice(start, start + self.batch_size))

    def _stream(self, generator: torch.Generator, report: TransformReport | None) -> Iterator[Batch]:
        buffer: list[Batch] = []
        for chunk in self.chunks(report):
            buffer.append(chunk)
            if len(buffer) >= self.shuffle_buffer:
                mixed = self._mix(buffer, generator)
                full = (mixed.size // self.batch_size) * self.batch_size
                for start in range(0, full, self.batch_size):
                    yield mixed.index(slice(start, start + self.batch_size))
                rest = mixed.index(slice(full, mixed.size))
                buffer = [rest] if rest.size else []
        if buffer:
            mixed = self._mix(buffer, generator)
            for start in range(0, mixed.size, self.batch_size):
                yield mixed.index(slice(start, start + self.batch_size))

    def _mix(self, buffer: list[Batch], generator: torch.Generator) -> Batch:
        mixed = Batch.concat(buffer) if len(buffer) > 1 else buffer[0]
        if self.shuffle:
            mixed = mixed.index(torch.randperm(mixed.size, generator=generator))
        return mixed


def epoch_batches(batches: Iterable[Batch], number: int, skip: int = 0) -> Iterator[Batch]:
    """Epoch `number` of `batches` after its first `skip` batches (what a resumed epoch still has to train).

    A BatchLoader reshuffles by epoch number; any other iterable is replayed from its start.
    """
    if isinstance(batches, BatchLoader):
        return batches.epoch(number, skip)
    return itertools.islice(iter(batches), skip, None)
