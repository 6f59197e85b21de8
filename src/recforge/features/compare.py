"""Model inputs per feature and row, and which rows two of them disagree on: the train/serve consistency check.

`field_rows` turns a Batch into plain values per feature (an id, a float, or a bag's ids with its weights
and attributes, padding trimmed), so an online Batch can be logged as JSON and compared later with the
Batch `FeatureSet.transform` builds from the same raw rows. Values compare bit for bit: a float32 input
survives the JSON round trip exactly, and NaN equals NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from recforge.batch import Bag, Batch
from recforge.schema import InputSchema

Rows = list[Any]  # one JSON-ready value per batch row


def field_rows(batch: Batch, schema: InputSchema | None = None) -> dict[str, Rows]:
    """Feature name -> its value in each row; without a schema, id and dense columns are named `ids[j]`, `dense[j]`."""
    id_names = [f.name for f in schema.id_fields] if schema else [f"ids[{j}]" for j in range(batch.ids.shape[1])]
    dense_names = (
        [f.name for f in schema.dense_fields] if schema else [f"dense[{j}]" for j in range(batch.dense.shape[1])]
    )
    out: dict[str, Rows] = {}
    ids = batch.ids.numpy()
    for j, name in enumerate(id_names):
        out[name] = ids[:, j].tolist()
    dense = batch.dense.numpy()
    for j, name in enumerate(dense_names):
        out[name] = dense[:, j].astype(np.float64).tolist()
    for name, bag in batch.bags.items():
        out[name] = _bag_rows(bag)
    return out


def _bag_rows(bag: Bag) -> Rows:
    """A bag row as its ids up to the last non-padding one, or a dict when it carries weights or attributes."""
    values = bag.values.numpy()
    nonzero = values != 0
    lengths = np.where(nonzero.any(axis=1), values.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
    rows: Rows = [values[r, :n].tolist() for r, n in enumerate(lengths.tolist())]
    if bag.weights is None and not bag.attrs:
        return rows
    weights = None if bag.weights is None else _numpy(bag.weights).astype(np.float64)
    attrs = {k: _numpy(v) for k, v in bag.attrs.items()}
    out: Rows = []
    for r, n in enumerate(lengths.tolist()):
        row: dict[str, Any] = {"ids": rows[r]}
        if weights is not None:
            row["weights"] = weights[r, :n].tolist()
        if attrs:
            row["attrs"] = {k: a[r, :n].tolist() for k, a in sorted(attrs.items())}
        out.append(row)
    return out


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.contiguous().numpy()


def same_value(a: Any, b: Any) -> bool:
    """Equality of two row values where NaN equals NaN (a missing numeric input may be NaN on both paths)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return bool(a == b)


def mismatched_rows(online: Mapping[str, Sequence[Any]], offline: Mapping[str, Sequence[Any]]) -> dict[str, list[int]]:
    """Per feature, the rows whose values differ; a feature on one side only mismatches in every row."""
    out: dict[str, list[int]] = {}
    for name in dict.fromkeys([*online, *offline]):
        a, b = online.get(name), offline.get(name)
        if a is None or b is None or len(a) != len(b):
            out[name] = list(range(max(len(a or ()), len(b or ()))))
            continue
        rows = [r for r, (x, y) in enumerate(zip(a, b, strict=True)) if x != y and not same_value(x, y)]
        if rows:
            out[name] = rows
    return out


def batch_mismatches(online: Batch, offline: Batch, schema: InputSchema | None = None) -> dict[str, list[int]]:
    """Rows per feature where two Batches of the same rows differ ({} when they agree bit for bit)."""
    return mismatched_rows(field_rows(online, schema), field_rows(offline, schema))


__all__ = ["batch_mismatches", "field_rows", "mismatched_rows", "same_value"]
