"""The contract every feature kind follows: streaming fit over Arrow batches, vectorized transform.

A feature's config is pure data (recforge.config.features), its fitted state is pure data
(`FeatureState`: JSON params + Arrow arrays), and the class in between holds only the logic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import pyarrow as pa

from recforge.registry import Registry
from recforge.schema import FieldSpec, TableSpec

C = TypeVar("C")


@dataclass
class FeatureState:
    """What `fit` learned: small values as JSON params, vocabularies as Arrow arrays."""

    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, pa.Array] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # derived lookups, never saved


@dataclass(frozen=True)
class IdOutput:
    ids: np.ndarray  # int64 [B]


@dataclass(frozen=True)
class BagOutput:
    values: np.ndarray  # int64 [B, L], 0 = padding
    weights: np.ndarray | None = None  # float32 [B, L]
    attrs: dict[str, np.ndarray] = field(default_factory=dict)  # sequences: int64 [B, L, G] per attribute


@dataclass(frozen=True)
class DenseOutput:
    values: np.ndarray  # float32 [B]


Output = IdOutput | BagOutput | DenseOutput


@dataclass
class TransformReport:
    """Counts of values mapped to defaults (missing, out-of-vocabulary, truncated), per feature."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    rows: int = 0

    def add(self, feature: str, what: str, n: int) -> None:
        if n:
            self.counts[(feature, what)] += n

    def summary(self) -> dict[str, int]:
        return {f"{feat}.{what}": n for (feat, what), n in sorted(self.counts.items())}


class Feature(ABC, Generic[C]):
    """One configured feature; `fit_*` see training batches only, `transform` any batch."""

    kind: ClassVar[str]

    def __init__(self, config: C, default_dim: int) -> None:
        self.config = config
        self.name: str = config.name  # type: ignore[attr-defined]
        self.side: str = config.side  # type: ignore[attr-defined]
        self.dim: int = config.dim or default_dim  # type: ignore[attr-defined]

    @property
    def source(self) -> str:
        return self.config.source  # type: ignore[attr-defined, no-any-return]

    def columns(self) -> list[str]:
        """Input columns this feature reads."""
        return [self.source]

    def raw_types(self, states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
        """The Arrow type each input column is read as where a request omits it (nulls, v2 metadata)."""
        return dict.fromkeys(self.columns(), pa.string())

    def fit_begin(self) -> None:
        """Reset fit accumulators."""

    def fit_update(self, table: pa.Table, features: dict[str, Feature[Any]]) -> None:
        """See one training batch."""

    def fit_end(self) -> FeatureState:
        """Finish fitting; kinds without fitted state return an empty state."""
        return FeatureState()

    @abstractmethod
    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> Output:
        """Arrays for every row of `table`; no Python loop per row."""

    @abstractmethod
    def field_spec(self, state: FeatureState) -> FieldSpec:
        """How the model sees this feature."""

    def table_spec(self, state: FeatureState) -> TableSpec | None:
        """The embedding table this feature owns (None: it has none or shares another's)."""
        return None


@dataclass
class TransformContext:
    """What a transform may consult besides its own config: other features and all fitted states."""

    features: dict[str, Feature[Any]]
    states: dict[str, FeatureState]


FEATURE_KINDS: Registry[type[Feature[Any]]] = Registry("feature kind")


def vocab_type(states: Mapping[str, FeatureState], name: str) -> pa.DataType:
    """The value type of feature `name`'s vocabulary (a dynamic id feature keeps only its type; else string)."""
    arrays = states[name].arrays
    vocab = arrays.get("vocab", arrays.get("dtype"))
    return vocab.type if vocab is not None else pa.string()


def list_or_text(sep: str | None, value_type: pa.DataType) -> pa.DataType:
    """A multi-valued column: a `sep`-joined string, or an Arrow list of `value_type`."""
    return pa.string() if sep else pa.list_(value_type)
