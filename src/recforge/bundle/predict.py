"""Batch prediction: stream a Parquet/CSV file through a bundle and write scores with kept columns.

A multi-task bundle writes one column per task (`score_ctr`, `score_ctcvr`) beside `score`, the ranking
score its `rank_by` weighs from them (default: the first task's).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from recforge.batch import Batch
from recforge.bundle.bundle import Bundle, load_bundle
from recforge.data.readers import iter_batches
from recforge.errors import DataError
from recforge.features import TransformReport
from recforge.models.outputs import predictions

log = logging.getLogger(__name__)


def task_scores(bundle: Bundle, table: pa.Table | pa.RecordBatch, report: TransformReport | None = None) -> np.ndarray:
    """Every task's score for every row, float64 [B, T] (one column for a single-task bundle)."""
    return batch_task_scores(bundle, bundle.features.transform(table, labels=False, report=report))


def batch_task_scores(bundle: Bundle, batch: Batch) -> np.ndarray:
    """Every task's score for every row of a transformed Batch, float64 [B, T]."""
    with torch.inference_mode():
        outputs = bundle.model(batch).float()
    return predictions(outputs, bundle.losses).numpy().astype(np.float64)


def rank_score(scores: np.ndarray, tasks: tuple[str, ...], weights: dict[str, float]) -> np.ndarray:
    """The ranking score [B] from task scores [B, T]: the weighted sum of `weights` (one column if untasked)."""
    if not tasks:
        return scores[:, 0]
    return sum((w * scores[:, tasks.index(name)] for name, w in weights.items()), np.zeros(len(scores)))


def score_table(bundle: Bundle, table: pa.Table | pa.RecordBatch, report: TransformReport | None = None) -> np.ndarray:
    """Click probabilities (a multi-task bundle: ranking scores) for every row of `table` (no labels needed)."""
    return rank_score(task_scores(bundle, table, report), bundle.tasks, bundle.rank_by)


def predict_file(
    bundle_dir: str | Path,
    input_path: str,
    output_path: str | Path,
    keep: list[str] | None = None,
    batch_rows: int = 65_536,
    score_column: str = "score",
) -> dict[str, int]:
    """Score every row of `input_path` into Parquet `output_path`; returns row and default-value counts.

    `bundle_dir` may be a model stream: the version it serves now scores the file.
    """
    from recforge.bundle.stream import current

    bundle = load_bundle(current(bundle_dir).path)
    keep = keep or []
    columns = list(dict.fromkeys(bundle.features.input_columns() + keep))
    report = TransformReport()
    ranking = (bundle.tasks, bundle.rank_by)
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in iter_batches(input_path, columns=columns, batch_rows=batch_rows):
            table = pa.Table.from_batches([chunk])
            scores = task_scores(bundle, table, report)
            result = table.select(keep).append_column(score_column, pa.array(rank_score(scores, *ranking)))
            for t, task in enumerate(bundle.tasks):
                result = result.append_column(f"{score_column}_{task}", pa.array(scores[:, t]))
            if writer is None:
                writer = pq.ParquetWriter(str(out), result.schema)
            writer.write_table(result)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise DataError(f"{input_path}: no rows to score")
    counts = {"rows": report.rows, **report.summary()}
    if report.counts:  # the caller reports the returned counts; a warning here would say it twice
        log.info("%s: values mapped to defaults while scoring: %s", input_path, report.summary())
    return counts
