"""Predictor: score one user's candidate items with a bundle, exactly as `recforge predict` would, in about a ms.

Every feature is computed by the bundle's own `Feature.transform` (the code training and batch prediction
run), each on the fewest rows it needs:
- item-side features (they read item columns only) once per item in `set_items`, then gathered per request;
- user- and context-side features once per request, on a 1-row table, then broadcast to the n candidates;
- features that read both sides (a cross of a user and an item column) on the n joined rows.
A feature's output for a row depends on that row alone, so the assembled Batch equals, bit for bit, the
Batch `FeatureSet.transform` builds from the joined rows (tests/serving/test_predictor.py replays this).

Missing values get what a left join gives the batch path: a user or context column absent from the
request (or None) is null, and an item id that `set_items` did not see is a row whose item columns are all
null except the id. Id features map such values to row 0, numeric features to bucket 0 (or their `fill`),
tags and sequences to an empty bag; they are counted in `Predictor.report` and `unknown_items`.

A raw column belongs to the item side when an item-side feature reads it, else to the user side when a
user-side feature reads it, else to the context. `score` and `build_inputs` may be called from many
threads; `set_items` swaps the precomputed items in one assignment, so a request sees the old or the new.

A multi-task bundle scores every task at once: `score` returns the ranking score (the task scores weighed
by `rank_by`, the bundle's by default) and `score_tasks` each task's score.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from recforge.batch import Bag, Batch
from recforge.bundle import Bundle, load_bundle, rank_score
from recforge.bundle.bundle import apply_version_delta, read_bundle_manifest
from recforge.errors import BundleError, DataError, RecforgeError
from recforge.features import Feature, FeatureSet, TransformReport
from recforge.features.base import BagOutput, DenseOutput, IdOutput, Output, TransformContext
from recforge.schema import InputSchema
from recforge.serving.backends import Backend, make_backend

log = logging.getLogger(__name__)
Items: TypeAlias = Sequence[Any] | np.ndarray | pa.Array | pa.ChunkedArray
_SIDE_RANK = {"item": 0, "user": 1, "context": 2}
_V2_TYPES: list[tuple[Callable[[pa.DataType], bool], str]] = [
    (pa.types.is_boolean, "BOOL"),
    (pa.types.is_integer, "INT64"),
    (pa.types.is_floating, "FP64"),
]


# ------------------------------------------------------------------ which feature is computed where
def column_sides(features: FeatureSet) -> dict[str, str]:
    """Raw column -> side: item if any item-side feature reads it, else user if a user-side one does, else context."""
    sides: dict[str, str] = {}
    for feature in features.features.values():
        for column in feature.columns():
            if column not in sides or _SIDE_RANK[feature.side] < _SIDE_RANK[sides[column]]:
                sides[column] = feature.side
    return sides


def feature_columns(features: FeatureSet, name: str) -> list[str]:
    """Raw columns a feature's transform reads, following a cross's inputs."""
    feature = features.features[name]
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
    def of(cls, features: FeatureSet) -> Layout:
        sides = column_sides(features)
        groups: dict[str, list[str]] = {"request": [], "item": [], "joint": []}
        for name in features.features:
            on_item = {sides[c] == "item" for c in feature_columns(features, name)}
            groups["joint" if len(on_item) == 2 else "item" if on_item == {True} else "request"].append(name)
        return cls(sides, tuple(groups["request"]), tuple(groups["item"]), tuple(groups["joint"]))


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


# ------------------------------------------------------------------ model inputs of a group of features
@dataclass(frozen=True)
class Block:
    """Model inputs of one Slots group for R rows: id columns [R, k], dense columns [R, k'], bags [R, L]."""

    ids: np.ndarray
    dense: np.ndarray
    bags: dict[str, tuple[np.ndarray, np.ndarray | None]]

    @classmethod
    def of(cls, slots: Slots, outputs: Mapping[str, Output], rows: int) -> Block:
        ids = np.empty((rows, len(slots.ids)), dtype=np.int64)
        for j, name in enumerate(slots.ids):
            ids[:, j] = _expect(outputs[name], IdOutput, name).ids
        dense = np.empty((rows, len(slots.dense)), dtype=np.float32)
        for j, name in enumerate(slots.dense):
            dense[:, j] = _expect(outputs[name], DenseOutput, name).values
        bags = {}
        for name in slots.bags:
            out = _expect(outputs[name], BagOutput, name)
            bags[name] = (out.values, out.weights)
        return cls(ids, dense, bags)

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])

    def take(self, rows: np.ndarray) -> Block:
        """The given rows (a copy); an empty block gives zero rows that the caller overwrites."""
        if self.rows == 0:
            return self.zeros(len(rows))
        return Block(
            self.ids.take(rows, axis=0),
            self.dense.take(rows, axis=0),
            {k: (v.take(rows, axis=0), None if w is None else w.take(rows, axis=0)) for k, (v, w) in self.bags.items()},
        )

    def zeros(self, rows: int) -> Block:
        def like(a: np.ndarray) -> np.ndarray:
            return np.zeros((rows, *a.shape[1:]), dtype=a.dtype)

        return Block(
            like(self.ids),
            like(self.dense),
            {k: (like(v), None if w is None else like(w)) for k, (v, w) in self.bags.items()},
        )

    def put(self, where: np.ndarray, other: Block) -> None:
        """Overwrite the rows selected by the boolean mask `where` with `other`'s rows, in order."""
        self.ids[where] = other.ids
        self.dense[where] = other.dense
        for name, (values, weights) in self.bags.items():
            other_values, other_weights = other.bags[name]
            values[where] = other_values
            if weights is not None:
                weights[where] = 1.0 if other_weights is None else other_weights


