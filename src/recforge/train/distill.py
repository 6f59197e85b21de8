"""Knowledge distillation: a student learns from a teacher bundle's scores as well as from the labels.

The teacher scores every training row once, before training (its logits are written beside the
training samples), so the teacher's features and model never run inside the student's loop and
may differ from the student's entirely.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from recforge.bundle import load_bundle
from recforge.data.readers import iter_batches
from recforge.errors import ConfigError, DataError
from recforge.features import TransformReport

log = logging.getLogger(__name__)
TEACHER_COLUMN = "_teacher_logit"


def attach_teacher_logits(teacher: str | Path, source: str, target: Path, read_rows: int = 65_536) -> Path:
    """Copy `source` to Parquet `target` with one more column: the teacher bundle's logit per row."""
    path = Path(teacher)
    if not (path / "manifest.json").exists():
        raise ConfigError(
            "train.distill.teacher", f"{path} is not a bundle (no manifest.json)", fix="give a bundle directory"
        )
    bundle = load_bundle(path)
    bundle.model.eval()
    report = TransformReport()
    target.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in iter_batches(source, batch_rows=read_rows):
            missing = [c for c in bundle.features.input_columns() if c not in chunk.schema.names]
            if missing:
                raise DataError(f"{source}: the teacher {path} needs columns {missing} the training samples lack")
            batch = bundle.features.transform(chunk, labels=False, report=report, source=source)
            with torch.inference_mode():
                logits = bundle.model(batch).float().numpy()
            table = pa.Table.from_batches([chunk]).append_column(TEACHER_COLUMN, pa.array(logits, pa.float32()))
            if writer is None:
                writer = pq.ParquetWriter(str(target), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise DataError(f"{source}: no training rows for the teacher to score")
    if report.counts:
        log.warning("teacher %s mapped training values to defaults: %s", path, report.summary())
    return target


def distill_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor,
    alpha: float,
    temperature: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1 - alpha) * BCE(labels) + alpha * T^2 * BCE(sigmoid(teacher / T)) on logits / T.

    The soft term is the binary form of Hinton's KL at temperature T (BCE against soft targets
    differs from KL only by the teacher's entropy, a constant); T^2 keeps its gradient scale.
    """
    hard = nn.functional.binary_cross_entropy_with_logits(logits, labels, weight=weight)
    soft_targets = torch.sigmoid(teacher_logits / temperature)
    soft = nn.functional.binary_cross_entropy_with_logits(logits / temperature, soft_targets, weight=weight)
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft


def teacher_tensor(values: np.ndarray) -> torch.Tensor:
    """The teacher column of a batch's extras as float32 logits."""
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
