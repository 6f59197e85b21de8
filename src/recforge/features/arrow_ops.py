"""Vectorized Arrow/NumPy helpers the feature kinds share: value hashing, list flattening, padding."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.errors import DataError

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed, stable 64-bit hash of uint64 values (SplitMix64 finalizer)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def combine_hashes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Order-sensitive combination of two uint64 hash arrays (for crosses)."""
    with np.errstate(over="ignore"):
        return splitmix64(a * np.uint64(31) ^ b)


def hash_values(values: pa.Array) -> np.ndarray:
    """uint64 hash per value, stable across runs and machines (nulls hash like the string 'None')."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_dictionary(kind):
        values = values.cast(kind.value_type)
        kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        ints = pc.fill_null(values.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        return splitmix64(ints.view(np.uint64))
    if pa.types.is_floating(kind):
        floats = pc.fill_null(values.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        return splitmix64(floats.view(np.uint64))
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    uniques = encoded.dictionary.to_pylist()
    table = np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "little") for u in uniques),
        dtype=np.uint64,
        count=len(uniques),
    )
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    out = np.where(codes >= 0, table[np.maximum(codes, 0)] if len(table) else np.uint64(0), np.uint64(0))
    return out.astype(np.uint64)


def column(table: pa.Table, name: str, feature: str) -> pa.Array:
    """One column as a contiguous array, or a DataError naming what exists."""
    if name not in table.column_names:
        raise DataError(
            f"feature {feature!r} reads column {name!r}, which the input does not have; "
            f"columns: {', '.join(table.column_names)}"
        )
    col = table.column(name).combine_chunks()
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
