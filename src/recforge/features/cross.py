"""Cross features: a hash of the combined raw values of two or more features, into buckets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from recforge.config.features import CrossFeatureConfig
from recforge.features.arrow_ops import as_list, column, flatten, pad_rows
from recforge.features.base import (
    FEATURE_KINDS,
    BagOutput,
    Feature,
    FeatureState,
    IdOutput,
    TransformContext,
    TransformReport,
)
from recforge.features.numeric import NumberFeature, apply_numeric
from recforge.hashing import combine_hashes, hash_values
from recforge.schema import FieldSpec, TableSpec


def tokens_of(feature: Feature[Any], table: pa.Table, ctx: TransformContext) -> tuple[np.ndarray, np.ndarray]:
    """(parent row, uint64 token hash) for every value of an input feature; missing values yield none."""
    n = table.num_rows
    if isinstance(feature, NumberFeature):
        ids = apply_numeric(feature.raw_values(table), ctx.states[feature.name], 0.0)
        if not feature.bucketized:
            ids = ids.view(np.int32).astype(np.int64)
        keep = np.arange(n)
        return keep, hash_values(pa.array(ids))
    if feature.kind == "tag":
        values, parents = flatten(
            as_list(column(table, feature.source, feature.name), feature.config.sep, feature.name)
        )
        keep = np.asarray(pa.compute.is_valid(values).to_numpy(zero_copy_only=False))
        return parents[keep], hash_values(values)[keep]
    values = column(table, feature.source, feature.name)
    valid = np.asarray(pa.compute.is_valid(values).to_numpy(zero_copy_only=False))
    return np.flatnonzero(valid), hash_values(values)[valid]


def cross_pairs(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row cartesian product of two (parent, hash) lists, combined hashes in row order."""
    (pa_rows, pa_hash), (pb_rows, pb_hash) = a, b
    count_a = np.bincount(pa_rows, minlength=n_rows)
    count_b = np.bincount(pb_rows, minlength=n_rows)
    start_a = np.cumsum(count_a) - count_a
    start_b = np.cumsum(count_b) - count_b
    per_row = count_a * count_b
    rows = np.repeat(np.arange(n_rows), per_row)
    local = np.arange(rows.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    ia = start_a[rows] + local // np.maximum(count_b[rows], 1)
    ib = start_b[rows] + local % np.maximum(count_b[rows], 1)
    return rows, combine_hashes(pa_hash[ia], pb_hash[ib])


@FEATURE_KINDS.register("cross")
class CrossFeature(Feature[CrossFeatureConfig]):
    """Single-valued inputs give one id per row; a multi-valued input gives a bag of crossed ids."""

    kind = "cross"

    def columns(self) -> list[str]:
        return []

    def multi_valued(self, features: dict[str, Feature[Any]]) -> bool:
        return any(features[name].kind == "tag" for name in self.config.inputs)

    def fit_begin(self) -> None:
        self.is_bag = False

    def fit_update(self, table: pa.Table, features: dict[str, Feature[Any]]) -> None:
        self.is_bag = self.multi_valued(features)

    def fit_end(self) -> FeatureState:
        return FeatureState(params={"buckets": self.config.buckets, "bag": self.is_bag})

    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> IdOutput | BagOutput:
        n = table.num_rows
        rows, hashes = tokens_of(ctx.features[self.config.inputs[0]], table, ctx)
        for name in self.config.inputs[1:]:
            rows, hashes = cross_pairs((rows, hashes), tokens_of(ctx.features[name], table, ctx), n)
        ids = (hashes % np.uint64(self.config.buckets)).astype(np.int64) + 1
        if ctx.states[self.name].params["bag"]:
            padded, cut = pad_rows(rows, ids, n, self.config.max_len)
            report.add(self.name, "truncated", cut)
            return BagOutput(padded)
        out = np.zeros(n, dtype=np.int64)
        out[rows] = ids
        report.add(self.name, "missing", n - rows.size)
        return IdOutput(out)

    def field_spec(self, state: FeatureState) -> FieldSpec:
        if state.params["bag"]:
            return FieldSpec(self.name, "bag", self.side, table=self.name, dim=self.dim, max_len=self.config.max_len)
        return FieldSpec(self.name, "id", self.side, table=self.name, dim=self.dim)

    def table_spec(self, state: FeatureState) -> TableSpec:
        return TableSpec(self.name, self.config.buckets + 1, self.dim)
