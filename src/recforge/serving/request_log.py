"""Sampled request log: what the service read, the model inputs it computed, and the scores it gave.

The request path only draws the sample and puts references on a bounded queue (never waits: a full
queue drops the record and counts it); a writer thread turns them into JSON lines and rotates the
file. One line per logged /recommend request:

    {"time", "model", "version", "user_id", "context",
     "schema": base64 Arrow schema of the raw rows,
     "request": {user and context column: value}, "items": {item column: [value per candidate]},
     "features": {feature: [model input per candidate]}, "scores": [...], "tasks": {task: [...]}}

`request` and `items` joined (the request row repeated per candidate) are exactly the rows
`recforge predict` would score; `recforge skew check` does that and compares (recforge.serving.skew).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from recforge.batch import Batch
from recforge.config.request_log import RequestLogConfig
from recforge.features.compare import field_rows
from recforge.serving.metrics import ServiceMetrics
from recforge.serving.predictor import Predictor

log = logging.getLogger(__name__)
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class LoggedRequest:
    """What the request path hands over: references only, serialized later on the writer thread."""

    predictor: Predictor
    user_id: Any
    user: Mapping[str, Any]
    context: Mapping[str, Any]
    items: Sequence[Any] | np.ndarray
    batch: Batch
    tasks: Mapping[str, np.ndarray]
    scores: np.ndarray
    time: float


def log_file(path: str | Path) -> Path:
    """The live file: `path` itself when it ends in .jsonl, else `path/requests-PID.jsonl` (one per process)."""
    target = Path(path)
    return target if target.suffix == SUFFIX else target / f"requests-{os.getpid()}{SUFFIX}"


class RotatingFile:
    """Appends lines; before a line would pass `max_bytes`, NAME.jsonl becomes NAME.1.jsonl (older ones shift up)."""

    def __init__(self, path: Path, max_bytes: int, max_files: int) -> None:
        self.path, self.max_bytes, self.max_files = path, max_bytes, max_files
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._size = self._file.tell()

    def write(self, line: bytes) -> None:
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        self._file.write(line)
        self._size += len(line)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{n}{SUFFIX}")

    def _rotate(self) -> None:
        self._file.close()
        self.rotated(self.max_files).unlink(missing_ok=True)
        for n in range(self.max_files - 1, 0, -1):
            if self.rotated(n).exists():
                self.rotated(n).rename(self.rotated(n + 1))
        self.path.rename(self.rotated(1))
        self._file = self.path.open("ab")
        self._size = 0


def to_record(entry: LoggedRequest) -> dict[str, Any]:
    """The JSON line of one logged request (raw rows, online model inputs, scores)."""
    predictor = entry.predictor
    request, items = predictor.raw_inputs(entry.user, entry.items, entry.context)
    schema = pa.schema([*items.schema, *request.schema])
    return {
        "time": entry.time,
        "model": predictor.name,
        "version": predictor.version,
        "user_id": entry.user_id,
        "context": dict(entry.context),
        "schema": encode_schema(schema),
        "request": request.to_pylist()[0],
        "items": items.to_pydict(),
        "features": field_rows(entry.batch, predictor.schema),
        "scores": entry.scores.astype(np.float64).tolist(),
        "tasks": {task: entry.tasks[task].astype(np.float64).tolist() for task in predictor.tasks},
    }


def encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def rows_table(record: Mapping[str, Any]) -> pa.Table:
    """A logged request's raw rows, one per candidate, with the types the service read them as."""
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(record["schema"])))
    n = len(next(iter(record["items"].values())))
    columns = {**record["items"], **{c: [v] * n for c, v in record["request"].items()}}
    arrays = [pa.array(_from_json(columns[f.name], f.type), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _from_json(values: list[Any], kind: pa.DataType) -> list[Any]:
    """JSON gives a map row as [[key, value], ...]; Arrow reads (key, value) tuples."""
    if pa.types.is_map(kind):
        return [None if row is None else [tuple(pair) for pair in row] for row in values]
    return values


class RequestLog:
    """Samples requests and writes them off the request path; `close` drains what is queued."""

    def __init__(
        self, config: RequestLogConfig, metrics: ServiceMetrics | None = None, seed: int | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.file = RotatingFile(log_file(config.path), config.max_bytes, config.max_files)
        self.written = self.dropped = 0
        self._random = random.Random(seed)
        self._count_lock = threading.Lock()
        self._queue: queue.Queue[LoggedRequest | None] = queue.Queue(config.queue)
        self._thread = threading.Thread(target=self._run, name="recforge-request-log", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        """Draw whether this request is logged (cheap: one random number)."""
        return self._random.random() < self.config.sample_rate

    def offer(self, entry: LoggedRequest) -> None:
        """Queue a record for the writer, or drop and count it when the queue is full; never blocks."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._drop()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the writer and close the file."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning(
                "request log: the writer did not drain in %.0f s; %d records not written", timeout, self._queue.qsize()
            )
            return
        self._thread.join(timeout)

    def _drop(self) -> None:
        with self._count_lock:  # request threads and the writer both drop
            self.dropped += 1
        if self.metrics is not None:
            self.metrics.request_log_dropped.inc()

    def _run(self) -> None:
        try:
            while (entry := self._queue.get()) is not None:
                self._write(entry)
                if self._queue.empty():
                    self.file.flush()
        finally:
            self.file.close()

    def _write(self, entry: LoggedRequest) -> None:
        try:
            line = json.dumps(to_record(entry), separators=(",", ":"), default=str) + "\n"
            self.file.write(line.encode())
        except Exception:  # a record that cannot be written is counted, and the writer keeps going
            log.warning("request log: a record could not be written to %s", self.file.path, exc_info=True)
            self._drop()
            return
        self.written += 1
        if self.metrics is not None:
            self.metrics.request_log_records.inc()


def log_files(path: str | Path) -> list[Path]:
    """The .jsonl files of a request log: the file itself, or every one in the directory (sorted)."""
    base = Path(path)
    return sorted(base.glob(f"*{SUFFIX}")) if base.is_dir() else [base]


def read_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(where, record) per line; record None for a line that is not a JSON object (a torn last write)."""
    for file in log_files(path):
        with file.open("rb") as lines:
            for n, line in enumerate(lines, 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                yield f"{file}:{n}", record if isinstance(record, dict) else None


__all__ = ["LoggedRequest", "RequestLog", "RotatingFile", "log_file", "read_records", "rows_table", "to_record"]
