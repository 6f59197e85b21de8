"""Drift monitor on an event stream: label rate, per-feature PSI, rolling AUC of the serving model.

Rows arrive in any batch size; they are judged per window of `window` rows against a reference
(the training window). Past a threshold the monitor raises an alarm and `publishing_allowed` turns
False; it stays raised until `clear()` is called or `recover_windows` consecutive windows are clean.

PSI (population stability index) per feature: numeric columns are binned by the reference's
quantiles, categorical ones by the reference's most frequent values plus one "other" bin;
PSI = sum((a - e) * ln(a / e)) over bins, with a small floor on empty bins. Rule of thumb: < 0.1
stable, 0.1-0.25 moderate, > 0.25 a real shift (default threshold 0.2).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from recforge.errors import DataError
from recforge.train.metrics import auc

log = logging.getLogger(__name__)
FLOOR = 1e-4


@dataclass(frozen=True)
class DriftConfig:
    window: int = 10_000
    psi_threshold: float = 0.2
    label_rate_change: float = 0.5  # relative: 0.5 = the positive rate moved by half of its reference value
    auc_drop: float = 0.05
    bins: int = 10
    top_values: int = 20
    recover_windows: int = 2


@dataclass
class WindowReport:
    index: int
    rows: int
    psi: dict[str, float]
    label_rate: float | None
    auc: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)

    def to_json(self) -> dict[str, object]:
        """The window as one line of the stream's drift history (`bundle/drift_status.py`)."""
        return {
            "window": self.index,
            "rows": self.rows,
            "psi": self.psi,
            "label_rate": self.label_rate,
            "auc": self.auc,
            "reasons": self.reasons,
        }


