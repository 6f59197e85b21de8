"""Transformed features as flat Arrow columns and back: what a Spark transform writes and the trainer streams.

A Batch is tensors; a Parquet file (and Spark's `mapInArrow`) holds named columns. `ColumnLayout` is the
one mapping between them: an int64 column per id field (`id__NAME`), a float32 column per dense field
(`dense__NAME`), per bag a list<int64> of its L values (`bag__NAME`), its weights as list<float32>
(`bagw__NAME`) and each sequence attribute as list<int64> of L*G (`bagattr__NAME__ATTR`), then the
labels (`label__NAME`), the sample weight (`weight`) and pass-through columns (`extra__NAME`). The
layout is written beside the Parquet files (`LAYOUT_FILE`), so a reader rebuilds the very same Batch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from recforge.batch import Bag, Batch
from recforge.errors import DataError
from recforge.features.base import TransformReport
from recforge.schema import InputSchema

LAYOUT_FILE = "_recforge_layout.json"
REPORT_FILE = "_recforge_defaults.json"  # the transform's values mapped to defaults, per feature
FORMAT = "recforge.transformed/1"


@dataclass(frozen=True)
class BagLayout:
    """Shape of one bag: L values per row, whether it carries weights, G per sequence attribute."""

    length: int
    weights: bool = False
    attrs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnLayout:
    """Which columns hold which part of a Batch (see the module docstring for the names)."""

    ids: tuple[str, ...]
    dense: tuple[str, ...]
    bags: dict[str, BagLayout]
    labels: tuple[str, ...] = ()
    weight: bool = False
    extras: tuple[str, ...] = ()

    @classmethod
    def of(cls, schema: InputSchema, sample: Batch) -> ColumnLayout:
        """The layout of batches shaped like `sample` (a transform of any rows, even none: shapes come from state)."""
        bags = {
            name: BagLayout(
                int(bag.values.shape[1]), bag.weights is not None, {k: int(v.shape[2]) for k, v in bag.attrs.items()}
            )
            for name, bag in sample.bags.items()
        }
        return cls(
            ids=tuple(f.name for f in schema.id_fields),
            dense=tuple(f.name for f in schema.dense_fields),
            bags=bags,
            labels=tuple(sample.labels),
            weight=sample.weights is not None,
            extras=tuple(sample.extras),
        )

    def arrow_schema(self, extra_types: dict[str, pa.DataType] | None = None) -> pa.Schema:
        """The Arrow schema of `table(batch)`; pass-through columns take `extra_types` (default int64)."""
        fields = [pa.field(f"id__{n}", pa.int64()) for n in self.ids]
        fields += [pa.field(f"dense__{n}", pa.float32()) for n in self.dense]
        for name, bag in self.bags.items():
            fields.append(pa.field(f"bag__{name}", pa.list_(pa.int64())))
            if bag.weights:
                fields.append(pa.field(f"bagw__{name}", pa.list_(pa.float32())))
            fields += [pa.field(f"bagattr__{name}__{k}", pa.list_(pa.int64())) for k in bag.attrs]
        fields += [pa.field(f"label__{n}", pa.float32()) for n in self.labels]
        if self.weight:
            fields.append(pa.field("weight", pa.float32()))
        types = extra_types or {}
        fields += [pa.field(f"extra__{n}", types.get(n, pa.int64())) for n in self.extras]
        return pa.schema(fields)

    def table(self, batch: Batch, schema: pa.Schema | None = None) -> pa.Table:
        """`batch` as columns (`schema`: the arrow_schema to cast pass-through columns to)."""
        columns: dict[str, pa.Array] = {}
        ids, dense = batch.ids.numpy(), batch.dense.numpy()
        for j, name in enumerate(self.ids):
            columns[f"id__{name}"] = pa.array(np.ascontiguousarray(ids[:, j]))
        for j, name in enumerate(self.dense):
            columns[f"dense__{name}"] = pa.array(np.ascontiguousarray(dense[:, j]))
        for name, layout in self.bags.items():
            bag = batch.bags[name]
            columns[f"bag__{name}"] = _lists(bag.values.numpy())
            if layout.weights and bag.weights is not None:
                columns[f"bagw__{name}"] = _lists(bag.weights.numpy())
            for key in layout.attrs:
                columns[f"bagattr__{name}__{key}"] = _lists(bag.attrs[key].numpy())
        for name in self.labels:
            columns[f"label__{name}"] = pa.array(batch.labels[name].numpy())
        if self.weight and batch.weights is not None:
            columns["weight"] = pa.array(batch.weights.numpy())
        for name in self.extras:
            columns[f"extra__{name}"] = pa.array(batch.extras[name])
        table = pa.table(columns)
        return table.cast(schema) if schema is not None else table

    def batch(self, table: pa.Table | pa.RecordBatch, source: str) -> Batch:
        """The Batch `table(batch)` was made from (labels, weight and extras included)."""
        missing = [c for c in self.arrow_schema().names if c not in table.schema.names]
        if missing:
            raise DataError(
                f"{source}: transformed columns {missing} are missing; fix: re-run the Spark transform into it"
            )
        n = table.num_rows
        ids = np.empty((n, len(self.ids)), dtype=np.int64)
        for j, name in enumerate(self.ids):
            ids[:, j] = _numpy(table, f"id__{name}")
        dense = np.empty((n, len(self.dense)), dtype=np.float32)
        for j, name in enumerate(self.dense):
            dense[:, j] = _numpy(table, f"dense__{name}")
        bags = {}
        for name, layout in self.bags.items():
            values = _matrix(table, f"bag__{name}", (n, layout.length))
            weights = _matrix(table, f"bagw__{name}", (n, layout.length)) if layout.weights else None
            attrs = {k: _matrix(table, f"bagattr__{name}__{k}", (n, layout.length, g)) for k, g in layout.attrs.items()}
            bags[name] = Bag(
                torch.from_numpy(values),
                None if weights is None else torch.from_numpy(weights),
                {k: torch.from_numpy(v) for k, v in attrs.items()},
            )
        return Batch(
            ids=torch.from_numpy(ids),
            bags=bags,
            dense=torch.from_numpy(dense),
            labels={k: torch.from_numpy(_numpy(table, f"label__{k}")) for k in self.labels},
            weights=torch.from_numpy(_numpy(table, "weight")) if self.weight else None,
            extras={k: _numpy(table, f"extra__{k}") for k in self.extras},
        )

    def save(self, directory: str | Path) -> None:
        doc = {"format": FORMAT, **asdict(self)}
        (Path(directory) / LAYOUT_FILE).write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> ColumnLayout | None:
        """The layout of a transformed directory; None when `directory` holds no layout (raw samples)."""
        file = Path(directory) / LAYOUT_FILE
        if not file.is_file():
            return None
        doc: dict[str, Any] = json.loads(file.read_text())
        if doc.get("format") != FORMAT:
            raise DataError(f"{file}: format {doc.get('format')!r} is not {FORMAT!r}; re-run the Spark transform")
        return cls(
            ids=tuple(doc["ids"]),
            dense=tuple(doc["dense"]),
            bags={k: BagLayout(v["length"], v["weights"], dict(v["attrs"])) for k, v in doc["bags"].items()},
            labels=tuple(doc["labels"]),
            weight=bool(doc["weight"]),
            extras=tuple(doc["extras"]),
        )

    def check_matches(self, schema: InputSchema, directory: str) -> None:
        """A transformed directory must come from these features: same id, dense and bag fields, same order."""
        expected = (
            tuple(f.name for f in schema.id_fields),
            tuple(f.name for f in schema.dense_fields),
            tuple(f.name for f in schema.bag_fields),
        )
        if expected != (self.ids, self.dense, tuple(self.bags)):
            raise DataError(
                f"{directory}: its transformed columns were written by other features "
                f"(ids {list(self.ids)}, dense {list(self.dense)}, bags {list(self.bags)}); "
                "fix: transform the samples again with this run's fitted features"
            )


def _lists(matrix: np.ndarray) -> pa.Array:
    """Rows of a [B, ...] matrix as a list array of its flattened rows (Spark has no fixed-size lists)."""
    rows = matrix.shape[0]
    flat = np.ascontiguousarray(matrix).reshape(rows, -1)
    offsets = np.arange(rows + 1, dtype=np.int32) * flat.shape[1]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1)))


def _numpy(table: pa.Table | pa.RecordBatch, name: str) -> np.ndarray:
    return np.array(table.column(name).to_numpy(zero_copy_only=False))  # writable: torch wraps it


def _matrix(table: pa.Table | pa.RecordBatch, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A list column back to its [B, ...] matrix; every row must hold the layout's number of values."""
    column = table.column(name)
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = np.asarray(lists.flatten().to_numpy(zero_copy_only=False))
    if values.size != int(np.prod(shape)):
        raise DataError(f"column {name!r} holds {values.size:,} values, its layout {shape} needs {np.prod(shape):,}")
    return values.reshape(shape).copy()


def save_report(report: TransformReport, directory: str | Path) -> None:
    doc = {"rows": report.rows, "counts": [[f, w, n] for (f, w), n in sorted(report.counts.items())]}
    (Path(directory) / REPORT_FILE).write_text(json.dumps(doc))


def load_report(directory: str | Path, into: TransformReport) -> None:
    """Add the counts a transform saved beside its files to `into` (nothing when it saved none)."""
    file = Path(directory) / REPORT_FILE
    if file.is_file():
        doc = json.loads(file.read_text())
        into.rows += int(doc["rows"])
        for feature, what, n in doc["counts"]:
            into.add(feature, what, int(n))
