"""Predictor: score one user's candidate items with a bundle, exactly as `recforge predict` would, in about a ms.

The model inputs of a request are built by `features.request.RequestAssembler`, the same assembler and
feature transforms that `FeatureSet.transform` (training, batch prediction) uses: item-side features once per
item in `set_items`, user- and context-side features once per request, features that read both sides on the
joined rows. The assembled Batch equals, bit for bit, the Batch of the joined rows (tests/serving replay it).
What lives here is serving's own: loading a bundle and its backend, the item catalog (id -> row), turning a
request's values into Arrow, and the per-task outputs.

Missing values get what a left join gives the batch path: a user or context column absent from the
request (or None) is null, and an item id that `set_items` did not see is a row whose item columns are all
null except the id. Id features map such values to row 0, numeric features to bucket 0 (or their `fill`),
tags and sequences to an empty bag; they are counted in `Predictor.report` and `unknown_items`.

`score` and `build_inputs` may be called from many threads; `set_items` swaps the precomputed items in one
assignment, so a request sees the old or the new.

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

from recforge.batch import Batch
from recforge.bundle import Bundle, load_bundle, rank_score
from recforge.bundle.bundle import apply_version_delta, delta_parents, read_bundle_manifest
from recforge.errors import BundleError, DataError, RecforgeError
from recforge.features import TransformReport
from recforge.features.layout import SIDE_RANK, column_types
from recforge.features.request import ItemCache, RequestAssembler
from recforge.ids import IdIndex, first_rows, is_text
from recforge.serving.backends import Backend, make_backend

log = logging.getLogger(__name__)
Items: TypeAlias = Sequence[Any] | np.ndarray | pa.Array | pa.ChunkedArray
_V2_TYPES: list[tuple[Callable[[pa.DataType], bool], str]] = [
    (pa.types.is_boolean, "BOOL"),
    (pa.types.is_integer, "INT64"),
    (pa.types.is_floating, "FP64"),
]


# ------------------------------------------------------------------ the catalog
def item_index(keys: pa.Array, column: str) -> IdIndex:
    """The catalog's id -> row index; item ids must be integers or strings (what requests can name)."""
    if not (pa.types.is_integer(keys.type) or is_text(keys.type)):
        raise DataError(
            f"set_items: item key column {column!r} has type {keys.type}; item ids must be integers or strings. "
            "fix: cast the ids in the item table (and in the training data) to int64 or string"
        )
    return IdIndex(keys)


def request_ids(items: Items, index: IdIndex, column: str) -> np.ndarray:
    """Request ids as int64 (integer catalog) or str values, or a DataError naming the key column."""
    if isinstance(items, pa.Array | pa.ChunkedArray):
        items = items.to_numpy(zero_copy_only=False)
    values: np.ndarray = np.asarray(items)
    if values.size == 0:
        return np.empty(0, dtype=np.int64 if index.integer else str)
    if values.ndim != 1:
        raise DataError(f"items must be a flat list of {column!r} values, got shape {values.shape}")
    if index.integer and values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    if not index.integer and values.dtype.kind in "iuUO" and not any(v is None for v in values.tolist()):
        return values.astype(str)
    raise DataError(
        f"items: the ids must be values of the item key column {column!r} ({index.type}); "
        f"got {values.dtype} values such as {values[:3].tolist()!r}"
    )


@dataclass(frozen=True)
class Catalog:
    """What `set_items` precomputes: the distinct items' item-side model inputs, and the id -> row index."""

    items: ItemCache
    index: IdIndex  # item id -> row of items.table


