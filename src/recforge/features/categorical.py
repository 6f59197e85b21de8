"""Id and tag features: vocabularies with min count and an OOV row, or hash buckets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.config.features import IdFeatureConfig, TagFeatureConfig
from recforge.errors import DataError, FeatureError
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
from recforge.hashing import hash_values
from recforge.ids import IdIndex
from recforge.schema import FieldSpec, TableSpec


class VocabCounter:
    """Streaming value counts: per-batch Arrow value_counts, merged with a group-by now and then."""

    def __init__(self) -> None:
        self.parts: list[pa.Table] = []
        self.pending = 0

    def update(self, values: pa.Array) -> None:
        values = values.filter(pc.is_valid(values))
        if len(values) == 0:
            return
        counts = pc.value_counts(values)
        self.parts.append(pa.table({"v": counts.field("values"), "n": counts.field("counts")}))
        self.pending += len(counts)
        if len(self.parts) > 64:
            self.parts = [self.merged()]

    def merged(self) -> pa.Table:
        if not self.parts:
            return pa.table({"v": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
        table = pa.concat_tables(self.parts, promote_options="permissive")
        return table.group_by("v").aggregate([("n", "sum")]).rename_columns(["v", "n"])

    def vocab(self, min_count: int, max_size: int | None) -> tuple[pa.Array, pa.Array]:
        return top_values(self.merged(), min_count, max_size)


def top_values(counts: pa.Table, min_count: int, max_size: int | None) -> tuple[pa.Array, pa.Array]:
    """Values `v` with count `n` >= min_count, most frequent first (ties by value, so fits are reproducible)."""
    table = counts.filter(pc.greater_equal(counts["n"], min_count))
    table = table.sort_by([("n", "descending"), ("v", "ascending")])
    if max_size is not None:
        table = table.slice(0, max_size)
    return table["v"].combine_chunks(), table["n"].combine_chunks()


MISSING_KEY = np.iinfo(np.int64).min  # the dynamic-table key of a null id


def dynamic_keys(values: pa.Array, state: FeatureState, feature: str, report: TransformReport) -> np.ndarray:
    """int64 key per value for a dynamic table: the id itself for integers (collision-free), a stable
    64-bit hash (blake2b) for strings; values are first read as the fitted type so serving matches training."""
    fitted = state.arrays["dtype"].type
    if values.type != fitted:
        try:
            values = values.cast(fitted)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"feature {feature!r}: values of type {values.type} cannot be read as {fitted}: {exc}"
            ) from exc
    nulls = pc.is_null(values).to_numpy(zero_copy_only=False)
    report.add(feature, "missing", int(nulls.sum()))
    if pa.types.is_integer(values.type):  # the id's own bits (uint64 above 2^63 wrap to negative keys)
        wide = pa.uint64() if values.type == pa.uint64() else pa.int64()
        keys = pc.fill_null(values.cast(wide), 0).to_numpy(zero_copy_only=False).astype(wide.to_pandas_dtype())
        keys = keys.view(np.int64)
    else:
        keys = hash_values(values).view(np.int64)
    keys[nulls] = MISSING_KEY
    return keys


def lookup_ids(values: pa.Array, state: FeatureState, feature: str, report: TransformReport) -> np.ndarray:
    """Vocab index + 1 per value (0 for null or out of vocabulary), or hash bucket + 1."""
    buckets = state.params.get("hash_buckets")
    nulls = pc.is_null(values).to_numpy(zero_copy_only=False)
    report.add(feature, "missing", int(nulls.sum()))
    if buckets:
        ids = (hash_values(values) % np.uint64(buckets)).astype(np.int64) + 1
        ids[nulls] = 0
        return ids
    vocab = state.arrays["vocab"]
    if values.type != vocab.type:
        try:
            values = values.cast(vocab.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"feature {feature!r}: values of type {values.type} cannot be read as the fitted "
                f"vocabulary's type {vocab.type}: {exc}"
            ) from exc
    if len(values) <= SMALL_LOOKUP and not pa.types.is_floating(vocab.type):  # NaN: leave to index_in
        ids = vocab_index(state).positions(values) + 1
    else:
        index = pc.index_in(values, value_set=vocab)
        ids = pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
    report.add(feature, "oov", int((ids == 0).sum() - nulls.sum()))
    return ids


SMALL_LOOKUP = 1024  # inputs up to this size (an online request) use the vocabulary's IdIndex


def vocab_index(state: FeatureState) -> IdIndex:
    """The state's vocabulary indexed once (index_in rehashes all of it per call: 17 ms for 200k values, which a
    service would pay per feature per request); rebuilt if the vocabulary array was replaced. The vocabulary
    holds distinct non-null values, so positions equal what index_in gives."""
    vocab = state.arrays["vocab"]
    cached = state.cache.get("vocab_index")
    if cached is None or cached[0] is not vocab:
        cached = state.cache["vocab_index"] = (vocab, IdIndex(vocab))
    index: IdIndex = cached[1]
    return index


def fit_vocab_state(counter: VocabCounter, name: str, min_count: int, max_vocab: int | None) -> FeatureState:
    return vocab_state(name, *counter.vocab(min_count, max_vocab), min_count)


def vocab_state(name: str, vocab: pa.Array, counts: pa.Array, min_count: int) -> FeatureState:
    """The fitted state of a vocabulary, most frequent first, however its counts were computed (here or on Spark)."""
    if len(vocab) == 0:
        raise FeatureError(
            name,
            f"no value occurs at least min_count={min_count} times in the training data",
            fix="lower `min_count`, check the column, or use `hash_buckets`",
        )
    return FeatureState(params={"size": len(vocab)}, arrays={"vocab": vocab, "counts": counts})


def table_rows(state: FeatureState) -> int:
    return int(state.params.get("hash_buckets") or state.params["size"]) + 1


@FEATURE_KINDS.register("id")
class IdFeature(Feature[IdFeatureConfig]):
    """Categorical id -> row of its own table (row 0 = missing or unseen)."""

    kind = "id"

    def raw_types(self, states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
        return {self.source: vocab_type(states, self.name)}

    @property
    def raw_keys(self) -> bool:
        """Dynamic and multi_hash storage read the raw int64 key (`dynamic_keys`) and place it themselves."""
        return self.config.storage.kind != "static"

    def fit_begin(self) -> None:
        self.counter = VocabCounter()
        self.value_type: pa.DataType | None = None

    def fit_update(self, table: pa.Table, features: dict[str, Feature[Any]]) -> None:
        if self.raw_keys:
            self.value_type = self.value_type or column(table, self.source, self.name).type
        elif self.config.hash_buckets is None:
            self.counter.update(column(table, self.source, self.name))

    def fit_end(self) -> FeatureState:
        if self.raw_keys:  # no vocab: the table places ids itself; only the value type is kept (for serving)
            params = {"dynamic": True} if self.config.storage.kind == "dynamic" else {"raw_keys": True}
            return FeatureState(params=params, arrays={"dtype": pa.array([], self.value_type or pa.string())})
        if self.config.hash_buckets is not None:
            return FeatureState(params={"hash_buckets": self.config.hash_buckets})
        return fit_vocab_state(self.counter, self.name, self.config.min_count, self.config.max_vocab)

    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> IdOutput:
        values, state = column(table, self.source, self.name), ctx.states[self.name]
        if state.params.get("dynamic") or state.params.get("raw_keys"):
            return IdOutput(dynamic_keys(values, state, self.name, report))
        return IdOutput(lookup_ids(values, state, self.name, report))

    def field_spec(self, state: FeatureState) -> FieldSpec:
        return FieldSpec(self.name, "id", self.side, table=self.name, dim=self.dim)

    def table_spec(self, state: FeatureState) -> TableSpec:
        storage = self.config.storage
        if storage.kind == "dynamic":
            rows = storage.initial_capacity
        elif storage.kind == "multi_hash":
            rows = storage.buckets * storage.hashes
        else:
            rows = table_rows(state)
        return TableSpec(self.name, rows, self.dim, storage.model_dump())


def split_weighted(tokens: pa.Array, weight_sep: str | None, feature: str) -> tuple[pa.Array, np.ndarray | None]:
    """'drama:0.7' -> ('drama', 0.7) when a weight separator is configured; a bare token weighs 1."""
    if weight_sep is None:
        return tokens, None
    pairs = pc.split_pattern(tokens.cast(pa.string()), weight_sep, max_splits=1)
    names = pc.list_element(pairs, 0)
    weights = np.ones(len(tokens), dtype=np.float32)
    has_weight = pc.greater(pc.list_value_length(pairs), 1).to_numpy(zero_copy_only=False)
    if has_weight.any():
        text = pc.list_element(pairs.filter(pa.array(has_weight)), 1)
        try:
            weights[has_weight] = pc.cast(text, pa.float32()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid as exc:
            raise DataError(f"feature {feature!r}: a tag weight is not a number ({exc})") from exc
    return names, weights


@FEATURE_KINDS.register("tag")
class TagFeature(Feature[TagFeatureConfig]):
    """Multi-valued column -> padded bag of rows of its own table (first `max_len` values kept)."""

    kind = "tag"

    def raw_types(self, states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
        return {self.source: list_or_text(self.config.sep, vocab_type(states, self.name))}

    def tokens(self, table: pa.Table) -> tuple[pa.Array, np.ndarray, np.ndarray | None]:
        lists = as_list(column(table, self.source, self.name), self.config.sep, self.name)
        values, parents = flatten(lists)
        names, weights = split_weighted(values, self.config.weight_sep, self.name)
        return names, parents, weights

    def fit_begin(self) -> None:
        self.counter = VocabCounter()

    def fit_update(self, table: pa.Table, features: dict[str, Feature[Any]]) -> None:
        if self.config.hash_buckets is None:
            self.counter.update(self.tokens(table)[0])

    def fit_end(self) -> FeatureState:
        if self.config.hash_buckets is not None:
            return FeatureState(params={"hash_buckets": self.config.hash_buckets})
        return fit_vocab_state(self.counter, self.name, self.config.min_count, None)

    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> BagOutput:
        names, parents, weights = self.tokens(table)
        ids = lookup_ids(names, ctx.states[self.name], self.name, report)
        values, cut = pad_rows(parents, ids, table.num_rows, self.config.max_len)
        report.add(self.name, "truncated", cut)
        if weights is None:
            return BagOutput(values)
        padded_weights, _ = pad_rows(parents, weights, table.num_rows, self.config.max_len)
        return BagOutput(values, padded_weights)

    def field_spec(self, state: FeatureState) -> FieldSpec:
        return FieldSpec(
            self.name,
            "bag",
            self.side,
            table=self.name,
            dim=self.dim,
            max_len=self.config.max_len,
            pooling=self.config.pooling,
        )

    def table_spec(self, state: FeatureState) -> TableSpec:
        return TableSpec(self.name, table_rows(state), self.dim)
