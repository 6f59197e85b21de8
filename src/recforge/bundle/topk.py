"""Top-k items for a user by scoring every known item with the ranking model (for demos and checks)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from recforge.bundle.bundle import Bundle
from recforge.bundle.predict import score_table
from recforge.errors import DataError


def side_columns(bundle: Bundle, side: str) -> list[str]:
    return list(dict.fromkeys(c for f in bundle.features.features.values() if f.side == side for c in f.columns()))


def top_items_for_user(bundle: Bundle, user_row: pa.Table, items: pa.Table, k: int = 10) -> pa.Table:
    """Score `user_row` (one row of user/context columns) against every row of `items`; best k first."""
    if user_row.num_rows != 1:
        raise DataError(f"top_items_for_user needs exactly one user row, got {user_row.num_rows}")
    n = items.num_rows
    candidates = items
    for name in user_row.column_names:
        if name not in candidates.column_names:
            candidates = candidates.append_column(name, pa.repeat(user_row[name][0], n).cast(user_row[name].type))
    scores = score_table(bundle, candidates)
    order = np.argsort(-scores, kind="stable")[:k]
    return items.take(pa.array(order)).append_column("score", pa.array(scores[order]))
