"""Contract every registered feature kind passes: fit, transform, save / load, and online = offline through the
Predictor (the shared assembler). Kinds are enrolled from the registry, each with the example its config class
gives in the JSON Schema, so a new kind is checked without editing this file.

The toy `clip` kind at the end is a whole new kind in this one file: config class, transform, column type,
registration; it is served like a built-in kind and taken back out afterwards.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import ConfigDict

from recforge.bundle import load_bundle, save_bundle, score_table
from recforge.config import FEATURE_CONFIGS, FeatureBase, build_config, feature_kind, json_schema
from recforge.errors import ConfigError
from recforge.features import FEATURE_KINDS, Feature, FeatureSet, FeatureState
from recforge.features.base import DenseOutput, TransformContext, TransformReport
from recforge.features.layout import Layout
from recforge.features.numeric import to_float
from recforge.models import build_model
from recforge.schema import FieldSpec
from recforge.serving.predictor import Predictor

from support import assert_batches_equal, joined_rows

KEYS = [{"name": "user_id", "kind": "id", "side": "user"}, {"name": "item_id", "kind": "id", "side": "item"}]
POOL = [f"v{k}" for k in range(8)]  # every string value: ids, tags, sequence elements, map keys
N_ROWS = 300


def example(kind: str) -> dict[str, Any]:
    """The example feature entry a kind's config class documents in the JSON Schema."""
    extra = FEATURE_CONFIGS.get(kind).config.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    assert isinstance(examples, list) and isinstance(examples[0], dict), f"kind {kind!r}: give its config an example"
    return dict(examples[0])


def values_of(kind: pa.DataType, n: int, rng: np.random.Generator) -> pa.Array:
    """`n` random values of an Arrow type drawn from POOL and small numbers, about a tenth null."""
    nulls = rng.random(n) < 0.1
    if pa.types.is_string(kind):
        return pa.array(rng.choice(POOL, n), mask=nulls)
    if pa.types.is_floating(kind):
        return pa.array(np.round(rng.lognormal(2, 1, n), 2), mask=nulls)
    if pa.types.is_map(kind):
        keys = [rng.choice(POOL, rng.integers(2, 7), replace=False).tolist() for _ in range(n)]
        return pa.array([list(zip(k, rng.integers(1, 9, len(k)).tolist(), strict=True)) for k in keys], kind)
    if pa.types.is_list(kind):
        flat = values_of(kind.value_type, n * 4, rng).drop_null().to_pylist()
        sizes = rng.integers(0, 5, n)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        return pa.array([flat[a:b] for a, b in itertools.pairwise(starts)], kind)
    raise AssertionError(f"no generator for {kind}")


