"""The check every source's training samples pass: a 0/1 label needs both classes in the train split.

With one class a ranking model learns a constant and its AUC stays 0.5, so this is an error, not a
warning; it runs on the train file `build_samples` returns, whichever source produced it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from recforge.data.readers import iter_batches
from recforge.errors import DataError


def class_counts(path: str, label: str) -> tuple[int, int] | None:
    """(positive, negative) rows of `label` in the file (nulls are neither); None when it is not numeric."""
    positive = negative = 0
    for batch in iter_batches(path, columns=[label]):
        column = batch.column(0)
        if not (
            pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)
        ):
            return None
        values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
        positive += int((values > 0).sum())
        negative += int((values == 0).sum())
    return positive, negative


def require_both_classes(path: str, labels: Sequence[str]) -> None:
    """Raise a DataError naming the label column and its counts when the train split holds one class only."""
    for label in labels:
        counts = class_counts(path, label)
        if counts is None or (counts[0] and counts[1]):
            continue
        positive, negative = counts
        raise DataError(
            f"{path}: label {label!r} has a single class in the train split ({positive:,} positive, "
            f"{negative:,} negative rows): a ranking model cannot learn from it (its AUC would stay 0.5)"
            f"\n  fix: check that `data.label` (or `data.label_rule.positive`) gives both 0 and 1 rows "
            "and that the split leaves both in train"
        )
