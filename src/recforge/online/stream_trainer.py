"""Streaming training for any recforge model: read the event stream, train, checkpoint, publish through the gate.

The loop, one mini-batch at a time::

    read rows -> skip rows at or before the checkpointed position (re-deliveries) -> drift monitor
    (the rows and the model's scores for them before it learns from them) -> gate window (rows a
    pending candidate has not seen) -> train step -> every N rows / T s: checkpoint, then ack

Exactly once: the checkpoint holds the model, the optimizers and the stream position of the last
trained row, written atomically; rows are acknowledged only after the checkpoint that covers them.
Killed at any moment, the trainer restarts from the last checkpoint, the stream re-delivers every
row it did not ack, and rows at or before the checkpointed position are skipped. So each row is
trained exactly once in the model that survives (`samples` and `digest` in the checkpoint prove it).

This module is the loop and its checkpoints; publishing through the gate is `stream_publisher.py`,
the drift monitor `drift_watch.py`.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from recforge.bundle import Bundle, load_bundle
from recforge.bundle.stream import current, versions
from recforge.config import PipelineConfig
from recforge.config.tasks import is_multitask
from recforge.data.streams import Position, RowPosition, StreamBatch, StreamSource, open_source
from recforge.errors import ConfigError, DataError
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.online.drift import DriftMonitor
from recforge.online.drift_watch import DriftWatch
from recforge.online.stream_publisher import Publisher
from recforge.train.checkpoint import checkpoint_exists
from recforge.train.families import trainer_family
from recforge.train.gate import GateResult
from recforge.train.trainer import Trainer

log = logging.getLogger(__name__)
DIGEST_MOD = 2**61 - 1


def row_digest(rows: list[RowPosition]) -> int:
    """Sum of a checksum of each row's position (mod a prime): equal sums = the same rows, once each."""
    return sum(zlib.crc32(f"{p}:{a}-{b}".encode()) for p, a, b in rows) % DIGEST_MOD


@dataclass
class StreamProgress:
    """What the checkpoint carries besides the model: where the stream was and what was trained."""

    position: Position = field(default_factory=Position)
    samples: int = 0
    digest: int = 0
    skipped: int = 0  # re-delivered rows that were already trained (skipped, acked)

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position.to_json(), "samples": self.samples, "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamProgress:
        return cls(Position.from_json(data.get("position")), int(data.get("samples", 0)), int(data.get("digest", 0)))


@dataclass
class StreamRunReport:
    samples: int
    skipped: int
    published: list[str]
    rejected: list[GateResult]
    alarms: int
    seconds: float


