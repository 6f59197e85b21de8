"""FTRL on an event stream: learn, checkpoint with the stream position, publish ordinary bundles into a model stream.

The job runs a pipeline config whose model is `lr` and whose `train.trainer` is `ftrl` (recforge.train.ftrl_lr):
features are fitted on the first `online.fit_rows` rows (hash ids with `hash_buckets`, give numeric
`boundaries`, and nothing is lost to that fit), then every row is predicted and learned once, straight from
its Arrow columns (`FtrlTrainer.learn_table`: hashed ids are hashed inside the FTRL kernel). A version
is an ordinary bundle (lr weights exported from FTRL), so `recforge serve`, `recforge predict` and
`recforge stream predict` read it like any other; the z/n accumulators stay in the work directory's
checkpoint. Rows are acked after the checkpoint that covers them and re-delivered rows at or before the
checkpointed position are skipped: exactly once, as in the deep-model streaming trainer.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from recforge.bundle import save_bundle
from recforge.bundle.bundle import new_version
from recforge.bundle.stream import announce, prune, version_dir
from recforge.bundle.verdict import GATE, gate_verdict
from recforge.config import PipelineConfig
from recforge.data.streams import Position, StreamBatch, StreamSource, open_source
from recforge.errors import ConfigError, DataError
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.online.metrics import ProgressiveMetrics
from recforge.train.families import trainer_family
from recforge.train.ftrl_lr import FtrlTrainer

log = logging.getLogger(__name__)
CHECKPOINT = "ftrl-checkpoint"


@dataclass
class FtrlRunReport:
    samples: int
    skipped: int
    published: list[str]
    held: int  # versions not published because the progressive AUC was under `online.gate.min_auc`
    auc: float


class FtrlStreamJob:
    """`recforge stream ftrl`: one job per consumer group; `run()` until idle or a row budget."""

    def __init__(self, cfg: PipelineConfig, source: str | StreamSource, models: str | Path, work: str | Path) -> None:
        if trainer_family(cfg) != "ftrl":
            raise ConfigError(
                "train.trainer", "`recforge stream ftrl` runs the ftrl trainer", fix="set `train.trainer: ftrl`"
            )
        self.cfg = cfg
        self.batch_size = cfg.online.batch_size or cfg.train.batch_size
        self.models, self.work = Path(models), Path(work)
        self.models.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.source = open_source(source) if isinstance(source, str) else source
        self.position = Position()
        self.skipped = 0
        self.unacked: list[StreamBatch] = []
        self.metrics = ProgressiveMetrics()  # since this job started
        self.window = ProgressiveMetrics()  # since the last published version: what the floor judges
        self.published: list[str] = []
        self.held = 0
        self.features: FeatureSet | None = None
        self.trainer: FtrlTrainer | None = None
        self._resume()

    def _resume(self) -> None:
        checkpoint = self.work / CHECKPOINT
        if not (checkpoint / "position.json").exists():
            return
        self._build(FeatureSet.load(checkpoint / "features"))
        assert self.trainer is not None
        self.trainer.load(checkpoint)
        self.position = Position.from_json(json.loads((checkpoint / "position.json").read_text()))
        log.info("resumed FTRL from %s: %d rows learned", checkpoint, self.trainer.ftrl.n_learned)

    def _build(self, features: FeatureSet) -> None:
        self.features = features
        self.trainer = FtrlTrainer(build_model(features.schema(), self.cfg.model), self.cfg, self.work)

    def _fit(self, until_idle_s: float | None) -> list[StreamBatch]:
        """Read the first `online.fit_rows` rows (or what arrives before a read comes back empty), fit the features.

        Waits for a first row unless the stream stays idle for `until_idle_s`; returns the rows read."""
        batches: list[StreamBatch] = []
        rows, idle_since = 0, time.monotonic()
        while rows < self.cfg.online.fit_rows:
            batch = self.source.read(self.batch_size, self.cfg.online.read_timeout_ms)
            if batch is None:
                idle = until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s
                if rows or idle:
                    break
                continue
            batches.append(batch)
            rows += batch.num_rows
        if batches:
            features = FeatureSet.from_config(self.cfg)
            features.fit([b.table for b in batches])
            self._build(features)
            log.info("fitted features on the first %d rows of the stream", rows)
        return batches

    @property
    def n_learned(self) -> int:
        return self.trainer.ftrl.n_learned if self.trainer is not None else 0

    def run(self, until_idle_s: float | None = None, max_rows: int | None = None) -> FtrlRunReport:
        idle_since = last_publish = time.monotonic()
        since_checkpoint = since_publish = 0
        early = self._fit(until_idle_s) if self.trainer is None else []
        while self.trainer is not None and (max_rows is None or self.n_learned < max_rows):
            batch = early.pop(0) if early else self.source.read(self.batch_size, self.cfg.online.read_timeout_ms)
            if batch is None:
                if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                    break
                continue
            idle_since = time.monotonic()
            learned = self._learn(batch)
            since_checkpoint += learned
            since_publish += learned
            if since_checkpoint >= self.cfg.online.checkpoint_every_rows:
                self._checkpoint()
                since_checkpoint = 0
            every_s, every_rows = self.cfg.online.publish_every_s, self.cfg.online.publish_every_rows
            if since_publish and (
                (every_s is not None and time.monotonic() - last_publish >= every_s)
                or (every_rows is not None and since_publish >= every_rows)
            ):
                self._publish()
                last_publish, since_publish = time.monotonic(), 0
        if since_publish:
            self._publish()
        self._checkpoint()
        return FtrlRunReport(self.n_learned, self.skipped, self.published, self.held, self.metrics.auc())

    def _learn(self, batch: StreamBatch) -> int:
        """Learn the rows of `batch` not learned before; returns how many that was."""
        assert self.trainer is not None and self.features is not None
        self.unacked.append(batch)
        keep = self.position.new_rows(batch)
        self.skipped += batch.num_rows - len(keep)
        if not keep:
            return 0
        table: pa.Table = batch.table if len(keep) == batch.num_rows else batch.table.take(keep)
        if self.cfg.data.label not in table.column_names:
            raise DataError(f"stream rows have no label column {self.cfg.data.label!r}; columns: {table.column_names}")
        labels, scores = self.trainer.learn_table(table, self.features, source="stream")  # hashed inside the kernel
        self.metrics.update(labels, scores)
        self.window.update(labels, scores)
        self.position.advance([batch.positions[i] for i in keep] if batch.positions else [])
        return len(keep)

    def _checkpoint(self) -> None:
        """Features + z/n + position written to a temp directory, swapped in, then the covered rows are acked."""
        if not self.unacked or self.trainer is None or self.features is None:
            return
        target = self.work / CHECKPOINT
        tmp = self.work / f".{CHECKPOINT}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        self.features.save(tmp / "features")
        self.trainer.save(tmp)
        (tmp / "position.json").write_text(json.dumps(self.position.to_json()))
        old = self.work / f".{CHECKPOINT}.old"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        for batch in self.unacked:
            self.source.ack(batch)
        self.unacked = []

    def _publish(self) -> None:
        assert self.trainer is not None and self.features is not None
        auc = self.window.auc()
        gate = self.cfg.online.gate
        if gate.min_auc is not None and not auc >= gate.min_auc:
            self.held += 1
            log.warning(
                "FTRL version held: progressive AUC %.4f since the last version is under %.4f", auc, gate.min_auc
            )
            self.window = ProgressiveMetrics()
            return
        name = new_version()
        metrics = {"progressive_auc": auc, "progressive_logloss": self.window.logloss(), "rows": self.window.n}
        extra = {
            "stream": {"position": self.position.to_json(), "samples": self.n_learned, "trainer": "ftrl"},
            # the job's gate is its progressive-AUC floor (`online.gate.min_auc`); a version under it is held
            GATE: gate_verdict(True, [], {**metrics, "min_auc": gate.min_auc}, judge="recforge stream ftrl"),
        }
        target = version_dir(self.models, name, where="FTRL version")
        save_bundle(target, self.cfg, self.features, self.trainer.export(), metrics, version=name, extra=extra)
        announce(self.models, name)
        prune(self.models, gate.keep)
        self.published.append(name)
        self.window = ProgressiveMetrics()
        log.info("published FTRL version %s (progressive AUC %.4f)", name, auc)
