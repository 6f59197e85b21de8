"""Raw Arrow rows -> the FTRL kernel's slots and columns, so a stream is hashed and learned in one pass.

Id fields whose transform the kernel can do itself (`RAW_FIELDS`, by feature kind: ids hashed with
`hash_buckets`, numbers cut into buckets) are read as raw columns: their keys or values go to the kernel
(`recforge.train.ftrl_kernel`), which computes each coordinate exactly as `FeatureSet.transform` +
`LinearCoordinates.encode` would. Every other feature (vocabularies, bags, dense numbers) is transformed the
ordinary way, through the one assembler, and handed over as given coordinates. So the weights equal those of
learning from `FeatureSet.transform(table)`; only the work in between is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.features import FeatureSet, TransformReport
from recforge.features.arrow_ops import column
from recforge.features.assembler import Assembler, reading_errors
from recforge.features.base import Feature, FeatureState
from recforge.features.numeric import NumberFeature
from recforge.hashing import hash_keys
from recforge.registry import Registry
from recforge.train.ftrl_kernel import BUCKET, CONST, GIVEN, HASH, Columns, Slots, no_bucketed, no_hashed
from recforge.train.linear_coordinates import LinearCoordinates


@dataclass(frozen=True)
class HashedField:
    """An id with `hash_buckets`: its raw keys (`recforge.hashing.hash_keys`) and bucket count."""

    feature: Feature[Any]
    buckets: int

    def read(self, table: pa.Table, report: TransformReport) -> tuple[np.ndarray, bool, np.ndarray]:
        """keys uint64 [B], whether they still need mixing, valid bool [B] (a null is the table's row 0)."""
        values = column(table, self.feature.source, self.feature.name)
        keys, mix = hash_keys(values)
        report.add(self.feature.name, "missing", values.null_count)
        if values.null_count == 0:
            return keys, mix, np.ones(len(values), np.bool_)
        return keys, mix, pc.is_valid(values).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class BucketedField:
    """A number cut at fitted boundaries (`features.numeric.apply_numeric`'s bucket transform)."""

    feature: NumberFeature
    boundaries: np.ndarray

    def read(self, table: pa.Table, report: TransformReport) -> np.ndarray:
        """float64 [B]; missing values (null, NaN, inf) are NaN, the table's row 0."""
        values = self.feature.raw_values(table)
        report.add(self.feature.name, "missing", int(np.isnan(values).sum()))
        return values


RawField = HashedField | BucketedField
RAW_FIELDS: Registry[Callable[[Feature[Any], FeatureState], RawField | None]] = Registry("raw FTRL field kind")


@RAW_FIELDS.register("id")
def hashed_id(feature: Feature[Any], state: FeatureState) -> RawField | None:
    buckets = state.params.get("hash_buckets")
    return HashedField(feature, int(buckets)) if buckets else None


def bucketed_number(feature: Feature[Any], state: FeatureState) -> RawField | None:
    if not isinstance(feature, NumberFeature) or state.params.get("transform") != "bucket":
        return None
    boundaries = np.asarray(state.params["boundaries"], dtype=np.float64)
    # the kernel's binary search equals np.searchsorted only on sorted boundaries; others go the ordinary way
    return BucketedField(feature, boundaries) if bool(np.all(np.diff(boundaries) >= 0)) else None


RAW_FIELDS.register("numeric")(bucketed_number)
RAW_FIELDS.register("lookup")(bucketed_number)


class RawPlan:
    """Which id fields the kernel reads raw (and where their tables start), and how the rest are transformed."""

    def __init__(self, features: FeatureSet, coords: LinearCoordinates, label: str) -> None:
        self.features, self.coords, self.label = features, coords, label
        schema = features.schema()
        self.fields: list[RawField | None] = []
        for spec in schema.id_fields:
            feature = features.features[spec.name]
            make = RAW_FIELDS.get(feature.kind) if feature.kind in RAW_FIELDS else None
            self.fields.append(make(feature, features.states[spec.name]) if make else None)
        self.hashed = [f for f in self.fields if isinstance(f, HashedField)]
        self.bucketed = [f for f in self.fields if isinstance(f, BucketedField)]
        self.raw_cols = np.array([j for j, f in enumerate(self.fields) if f is not None], dtype=np.int64)
        raw = {f.feature.name for f in self.fields if f is not None}
        rest = [name for name in features.features if name not in raw]
        self.assembler = Assembler(features.features, features.states, schema, {"rest": rest}) if rest else None
        bounds = [f.boundaries for f in self.bucketed]
        self.bounds = np.concatenate(bounds) if bounds else np.zeros(0)
        self.starts = np.concatenate([[0], np.cumsum([len(b) for b in bounds])]).astype(np.int64)

    def labels(self, table: pa.Table, source: str) -> np.ndarray:
        """The 0/1 label [B] (float64), checked as `FeatureSet.transform` checks it."""
        return self.features.labels_of(table, source)[self.label].numpy().astype(np.float64)

    def inputs(self, table: pa.Table, source: str, report: TransformReport) -> tuple[Slots, Columns]:
        """The kernel's slots and columns for every row of `table`."""
        report.rows += table.num_rows
        rows = table.num_rows
        given_idx, given_val = self._given(table, source, report)
        keys, valid, mix = [], [], []
        for field in self.hashed:
            with reading_errors(self.features.features, field.feature.name, source):
                k, m, v = field.read(table, report)
            keys.append(k)
            mix.append(m)
            valid.append(v)
        values = []
        for number in self.bucketed:
            with reading_errors(self.features.features, number.feature.name, source):
                values.append(number.read(table, report))
        hashed = (
            (np.stack(keys), np.stack(valid), np.array(mix), np.array([f.buckets for f in self.hashed], np.uint64))
            if keys
            else no_hashed(rows)
        )
        bucketed = (np.stack(values), self.bounds, self.starts) if values else no_bucketed(rows)
        cols = Columns(rows, given_idx, given_val, *hashed, *bucketed)
        return self._slots(given_idx.shape[1]), cols

    def _given(self, table: pa.Table, source: str, report: TransformReport) -> tuple[np.ndarray, np.ndarray]:
        """idx/val [B, K] of the features transformed the ordinary way (the raw fields' columns hold their row 0)."""
        if self.assembler is None:
            return np.zeros((table.num_rows, 0), np.int64), np.zeros((table.num_rows, 0), np.float64)
        n = table.num_rows
        batch = self.assembler.batch(n, {"rest": self.assembler.block("rest", table, report, source)})
        batch.ids.numpy()[:, self.raw_cols] = 0  # not transformed here: any in-range value, the kernel ignores it
        return self.coords.encode(batch)

    def _slots(self, given: int) -> Slots:
        """Id fields first (raw ones resolved in the kernel), then bags, dense and bias as given, or just the bias."""
        n_ids = len(self.fields)
        width = given if given else n_ids + 1
        kind = np.full(width, GIVEN, np.int64)
        col = np.arange(width, dtype=np.int64)
        base = np.zeros(width, np.int64)
        hashed = bucketed = 0
        for j, field in enumerate(self.fields):
            base[j] = self.coords.id_offsets[j]
            if isinstance(field, HashedField):
                kind[j], col[j], hashed = HASH, hashed, hashed + 1
            elif isinstance(field, BucketedField):
                kind[j], col[j], bucketed = BUCKET, bucketed, bucketed + 1
        if not given:
            kind[-1], col[-1] = CONST, self.coords.size - 1
        return Slots(kind, col, base)