def world(features: FeatureSet, seed: int = 0) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Users and items keyed by POOL, with columns of the types the features read, and impressions joining them."""
    rng = np.random.default_rng(seed)
    types = {c: t for f in features.features.values() for c, t in f.raw_types(defaultdict(FeatureState)).items()}
    sides = Layout.of(features.features).sides
    n = len(POOL)

    def table(side: str, key: str) -> pa.Table:
        columns = [c for c in types if sides[c] == side and c != key]
        return pa.table({key: POOL, **{c: values_of(types[c], n, rng) for c in columns}})

    users, items = table("user", "user_id"), table("item", "item_id")
    rows = {name: t.take(rng.integers(0, n, N_ROWS)) for name, t in (("user", users), ("item", items))}
    context = {c: values_of(t, N_ROWS, rng) for c, t in types.items() if sides[c] == "context"}
    joined = {c: rows[s].column(c) for s in ("user", "item") for c in rows[s].column_names}
    return users, items, pa.table({**joined, **context, "label": rng.integers(0, 2, N_ROWS)})


def check_kind(kind: str, tmp: Path) -> None:
    """`kind`'s example: fit, transform, save / load (same Batch), Predictor inputs and scores = the batch path's."""
    entry = example(kind)
    cfg = build_config({"features": [*KEYS, entry], "embedding_dim": 4, "model": {"name": "lr"}})
    assert type(next(f for f in cfg.features if f.name == entry["name"])) is FEATURE_CONFIGS.get(kind).config
    users, items, rows = world(FeatureSet.from_config(cfg))
    features = FeatureSet.from_config(cfg).fit([rows])
    batch = features.transform(rows)
    assert features.schema().field(entry["name"]).name == entry["name"] and batch.size == N_ROWS
    features.save(tmp / "features")
    assert_batches_equal(FeatureSet.load(tmp / "features").transform(rows), batch)

    torch.manual_seed(0)
    bundle = save_bundle(tmp / "bundle", cfg, features, build_model(features.schema(), cfg.model).eval(), metrics={})
    predictor, served = Predictor.load(bundle), load_bundle(bundle)
    predictor.set_items(items)
    maps = [f.name for f in users.schema if pa.types.is_map(f.type)]
    for row in [*users.slice(0, 3).to_pylist(), {"user_id": "nobody"}]:
        user = {c: dict(v) if c in maps and v is not None else v for c, v in row.items()}  # maps as JSON objects
        ids = [*POOL, "unknown", POOL[2]]
        context = {c: rows[c][0].as_py() for c in predictor.context_columns}
        joined = joined_rows(predictor, items, user, ids, context)
        assert_batches_equal(predictor.build_inputs(user, ids, context), features.transform(joined, labels=False))
        np.testing.assert_allclose(predictor.score(user, ids, context), score_table(served, joined), atol=1e-6)


@pytest.mark.parametrize("kind", FEATURE_KINDS.names())
def test_every_feature_kind_fits_transforms_round_trips_and_serves_what_the_batch_path_builds(
    kind: str, tmp_path: Path
) -> None:
    check_kind(kind, tmp_path)


def test_every_config_kind_has_a_transform() -> None:
    assert FEATURE_CONFIGS.names() == FEATURE_KINDS.names()


# ---------------------------------------------------------------- a new kind, in this one file
class ClipFeatureConfig(FeatureBase):
    """A number clipped into [low, high], kept dense."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "clipped", "kind": "clip", "high": 9}]}
    )
    kind: Literal["clip"]
    low: float = 0.0
    high: float


class ClipFeature(Feature[ClipFeatureConfig]):
    kind = "clip"

    def transform(self, table: pa.Table, ctx: TransformContext, report: TransformReport) -> DenseOutput:
        values = to_float(table[self.source].combine_chunks(), self.name)
        report.add(self.name, "missing", int(np.isnan(values).sum()))
        return DenseOutput(np.clip(np.nan_to_num(values), self.config.low, self.config.high).astype(np.float32))

    def field_spec(self, state: FeatureState) -> FieldSpec:
        return FieldSpec(self.name, "dense", self.side, dim=self.dim)

    def raw_types(self, states: Mapping[str, FeatureState]) -> dict[str, pa.DataType]:
        return {self.source: pa.float64()}


@pytest.fixture
def clip() -> Iterator[str]:
    feature_kind("clip")(ClipFeatureConfig)
    FEATURE_KINDS.register("clip")(ClipFeature)
    yield "clip"
    FEATURE_CONFIGS.unregister("clip")
    FEATURE_KINDS.unregister("clip")


def test_a_kind_added_in_one_file_is_configured_fitted_saved_and_served(clip: str, tmp_path: Path) -> None:
    check_kind(clip, tmp_path)
    cfg = build_config({"features": [*KEYS, {"name": "x", "kind": "clip", "low": 1, "high": 2}]})
    table = pa.table({"user_id": ["a"] * 3, "item_id": ["b"] * 3, "x": [0.5, None, 7.0]})
    batch = FeatureSet.from_config(cfg).fit([table]).transform(table, labels=False)
    assert batch.dense[:, 0].tolist() == [1.0, 1.0, 2.0]


def test_a_registered_kind_is_in_the_json_schema_and_its_keys_get_did_you_mean(clip: str) -> None:
    assert "'const': 'clip'" in str(json_schema())
    with pytest.raises(ConfigError, match=r"features\[2\]\.hgh: unknown key 'hgh' \(did you mean 'high'\?\)"):
        build_config({"features": [*KEYS, {"name": "x", "kind": "clip", "high": 2, "hgh": 2}]})


def test_a_kind_taken_back_is_refused_with_the_kinds_there_are(clip: str) -> None:
    FEATURE_CONFIGS.unregister(clip)
    try:
        with pytest.raises(ConfigError, match=r"features\[2\].*'clip' found .* 'id', 'numeric'"):
            build_config({"features": [*KEYS, {"name": "x", "kind": "clip", "high": 2}]})
    finally:
        feature_kind(clip)(ClipFeatureConfig)