class StreamTrainer:
    """`recforge stream train`: one trainer per consumer group; `run()` until idle, a row budget or SIGTERM."""

    def __init__(self, cfg: PipelineConfig, source: str | StreamSource, models: str | Path, work: str | Path) -> None:
        family = trainer_family(cfg)
        if family != "sgd":
            raise ConfigError(
                "model.name",
                f"{cfg.model.name} is trained by the {family!r} trainer, which cannot learn from a stream mini-batch "
                "by mini-batch",
                fix="stream-train a model trained by SGD (deepfm, dcn_v2, ...), use `recforge stream ftrl` for ftrl, "
                "or retrain it in batch",
            )
        if is_multitask(cfg):
            raise ConfigError(
                "tasks",
                "the streaming trainer learns one label for now (its gate and drift AUC read one score)",
                fix="stream-train a single-task config (drop `tasks:`)",
            )
        self.cfg = cfg
        self.online = cfg.online
        self.models = Path(models)
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.models.mkdir(parents=True, exist_ok=True)
        self.source = open_source(source) if isinstance(source, str) else source
        self.batch_size = self.online.batch_size or cfg.train.batch_size
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.progress = StreamProgress()
        self.unacked: list[StreamBatch] = []
        self.features: FeatureSet | None = None
        self.trainer: Trainer | None = None
        self.publisher = Publisher(cfg, self.models)
        self.drift = DriftWatch(cfg, self.models, self.work)
        self._stop = False
        self._last_checkpoint = time.monotonic()
        self._rows_since_checkpoint = 0

    @property
    def serving(self) -> Bundle | None:
        """The version followers serve now (what candidates must beat)."""
        return self.publisher.serving

    @property
    def published(self) -> list[str]:
        return self.publisher.published

    @property
    def rejected(self) -> list[GateResult]:
        return self.publisher.rejected

    @property
    def monitor(self) -> DriftMonitor | None:
        return self.drift.monitor

    # ------------------------------------------------------------------ start
    def _start(self) -> list[StreamBatch]:
        """Model and position from the checkpoint, else the served version, else features fitted on the first rows.

        Returns batches already read (from scratch: the rows the features were fitted on) to train first.
        """
        features_dir = self.work / "features"
        clean_stale(self.models)
        if checkpoint_exists(self.work) and features_dir.exists():
            self._build(FeatureSet.load(features_dir))
            assert self.trainer is not None
            self.progress = StreamProgress.from_json(self.trainer.load_checkpoint().get("stream", {}))
            if versions(self.models):  # what candidates must beat, as followers serve it now
                self.publisher.serving = load_bundle(current(self.models).path)
            log.info(
                "resumed from the checkpoint: %d rows trained, position %s",
                self.progress.samples,
                self.progress.position,
            )
            return []
        if versions(self.models):
            served = load_bundle(current(self.models).path)
            served.features.save(features_dir)
            self._build(served.features)
            assert self.trainer is not None
            self.trainer.model.load_state_dict(served.model.state_dict())
            self.progress.position = Position.from_json(served.manifest.get("stream", {}).get("position"))
            self.publisher.serving = served
            log.info("starting from published version %s", served.version)
            return []
        if features_dir.exists():  # fitted before a crash that came before the first checkpoint
            self._build(FeatureSet.load(features_dir))
            return []
        batches, rows = [], 0
        while rows < self.online.fit_rows and not self._stop:
            batch = self.source.read(self.batch_size, self.online.read_timeout_ms)
            if batch is None:
                if rows:
                    break
                continue
            batches.append(batch)
            rows += batch.num_rows
        if not batches:
            raise DataError("the stream ended before any row arrived: nothing to fit the features on")
        features = FeatureSet.from_config(self.cfg)
        features.fit([b.table for b in batches])
        features.save(features_dir)
        self._build(features)
        log.info("fitted features on the first %d rows of the stream", rows)
        return batches

    def _build(self, features: FeatureSet) -> None:
        torch.manual_seed(self.cfg.train.seed)
        self.features = features
        self.trainer = Trainer(build_model(features.schema(), self.cfg.model), self.cfg, self.work)

    # ------------------------------------------------------------------- loop
    def run(self, until_idle_s: float | None = None, max_rows: int | None = None) -> StreamRunReport:
        """Train until the stream is idle for `until_idle_s`, `max_rows` rows are trained, or SIGTERM/SIGINT."""
        started = time.monotonic()
        on_main = threading.current_thread() is threading.main_thread()  # signals can only be caught there
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if on_main else {}
        try:
            first = self._start()
            self.drift.restore()
            idle_since = time.monotonic()
            for early in first:
                self._consume(early)
            while not self._stop and not (max_rows is not None and self.progress.samples >= max_rows):
                batch = self.source.read(self.batch_size, self.online.read_timeout_ms)
                if batch is None:
                    if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                        break
                    self._maybe_checkpoint()
                    self._maybe_publish()
                    continue
                idle_since = time.monotonic()
                self._consume(batch)
            self._checkpoint()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return StreamRunReport(
            self.progress.samples,
            self.progress.skipped,
            self.published,
            self.rejected,
            self.drift.alarms,
            time.monotonic() - started,
        )

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after this batch (checkpoint and ack first)", signum)
        self._stop = True

    def _consume(self, batch: StreamBatch) -> None:
        """Train on the batch's new rows; the batch is acked at the next checkpoint."""
        assert self.trainer is not None and self.features is not None
        self.unacked.append(batch)
        keep = self.progress.position.new_rows(batch)
        self.progress.skipped += batch.num_rows - len(keep)
        if keep:
            table = batch.table if len(keep) == batch.num_rows else batch.table.take(keep)
            rows = [batch.positions[i] for i in keep] if batch.positions else []
            self.publisher.saw(table)
            self.trainer.train_step(self.features.transform(table))
            self.progress.samples += table.num_rows
            self.progress.digest = (self.progress.digest + row_digest(rows)) % DIGEST_MOD
            self.progress.position.advance(rows)
            self._rows_since_checkpoint += table.num_rows
            self.drift.observe(table, self.trainer.last_logits, self.features)
        self._maybe_checkpoint()
        self._maybe_publish()

    # ------------------------------------------------------------- checkpoint
    def _maybe_checkpoint(self) -> None:
        due_rows = self._rows_since_checkpoint >= self.online.checkpoint_every_rows
        due_time = time.monotonic() - self._last_checkpoint >= self.online.checkpoint_every_s
        if self.unacked and (due_rows or due_time):
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Save model + optimizers + position atomically, then ack every batch the checkpoint covers."""
        if self.trainer is None or not self.unacked:
            return
        self.trainer.save_checkpoint(extra={"stream": self.progress.to_json()})
        for batch in self.unacked:
            self.source.ack(batch)
        self.unacked = []
        self._rows_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        log.info("checkpoint: %d rows trained, position %s", self.progress.samples, self.progress.position)

    def _maybe_publish(self) -> None:
        if self.trainer is not None and self.features is not None:
            hold = self.drift.hold_reason()
            self.publisher.maybe_publish(self.trainer.model, self.features, self.progress.to_json(), hold)


def clean_stale(models: Path) -> None:
    """Remove hidden temp directories a killed writer left in the stream (never visible to readers)."""
    for path in models.glob(".*tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
