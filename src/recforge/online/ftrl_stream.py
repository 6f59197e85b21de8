"""FTRL on an event stream: learn, checkpoint with the stream position, publish versions into a model stream.

A version is a directory `manifest.json` (format "recforge.ftrl/1", version, stream position,
progressive metrics) + `ftrl.json` + `state.safetensors`, so the model-stream tools (publish order,
LATEST, prune, rollback, `recforge stream predict`) treat it like a bundle. Rows are acked after the
checkpoint that covers them and re-delivered rows at or before the checkpointed position are
skipped: exactly once, as in the deep-model streaming trainer.
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

import numpy as np

from recforge.bundle.bundle import MANIFEST, new_version
from recforge.bundle.stream import announce, prune, version_dir
from recforge.bundle.verdict import GATE, gate_verdict
from recforge.config.online import FtrlJobConfig
from recforge.data.streams import Position, StreamBatch, StreamSource, open_source
from recforge.online.ftrl import FTRLProximal
from recforge.online.hashing import FeatureHasher
from recforge.online.metrics import ProgressiveMetrics

log = logging.getLogger(__name__)
FTRL_FORMAT = "recforge.ftrl/1"
CHECKPOINT = "ftrl-checkpoint"


@dataclass
class FtrlRunReport:
    samples: int
    skipped: int
    published: list[str]
    held: int  # versions not published because the progressive AUC was under `min_auc`
    auc: float


class FtrlStreamJob:
    """`recforge stream ftrl`: one job per consumer group; `run()` until idle or a row budget."""

    def __init__(self, cfg: FtrlJobConfig, source: str | StreamSource, models: str | Path, work: str | Path) -> None:
        self.cfg = cfg
        self.models, self.work = Path(models), Path(work)
        self.models.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.source = open_source(source) if isinstance(source, str) else source
        self.position = Position()
        self.skipped = 0
        self.unacked: list[StreamBatch] = []
        self.window = ProgressiveMetrics()  # since the last published version: what the floor judges
        self.published: list[str] = []
        self.held = 0
        self.model = self._start()

    def _start(self) -> FTRLProximal:
        checkpoint = self.work / CHECKPOINT
        if (checkpoint / "position.json").exists():
            model = FTRLProximal.load(checkpoint)
            self.position = Position.from_json(json.loads((checkpoint / "position.json").read_text()))
            log.info("resumed FTRL from %s: %d rows learned", checkpoint, model.n_learned)
            return model
        h = self.cfg.hasher
        hasher = FeatureHasher(categorical=h.categorical, bucketed=h.bucketed, raw=h.raw, bits=h.bits)
        c = self.cfg
        return FTRLProximal(hasher, alpha=c.alpha, beta=c.beta, l1=c.l1, l2=c.l2, mode=c.mode)

    def run(self, until_idle_s: float | None = None, max_rows: int | None = None) -> FtrlRunReport:
        idle_since = last_publish = time.monotonic()
        since_checkpoint = since_publish = 0
        while max_rows is None or self.model.n_learned < max_rows:
            batch = self.source.read(self.cfg.batch_size, self.cfg.read_timeout_ms)
            if batch is None:
                if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                    break
                continue
            idle_since = time.monotonic()
            self.unacked.append(batch)
            keep = self.position.new_rows(batch)
            self.skipped += batch.num_rows - len(keep)
            if keep:
                table = batch.table if len(keep) == batch.num_rows else batch.table.take(keep)
                labels = np.asarray(table[self.cfg.label].to_numpy(zero_copy_only=False), dtype=np.float64)
                self.window.update(labels, self.model.learn_many(table, label=labels))
                self.position.advance([batch.positions[i] for i in keep] if batch.positions else [])
                since_checkpoint += len(keep)
                since_publish += len(keep)
            if since_checkpoint >= self.cfg.checkpoint_every_rows:
                self._checkpoint()
                since_checkpoint = 0
            every_s, every_rows = self.cfg.publish_every_s, self.cfg.publish_every_rows
            if since_publish and (
                (every_s is not None and time.monotonic() - last_publish >= every_s)
                or (every_rows is not None and since_publish >= every_rows)
            ):
                self._publish()
                last_publish, since_publish = time.monotonic(), 0
        if since_publish:
            self._publish()
        self._checkpoint()
        return FtrlRunReport(self.model.n_learned, self.skipped, self.published, self.held, self.model.metrics.auc())

    def _checkpoint(self) -> None:
        """State + position written to a temp directory, swapped in, then the covered rows are acked."""
        if not self.unacked:
            return
        target = self.work / CHECKPOINT
        tmp = self.work / f".{CHECKPOINT}.tmp-{uuid.uuid4().hex[:8]}"
        self.model.save(tmp)
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
        auc = self.window.auc()
        floor = self.cfg.min_auc
        if floor is not None and not auc >= floor:
            self.held += 1
            log.warning("FTRL version held: progressive AUC %.4f since the last version is under %.4f", auc, floor)
            self.window = ProgressiveMetrics()
            return
        name = new_version()
        target = version_dir(self.models, name, where="FTRL version")
        tmp = self.models / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
        self.model.save(tmp)
        metrics = {"progressive_auc": auc, "progressive_logloss": self.window.logloss(), "rows": self.window.n}
        manifest = {
            "format": FTRL_FORMAT,
            "version": name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "stream": {"position": self.position.to_json(), "samples": self.model.n_learned},
            "metrics": metrics,
            # the job's gate is its progressive-AUC floor (`min_auc`); a version under it is held, never written
            GATE: gate_verdict(True, [], {**metrics, "min_auc": floor}, judge="recforge stream ftrl"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, target)
        announce(self.models, name)
        prune(self.models, self.cfg.keep)
        self.published.append(name)
        self.window = ProgressiveMetrics()
        log.info("published FTRL version %s (progressive AUC %.4f)", name, auc)
