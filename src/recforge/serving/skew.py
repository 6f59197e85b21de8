"""`recforge skew check`: replay a service's request log through the batch path and report train/serve skew.

Each logged request's raw rows (recforge.serving.request_log) are scored the way `recforge predict`
scores a file: `FeatureSet.transform` on the rows, then the model. The model inputs the service
computed online are compared with the batch path's, feature by feature and row by row, bit for bit
(recforge.features.compare); the scores within a tolerance. Records are replayed by the bundle
version that served them: BUNDLE is that bundle, or a model stream holding every logged version.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from recforge.batch import Batch
from recforge.bundle import Bundle, load_bundle, rank_score
from recforge.bundle.predict import batch_task_scores
from recforge.bundle.stream import current, is_bundle, versions
from recforge.errors import DataError
from recforge.features.compare import field_rows, mismatched_rows
from recforge.features.layout import feature_columns
from recforge.serving.request_log import log_files, read_records, rows_table

log = logging.getLogger(__name__)

CHUNK_ROWS = 65_536
REQUIRED = ("version", "schema", "request", "items", "features", "scores")


@dataclass
class FeatureSkew:
    """One feature's comparison: rows compared, rows that differ, and the first difference found."""

    rows: int = 0
    mismatches: int = 0
    example: dict[str, Any] | None = None


@dataclass
class SkewReport:
    """What the replay found; `ok` is the command's verdict."""

    tolerance: float
    records: int = 0
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    features: dict[str, FeatureSkew] = field(default_factory=dict)
    max_score_diff: float = 0.0
    worst_score: dict[str, Any] | None = None

    @property
    def mismatches(self) -> int:
        return sum(f.mismatches for f in self.features.values())

    @property
    def skewed(self) -> list[str]:
        """Features with at least one mismatched row."""
        return [name for name, f in self.features.items() if f.mismatches]

    @property
    def ok(self) -> bool:
        return self.records > 0 and self.mismatches == 0 and self.max_score_diff <= self.tolerance

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "rows": self.rows,
            "skipped": dict(self.skipped),
            "mismatches": self.mismatches,
            "skewed_features": self.skewed,
            "features": {name: vars(f) for name, f in self.features.items()},
            "max_score_diff": self.max_score_diff,
            "tolerance": self.tolerance,
            "worst_score": self.worst_score,
        }


class Versions:
    """Bundle per logged version: one bundle, or each version of a model stream (loaded once, on first use)."""

    def __init__(self, path: str | Path) -> None:
        base = Path(path)
        first = current(base)  # a BundleError that says what is missing when there is nothing to replay with
        found = [first.path] if is_bundle(base) else versions(base)
        self.where = base
        self.paths = {current(p).version: p for p in found}
        self._loaded: dict[str, Bundle] = {}

    def get(self, version: str) -> Bundle | None:
        if version not in self.paths:
            return None
        if version not in self._loaded:
            self._loaded[version] = load_bundle(self.paths[version])
        return self._loaded[version]


@dataclass
class Chunk:
    """Consecutive records of one version and one raw-row schema, replayed as one table."""

    bundle: Bundle
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0


def check_skew(bundle_path: str | Path, request_log: str | Path, tolerance: float = 1e-6) -> SkewReport:
    """Replay every record of `request_log` through the batch path of the version that served it."""
    files = log_files(request_log)
    if not files or not all(f.is_file() for f in files):
        raise DataError(
            f"{request_log}: no request log here. fix: point at the `.jsonl` file or directory that "
            "`logging.requests.path` in serving.yaml names"
        )
    report = SkewReport(tolerance)
    for chunk in _chunks(Versions(bundle_path), read_records(request_log), report):
        _replay(chunk, report)
    return report