def _expect(out: Output, kind: type[Any], name: str) -> Any:
    if not isinstance(out, kind):
        raise RecforgeError(f"feature {name!r} produced {type(out).__name__}, its schema field expects {kind.__name__}")
    return out


# ------------------------------------------------------------------ the catalog
class KeyIndex:
    """Item id -> row by binary search over the sorted ids: no hash table is rebuilt per request."""

    def __init__(self, keys: pa.Array, column: str) -> None:
        self.type = keys.type
        self.column = column
        self.integer = pa.types.is_integer(keys.type)
        if not (self.integer or pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)):
            raise DataError(
                f"set_items: item key column {column!r} has type {keys.type}; item ids must be integers or strings. "
                "fix: cast the ids in the item table (and in the training data) to int64 or string"
            )
        values = keys.to_numpy(zero_copy_only=False)
        values = values.astype(np.int64) if self.integer else values.astype(str)
        self.order = np.argsort(values, kind="stable")
        self.sorted = values[self.order]

    def coerce(self, items: Items) -> np.ndarray:
        """Request ids as the index's dtype (int64 or str), or a DataError naming the key column."""
        if isinstance(items, pa.Array | pa.ChunkedArray):
            items = items.to_numpy(zero_copy_only=False)
        values: np.ndarray = np.asarray(items)
        if values.size == 0:
            return np.empty(0, dtype=self.sorted.dtype)
        if values.ndim != 1:
            raise DataError(f"items must be a flat list of {self.column!r} values, got shape {values.shape}")
        if self.integer and values.dtype.kind in "iu":
            return values.astype(np.int64, copy=False)
        if not self.integer and values.dtype.kind in "iuUO" and not any(v is None for v in values.tolist()):
            return values.astype(str)
        raise DataError(
            f"items: the ids must be values of the item key column {self.column!r} ({self.type}); "
            f"got {values.dtype} values such as {values[:3].tolist()!r}"
        )

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row of each id in the catalog, -1 for an id the catalog does not have."""
        if len(self.sorted) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.sorted, keys), len(self.sorted) - 1)
        return np.where(self.sorted[pos] == keys, self.order[pos], -1)

    def arrow(self, keys: np.ndarray) -> pa.Array:
        return pa.array(keys).cast(self.type)


@dataclass(frozen=True)
class Catalog:
    """What `set_items` precomputes: item rows, their item-side model inputs, and the id index."""

    table: pa.Table  # item key + item columns, one row per distinct item
    block: Block  # row r = item-side model inputs of table row r
    index: KeyIndex


def distinct_items(table: pa.Table, key: str) -> pa.Table:
    """Rows with a non-null key, the first row of each key; dropped rows are logged, never silent."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):  # as `column()` in the features reads them
            table = table.set_column(i, field.name, table[field.name].cast(field.type.value_type))
    keys = table[key]
    if keys.null_count:
        log.warning("set_items: %d rows with a null %r dropped", keys.null_count, key)
        table = table.filter(pc.is_valid(keys))
    first = pc.index_in(pc.unique(table[key]), table[key])
    if len(first) < table.num_rows:
        repeats = table.num_rows - len(first)
        log.warning("set_items: %d rows repeat an earlier %r; the first row of each id is used", repeats, key)
        table = table.take(np.sort(first.to_numpy()))
    return table.combine_chunks()


