"""Numeric and lookup features: a float per row, bucketized to an id or kept as a dense value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.features import LookupFeatureConfig, NumericFeatureConfig
from recforge.errors import DataError, FeatureError
from recforge.features.arrow_ops import column
from recforge.features.base import (
    FEATURE_KINDS,
    DenseOutput,
    Feature,
    FeatureState,
    IdOutput,
    TransformContext,
    TransformReport,
)
from recforge.schema import FieldSpec, TableSpec

SAMPLE_SIZE = 200_000


def to_float(values: pa.Array, feature: str) -> np.ndarray:
    """float64 per row; null, NaN and +-inf all become NaN (the caller counts and fills them)."""
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type)):
        try:
            values = pc.cast(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"feature {feature!r}: column of type {values.type} is not numeric ({exc})") from exc
    if values.type != pa.float64():
        values = values.cast(pa.float64())
    if values.null_count:
        values = pc.fill_null(values, np.nan)
    out = values.to_numpy(zero_copy_only=False).astype(np.float64)  # a writable copy
    out[~np.isfinite(out)] = np.nan
    return out


class NumericFitter:
    """Streaming moments, range and a uniform bottom-k sample (for quantile boundaries)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.low = np.inf
        self.high = -np.inf
        self.sample = np.empty(0)
        self.keys = np.empty(0)

    def update(self, values: np.ndarray) -> None:
        values = values[~np.isnan(values)]
        if values.size == 0:
            return
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        keys = np.concatenate([self.keys, self.rng.random(values.size)])
        sample = np.concatenate([self.sample, values])
        if keys.size > SAMPLE_SIZE:
            keep = np.argpartition(keys, SAMPLE_SIZE)[:SAMPLE_SIZE]
            keys, sample = keys[keep], sample[keep]
        self.keys, self.sample = keys, sample

    def state(self, name: str, transform: str, boundaries: list[float] | None, n_buckets: int) -> FeatureState:
        moments = Moments(self.count, self.total, self.total_sq, self.low, self.high)
        return numeric_state(name, moments, transform, boundaries, n_buckets, lambda q: np.quantile(self.sample, q))


@dataclass(frozen=True)
class Moments:
    """Count, sum, sum of squares and range of a feature's finite training values."""

    count: int
    total: float
    total_sq: float
    low: float
    high: float


def numeric_state(
    name: str,
    moments: Moments,
    transform: str,
    boundaries: list[float] | None,
    n_buckets: int,
    quantiles: Callable[[np.ndarray], np.ndarray],
) -> FeatureState:
    """The fitted state from the moments and a quantile function, however both were computed (here or on Spark)."""
    if moments.count == 0 and not (transform == "bucket" and boundaries):
        raise FeatureError(name, "has no finite values in the training data", fix="drop it or give `boundaries:`")
    params: dict[str, Any] = {"transform": transform}
    if transform == "bucket":
        if boundaries is None:
            cuts = quantiles(np.linspace(0, 1, n_buckets + 1)[1:-1])
            boundaries = np.unique(cuts).tolist()
        params["boundaries"] = [float(b) for b in boundaries]
    elif transform == "standard":
        mean = moments.total / moments.count
        var = max(moments.total_sq / moments.count - mean * mean, 0.0)
        params.update(mean=mean, std=float(np.sqrt(var)) or 1.0)
    elif transform == "minmax":
        params.update(low=moments.low, high=moments.high)
    return FeatureState(params=params)


def apply_numeric(values: np.ndarray, state: FeatureState, fill: float) -> np.ndarray:
    """Bucket ids (int64, 0 = missing) or dense float32 values (missing -> `fill`)."""
    p = state.params
    missing = np.isnan(values)
    if p["transform"] == "bucket":
        ids = np.searchsorted(np.asarray(p["boundaries"]), values, side="right").astype(np.int64) + 1
        ids[missing] = 0
        return ids
    if p["transform"] == "standard":
        out = (values - p["mean"]) / p["std"]
    elif p["transform"] == "minmax":
        span = p["high"] - p["low"]
        out = (values - p["low"]) / (span if span > 0 else 1.0)
    elif p["transform"] == "log":
        out = np.sign(values) * np.log1p(np.abs(values))
    else:
        out = values
    out[missing] = fill
    return out.astype(np.float32)


class NumberFeature(Feature[Any]):
    """Shared logic of numeric and lookup: `raw_values` differs, fitting and output do not."""

    def raw_values(self, table: pa.Table) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define raw_values")

    @property
    def bucketized(self) -> bool:
        return bool(self.config.transform == "bucket")

    def fit_begin(self) -> None:
        self.fitter = NumericFitter()

    def fit_update(self, table: pa.Table, features: dict[str, Feature[Any]]) -> None:
        self.fitter.update(self.raw_values(table))

    def fit_end(self) -> FeatureState:
        c = self.config
        return self.fitter.state(self.name, c.transform, c.boundaries, c.n_buckets)

    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> IdOutput | DenseOutput:
        values = self.raw_values(table)
        report.add(self.name, "missing", int(np.isnan(values).sum()))
        out = apply_numeric(values, ctx.states[self.name], self.config.fill)
        return IdOutput(out) if self.bucketized else DenseOutput(out)

    def field_spec(self, state: FeatureState) -> FieldSpec:
        if self.bucketized:
            return FieldSpec(self.name, "id", self.side, table=self.name, dim=self.dim)
        return FieldSpec(self.name, "dense", self.side, dim=self.dim)

    def table_spec(self, state: FeatureState) -> TableSpec | None:
        if not self.bucketized:
            return None
        return TableSpec(self.name, len(state.params["boundaries"]) + 2, self.dim)


@FEATURE_KINDS.register("numeric")
class NumericFeature(NumberFeature):
    """A float column; null/NaN/inf count as missing (bucket 0, or `fill` when dense)."""

    kind = "numeric"
    config: NumericFeatureConfig

    def raw_types(self, states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
        return {self.source: pa.float64()}

    def raw_values(self, table: pa.Table) -> np.ndarray:
        return to_float(column(table, self.source, self.name), self.name)


@FEATURE_KINDS.register("lookup")
class LookupFeature(NumberFeature):
    """map_column[key] per row (a map<key, number> column); a key not in the map counts as missing."""

    kind = "lookup"
    config: LookupFeatureConfig

    def columns(self) -> list[str]:
        return [self.config.map_column, self.config.key]

    def raw_types(self, states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
        return {self.config.map_column: pa.map_(pa.string(), pa.float64()), self.config.key: pa.string()}

    def raw_values(self, table: pa.Table) -> np.ndarray:
        maps = column(table, self.config.map_column, self.name)
        if not pa.types.is_map(maps.type):
            raise DataError(f"feature {self.name!r}: column {self.config.map_column!r} must be a map, got {maps.type}")
        keys = column(table, self.config.key, self.name)
        # Arrow compute has few map kernels: walk the offsets (absolute into the child arrays).
        offsets = maps.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        parents = np.repeat(np.arange(table.num_rows), np.diff(offsets))
        first, size = int(offsets[0]), int(offsets[-1] - offsets[0])
        map_keys, map_values = maps.keys.slice(first, size), maps.items.slice(first, size)
        wanted = pc.take(keys.cast(map_keys.type), pa.array(parents))
        hit = pc.fill_null(pc.equal(map_keys, wanted), False).to_numpy(zero_copy_only=False)
        out = np.full(table.num_rows, np.nan)
        out[parents[hit]] = to_float(map_values.filter(pa.array(hit)), self.name)
        return out