class _Binner:
    """Maps a column to reference bins: quantile edges (numeric) or frequent values (categorical)."""

    def __init__(self, column: pa.ChunkedArray | pa.Array, bins: int, top: int) -> None:
        self.numeric = pat.is_integer(column.type) or pat.is_floating(column.type)
        if self.numeric:
            values = np.asarray(pc.drop_null(column).to_numpy(zero_copy_only=False), dtype=np.float64)
            values = values[np.isfinite(values)]
            self.edges = (
                np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if len(values) else np.empty(0)
            )
            self.size = len(self.edges) + 2  # + one bin for null / non-finite
        else:
            counts = pc.value_counts(pc.drop_null(column)).to_pylist()
            counts.sort(key=lambda c: -c["counts"])
            self.values = pa.array([c["values"] for c in counts[:top]], type=column.type)
            self.size = len(self.values) + 1  # + "other" (and null)
        self.expected = self.shares(column)

    def shares(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        if self.numeric:
            values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
            finite = np.isfinite(values)
            codes = np.where(
                finite, np.searchsorted(self.edges, np.where(finite, values, 0), side="right"), self.size - 1
            )
        else:
            index = pc.index_in(column, value_set=self.values)
            codes = np.asarray(index.fill_null(self.size - 1).to_numpy(zero_copy_only=False), dtype=np.int64)
        counts = np.bincount(codes, minlength=self.size).astype(np.float64)
        return counts / max(counts.sum(), 1.0)

    def labels(self) -> list[str]:
        """One name per bin, in `shares` order: value ranges (numeric) or values, then the catch-all bin."""
        if self.numeric:
            cuts = [f"{e:.4g}" for e in self.edges]
            ranges = [f"< {cuts[0]}"] if cuts else []
            ranges += [f"{a} - {b}" for a, b in itertools.pairwise(cuts)] + ([f">= {cuts[-1]}"] if cuts else ["all"])
            return [*ranges, "missing"]
        return [*map(str, self.values.to_pylist()), "other / missing"]


@dataclass(frozen=True)
class Shift:
    """A column's reference and recent shares over the reference's bins, and their PSI."""

    labels: list[str]
    expected: np.ndarray
    actual: np.ndarray
    psi: float


def distribution_shift(
    reference: pa.ChunkedArray | pa.Array, recent: pa.ChunkedArray | pa.Array, bins: int = 10, top: int = 20
) -> Shift:
    """Bin both columns as the drift monitor does (so the Studio shows the very PSI an alarm is raised on)."""
    binner = _Binner(reference, bins, top)
    actual = binner.shares(recent)
    return Shift(binner.labels(), binner.expected, actual, psi(binner.expected, actual))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.maximum(expected, FLOOR), np.maximum(actual, FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftMonitor:
    """Judges each window of streamed rows against the reference; holds the alarm state."""

    def __init__(
        self,
        reference: pa.Table,
        columns: list[str],
        label: str | None = None,
        config: DriftConfig | None = None,
        reference_auc: float | None = None,
        on_alarm: Callable[[WindowReport], None] | None = None,
    ) -> None:
        missing = [c for c in [*columns, *([label] if label else [])] if c not in reference.column_names]
        if missing:
            raise DataError(f"drift monitor: the reference has no column(s) {missing}")
        if reference.num_rows == 0:
            raise DataError("drift monitor: the reference window is empty")
        self.config = config or DriftConfig()
        self.columns = columns
        self.label = label
        self.binners = {c: _Binner(reference[c], self.config.bins, self.config.top_values) for c in columns}
        self.reference_rate = float(np.mean(reference[label].to_numpy(zero_copy_only=False))) if label else None
        self.reference_auc = reference_auc
        self.on_alarm = on_alarm
        self.alarm = False
        self.alarm_reasons: list[str] = []
        self.alarms = 0
        self._clean_streak = 0
        self._pending: list[pa.Table] = []
        self._scores: list[np.ndarray] = []
        self._pending_rows = 0
        self.reports: list[WindowReport] = []

    @property
    def publishing_allowed(self) -> bool:
        return not self.alarm

    def clear(self) -> None:
        """Lower the alarm by hand (after a look at what moved)."""
        self.alarm, self.alarm_reasons, self._clean_streak = False, [], 0

    def observe(self, rows: pa.Table, scores: np.ndarray | None = None) -> list[WindowReport]:
        """Buffer rows (and the serving model's scores for them); judge every completed window."""
        if scores is not None and len(scores) != rows.num_rows:
            raise DataError(f"drift monitor: {len(scores)} scores for {rows.num_rows} rows")
        self._pending.append(rows.select([*self.columns, *([self.label] if self.label else [])]))
        if scores is not None:
            self._scores.append(np.asarray(scores, dtype=np.float64))
        self._pending_rows += rows.num_rows
        done = []
        while self._pending_rows >= self.config.window:
            table = pa.concat_tables(self._pending).combine_chunks()
            window, rest = table.slice(0, self.config.window), table.slice(self.config.window)
            all_scores = np.concatenate(self._scores) if self._scores else None
            window_scores = all_scores[: self.config.window] if all_scores is not None else None
            self._pending, self._pending_rows = [rest], rest.num_rows
            self._scores = [all_scores[self.config.window :]] if all_scores is not None else []
            done.append(self._judge(window, window_scores))
        return done

    def _judge(self, window: pa.Table, scores: np.ndarray | None) -> WindowReport:
        cfg = self.config
        shifts = {c: psi(b.expected, b.shares(window[c])) for c, b in self.binners.items()}
        reasons = [f"{c}: PSI {v:.3f} > {cfg.psi_threshold}" for c, v in shifts.items() if v > cfg.psi_threshold]
        rate = window_auc = None
        if self.label:
            labels = np.asarray(window[self.label].to_numpy(zero_copy_only=False), dtype=np.float64)
            rate = float(labels.mean())
            base = self.reference_rate or 0.0
            if base > 0 and abs(rate - base) > cfg.label_rate_change * base:
                reasons.append(f"label rate {rate:.4f} vs reference {base:.4f}")
            if scores is not None and 0 < labels.sum() < len(labels):
                window_auc = auc(labels, scores)
                if self.reference_auc is not None and self.reference_auc - window_auc > cfg.auc_drop:
                    reasons.append(f"serving AUC {window_auc:.4f} vs reference {self.reference_auc:.4f}")
        report = WindowReport(len(self.reports), window.num_rows, shifts, rate, window_auc, reasons)
        self.reports.append(report)
        self._update_alarm(report)
        return report

    def _update_alarm(self, report: WindowReport) -> None:
        if report.drifted:
            self._clean_streak = 0
            if not self.alarm:
                self.alarm, self.alarm_reasons = True, report.reasons
                self.alarms += 1
                log.warning("drift alarm at window %d, publishing stops: %s", report.index, "; ".join(report.reasons))
                if self.on_alarm is not None:
                    self.on_alarm(report)
            return
        self._clean_streak += 1
        if self.alarm and self._clean_streak >= self.config.recover_windows:
            log.info("drift cleared after %d clean windows; publishing resumes", self._clean_streak)
            self.alarm, self.alarm_reasons = False, []
