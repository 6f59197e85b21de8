"""FeatureSet: fit every configured feature on training batches and turn any Arrow batch into a Batch.

This is the one feature implementation: training and batch prediction call `FeatureSet.transform`, the
online service `features.request.RequestAssembler`; both run the features' own transforms and build the
Batch through `features.assembler.Assembler`, so a request becomes the same tensors a training step sees.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pydantic import TypeAdapter

from recforge.batch import Batch
from recforge.config.features import FeatureConfig
from recforge.config.schema import PipelineConfig
from recforge.config.tasks import pipeline_tasks, task_labels
from recforge.errors import BundleError, DataError, FeatureError, RecforgeError
from recforge.features.assembler import Assembler
from recforge.features.base import FEATURE_KINDS, Feature, FeatureState, TransformReport
from recforge.paths import inside
from recforge.schema import FieldSpec, InputSchema, TableSpec

log = logging.getLogger(__name__)
STATE_FILE = "features.json"
FORMAT_VERSION = 1
_CONFIG_LIST = TypeAdapter(list[FeatureConfig])


class FeatureSet:
    """Configured features, their fitted states, and the transform from Arrow rows to a Batch."""

    def __init__(
        self,
        configs: list[Any],
        *,
        default_dim: int = 16,
        labels: tuple[str, ...] = ("label",),
        weight: str | None = None,
        targets: tuple[str, ...] = (),
    ) -> None:
        self.configs = list(configs)
        self.default_dim = default_dim
        self.labels = labels
        self.targets = targets  # labels of regression tasks: any number, not only 0/1
        self.weight = weight
        self.features: dict[str, Feature[Any]] = {}
        for cfg in self.configs:
            self.features[cfg.name] = FEATURE_KINDS.get(cfg.kind, yaml_path=f"features ({cfg.name}).kind")(
                cfg, default_dim
            )
        for feature in self.features.values():
            if feature.kind == "sequence":
                of = self.features[feature.config.of]
                storage = getattr(of.config, "storage", None)
                if storage is not None and storage.kind != "static":  # raw-key tables: no row per vocab value
                    raise FeatureError(
                        feature.name,
                        f"sequences of {of.name!r} are not supported while its storage is {storage.kind!r}",
                        fix=f"use static storage for {of.name!r} (or drop the sequence)",
                    )
                feature.dim = of.dim
                self._check_attrs(feature)
        self.states: dict[str, FeatureState] = {}

    def _check_attrs(self, feature: Feature[Any]) -> None:
        """A sequence's attributes are static id/tag features on its `of` feature's side."""
        of = self.features[feature.config.of]
        for name in feature.config.attrs:
            attr = self.features.get(name)
            storage = getattr(attr.config, "storage", None) if attr is not None else None
            if attr is None or attr.kind not in ("id", "tag") or (storage is not None and storage.kind != "static"):
                raise FeatureError(
                    feature.name,
                    f"attrs: {name!r} must name an id or tag feature with static storage",
                    fix=f"use features on the {of.side} side, e.g. the item's category",
                )
            if attr.side != of.side:
                raise FeatureError(
                    feature.name,
                    f"attrs: {name!r} is a {attr.side} feature but the elements are {of.name!r} ({of.side})",
                    fix=f"list only {of.side}-side features that describe {of.name!r}",
                )

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> FeatureSet:
        tasks = pipeline_tasks(cfg)
        return cls(
            cfg.features,
            default_dim=cfg.embedding_dim,
            labels=task_labels(cfg),
            weight=cfg.data.weight,
            targets=tuple(t.label for t in tasks if t.loss == "mse"),
        )

    # ------------------------------------------------------------------ fit
    def input_columns(self) -> list[str]:
        """Raw columns the features read (labels and weight not included)."""
        seen: dict[str, None] = {}
        for feature in self.features.values():
            for name in feature.columns():
                seen[name] = None
        return list(seen)

    def entity_key(self, side: str) -> str | None:
        """The column of the first id feature on `side`: the id users (or items) are named by."""
        return next((f.source for f in self.features.values() if f.kind == "id" and f.side == side), None)

    def fit(self, batches: Iterable[pa.Table | pa.RecordBatch]) -> FeatureSet:
        """One streaming pass over the training data; only training data may be passed here."""
        for feature in self.features.values():
            feature.fit_begin()
        rows = 0
        for batch in batches:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            rows += table.num_rows
            for feature in self.features.values():
                feature.fit_update(table, self.features)
        if rows == 0:
            raise DataError("the training data has no rows to fit features on; check data.train and the filters")
        self.states = {name: feature.fit_end() for name, feature in self.features.items()}
        log.info("fitted %d features on %s rows", len(self.features), f"{rows:,}")
        return self

    @property
    def fitted(self) -> bool:
        return bool(self.states)

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RecforgeError("FeatureSet is not fitted: call fit() on training data or load() a fitted one")

    # ------------------------------------------------------------ schema
    def schema(self) -> InputSchema:
        """What a model sees: fields grouped id / bag / dense, and one table per owning feature."""
        self._require_fitted()
        fields: list[FieldSpec] = []
        tables: list[TableSpec] = []
        for name, feature in self.features.items():
            fields.append(feature.field_spec(self.states[name]))
            table = feature.table_spec(self.states[name])
            if table is not None:
                tables.append(table)
        order = {"id": 0, "bag": 1, "dense": 2}
        fields.sort(key=lambda f: order[f.kind])
        return InputSchema(tuple(fields), tuple(tables), self.labels)

    # --------------------------------------------------------- transform
    def transform(
        self,
        table: pa.Table | pa.RecordBatch,
        *,
        report: TransformReport | None = None,
        labels: bool = True,
        extras: Iterable[str] = (),
        source: str = "input",
    ) -> Batch:
        """Tensors for every row of `table`; values the state does not know map to row 0 and are counted."""
        self._require_fitted()
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        report = report if report is not None else TransformReport()
        report.rows += table.num_rows
        assembler = Assembler(self.features, self.states, self.schema(), {"all": tuple(self.features)})
        batch = assembler.batch(table.num_rows, {"all": assembler.block("all", table, report, source)})
        return replace(
            batch,
            labels=self.labels_of(table, source) if labels else {},
            weights=self._weights(table, source) if labels and self.weight else None,
            extras={name: _extra_numpy(table, name, source) for name in extras},
        )

    def labels_of(self, table: pa.Table, source: str) -> dict[str, torch.Tensor]:
        """Each label column of `table` as float32, checked (0/1, or finite for regression targets)."""
        out = {}
        for name in self.labels:
            values = _column_numpy(table, name, source)
            if values.dtype == object or not np.issubdtype(values.dtype, np.number):
                raise DataError(f"{source}: label column {name!r} must be numeric 0/1, got {values.dtype}")
            bad = ~np.isfinite(values) if name in self.targets else (values != 0) & (values != 1)  # isin: 40x slower
            if bad.any() and name in self.targets:
                row = int(np.flatnonzero(bad)[0])
                raise DataError(f"{source}: regression label {name!r} row {row} is {values[row].item()!r}, not finite")
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{source}: label column {name!r} must hold only 0 and 1; row {row} has {values[row].item()!r} "
                    f"({int(bad.sum()):,} bad rows). Fix: give a `data.label_rule` that makes 0/1 labels."
                )
            out[name] = torch.from_numpy(values.astype(np.float32))
        return out

    def _weights(self, table: pa.Table, source: str) -> torch.Tensor:
        values = _column_numpy(table, str(self.weight), source).astype(np.float32)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: weight column {self.weight!r} row {row} is {values[row].item()!r}; weights must be >= 0"
            )
        return torch.from_numpy(values)

    # ------------------------------------------------------------ save/load
    def save(self, directory: str | Path) -> None:
        """features.json (configs + JSON params) and one Arrow IPC file per fitted array; no pickle."""
        self._require_fitted()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, dict[str, str]] = {}
        for name, state in self.states.items():
            for i, (key, array) in enumerate(state.arrays.items()):
                file = f"feature.{name}.{i}.arrow"  # keys may hold data column names: the file name must not
                with (
                    pa.OSFile(str(inside(path, file, where=f"feature {name!r} state array file")), "wb") as sink,
                    pa.ipc.new_file(sink, pa.schema([("v", array.type)])) as writer,
                ):
                    writer.write_table(pa.table({"v": array}))
                arrays.setdefault(name, {})[key] = file
        doc = {
            "format_version": FORMAT_VERSION,
            "default_dim": self.default_dim,
            "labels": list(self.labels),
            "targets": list(self.targets),
            "weight": self.weight,
            "features": [c.model_dump(mode="json") for c in self.configs],
            "states": {name: s.params for name, s in self.states.items()},
            "arrays": arrays,
        }
        (path / STATE_FILE).write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> FeatureSet:
        path = Path(directory)
        file = path / STATE_FILE
        if not file.exists():
            raise BundleError(f"{file} is missing: not a recforge bundle (or an incomplete one)")
        doc = json.loads(file.read_text())
        if doc.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{file}: format_version {doc.get('format_version')} is not {FORMAT_VERSION}")
        fs = cls(
            _CONFIG_LIST.validate_python(doc["features"]),
            default_dim=doc["default_dim"],
            labels=tuple(doc["labels"]),
            weight=doc["weight"],
            targets=tuple(doc.get("targets", ())),
        )
        for name, params in doc["states"].items():
            arrays = {}
            for key, array_file in doc["arrays"].get(name, {}).items():
                where = f"{file}: arrays.{name}.{key}"
                with pa.OSFile(str(inside(path, array_file, where=where, fix=_ARRAY_FIX)), "rb") as source:
                    arrays[key] = pa.ipc.open_file(source).read_all().column("v").combine_chunks()
            fs.states[name] = FeatureState(params=params, arrays=arrays)
        return fs


_ARRAY_FIX = "array files lie in the features directory itself (feature.NAME.N.arrow); re-export the bundle"


def _column_numpy(table: pa.Table, name: str, source: str) -> np.ndarray:
    if name not in table.column_names:
        raise DataError(f"{source}: column {name!r} is missing; columns: {', '.join(table.column_names)}")
    col = table.column(name)
    if col.null_count:
        row = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{source}: column {name!r} has {col.null_count:,} nulls (first at row {row})")
    return np.asarray(col.to_numpy())


def _extra_numpy(table: pa.Table, name: str, source: str) -> np.ndarray:
    """A pass-through column (group key, kept id) as NumPy; nulls stay None/NaN."""
    if name not in table.column_names:
        raise DataError(f"{source}: column {name!r} is missing; columns: {', '.join(table.column_names)}")
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))
