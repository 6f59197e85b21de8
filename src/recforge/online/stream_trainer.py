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

Publishing: every `publish_every_s` seconds (or rows) the model is snapshotted as a candidate; it is
judged by the gate on the next `gate_rows` rows (which it has not trained on) against the version
being served, then written into the model stream: a full bundle the first time after a start (and
every `full_every` versions), else a delta version (changed embedding rows + dense weights). A raised
drift alarm holds publishing: candidates are recorded as rejected until the alarm clears.
"""

from __future__ import annotations

import copy
import json
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from recforge.bundle import Bundle, load_bundle, save_bundle
from recforge.bundle.bundle import MANIFEST, new_version
from recforge.bundle.delta import save_delta_version
from recforge.bundle.stream import announce, current, prune, record_rejection, versions
from recforge.config import PipelineConfig
from recforge.config.tasks import is_multitask
from recforge.data.readers import read_table
from recforge.data.streams import Position, RowPosition, StreamBatch, StreamSource, open_source
from recforge.embedding.delta import mark_clean, named_tables
from recforge.errors import ConfigError, DataError
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.models.registry import model_trainer
from recforge.online.drift import DriftConfig, DriftMonitor, WindowReport
from recforge.online.status import read_drift_status, take_clear_request, write_drift_status
from recforge.train.checkpoint import checkpoint_exists
from recforge.train.gate import GateResult, judge
from recforge.train.metrics import auc
from recforge.train.trainer import Trainer

log = logging.getLogger(__name__)
DIGEST_MOD = 2**61 - 1
REFERENCE = "drift_reference.parquet"  # in the work directory: the rows drift is judged against
REFERENCE_META = "drift_reference.json"


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
class Candidate:
    """A snapshot waiting for its gate window: the model as it was, and the rows seen since."""

    bundle: Bundle
    progress: dict[str, Any]
    dirty: dict[str, tuple[torch.Tensor, list[torch.Tensor]]]  # per dynamic table, to restore on rejection
    rows: list[pa.Table] = field(default_factory=list)
    count: int = 0


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
        family = model_trainer(cfg.model)
        if family != "sgd":
            raise ConfigError(
                "model.name",
                f"{cfg.model.name} is trained by the {family!r} trainer, which cannot learn from a stream mini-batch "
                "by mini-batch",
                fix="stream-train a model trained by SGD (deepfm, dcn_v2, widedeep, ...) or retrain it in batch",
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
        self.serving: Bundle | None = None  # the version followers serve now (what candidates must beat)
        self.chain_length = 0  # deltas since the last full version written by this process
        self.candidate: Candidate | None = None
        self.monitor: DriftMonitor | None = None
        self._reference: list[pa.Table] = []
        self._reference_scores: list[np.ndarray] = []
        self.holdout = read_table(self.online.holdout) if self.online.holdout else None
        self.published: list[str] = []
        self.rejected: list[GateResult] = []
        self._stop = False
        self._last_checkpoint = time.monotonic()
        self._last_publish = time.monotonic()
        self._rows_since_checkpoint = 0
        self._rows_since_publish = 0

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
                self.serving = load_bundle(current(self.models).path)
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
            self.serving = served
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
            self._restore_monitor()
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
        alarms = self.monitor.alarms if self.monitor else 0
        return StreamRunReport(
            self.progress.samples,
            self.progress.skipped,
            self.published,
            self.rejected,
            alarms,
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
            if self.candidate is not None:
                self.candidate.rows.append(table)
                self.candidate.count += table.num_rows
            self.trainer.train_step(self.features.transform(table))
            self.progress.samples += table.num_rows
            self.progress.digest = (self.progress.digest + row_digest(rows)) % DIGEST_MOD
            self.progress.position.advance(rows)
            self._rows_since_checkpoint += table.num_rows
            self._rows_since_publish += table.num_rows
            self._watch_drift(table)
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

    # ------------------------------------------------------------------ drift
    def _watch_drift(self, table: pa.Table) -> None:
        settings = self.online.drift
        if not settings.enabled or self.trainer is None or self.trainer.last_logits is None:
            return
        if take_clear_request(self.models) and self.monitor is not None:
            # the operator accepts the stream as it is now: lower the alarm, re-learn the reference from here
            self.monitor = None
            (self.work / REFERENCE_META).unlink(missing_ok=True)
            write_drift_status(self.models, False, [], 0)
            log.info("drift alarm cleared by request: publishing resumes, the reference is rebuilt from new rows")
        scores = torch.sigmoid(self.trainer.last_logits.float()).numpy().astype(np.float64)
        if self.monitor is None:
            self._reference.append(table)
            self._reference_scores.append(scores)
            if sum(t.num_rows for t in self._reference) >= (settings.reference_rows or settings.window):
                self._start_monitor()
            return
        for report in self.monitor.observe(table, scores):
            write_drift_status(self.models, self.monitor.alarm, self.monitor.alarm_reasons, report.index)

    def _start_monitor(self) -> None:
        """Build the monitor from the rows seen so far; the reference is kept so a restart judges the same way."""
        reference = pa.concat_tables(self._reference)
        scores = np.concatenate(self._reference_scores)
        label = self.cfg.data.label
        labels = np.asarray(reference[label].to_numpy(zero_copy_only=False), dtype=np.float64)
        reference_auc = auc(labels, scores) if 0 < labels.sum() < len(labels) else None
        columns = self.online.drift.columns or self._drift_columns(reference)
        reference = reference.select([*columns, label])
        pq.write_table(reference, self.work / REFERENCE)
        (self.work / REFERENCE_META).write_text(json.dumps({"auc": reference_auc, "columns": columns}))
        self._reference, self._reference_scores = [], []
        self._monitor_from(reference, columns, reference_auc)
        write_drift_status(self.models, False, [], 0)

    def _restore_monitor(self) -> None:
        """After a restart: the saved reference, and the alarm if one was raised (it stays until cleared)."""
        if not self.online.drift.enabled or not (self.work / REFERENCE_META).exists():
            return
        meta = json.loads((self.work / REFERENCE_META).read_text())
        self._monitor_from(pq.read_table(self.work / REFERENCE), meta["columns"], meta["auc"])
        status = read_drift_status(self.models)
        if self.monitor is not None and status and status.get("alarm"):
            self.monitor.alarm, self.monitor.alarm_reasons = True, list(status.get("reasons", []))

    def _monitor_from(self, reference: pa.Table, columns: list[str], reference_auc: float | None) -> None:
        settings = self.online.drift
        config = DriftConfig(
            window=settings.window,
            psi_threshold=settings.psi_threshold,
            label_rate_change=settings.label_rate_change,
            auc_drop=settings.auc_drop,
            recover_windows=settings.recover_windows,
        )
        label = self.cfg.data.label
        self.monitor = DriftMonitor(reference, columns, label, config, reference_auc, on_alarm=self._alarm)
        log.info("drift monitor watching %s (reference: %d rows, AUC %s)", columns, reference.num_rows, reference_auc)

    def _drift_columns(self, reference: pa.Table) -> list[str]:
        """Feature inputs except the user and item keys (their mix changes all the time without harm)."""
        assert self.features is not None
        keys = {self.features.entity_key("user"), self.features.entity_key("item")}
        return [c for c in self.features.input_columns() if c not in keys and c in reference.column_names]

    def _alarm(self, report: WindowReport) -> None:
        log.warning("drift alarm (window %d): %s; publishing is on hold", report.index, "; ".join(report.reasons))

    # ---------------------------------------------------------------- publish
    def _maybe_publish(self) -> None:
        cand = self.candidate
        if cand is not None:
            if self.holdout is not None or cand.count >= self.online.gate_rows:
                self._decide(cand)
            return
        every_s, every_rows = self.online.publish_every_s, self.online.publish_every_rows
        due = (every_s is not None and time.monotonic() - self._last_publish >= every_s) or (
            every_rows is not None and self._rows_since_publish >= every_rows
        )
        if due and self._rows_since_publish > 0:
            self._snapshot()

    def _snapshot(self) -> None:
        """Freeze the model as a candidate; the live model's change tracking restarts from here."""
        assert self.trainer is not None and self.features is not None
        model = copy.deepcopy(self.trainer.model).eval()
        dirty = {name: (t.dirty.clone(), list(t.tombstones)) for name, t in named_tables(self.trainer.model).items()}
        mark_clean(self.trainer.model)
        bundle = Bundle(self.models, self.cfg, self.features, model, {"version": new_version()})
        stream = {**self.progress.to_json(), "snapshot_at": time.time()}
        self.candidate = Candidate(bundle, stream, dirty)
        self._last_publish = time.monotonic()
        self._rows_since_publish = 0

    def _decide(self, cand: Candidate) -> None:
        holdout = self.holdout if self.holdout is not None else pa.concat_tables(cand.rows)
        result = judge(cand.bundle, holdout, self.online.gate, self.serving)
        if self.monitor is not None and self.monitor.alarm:
            result.reasons.append(f"publishing is on hold: drift alarm ({'; '.join(self.monitor.alarm_reasons)})")
            result.passed = False
        self.candidate = None
        if not result.passed:
            self._restore_tracking(cand)
            record_rejection(self.models, result.version, result.reasons, {"metrics": result.metrics})
            self.rejected.append(result)
            log.warning("candidate %s rejected: %s", result.version, "; ".join(result.reasons))
            return
        self._write(cand, result)

    def _restore_tracking(self, cand: Candidate) -> None:
        """A rejected candidate's changes are still unpublished: the next delta must carry them."""
        assert self.trainer is not None
        for name, table in named_tables(self.trainer.model).items():
            dirty, tombstones = cand.dirty[name]
            size = min(len(dirty), len(table.dirty))
            table.dirty[:size] |= dirty[:size]
            table.tombstones = tombstones + table.tombstones

    def _write(self, cand: Candidate, result: GateResult) -> None:
        metrics = {"gate": result.metrics, "serving": result.serving}
        extra = {"stream": cand.progress}
        name = str(cand.bundle.manifest["version"])
        if self.serving is None or self.chain_length >= self.online.full_every or not self._serving_is_own():
            target = save_bundle(
                self.models / name,
                self.cfg,
                cand.bundle.features,
                cand.bundle.model,
                metrics,
                version=name,
                extra=extra,
            )
            self.chain_length = 0
        else:  # the snapshot's tables track its changes since the serving version (copied at the snapshot)
            target = save_delta_version(self.models, self.serving.manifest, cand.bundle.model, metrics, **extra)
            self.chain_length += 1
        announce(self.models, target.name)
        pruned = prune(self.models, self.online.gate.keep)
        written = json.loads((target / MANIFEST).read_text())
        self.serving = Bundle(target, self.cfg, cand.bundle.features, cand.bundle.model, written)
        self.published.append(target.name)
        log.info(
            "published %s (auc %.4f on %d gate rows)%s",
            target.name,
            result.metrics.get("auc", float("nan")),
            int(result.metrics.get("rows", 0)),
            f"; pruned {pruned}" if pruned else "",
        )

    def _serving_is_own(self) -> bool:
        """Deltas follow only a version this process wrote (its tables track changes since then)."""
        return self.serving is not None and self.serving.path.name in self.published


def clean_stale(models: Path) -> None:
    """Remove hidden temp directories a killed writer left in the stream (never visible to readers)."""
    for path in models.glob(".*tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
