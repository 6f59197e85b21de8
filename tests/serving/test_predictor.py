"""Predictor: served inputs equal the batch path's bit for bit, ONNX scores equal torch's, odd requests behave."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from recforge.bundle import load_bundle, save_bundle, score_table
from recforge.config import PipelineConfig, build_config
from recforge.data.synthetic import generate_synthetic
from recforge.errors import BundleError, ConfigError, DataError, RecforgeError
from recforge.features import FeatureSet
from recforge.models import MODELS, build_model
from recforge.models.registry import MODEL_TRAINERS, MULTITASK
from recforge.pipeline.rank import train
from recforge.serving.predictor import Predictor

from support import assert_batches_equal, joined_rows, small_synthetic

N_REQUESTS = 1000


# ---------------------------------------------------------------- a trained bundle on the synthetic world
@dataclass
class Run:
    bundle: Path
    items: pa.Table
    test: pa.Table


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """DeepFM on the synthetic world, plus crosses on each side and one across user and item columns."""
    tree = small_synthetic(epochs=1, early_stop=None)
    tree["data"]["synthetic"]["n_impressions"] = 40_000
    tree["features"] += [
        {"name": "city_tier", "kind": "id", "side": "user"},
        {"name": "brand_id", "kind": "id", "side": "item"},
        {"name": "gender_x_category", "kind": "cross", "inputs": ["gender", "category_id"], "buckets": 97},
        {"name": "brand_x_price", "kind": "cross", "side": "item", "inputs": ["brand_id", "price"], "buckets": 89},
        {"name": "age_x_gender", "kind": "cross", "side": "user", "inputs": ["age", "gender"], "buckets": 31},
    ]
    cfg = build_config(tree)
    result = train(cfg, tmp_path_factory.mktemp("synthetic"))
    items = generate_synthetic(cfg.data.synthetic).items
    return Run(result.bundle, items, pq.read_table(result.samples.test))


@pytest.fixture(scope="module")
def predictor(run: Run) -> Predictor:
    predictor = Predictor.load(run.bundle)
    predictor.set_items(run.items)
    return predictor


def test_sides_keys_and_columns_come_from_the_feature_config(predictor: Predictor, run: Run) -> None:
    assert (predictor.user_key, predictor.item_key) == ("user_id", "item_id")
    assert predictor.user_columns == ["user_id", "age", "gender", "city_tier"]
    assert predictor.item_columns == ["item_id", "category_id", "price", "brand_id"]
    assert predictor.context_columns == ["position"]
    assert predictor.layout.joint == ("gender_x_category",)
    assert set(predictor.layout.item) == {"item_id", "category_id", "price", "brand_id", "brand_x_price"}
    assert "age_x_gender" in predictor.layout.request
    manifest = load_bundle(run.bundle).manifest
    assert (predictor.name, predictor.version, predictor.bundle) == (manifest["name"], manifest["version"], run.bundle)
    assert predictor.n_items == run.items.num_rows
    assert predictor.input_datatypes()["gender"] == "BYTES" and predictor.input_datatypes()["price"] == "FP64"


def test_requests_replayed_from_the_test_split_match_the_batch_path(predictor: Predictor, run: Run) -> None:
    """1000 (user, items, position) requests: the same model inputs bit for bit, the same scores within 1e-6."""
    users = pc.unique(run.test["user_id"])[:N_REQUESTS]
    rows = run.test.filter(pc.is_in(run.test["user_id"], value_set=users))
    rows = rows.take(pc.sort_indices(rows, [("user_id", "ascending")]))  # stable: a user's rows keep their order
    user_ids = rows["user_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
    ends = np.r_[starts[1:], len(user_ids)]
    assert len(starts) == N_REQUESTS
    # one position per request, as a request has one context
    positions = rows["position"].to_numpy()[np.repeat(starts, ends - starts)]
    rows = rows.set_column(rows.schema.get_field_index("position"), "position", pa.array(positions))
    offline = predictor.features.transform(rows, labels=False)
    expected = score_table(load_bundle(run.bundle), rows)
    for start, end in zip(starts, ends, strict=True):
        first = rows.slice(int(start), 1).to_pylist()[0]
        user = {c: first[c] for c in predictor.user_columns}
        items = rows["item_id"].to_numpy()[start:end]
        context = {"position": first["position"]}
        assert_batches_equal(predictor.build_inputs(user, items, context), offline.index(slice(start, end)))
        scores = predictor.score(user, items, context)
        assert scores.dtype == np.float64 and scores.shape == (end - start,)
        np.testing.assert_allclose(scores, expected[start:end], rtol=0, atol=1e-6)
    assert predictor.unknown_items == 0
    np.testing.assert_allclose(predictor.score_table(rows), expected, rtol=0, atol=0)


def test_unknown_items_get_what_the_batch_path_gives_a_row_with_null_item_columns(
    predictor: Predictor, run: Run
) -> None:
    user = {"user_id": 7, "age": 41, "gender": "F", "city_tier": 3}
    ids = [3, 10**9, 5, -4, 10**9]
    before = predictor.unknown_items
    batch = predictor.build_inputs(user, ids, {"position": 2})
    assert predictor.unknown_items == before + 3
    rows = joined_rows(predictor, run.items, user, ids, {"position": 2})
    assert_batches_equal(batch, predictor.features.transform(rows, labels=False))
    np.testing.assert_allclose(
        predictor.score(user, ids, {"position": 2}), predictor.score_table(rows), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    "user",
    [
        {"user_id": 10**9, "age": 30, "gender": "M", "city_tier": 1},  # unknown user id
        {"user_id": 12},  # missing user columns: nulls, as in the batch path
        {"user_id": None, "age": None, "gender": None, "city_tier": None},
        {},
    ],
)
def test_unknown_and_missing_user_values_get_the_batch_path_defaults(
    predictor: Predictor, run: Run, user: dict[str, Any]
) -> None:
    ids = [1, 2, 3, 4]
    rows = joined_rows(predictor, run.items, user, ids, {})
    assert_batches_equal(predictor.build_inputs(user, ids), predictor.features.transform(rows, labels=False))
    scores = predictor.score(user, ids)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()


def test_empty_and_huge_candidate_lists(predictor: Predictor) -> None:
    user = {"user_id": 3, "age": 22, "gender": "F", "city_tier": 2}
    for empty in ([], np.array([], dtype=np.int64), pa.array([], pa.int64())):
        out = predictor.score(user, empty)
        assert out.shape == (0,) and out.dtype == np.float64
    ids = np.random.default_rng(0).integers(1, 600, 100_000)  # ids above 500 are not in the catalog
    scores = predictor.score(user, ids, {"position": 1})
    assert scores.shape == (100_000,) and ((scores > 0) & (scores < 1)).all()
    np.testing.assert_allclose(scores[:500], predictor.score(user, ids[:500], {"position": 1}), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("user", "items", "names"),
    [
        ({"user_id": 1, "age": "old"}, [1, 2], "age"),
        ({"user_id": object()}, [1, 2], "user_id"),
        ({"user_id": 1.5}, [1, 2], "user_id"),
        ({"user_id": 1, "gender": [1, 2]}, [1, 2], "gender"),
        ({"user_id": 1}, ["a", "b"], "item_id"),
        ({"user_id": 1}, [[1, 2]], "item_id"),
        ({"user_id": 2**64}, [1, 2], "user_id"),  # beyond int64: an embedder gets a DataError, not OverflowError
        ({"user_id": 1, "age": -(2**63) - 1}, [1, 2], "age"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_clear_data_error(
    predictor: Predictor, user: dict[str, Any], items: list[Any], names: str
) -> None:
    with pytest.raises(DataError, match=names):
        predictor.score(user, items)


def test_set_items_and_backend_errors_name_the_fix(predictor: Predictor, run: Run) -> None:
    with pytest.raises(DataError, match="brand_id"):
        predictor.set_items(run.items.drop_columns(["brand_id"]))
    fresh = Predictor(load_bundle(run.bundle))
    with pytest.raises(RecforgeError, match="set_items"):
        fresh.score({"user_id": 1}, [1])
    with pytest.raises(ConfigError, match="onnx"):
        Predictor(load_bundle(run.bundle), backend="onnxx")
    duplicated = pa.concat_tables([run.items, run.items.slice(0, 5)])
    fresh.set_items(duplicated)
    assert fresh.n_items == run.items.num_rows


# ---------------------------------------------------------------- every feature kind, every rank model, ONNX
def world_tables(seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """Impressions carrying every feature kind (tags, sequences, dense numbers), and the item table."""
    rng = np.random.default_rng(seed)
    n_items, n = 60, 600
    tags = ["a", "b", "c", "d", "e"]
    items = pa.table(
        {
            "item_id": np.arange(1, n_items + 1),
            "category": pa.array([f"c{k}" for k in rng.integers(0, 6, n_items)]),
            "tags": pa.array(["|".join(rng.choice(tags, rng.integers(0, 4), replace=False)) for _ in range(n_items)]),
            "price": np.round(rng.lognormal(3, 1, n_items), 2),
        }
    )
    users = rng.integers(1, 40, n)
    picked = items.take(rng.integers(0, n_items, n))
    clicks = [rng.integers(1, n_items + 1, rng.integers(0, 8)).tolist() for _ in range(n)]
    rows = {
        "user_id": users,
        "age": pa.array(rng.normal(35, 10, n), mask=rng.random(n) < 0.1),
        "gender": pa.array(rng.choice(["F", "M"], n)),
        "clicks": pa.array(clicks, pa.list_(pa.int64())),
        "position": rng.integers(1, 6, n),
        "click": rng.integers(0, 2, n),
    }
    return pa.table({**rows, **{c: picked[c] for c in picked.column_names}}), items


def world_config(model: str, mixed_dims: bool) -> PipelineConfig:
    features: list[dict[str, Any]] = [
        {"name": "user_id", "kind": "id", "side": "user"},
        {"name": "age", "kind": "numeric", "side": "user", "transform": "standard"},
        {"name": "gender", "kind": "id", "side": "user", **({"dim": 4} if mixed_dims else {})},
        {"name": "clicks", "kind": "sequence", "side": "user", "of": "item_id", "max_len": 5},
        {"name": "item_id", "kind": "id", "side": "item"},
        {"name": "category", "kind": "id", "side": "item", "hash_buckets": 7},
        {"name": "tags", "kind": "tag", "side": "item", "sep": "|", "max_len": 3},
        {"name": "price", "kind": "numeric", "side": "item", "transform": "log"},
        {"name": "position", "kind": "id", "side": "context"},
        {"name": "gender_x_category", "kind": "cross", "inputs": ["gender", "category"], "buckets": 50},
        {"name": "user_x_tags", "kind": "cross", "inputs": ["user_id", "tags"], "buckets": 50, "max_len": 4},
    ]
    return build_config(
        {
            "name": f"world-{model}",
            "data": {"source": "samples", "train": "unused.parquet", "label": "click"},
            "embedding_dim": 8,
            "features": features,
            "model": {"name": model},
        }
    )


@pytest.fixture(scope="module")
def world() -> tuple[pa.Table, pa.Table]:
    return world_tables()


def world_bundle(root: Path, model: str, mixed_dims: bool, rows: pa.Table) -> Path:
    """A bundle with fitted features and random weights (untrained, but spread): ONNX and torch must agree on it."""
    cfg = world_config(model, mixed_dims)
    features = FeatureSet.from_config(cfg).fit([rows])
    torch.manual_seed(0)
    net = build_model(features.schema(), cfg.model)
    with torch.no_grad():
        for param in net.parameters():  # LeCun-like scale: larger than the init, not saturating
            param.normal_(0, param.shape[-1] ** -0.5 if param.ndim > 1 else 0.1)
    return save_bundle(root / f"{model}-{mixed_dims}", cfg, features, net.eval(), metrics={})


# tree models (trainer family other than sgd) have no torch graph for onnx: test_gbdt_lr checks they are refused;
# multi-task models need a `tasks:` block: test_multitask_serving covers them
# sequence-attention models (DIN, BST) read the sequence inside the network: refused, checked below
SPLITTABLE = [m for m in MODELS.names() if getattr(MODELS.get(m), "onnx_dense_split", True)]
CASES = [(m, False) for m in SPLITTABLE if MODEL_TRAINERS[m] == "sgd" and m not in MULTITASK] + [
    (m, True) for m in ("dcn_v2", "lr", "multitower", "widedeep")
]


@pytest.mark.parametrize(("model", "mixed_dims"), CASES, ids=[f"{m}{'-mixed' if d else ''}" for m, d in CASES])
def test_onnx_scores_equal_torch_and_every_feature_kind_is_served_exactly(
    model: str, mixed_dims: bool, world: tuple[pa.Table, pa.Table], tmp_path: Path
) -> None:
    rows, items = world
    bundle = world_bundle(tmp_path, model, mixed_dims, rows)
    served = {name: Predictor.load(bundle, backend=name) for name in ("torch", "onnx")}
    for predictor in served.values():
        predictor.set_items(items)
    torch_p, onnx_p = served["torch"], served["onnx"]
    assert torch_p.layout.joint == ("gender_x_category", "user_x_tags")
    requests = [
        ({"user_id": 3, "age": 41.5, "gender": "M", "clicks": [4, 9, 60, 2, 7, 1]}, {"position": 2}),
        ({"user_id": 999, "gender": "F", "clicks": []}, {}),  # unknown user, missing age and position
        ({"user_id": 5, "age": None, "gender": "M", "clicks": None}, {"position": 4}),
    ]
    ids = [*range(1, 61), 777, 31, 31]  # every item, an unknown one, a repeat
    spread = []
    for user, context in requests:
        joined = joined_rows(torch_p, items, user, ids, context)
        assert_batches_equal(torch_p.build_inputs(user, ids, context), torch_p.features.transform(joined, labels=False))
        expected = score_table(load_bundle(bundle), joined)
        np.testing.assert_allclose(torch_p.score(user, ids, context), expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(onnx_p.score(user, ids, context), expected, rtol=0, atol=1e-5)
        spread.append(expected)
    np.testing.assert_allclose(onnx_p.score_table(rows), torch_p.score_table(rows), rtol=0, atol=1e-5)
    assert np.std(np.concatenate(spread)) > 0.005  # scores vary 500x more than the tolerance: not constants
    graph = bundle / "onnx" / "model.onnx"
    stamp = graph.stat().st_mtime_ns
    Predictor.load(bundle, backend="onnx")
    assert graph.stat().st_mtime_ns == stamp  # the cached graph of this version is reused


def test_a_bundle_without_an_item_id_feature_is_refused(world: tuple[pa.Table, pa.Table], tmp_path: Path) -> None:
    rows, _ = world
    cfg = world_config("lr", False)
    cfg = build_config(
        {**cfg.dump(), "features": [f for f in cfg.dump()["features"] if f["name"] in ("user_id", "gender")]}
    )
    features = FeatureSet.from_config(cfg).fit([rows])
    bundle = save_bundle(tmp_path / "b", cfg, features, build_model(features.schema(), cfg.model), metrics={})
    with pytest.raises(BundleError, match="item-side id feature"):
        Predictor.load(bundle)
