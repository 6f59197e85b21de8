"""Online = offline for every registered ranking model: requests replayed from a test split get, from the
Predictor, the Batch the batch path builds from the joined rows (every field bit for bit, sequence attrs and
bag weights included) and the same scores within 1e-6; /recommend answers for a DIN bundle with attrs.

Models are enrolled from the model registry, so a new model is replayed without touching this file. Each is
trained for one epoch on a tiny world whose features cover every group the predictor assembles: user and
context features once per request (a weighted tag, a history with item attributes, a user-side cross),
item features from the cache (an id, a tag, a number, an item-side cross), and joint crosses per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient

from recforge.bundle import load_bundle, score_table, task_scores
from recforge.config import build_config
from recforge.config.serving import load_serving_config
from recforge.models import MODELS
from recforge.models.registry import MULTITASK
from recforge.pipeline.rank import train
from recforge.serving.http.app import create_app
from recforge.serving.predictor import Predictor
from recforge.serving.service import build_service

from support import assert_batches_equal

N_USERS, N_ITEMS, N_ROWS = 50, 60, 1500
USER_COLUMNS = ["user_id", "age", "gender", "interests", "clicks"]
FEATURES: list[dict[str, Any]] = [
    {"name": "user_id", "kind": "id", "side": "user"},
    {"name": "age", "kind": "numeric", "side": "user", "transform": "standard"},
    {"name": "gender", "kind": "id", "side": "user"},
    {"name": "interests", "kind": "tag", "side": "user", "sep": "|", "weight_sep": ":", "max_len": 3},
    {"name": "clicks", "kind": "sequence", "side": "user", "of": "item_id", "max_len": 5},
    {"name": "item_id", "kind": "id", "side": "item"},
    {"name": "category_id", "kind": "id", "side": "item"},
    {"name": "tags", "kind": "tag", "side": "item", "sep": "|", "max_len": 3},
    {"name": "price", "kind": "numeric", "side": "item", "transform": "log"},
    {"name": "position", "kind": "id", "side": "context"},
    {"name": "age_x_gender", "kind": "cross", "side": "user", "inputs": ["age", "gender"], "buckets": 31},
    {"name": "category_x_price", "kind": "cross", "side": "item", "inputs": ["category_id", "price"], "buckets": 37},
    {"name": "gender_x_category", "kind": "cross", "inputs": ["gender", "category_id"], "buckets": 50},
    {"name": "user_x_tags", "kind": "cross", "inputs": ["user_id", "tags"], "buckets": 50, "max_len": 4},
]
ATTRS = ["category_id", "tags"]
TASKS = [{"name": "ctr", "label": "click"}, {"name": "ctcvr", "label": "purchase"}]


@dataclass
class World:
    users: pa.Table
    items: pa.Table
    root: Path  # train/valid/test.parquet, and the bundles


def world_tables(seed: int = 0) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Users (with a click history, some ids in it unknown), items, and impressions that join both."""
    rng = np.random.default_rng(seed)
    words = ["a", "b", "c", "d", "e"]

    def tags(weighted: bool) -> str:
        picked = rng.choice(words, rng.integers(0, 4), replace=False)
        return "|".join(f"{t}:{rng.integers(1, 4) / 2}" if weighted and rng.random() < 0.5 else t for t in picked)

    items = pa.table(
        {
            "item_id": np.arange(1, N_ITEMS + 1),
            "category_id": rng.integers(1, 7, N_ITEMS),
            "tags": [tags(False) for _ in range(N_ITEMS)],
            "price": np.round(rng.lognormal(3, 1, N_ITEMS), 2),
        }
    )
    clicks = [rng.integers(1, N_ITEMS + 8, rng.integers(0, 8)).tolist() for _ in range(N_USERS)]  # > 60: unknown
    users = pa.table(
        {
            "user_id": np.arange(1, N_USERS + 1),
            "age": pa.array(rng.normal(35, 10, N_USERS), mask=rng.random(N_USERS) < 0.1),
            "gender": rng.choice(["F", "M"], N_USERS),
            "interests": [tags(True) for _ in range(N_USERS)],
            "clicks": pa.array(clicks, pa.list_(pa.int64())),
        }
    )
    picked_users = users.take(rng.integers(0, N_USERS, N_ROWS))
    picked_items = items.take(rng.integers(0, N_ITEMS, N_ROWS))
    click = rng.integers(0, 2, N_ROWS)
    rows = {c: picked_users[c] for c in USER_COLUMNS} | {c: picked_items[c] for c in items.column_names}
    rows |= {"position": rng.integers(1, 6, N_ROWS), "click": click, "purchase": click * rng.integers(0, 2, N_ROWS)}
    return users, items, pa.table(rows)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    users, items, rows = world_tables()
    root = tmp_path_factory.mktemp("replay")
    cut = [0, int(0.7 * N_ROWS), int(0.85 * N_ROWS), N_ROWS]
    for name, start, end in zip(("train", "valid", "test"), cut, cut[1:], strict=False):
        pq.write_table(rows.slice(start, end - start), root / f"{name}.parquet")
    return World(users, items, root)


