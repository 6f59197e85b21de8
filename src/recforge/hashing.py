"""Stable 64-bit hash primitives shared by features, embedding tables and the FTRL hasher.

A core module below every layer, so hashing a value never pulls in the code that gives it meaning:
the same id hashes the same in `features`, `embedding` and `online`, on every run and machine.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MIX1 = np.uint64(0xBF58476D1CE4E5B9)  # SplitMix64's constants (also read by the fused FTRL kernel's scalar copy)
MIX2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed, stable 64-bit hash of uint64 values (SplitMix64 finalizer)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        return z ^ (z >> np.uint64(31))


def combine_hashes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Order-sensitive combination of two uint64 hash arrays (for crosses)."""
    with np.errstate(over="ignore"):
        return splitmix64(a * np.uint64(31) ^ b)


def hash_values(values: pa.Array) -> np.ndarray:
    """uint64 hash per value, stable across runs and machines (nulls hash like the string 'None')."""
    keys, mix = hash_keys(values)
    return splitmix64(keys) if mix else keys


def hash_keys(values: pa.Array) -> tuple[np.ndarray, bool]:
    """The uint64 key of each value and whether `splitmix64` still mixes it into `hash_values`' hash.

    Numbers are their own bits (null as 0) and still to be mixed; strings are already a blake2b digest.
    Split out so that a kernel can mix the keys itself, row by row (`recforge.train.ftrl_kernel`)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_dictionary(kind):
        values = values.cast(kind.value_type)
        kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return _filled(values, pa.int64(), 0).view(np.uint64), True
    if pa.types.is_floating(kind):
        return _filled(values, pa.float64(), np.nan).view(np.uint64), True
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    uniques = encoded.dictionary.to_pylist()
    table = np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "little") for u in uniques),
        dtype=np.uint64,
        count=len(uniques),
    )
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    out = np.where(codes >= 0, table[np.maximum(codes, 0)] if len(table) else np.uint64(0), np.uint64(0))
    return out.astype(np.uint64), False


def _filled(values: pa.Array, kind: pa.DataType, fill: float) -> np.ndarray:
    """`values` as `kind` with nulls replaced by `fill` (no copy for a column of that type without nulls)."""
    if values.type != kind:
        values = values.cast(kind)
    if values.null_count:
        values = pc.fill_null(values, fill)
    return values.to_numpy(zero_copy_only=False)