# ------------------------------------------------------------------ raw column types (for nulls and v2 metadata)
def _vocab_type(features: FeatureSet, name: str) -> pa.DataType:
    arrays = features.states[name].arrays
    vocab = arrays.get("vocab", arrays.get("dtype"))  # a dynamic id feature keeps only its value type
    return vocab.type if vocab is not None else pa.string()


def _list_or_text(feature: Feature[Any], value_type: pa.DataType) -> pa.DataType:
    return pa.string() if feature.config.sep else pa.list_(value_type)


_COLUMN_TYPES: dict[str, Callable[[Feature[Any], FeatureSet], dict[str, pa.DataType]]] = {
    "id": lambda f, fs: {f.source: _vocab_type(fs, f.name)},
    "numeric": lambda f, fs: {f.source: pa.float64()},
    "tag": lambda f, fs: {f.source: _list_or_text(f, _vocab_type(fs, f.name))},
    "sequence": lambda f, fs: {f.source: _list_or_text(f, _vocab_type(fs, f.config.of))},
    "lookup": lambda f, fs: {f.config.map_column: pa.map_(pa.string(), pa.float64()), f.config.key: pa.string()},
}


def column_types(features: FeatureSet) -> dict[str, pa.DataType]:
    """The Arrow type each raw column is read as (a vocabulary's type, float64 for numbers, ...)."""
    out: dict[str, pa.DataType] = {}
    for feature in features.features.values():
        guess = _COLUMN_TYPES.get(feature.kind, lambda f, fs: dict.fromkeys(f.columns(), pa.string()))
        for column, kind in guess(feature, features).items():
            out.setdefault(column, kind)
    return out


