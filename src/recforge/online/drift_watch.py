"""The streaming trainer's drift watch: learn a reference from the first rows, then judge every window.

The reference (rows and the model's scores for them before it learned from them) is saved in the work
directory, so a restarted trainer judges the same way; the alarm is written beside the model stream
(`bundle/drift_status.py`) for the service and the CLI, and holds publishing until it clears.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from recforge.bundle.drift_status import (
    append_drift_window,
    read_drift_status,
    take_clear_request,
    write_drift_status,
)
from recforge.config import PipelineConfig
from recforge.features import FeatureSet
from recforge.online.drift import DriftConfig, DriftMonitor, WindowReport
from recforge.train.metrics import auc

log = logging.getLogger(__name__)
REFERENCE = "drift_reference.parquet"  # in the work directory: the rows drift is judged against
REFERENCE_META = "drift_reference.json"


class DriftWatch:
    """Drift monitoring of one streaming trainer (a no-op unless `online.drift.enabled`)."""

    def __init__(self, cfg: PipelineConfig, models: Path, work: Path) -> None:
        self.settings = cfg.online.drift
        self.label = cfg.data.label
        self.models, self.work = models, work
        self.monitor: DriftMonitor | None = None
        self._reference: list[pa.Table] = []
        self._reference_scores: list[np.ndarray] = []

    @property
    def alarms(self) -> int:
        return self.monitor.alarms if self.monitor else 0

    def hold_reason(self) -> str | None:
        """Why publishing is on hold now, or None when no alarm is raised."""
        if self.monitor is None or not self.monitor.alarm:
            return None
        return f"publishing is on hold: drift alarm ({'; '.join(self.monitor.alarm_reasons)})"

    def observe(self, table: pa.Table, logits: torch.Tensor | None, features: FeatureSet) -> None:
        """Judge rows by the scores the model gave them before learning from them (or collect the reference)."""
        if not self.settings.enabled or logits is None:
            return
        if take_clear_request(self.models) and self.monitor is not None:
            # the operator accepts the stream as it is now: lower the alarm, re-learn the reference from here
            self.monitor = None
            (self.work / REFERENCE_META).unlink(missing_ok=True)
            write_drift_status(self.models, False, [], 0)
            log.info("drift alarm cleared by request: publishing resumes, the reference is rebuilt from new rows")
        scores = torch.sigmoid(logits.float()).numpy().astype(np.float64)
        if self.monitor is None:
            self._reference.append(table)
            self._reference_scores.append(scores)
            if sum(t.num_rows for t in self._reference) >= (self.settings.reference_rows or self.settings.window):
                self._start_monitor(features)
            return
        for report in self.monitor.observe(table, scores):
            append_drift_window(self.models, report.to_json())
            write_drift_status(self.models, self.monitor.alarm, self.monitor.alarm_reasons, report.index)

    def restore(self) -> None:
        """After a restart: the saved reference, and the alarm if one was raised (it stays until cleared)."""
        if not self.settings.enabled or not (self.work / REFERENCE_META).exists():
            return
        meta = json.loads((self.work / REFERENCE_META).read_text())
        self._monitor_from(pq.read_table(self.work / REFERENCE), meta["columns"], meta["auc"])
        status = read_drift_status(self.models)
        if self.monitor is not None and status and status.get("alarm"):
            self.monitor.alarm, self.monitor.alarm_reasons = True, list(status.get("reasons", []))

    def _start_monitor(self, features: FeatureSet) -> None:
        """Build the monitor from the rows seen so far; the reference is kept so a restart judges the same way."""
        reference = pa.concat_tables(self._reference)
        scores = np.concatenate(self._reference_scores)
        labels = np.asarray(reference[self.label].to_numpy(zero_copy_only=False), dtype=np.float64)
        reference_auc = auc(labels, scores) if 0 < labels.sum() < len(labels) else None
        columns = self.settings.columns or drift_columns(features, reference)
        reference = reference.select([*columns, self.label])
        pq.write_table(reference, self.work / REFERENCE)
        (self.work / REFERENCE_META).write_text(json.dumps({"auc": reference_auc, "columns": columns}))
        self._reference, self._reference_scores = [], []
        self._monitor_from(reference, columns, reference_auc)
        write_drift_status(self.models, False, [], 0)

    def _monitor_from(self, reference: pa.Table, columns: list[str], reference_auc: float | None) -> None:
        settings = self.settings
        config = DriftConfig(
            window=settings.window,
            psi_threshold=settings.psi_threshold,
            label_rate_change=settings.label_rate_change,
            auc_drop=settings.auc_drop,
            recover_windows=settings.recover_windows,
        )
        self.monitor = DriftMonitor(reference, columns, self.label, config, reference_auc, on_alarm=_log_alarm)
        log.info("drift monitor watching %s (reference: %d rows, AUC %s)", columns, reference.num_rows, reference_auc)


def drift_columns(features: FeatureSet, reference: pa.Table) -> list[str]:
    """Feature inputs except the user and item keys (their mix changes all the time without harm)."""
    keys = {features.entity_key("user"), features.entity_key("item")}
    return [c for c in features.input_columns() if c not in keys and c in reference.column_names]


def _log_alarm(report: WindowReport) -> None:
    log.warning("drift alarm (window %d): %s; publishing is on hold", report.index, "; ".join(report.reasons))
