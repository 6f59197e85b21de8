"""The /recommend pipeline: features -> recall channels -> merge -> filter -> rank -> top-k.

One request is one user. Stages are timed (milliseconds) so a slow stage shows up in the response
(on request) and in benchmarks. The ranking model is read from its slot once per request, so a hot
swap mid-request never mixes two versions; the response names the version that ranked it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from recforge.config.serving import RecommendConfig
from recforge.errors import DataError
from recforge.ids import IdIndex
from recforge.recall.channels.base import Query
from recforge.recall.model import RecallModel
from recforge.serving.candidates import CandidateList
from recforge.serving.predictor import Predictor
from recforge.serving.request_log import LoggedRequest, RequestLog
from recforge.serving.store import FeatureStore
from recforge.serving.swap import ModelSlot


@dataclass
class RecommendRequest:
    """What a caller asks for; ids are the raw ids of the data (int or str)."""

    user_id: Any
    k: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    recent_items: Sequence[Any] = ()
    exclude: Sequence[Any] = ()
    candidates: Sequence[Any] | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)
    explain: bool = False  # answer each recall channel's list and the merged list too


@dataclass
class Recommendation:
    items: list[Any]
    scores: list[float]
    channels: list[list[str]]
    model: str
    version: str
    user_known: bool
    timings_ms: dict[str, float]
    task_scores: dict[str, list[float]] = field(default_factory=dict)  # multi-task bundles: task -> per item
    explain: dict[str, Any] | None = None  # on request: {"channels": {name: [...]}, "merged": [...]}

    def to_json(self, user_id: Any, timings: bool = False) -> dict[str, Any]:
        """The /recommend answer body (a multi-task model adds each item's task scores under `tasks`)."""
        rows = zip(self.items, self.scores, self.channels, strict=True)
        items: list[dict[str, Any]] = [{"item_id": i, "score": s, "channels": c} for i, s, c in rows]
        if self.task_scores:
            for n, item in enumerate(items):
                item["tasks"] = {task: values[n] for task, values in self.task_scores.items()}
        answer: dict[str, Any] = {
            "user_id": user_id,
            "items": items,
            "model": self.model,
            "version": self.version,
            "user_known": self.user_known,
        }
        if timings:
            answer["timings_ms"] = self.timings_ms
        if self.explain is not None:
            answer["explain"] = self.explain
        return answer


class StageClock:
    """Milliseconds per pipeline stage, in order."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = round((now - self.last) * 1e3, 3)
        self.last = now

    def done(self) -> dict[str, float]:
        self.ms["total"] = round((time.perf_counter() - self.start) * 1e3, 3)
        return self.ms


class Catalog:
    """The servable items (raw ids and their item-table columns) with an id index for filters."""

    def __init__(self, table: pa.Table, key: str) -> None:
        if key not in table.column_names:
            raise DataError(f"the item catalog has no key column {key!r} (columns: {table.column_names})")
        self.table = table
        self.key = key
        self.index = IdIndex(table[key])

    def mask(self, filters: Mapping[str, Any]) -> np.ndarray | None:
        """Rows allowed by `{column: value or [values]}` filters (None when there are none)."""
        if not filters:
            return None
        keep = np.ones(self.table.num_rows, bool)
        for column, wanted in filters.items():
            if column not in self.table.column_names:
                raise DataError(f"filter on {column!r}: the item catalog has no such column")
            values = wanted if isinstance(wanted, list) else [wanted]
            try:
                allowed = pc.is_in(self.table[column], value_set=pa.array(values).cast(self.table[column].type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
                raise DataError(
                    f"filter on {column!r}: {values!r} do not match the column type {self.table[column].type}"
                ) from None
            keep &= np.asarray(allowed.fill_null(False).to_numpy(zero_copy_only=False), bool)
        return keep


class Recommender:
    """Recall (optional) and rank for one user per request; everything it needs is loaded up front."""

    def __init__(
        self,
        slot: ModelSlot[Predictor],
        store: FeatureStore,
        catalog: Catalog,
        recall: RecallModel | None,
        config: RecommendConfig,
        request_log: RequestLog | None = None,
    ) -> None:
        self.slot = slot
        self.request_log = request_log
        self.store = store
        self.catalog = catalog
        self.recall = recall
        self.config = config
        if recall is not None:
            self.recall_users = IdIndex(recall.vocab.user_ids)
            self.recall_items = IdIndex(recall.vocab.item_ids)
            self.recall_item_ids = _id_array(recall.vocab.item_ids)

    def recommend(self, request: RecommendRequest) -> Recommendation:
        clock = StageClock()
        predictor = self.slot.current
        user = self._user_row(predictor, request.user_id)
        clock.lap("features")
        k = request.k or self.config.k
        candidates, known, explain = self._candidates(request, user)
        clock.lap("recall")
        candidates = self._filter(request, candidates)
        clock.lap("filter")
        if len(candidates) == 0:
            return Recommendation([], [], [], predictor.name, predictor.version, known, clock.done(), explain=explain)
        ids = candidates.ids
        batch = predictor.build_inputs(user, ids, request.context)
        by_task = predictor.score_inputs(batch)
        scores = predictor.rank(by_task)
        if self.request_log is not None and self.request_log.sampled():
            self.request_log.offer(
                LoggedRequest(
                    predictor, request.user_id, user, dict(request.context), ids, batch, by_task, scores, time.time()
                )
            )
        top = _top_k(scores, k)
        clock.lap("rank")
        answer = candidates.take(top)
        return Recommendation(
            answer.id_list(),
            scores[top].tolist(),
            answer.channel_names(),
            predictor.name,
            predictor.version,
            known,
            clock.done(),
            {task: by_task[task][top].tolist() for task in predictor.tasks},
            explain,
        )

    def _user_row(self, predictor: Predictor, user_id: Any) -> dict[str, Any]:
        """The user's store row (defaults when missing) with the request's id under the model's user key."""
        row = dict(self.store.get("user", [user_id])[0] or {})
        if predictor.user_key is not None:
            row[predictor.user_key] = user_id
        return row

    def _history(self, request: RecommendRequest, user: Mapping[str, Any]) -> list[Any]:
        recent = list(request.recent_items)
        column = self.config.history_column
        if column and not recent and isinstance(user.get(column), list):
            recent = list(user[column])
        return recent[-self.config.recent_items :]

    def _candidates(
        self, request: RecommendRequest, user: Mapping[str, Any]
    ) -> tuple[CandidateList, bool, dict[str, Any] | None]:
        """Request candidates as given, or the merged recall list; with each item's channels (and, on request,
        each channel's own list)."""
        if request.candidates is not None:
            listed = CandidateList.from_request(request.candidates)
            return listed, True, ({"channels": {}, "merged": _merged_json(listed)} if request.explain else None)
        if self.recall is None:
            raise DataError("this service has no recall bundle: send `candidates` with the request")
        code = int(self.recall_users.positions([request.user_id])[0])
        history = self._history_row(code, self.recall_items.positions(self._history(request, user)))
        exclude = history if self.config.exclude_seen else None
        query = Query(np.array([code], np.int64), history, exclude)
        lists = self.recall.channel_candidates(query)
        merged = self.recall.merge(query, lists, k=self.config.candidates)
        row = merged.items[0]
        valid = np.flatnonzero(row >= 0)
        found = CandidateList(self.recall_item_ids[row[valid]], merged.sources[0, valid], merged.channels)
        explain = {"channels": self._channel_json(lists), "merged": _merged_json(found)} if request.explain else None
        return found, code >= 0, explain

    def _channel_json(self, lists: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Each channel's list for the one query user, as raw ids and scores (pads dropped)."""
        out = {}
        for name, found in lists.items():
            codes, scores = found.items[0], found.scores[0]
            valid = np.flatnonzero(codes >= 0)
            ids = self.recall_item_ids[codes[valid]].tolist()
            out[name] = [{"item_id": i, "score": float(s)} for i, s in zip(ids, scores[valid].tolist(), strict=True)]
        return out

    def _history_row(self, code: int, recent: np.ndarray) -> sp.csr_matrix:
        """[1, n_items] CSR of the user's training items (known users) and the request's recent items."""
        assert self.recall is not None
        known = self.recall.history
        items = known.indices[known.indptr[code] : known.indptr[code + 1]] if code >= 0 else np.empty(0, np.int64)
        if len(recent):
            items = np.union1d(items, recent[recent >= 0])
        n_items = known.shape[1]
        return sp.csr_matrix((np.ones(len(items), np.float32), items, np.array([0, len(items)])), shape=(1, n_items))

    def _filter(self, request: RecommendRequest, candidates: CandidateList) -> CandidateList:
        """Drop blocked items, items outside the catalog filters, and (for request candidates) seen items."""
        drop = set(request.exclude)
        if request.candidates is not None and self.config.exclude_seen:
            drop.update(request.recent_items)
        allowed = self.catalog.mask(request.filters)
        if not drop and allowed is None:
            return candidates
        ids = candidates.ids
        rows = self.catalog.index.positions(ids) if allowed is not None else None
        keep = [
            i
            for i, item in enumerate(ids)
            if item not in drop and (rows is None or (rows[i] >= 0 and allowed is not None and allowed[rows[i]]))
        ]
        return candidates.take(np.array(keep, dtype=np.int64))


def _id_array(ids: pa.Array) -> np.ndarray:
    """Raw ids by code as NumPy: int64 for null-free integer ids, else Python objects (as `to_pylist` gives)."""
    if pa.types.is_integer(ids.type) and ids.type != pa.uint64() and ids.null_count == 0:
        return ids.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return np.asarray(ids.to_pylist(), dtype=object)


def _merged_json(candidates: CandidateList) -> list[dict[str, Any]]:
    """The merged candidate list in merge order, each item with the channels that found it."""
    rows = zip(candidates.id_list(), candidates.channel_names(), strict=True)
    return [{"item_id": i, "channels": c} for i, c in rows]


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first (ties keep candidate order)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]
