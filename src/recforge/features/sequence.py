"""Behavior sequences: values of another id feature, sharing its vocabulary and embedding table."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from recforge.config.features import SequenceFeatureConfig
from recforge.features.arrow_ops import as_list, column, flatten, pad_rows
from recforge.features.base import FEATURE_KINDS, BagOutput, Feature, FeatureState, TransformContext, TransformReport
from recforge.features.categorical import lookup_ids
from recforge.schema import FieldSpec


@FEATURE_KINDS.register("sequence")
class SequenceFeature(Feature[SequenceFeatureConfig]):
    """Oldest-to-newest list -> padded [B, max_len] of the `of` feature's rows (newest kept)."""

    kind = "sequence"

    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> BagOutput:
        lists = as_list(column(table, self.source, self.name), self.config.sep, self.name)
        values, parents = flatten(lists)
        ids = lookup_ids(values, ctx.states[self.config.of], self.name, report)
        padded, cut = pad_rows(parents, ids, table.num_rows, self.config.max_len, keep="last")
        report.add(self.name, "truncated", cut)
        return BagOutput(padded)

    def field_spec(self, state: FeatureState) -> FieldSpec:
        return FieldSpec(
            self.name,
            "bag",
            self.side,
            table=self.config.of,
            dim=self.dim,
            max_len=self.config.max_len,
            pooling=self.config.pooling,
            sequence_of=self.config.of,
        )

    def fit_update(self, table: pa.Table, features: dict[str, Feature[Any]]) -> None:
        column(table, self.source, self.name)
