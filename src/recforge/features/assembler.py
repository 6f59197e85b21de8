"""The one batch assembler: feature outputs -> model Batch, for training, batch scoring and serving alike.

Features are transformed in groups, each on the rows it needs, into a `Block` (id columns, dense columns
and bags with every field a feature emits: values, weights, sequence attributes). `Assembler.batch`
places the blocks of n rows side by side; a 1-row block (a request's user and context features) is
broadcast. `FeatureSet.transform` assembles one group (every feature on the given rows);
`features.request.RequestAssembler` three (request, item, joint), so both paths build the Batch here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import torch

from recforge.batch import Bag, Batch
from recforge.errors import DataError, RecforgeError
from recforge.features.base import (
    BagOutput,
    DenseOutput,
    Feature,
    FeatureState,
    IdOutput,
    Output,
    TransformContext,
    TransformReport,
)
from recforge.features.layout import feature_columns
from recforge.schema import InputSchema

T = TypeVar("T")


@dataclass(frozen=True)
class Slots:
    """Where some features land in the model Batch: columns of `ids`, columns of `dense`, and bag names."""

    ids: tuple[str, ...]
    id_cols: np.ndarray
    dense: tuple[str, ...]
    dense_cols: np.ndarray
    bags: tuple[str, ...]

    @classmethod
    def of(cls, schema: InputSchema, names: Sequence[str]) -> Slots:
        wanted = set(names)
        ids = [(j, f.name) for j, f in enumerate(schema.id_fields) if f.name in wanted]
        dense = [(j, f.name) for j, f in enumerate(schema.dense_fields) if f.name in wanted]
        return cls(
            ids=tuple(n for _, n in ids),
            id_cols=np.array([j for j, _ in ids], dtype=np.int64),
            dense=tuple(n for _, n in dense),
            dense_cols=np.array([j for j, _ in dense], dtype=np.int64),
            bags=tuple(f.name for f in schema.bag_fields if f.name in wanted),
        )


def map_bag(into: Callable[..., T], fn: Callable[..., Any], bag: BagOutput, *others: BagOutput) -> T:
    """`into(...)` of `fn` applied to every array of a bag (values, weights, each attribute), zipped with the same
    arrays of `others`: the one place that lists a bag's fields, so none is dropped on the way to the Batch."""
    weights = None if bag.weights is None else fn(bag.weights, *(o.weights for o in others))
    attrs = {k: fn(v, *(o.attrs[k] for o in others)) for k, v in bag.attrs.items()}
    return into(fn(bag.values, *(o.values for o in others)), weights, attrs)


@dataclass(frozen=True)
class Block:
    """Model inputs of one Slots group for R rows: id columns [R, k], dense columns [R, k'], bags [R, L, ...]."""

    ids: np.ndarray
    dense: np.ndarray
    bags: dict[str, BagOutput]

    @classmethod
    def of(cls, slots: Slots, outputs: Mapping[str, Output], rows: int) -> Block:
        ids = np.empty((rows, len(slots.ids)), dtype=np.int64)
        for j, name in enumerate(slots.ids):
            ids[:, j] = _expect(outputs[name], IdOutput, name).ids
        dense = np.empty((rows, len(slots.dense)), dtype=np.float32)
        for j, name in enumerate(slots.dense):
            dense[:, j] = _expect(outputs[name], DenseOutput, name).values
        return cls(ids, dense, {name: _expect(outputs[name], BagOutput, name) for name in slots.bags})

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])

    def take(self, rows: np.ndarray) -> Block:
        """The given rows (a copy); an empty block gives zero rows that the caller overwrites."""
        if self.rows == 0:
            return self.zeros(len(rows))

        def take(a: np.ndarray) -> np.ndarray:
            return a.take(rows, axis=0)

        return Block(take(self.ids), take(self.dense), {k: map_bag(BagOutput, take, b) for k, b in self.bags.items()})

    def zeros(self, rows: int) -> Block:
        def like(a: np.ndarray) -> np.ndarray:
            return np.zeros((rows, *a.shape[1:]), dtype=a.dtype)

        return Block(like(self.ids), like(self.dense), {k: map_bag(BagOutput, like, b) for k, b in self.bags.items()})

    def put(self, where: np.ndarray, other: Block) -> None:
        """Overwrite the rows selected by the boolean mask `where` with `other`'s rows, in order."""

        def put(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            mine[where] = theirs
            return mine

        put(self.ids, other.ids)
        put(self.dense, other.dense)
        for name, bag in self.bags.items():
            map_bag(BagOutput, put, bag, other.bags[name])


def _expect(out: Output, kind: type[Any], name: str) -> Any:
    if not isinstance(out, kind):
        raise RecforgeError(f"feature {name!r} produced {type(out).__name__}, its schema field expects {kind.__name__}")
    return out


class Assembler:
    """Named groups of features -> Blocks -> one Batch; built once per fitted FeatureSet (or model version)."""

    def __init__(
        self,
        features: Mapping[str, Feature[Any]],
        states: dict[str, FeatureState],
        schema: InputSchema,
        groups: Mapping[str, Sequence[str]],
    ) -> None:
        self.features = features
        self.schema = schema
        self.groups = {g: tuple(names) for g, names in groups.items()}
        self.slots = {g: Slots.of(schema, names) for g, names in self.groups.items()}
        self._ctx = TransformContext(dict(features), states)
        self._bag_order = tuple(f.name for f in schema.bag_fields)

    def block(self, group: str, table: pa.Table, report: TransformReport, source: str) -> Block:
        """The group's features transformed on every row of `table` (their own code, errors naming the input)."""
        outputs: dict[str, Output] = {}
        for name in self.groups[group]:
            with reading_errors(self.features, name, source):
                outputs[name] = self.features[name].transform(table, self._ctx, report)
        return Block.of(self.slots[group], outputs, table.num_rows)

    def batch(self, n: int, blocks: Mapping[str, Block]) -> Batch:
        """Each group's block in its slots; a 1-row block is broadcast to the n rows (bags as expanded views)."""
        ids = np.empty((n, len(self.schema.id_fields)), dtype=np.int64)
        dense = np.empty((n, len(self.schema.dense_fields)), dtype=np.float32)
        bags: dict[str, Bag] = {}
        for group, block in blocks.items():
            slots = self.slots[group]
            ids[:, slots.id_cols] = block.ids
            dense[:, slots.dense_cols] = block.dense
            for name, bag in block.bags.items():
                bags[name] = map_bag(Bag, _tensor_of(n), bag)
        return Batch(
            ids=torch.from_numpy(ids),
            bags={name: bags[name] for name in self._bag_order},
            dense=torch.from_numpy(dense),
        )


@contextmanager
def reading_errors(features: Mapping[str, Feature[Any]], name: str, source: str) -> Iterator[None]:
    """Errors of feature `name` reading its columns of `source` as one DataError naming the input and the columns
    (every path that reads raw columns for a feature raises the same message)."""
    try:
        yield
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    except (pa.ArrowException, TypeError, ValueError) as exc:
        columns = feature_columns(features, name)
        raise DataError(f"{source}: feature {name!r} cannot read column(s) {columns}: {exc}") from None


def _tensor_of(n: int) -> Callable[[np.ndarray], torch.Tensor]:
    """NumPy -> tensor without a copy; a 1-row array of a group computed once becomes an expanded view of n rows."""

    def tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return t.expand(n, *a.shape[1:]) if a.shape[0] == 1 and n != 1 else t

    return tensor