def _chunks(
    bundles: Versions, records: Iterable[tuple[str, dict[str, Any] | None]], report: SkewReport
) -> Iterator[Chunk]:
    """Group records into chunks; unreadable records and versions the bundle path lacks are counted as skipped."""
    chunk: Chunk | None = None
    key: tuple[str, str] | None = None
    for where, record in records:
        if record is None or any(k not in record for k in REQUIRED):
            report.skipped["unreadable"] += 1
            continue
        try:
            table = rows_table(record)
        except (pa.ArrowException, TypeError, ValueError, KeyError, StopIteration) as exc:
            report.skipped["raw rows unreadable"] += 1
            log.warning("%s: the logged raw rows cannot be rebuilt (%s); record skipped", where, exc)
            continue
        bundle = bundles.get(str(record["version"]))
        if bundle is None:
            report.skipped[f"version {record['version']!r} is not in {bundles.where}"] += 1
            continue
        if chunk is None or key != (record["version"], record["schema"]) or chunk.rows >= CHUNK_ROWS:
            if chunk is not None:
                yield chunk
            chunk, key = Chunk(bundle), (record["version"], record["schema"])
        chunk.records.append((where, record))
        chunk.tables.append(table)
        chunk.rows += table.num_rows
    if chunk is not None:
        yield chunk


def _replay(chunk: Chunk, report: SkewReport) -> None:
    """Transform and score the chunk's rows offline; compare with what the service logged."""
    table = pa.concat_tables(chunk.tables)
    bundle = chunk.bundle
    batch = bundle.features.transform(table, labels=False, source="request log")
    offline = field_rows(batch, bundle.features.schema())
    logged = dict.fromkeys(name for _, r in chunk.records for name in r["features"])
    online = {name: [v for _, r in chunk.records for v in r["features"].get(name, [])] for name in logged}
    pairs = zip(chunk.records, chunk.tables, strict=True)
    origin = [(where, row) for (where, _), rows_of in pairs for row in range(rows_of.num_rows)]
    mismatches = mismatched_rows(online, offline)
    for name in dict.fromkeys([*offline, *online]):
        skew = report.features.setdefault(name, FeatureSkew())
        skew.rows += table.num_rows
        rows = [r for r in mismatches.get(name, []) if r < table.num_rows]
        skew.mismatches += len(rows)
        if rows and skew.example is None:
            skew.example = _example(bundle, table, name, rows[0], origin, online, offline)
    _compare_scores(bundle, batch, chunk, origin, report)
    report.records += len(chunk.records)
    report.rows += table.num_rows


def _example(
    bundle: Bundle,
    table: pa.Table,
    name: str,
    row: int,
    origin: list[tuple[str, int]],
    online: dict[str, list[Any]],
    offline: dict[str, list[Any]],
) -> dict[str, Any]:
    """Where the first differing row was logged, its raw inputs, and both paths' values."""
    columns = feature_columns(bundle.features.features, name) if name in bundle.features.features else []
    raw = table.slice(row, 1).select([c for c in columns if c in table.column_names]).to_pylist()
    where, n = origin[row] if row < len(origin) else ("", row)
    return {
        "record": where,
        "row": n,
        "inputs": raw[0] if raw else {},
        "online": online[name][row] if row < len(online.get(name, [])) else None,
        "offline": offline[name][row] if row < len(offline.get(name, [])) else None,
    }


def _compare_scores(
    bundle: Bundle, batch: Batch, chunk: Chunk, origin: list[tuple[str, int]], report: SkewReport
) -> None:
    """Largest |logged - batch path| over the ranking score and every task's score."""
    scores = batch_task_scores(bundle, batch)
    expected = {"score": rank_score(scores, bundle.tasks, bundle.rank_by)}
    expected |= {task: scores[:, t] for t, task in enumerate(bundle.tasks)}
    for name, values in expected.items():
        key = ("scores",) if name == "score" else ("tasks", name)
        logged = np.array([v for _, r in chunk.records for v in _path(r, key)], dtype=np.float64)
        if len(logged) != len(values):
            report.skipped[f"records without {'.'.join(key)}"] += len(chunk.records)
            continue
        both_nan = np.isnan(logged) & np.isnan(values)
        diff = np.nan_to_num(np.where(both_nan, 0.0, np.abs(logged - values)), nan=np.inf)
        worst = int(np.argmax(diff)) if len(diff) else 0
        if len(diff) and diff[worst] > report.max_score_diff:
            report.max_score_diff = float(diff[worst])
            where, row = origin[worst]
            report.worst_score = {
                "record": where,
                "row": row,
                "output": name,
                "online": float(logged[worst]),
                "offline": float(values[worst]),
            }


def _path(record: dict[str, Any], key: tuple[str, ...]) -> list[float]:
    value: Any = record
    for part in key:
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return value if isinstance(value, list) else []


__all__ = ["FeatureSkew", "SkewReport", "check_skew"]
