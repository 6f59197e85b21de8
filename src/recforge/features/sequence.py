"""Behavior sequences: values of another id feature, sharing its vocabulary and embedding table.

With `attrs: [category, ...]` each element also carries its side info, aligned with it: fit keeps the
attribute columns of the first training row of every `of` value (the item -> attributes map, saved as
raw Arrow columns), and transform emits `attrs[name]` int64 [B, L, G] through the attribute feature's own
transform (G = 1 for an id feature, the tag's max_len for a tag), so serving reads exactly what training did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from recforge.config.features import SequenceFeatureConfig
from recforge.features.arrow_ops import as_list, column, flatten, pad_rows
from recforge.features.base import (
    FEATURE_KINDS,
    BagOutput,
    Feature,
    FeatureState,
    IdOutput,
    TransformContext,
    TransformReport,
    list_or_text,
    vocab_type,
)
from recforge.features.categorical import lookup_ids, table_rows
from recforge.ids import first_rows
from recforge.schema import FieldSpec

RAW = "raw."  # state array prefix of the item -> attribute columns


def attr_state(rows: pa.Table) -> FeatureState:
    """The fitted item -> attributes map: the first training row of every `of` value (key column first)."""
    return FeatureState(
        params={"attr_key": rows.column_names[0]},
        arrays={RAW + n: rows[n].combine_chunks() for n in rows.column_names},
    )


@FEATURE_KINDS.register("sequence")
class SequenceFeature(Feature[SequenceFeatureConfig]):
    """Oldest-to-newest list -> padded [B, max_len] of the `of` feature's rows (newest kept)."""

    kind = "sequence"

    def raw_types(self, states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
        return {self.source: list_or_text(self.config.sep, vocab_type(states, self.config.of))}

    def fit_begin(self) -> None:
        self.parts: list[pa.Table] = []

    def fit_update(self, table: pa.Table, features: dict[str, Feature[Any]]) -> None:
        column(table, self.source, self.name)
        if not self.config.attrs:
            return
        names = self.attr_inputs(features)
        for name in names:
            column(table, name, self.name)
        self.parts.append(first_rows(table.select(names), names[0]))

    def attr_inputs(self, features: dict[str, Feature[Any]]) -> list[str]:
        """The `of` feature's column, then the columns the attributes read: the item -> attributes map's columns."""
        of = features[self.config.of]
        attr_columns = dict.fromkeys(c for a in self.config.attrs for c in features[a].columns())
        return [of.source, *[c for c in attr_columns if c != of.source]]

    def fit_end(self) -> FeatureState:
        if not self.config.attrs:
            return FeatureState()
        rows = first_rows(pa.concat_tables(self.parts, promote_options="permissive"), self.parts[0].column_names[0])
        self.parts = []
        return attr_state(rows)

    def attr_maps(self, ctx: TransformContext) -> dict[str, np.ndarray]:
        """Per attribute, int64 [rows of the `of` table, G]: the attribute rows of every element (row 0: none)."""
        state = ctx.states[self.name]
        maps: dict[str, np.ndarray] | None = state.cache.get("attr_maps")
        if maps is not None:
            return maps
        raw = pa.table({k[len(RAW) :]: v for k, v in state.arrays.items() if k.startswith(RAW)})
        of_state = ctx.states[self.config.of]
        rows = lookup_ids(raw[state.params["attr_key"]].combine_chunks(), of_state, self.name, TransformReport())
        known = rows > 0  # keys below the `of` feature's min_count have no row of their own
        maps = {}
        for name in self.config.attrs:
            out = ctx.features[name].transform(raw, ctx, TransformReport())
            ids = out.ids[:, None] if isinstance(out, IdOutput) else out.values  # type: ignore[union-attr]
            width = max(int((ids != 0).sum(axis=1).max(initial=0)), 1)  # tags are left-packed: drop empty columns
            ids = ids[:, :width]
            table = np.zeros((table_rows(of_state), ids.shape[1]), dtype=np.int64)
            table[rows[known]] = ids[known]
            maps[name] = table
        state.cache["attr_maps"] = maps
        return maps

    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> BagOutput:
        lists = as_list(column(table, self.source, self.name), self.config.sep, self.name)
        values, parents = flatten(lists)
        ids = lookup_ids(values, ctx.states[self.config.of], self.name, report)
        padded, cut = pad_rows(parents, ids, table.num_rows, self.config.max_len, keep="last")
        report.add(self.name, "truncated", cut)
        if not self.config.attrs:
            return BagOutput(padded)
        return BagOutput(padded, attrs={name: m[padded] for name, m in self.attr_maps(ctx).items()})

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
            attrs=tuple(self.config.attrs),
        )