# ------------------------------------------------------------------ the predictor
class Predictor:
    """A loaded bundle that ranks candidates for one user per call; embed it in any Python service."""

    def __init__(
        self,
        bundle: Bundle,
        backend: str = "torch",
        threads: int | None = None,
        rank_by: Mapping[str, float] | None = None,
    ) -> None:
        self._bundle = bundle
        self.tasks = bundle.tasks
        self.rank_by = dict(rank_by) if rank_by is not None else bundle.rank_by
        unknown = [t for t in self.rank_by if t not in self.tasks] if self.tasks else []
        if unknown:
            raise RecforgeError(f"rank_by: {unknown} are not tasks of {bundle.path}; its tasks are {list(self.tasks)}")
        self.features = bundle.features
        self.schema = self.features.schema()
        self.layout = Layout.of(self.features)
        self.item_key = self._item_key()
        self.user_key = self._key("user")
        self.backend: Backend = make_backend(backend, bundle, threads)
        self.backend_name, self.threads = backend, threads
        self.input_columns = self.features.input_columns()
        self.types = column_types(self.features)
        by_side = {s: [c for c in self.input_columns if self.layout.sides[c] == s] for s in _SIDE_RANK}
        self.item_columns = [self.item_key, *(c for c in by_side["item"] if c != self.item_key)]
        self.user_columns = by_side["user"]
        self.context_columns = by_side["context"]
        self._request_columns = [c for c in self.input_columns if self.layout.sides[c] != "item"]
        self._joint_columns = list(
            dict.fromkeys(c for name in self.layout.joint for c in feature_columns(self.features, name))
        )
        self._slots = {g: Slots.of(self.schema, getattr(self.layout, g)) for g in ("request", "item", "joint")}
        self._ctx = TransformContext(self.features.features, self.features.states)
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()
        self.report = TransformReport()
        self.unknown_items = 0

    @classmethod
    def load(
        cls,
        bundle_dir: str | Path,
        backend: str = "torch",
        threads: int | None = None,
        rank_by: Mapping[str, float] | None = None,
    ) -> Predictor:
        """Load a bundle directory; `threads` caps the backend's intra-op threads (1 keeps tail latency flat)."""
        return cls(load_bundle(bundle_dir), backend=backend, threads=threads, rank_by=rank_by)

    def after_delta(self, version_dir: str | Path) -> Predictor | None:
        """A new predictor for the delta version at `version_dir` when it descends from the version served here.

        The deltas from this version to it (one, or several when the follower skipped some) are applied
        to a copy of this model (the served one is never touched), so features, config and model code
        are not reloaded; None when `version_dir` is not a delta chain on top of this version.
        """
        path = Path(version_dir)
        chain: list[tuple[Path, dict[str, Any]]] = []
        while True:
            manifest = read_bundle_manifest(path)
            if manifest.get("kind") != "delta":
                return None
            chain.append((path, manifest))
            if manifest.get("parent") == self.version:
                break
            path = path.parent / str(manifest["parent"])
            if not path.is_dir():
                return None
        own = self._bundle
        bundle = Bundle(own.path, own.config, own.features, copy.deepcopy(own.model), dict(own.manifest))
        for step, manifest in reversed(chain):
            bundle = apply_version_delta(bundle, step, manifest)
        return Predictor(bundle, backend=self.backend_name, threads=self.threads, rank_by=self.rank_by)

    # -------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return str(self._bundle.manifest["name"])

    @property
    def version(self) -> str:
        return self._bundle.version

    @property
    def bundle(self) -> Path:
        return self._bundle.path

    @property
    def n_items(self) -> int:
        return 0 if self._catalog is None else self._catalog.table.num_rows

    def input_datatypes(self) -> dict[str, str]:
        """Open Inference Protocol (v2) datatype per input column: INT64, FP64, BOOL, else BYTES."""
        types = dict(self.types)
        if self._catalog is not None:
            types.update(zip(self._catalog.table.column_names, self._catalog.table.schema.types, strict=True))
        return {c: next((v2 for test, v2 in _V2_TYPES if test(types[c])), "BYTES") for c in self.input_columns}

    def _key(self, side: str) -> str | None:
        """The column of the first id feature on `side` (the id a request names users or items by)."""
        return self.features.entity_key(side)

    def _item_key(self) -> str:
        key = self._key("item")
        if key is None:
            raise BundleError(
                f"{self.bundle}: the bundle has no item-side id feature, so the predictor cannot tell which column "
                "names an item. fix: add e.g. {name: item_id, kind: id, side: item} to `features:` and retrain"
            )
        return key

    # -------------------------------------------------------------- items
    def set_items(self, table: pa.Table) -> None:
        """Transform the item-side features of every item once; requests then gather rows instead of transforming.

        `table` holds the item key and the item-side columns (extra columns are ignored), as a feature store does.
        """
        missing = [c for c in self.item_columns if c not in table.column_names]
        if missing:
            raise DataError(
                f"set_items: the item table has no column(s) {missing}, which item-side features read "
                f"(columns: {table.column_names}). fix: give the feature store's item table these columns"
            )
        table = distinct_items(table.select(self.item_columns), self.item_key)
        report = TransformReport()
        outputs = self._transform(self.layout.item, table, report, "set_items")
        if report.counts:
            log.info("set_items: item values mapped to defaults: %s", report.summary())
        block = Block.of(self._slots["item"], outputs, table.num_rows)
        self._catalog = Catalog(table, block, KeyIndex(table[self.item_key].combine_chunks(), self.item_key))

    def _catalog_or_fail(self) -> Catalog:
        if self._catalog is None:
            raise RecforgeError("the predictor has no items yet: call set_items(item_table) before scoring")
        return self._catalog

    # -------------------------------------------------------------- scoring
    def score(self, user: Mapping[str, Any], items: Items, context: Mapping[str, Any] | None = None) -> np.ndarray:
        """Click probabilities (float64) of `items` for `user`, aligned with `items`; [] gives an empty array.

        A multi-task bundle gives its ranking score (task scores weighed by `rank_by`).
        """
        return self.rank(self.score_tasks(user, items, context))

    def score_tasks(
        self, user: Mapping[str, Any], items: Items, context: Mapping[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Each task's scores of `items` (a single-task bundle: {"score": probabilities})."""
        if len(items) == 0:
            return {name: np.empty(0, dtype=np.float64) for name in self.tasks or ("score",)}
        return self._by_task(self.backend.probabilities(self.build_inputs(user, items, context)))

    def score_table(self, table: pa.Table) -> np.ndarray:
        """Click probabilities of rows that carry every input column (what /v2 infer and `recforge predict` send)."""
        return self.rank(self.score_table_tasks(table))

    def score_table_tasks(self, table: pa.Table) -> dict[str, np.ndarray]:
        """Each task's scores of rows that carry every input column (a single-task bundle: {"score": ...})."""
        report = TransformReport()
        batch = self.features.transform(table, labels=False, report=report, source="score_table")
        self._count(report, 0)
        return self._by_task(self.backend.probabilities(batch))

    def rank(self, task_scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ranking score from `score_tasks` output: the `rank_by` weighted sum (or the single score)."""
        if not self.tasks:
            return task_scores["score"]
        return rank_score(np.stack([task_scores[t] for t in self.tasks], axis=1), self.tasks, self.rank_by)

    def _by_task(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        if not self.tasks:
            return {"score": scores}
        return {task: scores[:, t] for t, task in enumerate(self.tasks)}

    def build_inputs(self, user: Mapping[str, Any], items: Items, context: Mapping[str, Any] | None = None) -> Batch:
        """The model Batch for one request: equal to FeatureSet.transform of the joined rows, built without joining."""
        catalog = self._catalog_or_fail()
        keys = catalog.index.coerce(items)
        rows = catalog.index.rows(keys)
        report = TransformReport()
        request_rows = self._request_table(user, context or {})
        request = self._block("request", request_rows, report, "request")
        item_block = catalog.block.take(np.maximum(rows, 0))
        unknown = rows < 0
        n_unknown = int(unknown.sum())
        if n_unknown:
            item_block.put(unknown, self._block("item", self._id_only_rows(catalog, keys[unknown]), report, "items"))
        joint = None
        if self.layout.joint:
            joined = self._joined_rows(catalog, request_rows, keys, rows)
            joint = self._block("joint", joined, report, "request x items")
        report.rows += len(keys)
        self._count(report, n_unknown)
        return self._assemble(len(keys), request, item_block, joint)

    # -------------------------------------------------------------- steps of build_inputs
    def _request_table(self, user: Mapping[str, Any], context: Mapping[str, Any]) -> pa.Table:
        """One row of user and context columns; a column given in neither mapping (or None) is null."""
        arrays = []
        for column in self._request_columns:
            first, second = (context, user) if self.layout.sides[column] == "context" else (user, context)
            arrays.append(self._one_value(column, first.get(column, second.get(column))))
        return pa.Table.from_arrays(arrays, names=self._request_columns)

    def _one_value(self, column: str, value: Any) -> pa.Array:
        if value is None:
            return pa.nulls(1, self.types[column])
        try:
            return pa.array([value])
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise DataError(
                f"request: column {column!r}: {value!r} ({type(value).__name__}) cannot be read as a value of "
                f"type {self.types[column]} ({exc})"
            ) from None

    def _id_only_rows(self, catalog: Catalog, keys: np.ndarray) -> pa.Table:
        """Unknown items as the batch path sees them after a left join: the id, every other item column null."""
        schema = catalog.table.schema
        arrays = [catalog.index.arrow(keys) if f.name == self.item_key else pa.nulls(len(keys), f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    def _joined_rows(self, catalog: Catalog, request: pa.Table, keys: np.ndarray, rows: np.ndarray) -> pa.Table:
        """The n joined rows, only the columns that the cross-side features read."""
        n = len(keys)
        item_rows = pa.array(rows, mask=rows < 0)  # a null index takes a null: unknown items
        user_rows = pa.array(np.zeros(n, dtype=np.int64))
        arrays = []
        for column in self._joint_columns:
            if column == self.item_key:
                arrays.append(catalog.index.arrow(keys))
            elif self.layout.sides[column] == "item":
                arrays.append(catalog.table[column].take(item_rows))
            else:
                arrays.append(request[column].take(user_rows))
        return pa.Table.from_arrays(arrays, names=self._joint_columns)

    def _block(self, group: str, table: pa.Table, report: TransformReport, source: str) -> Block:
        outputs = self._transform(getattr(self.layout, group), table, report, source)
        return Block.of(self._slots[group], outputs, table.num_rows)

    def _transform(
        self, names: Sequence[str], table: pa.Table, report: TransformReport, source: str
    ) -> dict[str, Output]:
        """The named features' own transforms (the FeatureSet code), with errors that name the input."""
        outputs: dict[str, Output] = {}
        for name in names:
            try:
                outputs[name] = self.features.features[name].transform(table, self._ctx, report)
            except DataError as exc:
                raise DataError(f"{source}: {exc}") from None
            except (pa.ArrowException, TypeError, ValueError) as exc:
                columns = feature_columns(self.features, name)
                raise DataError(f"{source}: feature {name!r} cannot read column(s) {columns}: {exc}") from None
        return outputs

    def _assemble(self, n: int, request: Block, items: Block, joint: Block | None) -> Batch:
        """Place each group's columns; request values broadcast (bags as expanded views, not copies)."""
        ids = np.empty((n, len(self.schema.id_fields)), dtype=np.int64)
        dense = np.empty((n, len(self.schema.dense_fields)), dtype=np.float32)
        bags: dict[str, Bag] = {}
        for group, block in (("request", request), ("item", items), ("joint", joint)):
            if block is None:
                continue
            slots = self._slots[group]
            ids[:, slots.id_cols] = block.ids
            dense[:, slots.dense_cols] = block.dense
            for name, (values, weights) in block.bags.items():
                bags[name] = _bag(values, weights, n)
        ordered = {f.name: bags[f.name] for f in self.schema.bag_fields}
        return Batch(ids=torch.from_numpy(ids), bags=ordered, dense=torch.from_numpy(dense))

    def _count(self, report: TransformReport, unknown: int) -> None:
        with self._lock:
            self.report.counts.update(report.counts)
            self.report.rows += report.rows
            self.unknown_items += unknown


def _bag(values: np.ndarray, weights: np.ndarray | None, n: int) -> Bag:
    """A Bag of n rows; a 1-row (request-side) bag becomes an expanded view."""

    def tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return t.expand(n, -1) if a.shape[0] == 1 and n != 1 else t

    return Bag(tensor(values), None if weights is None else tensor(weights))


__all__ = ["Block", "Catalog", "KeyIndex", "Layout", "Predictor", "column_sides", "feature_columns"]
