"""Which raw columns the features read, which side each belongs to, and the rows each feature is computed on.

A raw column belongs to the item side when an item-side feature reads it, else to the user side when a
user-side feature reads it, else to the context. A feature that reads item columns only is computed once
per item; one that reads no item column once per request (user + context), then broadcast; one that reads
both (a cross of a user and an item column) on the joined rows. A feature's output for a row depends on
that row alone, so the three groups assembled side by side equal the transform of the joined rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from recforge.features.base import Feature, FeatureState

SIDE_RANK = {"item": 0, "user": 1, "context": 2}
GROUPS = ("request", "item", "joint")


def column_sides(features: Mapping[str, Feature[Any]]) -> dict[str, str]:
    """Raw column -> side: item if any item-side feature reads it, else user if a user-side one does, else context."""
    sides: dict[str, str] = {}
    for feature in features.values():
        for column in feature.columns():
            if column not in sides or SIDE_RANK[feature.side] < SIDE_RANK[sides[column]]:
                sides[column] = feature.side
    return sides


def feature_columns(features: Mapping[str, Feature[Any]], name: str) -> list[str]:
    """Raw columns a feature's transform reads, following a cross's inputs."""
    feature = features[name]
    columns = list(feature.columns())
    for upstream in getattr(feature.config, "inputs", None) or []:
        columns += feature_columns(features, upstream)
    return list(dict.fromkeys(columns))


@dataclass(frozen=True)
class Layout:
    """Features split by the rows they are computed on: once per request, once per item, or per joined row."""

    sides: dict[str, str]
    request: tuple[str, ...]
    item: tuple[str, ...]
    joint: tuple[str, ...]

    @classmethod
    def of(cls, features: Mapping[str, Feature[Any]]) -> Layout:
        sides = column_sides(features)
        groups: dict[str, list[str]] = {g: [] for g in GROUPS}
        for name in features:
            on_item = {sides[c] == "item" for c in feature_columns(features, name)}
            groups["joint" if len(on_item) == 2 else "item" if on_item == {True} else "request"].append(name)
        return cls(sides, tuple(groups["request"]), tuple(groups["item"]), tuple(groups["joint"]))

    def group(self, name: str) -> tuple[str, ...]:
        """The features of one of GROUPS."""
        names: tuple[str, ...] = getattr(self, name)
        return names

    def columns(self, features: Mapping[str, Feature[Any]], group: str) -> list[str]:
        """The raw columns the features of `group` read, in first-read order."""
        return list(dict.fromkeys(c for name in self.group(group) for c in feature_columns(features, name)))


def column_types(features: Mapping[str, Feature[Any]], states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
    """The Arrow type each raw column is read as, per the kind reading it (`Feature.raw_types`); first reader wins."""
    out: dict[str, pa.DataType] = {}
    for feature in features.values():
        for column, kind in feature.raw_types(states).items():
            out.setdefault(column, kind)
    return out
