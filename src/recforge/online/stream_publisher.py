"""Gated publishing of a streaming trainer's model into the model stream.

Every `publish_every_s` seconds (or rows) the model is snapshotted as a candidate; it is judged by the
gate on the next `gate_rows` rows (which it has not trained on) against the version being served,
then written into the model stream: a full bundle the first time after a start (and every
`full_every` versions), else a delta version (changed embedding rows + dense weights). A raised drift
alarm holds publishing: candidates are recorded as rejected until the alarm clears.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from torch import nn

from recforge.bundle import Bundle, save_bundle
from recforge.bundle.bundle import MANIFEST, new_version
from recforge.bundle.delta import save_delta_version
from recforge.bundle.stream import announce, prune, record_rejection, version_dir
from recforge.bundle.verdict import GATE
from recforge.config import PipelineConfig
from recforge.data.readers import read_table
from recforge.embedding.delta import mark_clean, named_tables
from recforge.features import FeatureSet
from recforge.train.gate import GateResult, judge

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A snapshot waiting for its gate window: the model as it was, and the rows seen since."""

    bundle: Bundle
    progress: dict[str, Any]
    dirty: dict[str, tuple[torch.Tensor, list[torch.Tensor]]]  # per dynamic table, to restore on rejection
    rows: list[pa.Table] = field(default_factory=list)
    count: int = 0


class Publisher:
    """Snapshots, gate decisions and stream writes of one streaming trainer."""

    def __init__(self, cfg: PipelineConfig, models: Path) -> None:
        self.cfg, self.online, self.models = cfg, cfg.online, models
        self.holdout = read_table(self.online.holdout) if self.online.holdout else None
        self.serving: Bundle | None = None  # the version followers serve now (what candidates must beat)
        self.chain_length = 0  # deltas since the last full version written by this process
        self.candidate: Candidate | None = None
        self.published: list[str] = []
        self.rejected: list[GateResult] = []
        self._last_publish = time.monotonic()
        self._rows_since_publish = 0

    def saw(self, table: pa.Table) -> None:
        """Rows about to be trained on: a pending candidate's gate window, and the count toward the next one."""
        if self.candidate is not None:
            self.candidate.rows.append(table)
            self.candidate.count += table.num_rows
        self._rows_since_publish += table.num_rows

    def maybe_publish(self, model: nn.Module, features: FeatureSet, progress: dict[str, Any], hold: str | None) -> None:
        """Judge a candidate whose gate window is full, or snapshot `model` when one is due.
        `hold` is why publishing is held (a drift alarm), or None."""
        cand = self.candidate
        if cand is not None:
            if self.holdout is not None or cand.count >= self.online.gate_rows:
                self._decide(cand, model, hold)
            return
        every_s, every_rows = self.online.publish_every_s, self.online.publish_every_rows
        due = (every_s is not None and time.monotonic() - self._last_publish >= every_s) or (
            every_rows is not None and self._rows_since_publish >= every_rows
        )
        if due and self._rows_since_publish > 0:
            self._snapshot(model, features, progress)

    def _snapshot(self, model: nn.Module, features: FeatureSet, progress: dict[str, Any]) -> None:
        """Freeze the model as a candidate; the live model's change tracking restarts from here."""
        frozen = copy.deepcopy(model).eval()
        dirty = {name: (t.dirty.clone(), list(t.tombstones)) for name, t in named_tables(model).items()}
        mark_clean(model)
        bundle = Bundle(self.models, self.cfg, features, frozen, {"version": new_version()})
        self.candidate = Candidate(bundle, {**progress, "snapshot_at": time.time()}, dirty)
        self._last_publish = time.monotonic()
        self._rows_since_publish = 0

    def _decide(self, cand: Candidate, model: nn.Module, hold: str | None) -> None:
        holdout = self.holdout if self.holdout is not None else pa.concat_tables(cand.rows)
        result = judge(cand.bundle, holdout, self.online.gate, self.serving)
        if hold is not None:
            result.reasons.append(hold)
            result.passed = False
        self.candidate = None
        if not result.passed:
            restore_tracking(model, cand)
            record_rejection(self.models, result.version, result.reasons, {"metrics": result.metrics})
            self.rejected.append(result)
            log.warning("candidate %s rejected: %s", result.version, "; ".join(result.reasons))
            return
        self._write(cand, result)

    def _write(self, cand: Candidate, result: GateResult) -> None:
        metrics = {"gate": result.metrics, "serving": result.serving}
        extra = {"stream": cand.progress, GATE: result.verdict("recforge stream train")}
        name = str(cand.bundle.manifest["version"])
        model, features = cand.bundle.model, cand.bundle.features
        if self.serving is None or self.chain_length >= self.online.full_every or not self._serving_is_own():
            target = save_bundle(
                version_dir(self.models, name, where="candidate version"),
                self.cfg,
                features,
                model,
                metrics,
                version=name,
                extra=extra,
            )
            self.chain_length = 0
        else:  # the snapshot's tables track its changes since the serving version (copied at the snapshot)
            target = save_delta_version(self.models, self.serving.manifest, model, metrics, **extra)
            self.chain_length += 1
        announce(self.models, target.name)
        pruned = prune(self.models, self.online.gate.keep)
        written = json.loads((target / MANIFEST).read_text())
        self.serving = Bundle(target, self.cfg, features, model, written)
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


def restore_tracking(model: nn.Module, cand: Candidate) -> None:
    """A rejected candidate's changes are still unpublished: the next delta must carry them."""
    for name, table in named_tables(model).items():
        dirty, tombstones = cand.dirty[name]
        size = min(len(dirty), len(table.dirty))
        table.dirty[:size] |= dirty[:size]
        table.tombstones = tombstones + table.tombstones