def config(world: World, model: str) -> dict[str, Any]:
    """The pipeline of one model: the world's features, DIN/BST-style history attrs, tasks for multi-task."""
    features = [{**f, "attrs": ATTRS} if f["name"] == "clicks" else f for f in FEATURES]
    data = {name: str(world.root / f"{name}.parquet") for name in ("train", "valid", "test")}
    tree: dict[str, Any] = {
        "name": f"replay-{model}",
        "data": {"source": "samples", "label": "click", **data},
        "embedding_dim": 8,
        "features": features,
        "model": {"name": model},
        "train": {"batch_size": 256, "epochs": 1, "early_stop": None, "progress": False},
        "eval": {"metrics": ["auc"]},
    }
    if model in MULTITASK:
        tree["tasks"] = TASKS
    return tree


@pytest.fixture(scope="module")
def bundles(world: World) -> dict[str, Path]:
    """Model name -> its trained bundle; filled on first use, shared by the tests of this module."""
    return {}


def bundle_of(model: str, world: World, bundles: dict[str, Path]) -> Path:
    if model not in bundles:
        bundles[model] = train(build_config(config(world, model)), world.root / model).bundle
    return bundles[model]


def joined(
    predictor: Predictor, world: World, user: dict[str, Any], ids: list[Any], context: dict[str, Any]
) -> pa.Table:
    """What a left join of (user, candidates, context) gives the batch path: unknown items get null columns."""
    keys = pa.array(ids, pa.int64())
    picked = world.items.take(pc.index_in(keys, value_set=world.items["item_id"]))
    columns: dict[str, Any] = {"item_id": keys} | {c: picked[c] for c in predictor.item_columns if c != "item_id"}
    for column in predictor.user_columns + predictor.context_columns:
        value = context.get(column, user.get(column))
        columns[column] = pa.array([value] * len(ids), predictor.types[column])
    return pa.table(columns)


def requests(world: World) -> list[tuple[dict[str, Any], list[Any], dict[str, Any]]]:
    """Each test-split user's impressions as one request, then odd ones: unknown ids, a repeat, missing values."""
    test = pq.read_table(world.root / "test.parquet")
    out = []
    for user_id in pc.unique(test["user_id"]).to_pylist():
        mine = test.filter(pc.equal(test["user_id"], user_id))
        user = {c: mine[c][0].as_py() for c in USER_COLUMNS}
        out.append((user, mine["item_id"].to_pylist(), {"position": mine["position"][0].as_py()}))
    everything = [*range(1, N_ITEMS + 1), 10**6, 7, 7]
    out.append(({"user_id": 10**6, "gender": "X", "clicks": [3, 10**6]}, everything, {}))  # unknown user, no age
    out.append(({"user_id": 2, "age": None, "interests": None, "clicks": None}, everything, {"position": 9}))
    out.append(({}, [5], {"position": 1}))  # one candidate: no broadcast
    return out


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_serves_the_batch_paths_inputs_and_scores(
    model: str, world: World, bundles: dict[str, Path]
) -> None:
    path = bundle_of(model, world, bundles)
    bundle = load_bundle(path)
    predictor = Predictor(bundle)
    predictor.set_items(world.items)
    tasks = predictor.tasks or ("score",)
    spread = []
    for user, ids, context in requests(world):
        rows = joined(predictor, world, user, ids, context)
        assert_batches_equal(predictor.build_inputs(user, ids, context), bundle.features.transform(rows, labels=False))
        expected = task_scores(bundle, rows)
        by_task = predictor.score_tasks(user, ids, context)
        assert list(by_task) == list(tasks)
        np.testing.assert_allclose(np.stack([by_task[t] for t in tasks], axis=1), expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(predictor.score(user, ids, context), score_table(bundle, rows), rtol=0, atol=1e-6)
        spread.append(expected)
    assert np.std(np.concatenate(spread)) > 1e-4  # scores vary: the comparison is not between constants
    attrs = predictor.build_inputs(*requests(world)[0]).bags["clicks"].attrs
    assert [(name, tuple(a.shape[2:])) for name, a in attrs.items()] == [("category_id", (1,)), ("tags", (3,))]


def test_recommend_answers_for_a_din_bundle_with_sequence_attrs(world: World, bundles: dict[str, Path]) -> None:
    """/recommend through the real app: the store's user row (with its click history) ranked by DIN."""
    path = bundle_of("din", world, bundles)
    tables = world.root / "tables"
    tables.mkdir(exist_ok=True)
    pq.write_table(world.users, tables / "users.parquet")
    pq.write_table(world.items, tables / "items.parquet")
    entities = {e: {"path": f"tables/{e}s.parquet", "key": f"{e}_id"} for e in ("user", "item")}
    serving = world.root / "serving.yaml"
    serving.write_text(yaml.safe_dump({"store": {"kind": "embedded", "entities": entities}, "recommend": {"k": 5}}))
    service = build_service(path, load_serving_config(serving, ["watch.enabled=false"]))
    client = TestClient(create_app(service))
    longest = int(np.argmax(pc.list_value_length(world.users["clicks"]).to_numpy(zero_copy_only=False)))
    user_id, candidates = world.users["user_id"][longest].as_py(), list(range(1, N_ITEMS + 1))
    answer = client.post("/recommend", json={"user_id": user_id, "candidates": candidates, "k": 5})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    user = world.users.slice(longest, 1).to_pylist()[0]
    assert len(user["clicks"]) >= 5  # a full history for DIN to attend over
    scores = service.predictor.score(user, candidates)
    top = np.argsort(-scores, kind="stable")[:5]
    assert [i["item_id"] for i in items] == [candidates[t] for t in top]
    rows = joined(service.predictor, world, user, candidates, {})
    expected = score_table(load_bundle(path), rows)[top]
    np.testing.assert_allclose([i["score"] for i in items], expected, rtol=0, atol=1e-6)
