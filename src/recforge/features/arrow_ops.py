"""Vectorized Arrow/NumPy helpers the feature kinds share: list flattening, padding (hashing: recforge.hashing)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.errors import DataError


def column(table: pa.Table, name: str, feature: str) -> pa.Array:
    """One column as a contiguous array, or a DataError naming what exists."""
    if name not in table.column_names:
        raise DataError(
            f"feature {feature!r} reads column {name!r}, which the input does not have; "
            f"columns: {', '.join(table.column_names)}"
        )
    chunked = table.column(name)
    col = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()  # combine copies even one chunk
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col


def as_list(values: pa.Array, sep: str | None, feature: str) -> pa.Array:
    """A list array from a list column or a `sep`-joined string column (null rows become empty)."""
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        return values
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        if sep is None:
            raise DataError(
                f"feature {feature!r}: the column holds strings but no `sep:` is configured",
            )
        parts = pc.split_pattern(pc.utf8_trim_whitespace(values), sep)
        return parts
    raise DataError(f"feature {feature!r}: expected a list or string column, got {values.type}")


def flatten(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(values, parent row of each value); empty strings from splitting are dropped."""
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(lists)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        keep = pc.not_equal(values, "").to_numpy(zero_copy_only=False)
        if not keep.all():
            values = values.filter(pa.array(keep))
            parents = parents[keep]
    return values, parents


def pad_rows(
    parents: np.ndarray, items: np.ndarray, n_rows: int, max_len: int, keep: str = "first"
) -> tuple[np.ndarray, int]:
    """Scatter flat items into a right-padded [n_rows, max_len] matrix; returns it and how many were cut."""
    counts = np.bincount(parents, minlength=n_rows)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(parents)) - starts[parents]
    if keep == "last":
        pos = pos - np.maximum(counts[parents] - max_len, 0)
    ok = (pos >= 0) & (pos < max_len)
    out = np.zeros((n_rows, max_len), dtype=items.dtype)
    out[parents[ok], pos[ok]] = items[ok]
    return out, int((~ok).sum())