def distinct_items(table: pa.Table, key: str) -> pa.Table:
    """Rows with a non-null key, the first row of each key; dropped rows are logged, never silent."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):  # as `column()` in the features reads them
            table = table.set_column(i, field.name, table[field.name].cast(field.type.value_type))
    nulls = table[key].null_count
    if nulls:
        log.warning("set_items: %d rows with a null %r dropped", nulls, key)
    first = first_rows(table, key)
    repeats = table.num_rows - nulls - first.num_rows
    if repeats:
        log.warning("set_items: %d rows repeat an earlier %r; the first row of each id is used", repeats, key)
    return first.combine_chunks()


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
        self.item_key = self._item_key()
        self.assembler = RequestAssembler(self.features, self.item_key)
        self.layout = self.assembler.layout
        self.user_key = self._key("user")
        self.backend: Backend = make_backend(backend, bundle, threads)
        self.backend_name, self.threads = backend, threads
        self.input_columns = self.features.input_columns()
        self.types = column_types(self.features.features, self.features.states)
        by_side = {s: [c for c in self.input_columns if self.layout.sides[c] == s] for s in SIDE_RANK}
        self.item_columns = [self.item_key, *(c for c in by_side["item"] if c != self.item_key)]
        self.user_columns = by_side["user"]
        self.context_columns = by_side["context"]
        self._request_columns = [c for c in self.input_columns if self.layout.sides[c] != "item"]
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
        steps = [path]
        for parent in delta_parents(path):  # names checked, cycles and missing parents refused
            if parent.name == self.version:
                break
            steps.append(parent)
        else:
            return None  # the chain reaches its full version without passing the one served here
        own = self._bundle
        bundle = Bundle(own.path, own.config, own.features, copy.deepcopy(own.model), dict(own.manifest))
        for step in reversed(steps):
            bundle = apply_version_delta(bundle, step, read_bundle_manifest(step))
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
        return 0 if self._catalog is None else self._catalog.items.table.num_rows

    def input_datatypes(self) -> dict[str, str]:
        """Open Inference Protocol (v2) datatype per input column: INT64, FP64, BOOL, else BYTES."""
        types = dict(self.types)
        if self._catalog is not None:
            table = self._catalog.items.table
            types.update(zip(table.column_names, table.schema.types, strict=True))
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
        items = self.assembler.items(table, report)
        if report.counts:
            log.info("set_items: item values mapped to defaults: %s", report.summary())
        self._catalog = Catalog(items, item_index(table[self.item_key].combine_chunks(), self.item_key))

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
        return self.score_inputs(self.build_inputs(user, items, context))

    def score_inputs(self, batch: Batch) -> dict[str, np.ndarray]:
        """Each task's scores of a `build_inputs` Batch (lets a caller keep the Batch it scored, e.g. to log it)."""
        return self._by_task(self.backend.probabilities(batch))

    def raw_inputs(
        self, user: Mapping[str, Any], items: Items, context: Mapping[str, Any] | None = None
    ) -> tuple[pa.Table, pa.Table]:
        """What the batch path reads for this request: its one row of user and context columns, and each item's
        item columns (an id `set_items` did not see: only the id), as `build_inputs` joins them."""
        catalog = self._catalog_or_fail()
        keys = request_ids(items, catalog.index, self.item_key)
        rows = catalog.index.positions(keys)
        table = catalog.items.table
        picked = table.take(pa.array(rows, mask=rows < 0))
        picked = picked.set_column(table.schema.get_field_index(self.item_key), self.item_key, catalog.items.keys(keys))
        return self._request_table(user, context or {}), picked

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
        keys = request_ids(items, catalog.index, self.item_key)
        rows = catalog.index.positions(keys)
        report = TransformReport()
        batch = self.assembler.batch(self._request_table(user, context or {}), catalog.items, keys, rows, report)
        self._count(report, int((rows < 0).sum()))
        return batch

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
        kind = self.types[column]
        try:  # a map is read with its type (a JSON object would read as a struct); other values as they come
            return pa.array([value], kind if pa.types.is_map(kind) else None)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise DataError(
                f"request: column {column!r}: {value!r} ({type(value).__name__}) cannot be read as a value of "
                f"type {self.types[column]} ({exc})"
            ) from None

    def _count(self, report: TransformReport, unknown: int) -> None:
        with self._lock:
            self.report.counts.update(report.counts)
            self.report.rows += report.rows
            self.unknown_items += unknown


__all__ = ["Catalog", "Predictor"]
