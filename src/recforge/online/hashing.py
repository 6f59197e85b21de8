"""Feature-name-aware hashing of raw Arrow columns into 2^bits buckets, for linear online learners.

Every row becomes the same number F of (index, value) pairs, so a batch is two dense arrays:

    idx: int64   [B, F]   bucket of each field of each row, in [0, 2^bits)
    val: float64 [B, F]   1.0 for categorical and bucketed fields, the number itself for raw ones

Field order: categorical, bucketed, raw, then the bias (a constant 1.0) when `bias` is on. Each field's
bucket mixes a per-field salt (64-bit blake2b of the field name) with recforge's stable value hash
(`features.arrow_ops.hash_values`: SplitMix64 for numbers, blake2b for strings), so equal values in
different columns land in different buckets. Two fields of one row can still collide in a bucket;
learners treat them as two features that share a weight.

Missing values (documented defaults, `on_nan="missing"`):

- categorical null: hashed like any other value, into that field's own null bucket;
- bucketed NaN/null: bucket 0 (the missing bucket; real values get 1..len(boundaries)+1);
- raw NaN/null: value 0.0, so the field adds nothing to that row's score.

With `on_nan="error"` a NaN or null in a numeric column raises a `DataError` instead. A raw value of
±inf always raises. A missing column always raises, naming the columns the batch has.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.errors import ConfigError, DataError
from recforge.features.arrow_ops import column
from recforge.hashing import combine_hashes, hash_values, splitmix64

BIAS = "__bias__"


def field_salt(name: str) -> np.uint64:
    """The 64-bit salt of one field: blake2b of its name (stable across runs and machines)."""
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


@dataclass(frozen=True)
class FeatureHasher:
    """Raw columns -> hashed (idx, val) arrays [B, F]; plain config, saved as JSON with the model.

    Examples
    --------
    >>> import pyarrow as pa
    >>> hasher = FeatureHasher(categorical=("user_id",), bucketed={"age": (18.0, 30.0)}, bits=10)
    >>> idx, val = hasher.transform(pa.table({"user_id": [7, 7, 8], "age": [20.0, None, 40.0]}))
    >>> idx.shape, hasher.n_fields, hasher.field_names
    ((3, 3), 3, ['user_id', 'age', '__bias__'])
    >>> bool(idx[0, 0] == idx[1, 0]), bool(idx[0, 0] == idx[2, 0])   # same id, same bucket
    (True, False)
    >>> bool((idx < 2**10).all()), val.tolist()[0]
    (True, [1.0, 1.0, 1.0])
    """

    categorical: Sequence[str] = ()
    bucketed: Mapping[str, Sequence[float]] = field(default_factory=dict)
    raw: Sequence[str] = ()
    bits: int = 20
    bias: bool = True
    on_nan: Literal["missing", "error"] = "missing"

    def __post_init__(self) -> None:
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "raw", tuple(self.raw))
        object.__setattr__(self, "bucketed", {k: tuple(float(b) for b in v) for k, v in self.bucketed.items()})
        if not 1 <= self.bits <= 31:
            raise ConfigError("bits", f"must be in 1..31, got {self.bits}", fix="2^20 buckets (bits=20) is typical")
        names = self.field_names
        if len(set(names)) != len(names):
            raise ConfigError("fields", f"a column is listed twice: {names}")
        if not names:
            raise ConfigError("fields", "no fields to hash", fix="list categorical, bucketed or raw columns")
        for name, edges in self.bucketed.items():
            if not edges or any(hi <= lo for lo, hi in itertools.pairwise(edges)):
                raise ConfigError(f"bucketed.{name}", f"boundaries must be non-empty and increasing, got {edges}")
        if self.on_nan not in ("missing", "error"):
            raise ConfigError("on_nan", f"must be 'missing' or 'error', got {self.on_nan!r}")

    @property
    def field_names(self) -> list[str]:
        return [*self.categorical, *self.bucketed, *self.raw, *([BIAS] if self.bias else [])]

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    @property
    def n_buckets(self) -> int:
        return 1 << self.bits

    def transform(self, batch: pa.Table | pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """Hash one batch: idx int64 [B, F] and val float64 [B, F] (see the module docstring)."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        b = table.num_rows
        mask = np.uint64(self.n_buckets - 1)
        idx = np.empty((b, self.n_fields), dtype=np.int64)
        val = np.ones((b, self.n_fields), dtype=np.float64)
        f = 0
        for name in self.categorical:
            h = combine_hashes(np.full(b, field_salt(name)), hash_values(column(table, name, name)))
            idx[:, f] = (h & mask).astype(np.int64)
            f += 1
        for name, edges in self.bucketed.items():
            x = self._numbers(table, name)
            bucket = np.searchsorted(np.asarray(edges), x, side="right") + 1
            bucket[np.isnan(x)] = 0
            h = combine_hashes(np.full(b, field_salt(name)), splitmix64(bucket.astype(np.uint64)))
            idx[:, f] = (h & mask).astype(np.int64)
            f += 1
        for name in self.raw:
            x = self._numbers(table, name)
            if np.isinf(x).any():
                row = int(np.flatnonzero(np.isinf(x))[0])
                raise DataError(f"raw numeric column {name!r} holds ±inf (first at row {row}); clip or bucket it")
            idx[:, f] = int(splitmix64(np.array([field_salt(name)]))[0] & mask)
            val[:, f] = np.nan_to_num(x, nan=0.0)
            f += 1
        if self.bias:
            idx[:, f] = int(splitmix64(np.array([field_salt(BIAS)]))[0] & mask)
        return idx, val

    def _numbers(self, table: pa.Table, name: str) -> np.ndarray:
        col = column(table, name, name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise DataError(
                f"numeric column {name!r} has type {col.type}; cast it to a number or hash it as categorical"
            )
        x = pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        if self.on_nan == "error" and np.isnan(x).any():
            row = int(np.flatnonzero(np.isnan(x))[0])
            raise DataError(
                f"numeric column {name!r}: {int(np.isnan(x).sum()):,} of {len(x):,} values are NaN or null "
                f"(first at row {row}); fill them, or use on_nan='missing' to map them to the missing bucket"
            )
        return np.asarray(x, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["categorical"], out["raw"] = list(self.categorical), list(self.raw)
        out["bucketed"] = {k: list(v) for k, v in self.bucketed.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureHasher:
        return cls(**data)
