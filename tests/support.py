"""Helpers the tests import: the repo root, small synthetic pipeline configs, exact Batch comparison and a real
`recforge serve` process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from recforge.batch import Batch
from recforge.serving.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]


def recforge_command(*args: str | Path) -> list[str]:
    """The argv of `recforge ARGS` run by this interpreter (so the checkout under test is what runs)."""
    return [sys.executable, "-m", "recforge", *map(str, args)]


def recforge(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real CLI to its end; with `check`, a non-zero exit fails the test with its output."""
    proc = subprocess.run(recforge_command(*args), capture_output=True, text=True, cwd=REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"recforge {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def small_synthetic(**train: Any) -> dict[str, Any]:
    """A 2k-user synthetic world and DeepFM, small enough for a test to train in seconds."""
    return {
        "name": "small",
        "data": {
            "source": "synthetic",
            "label": "click",
            "synthetic": {"n_users": 2000, "n_items": 500, "n_categories": 10, "n_impressions": 60000, "seed": 1},
        },
        "embedding_dim": 8,
        "features": [
            {"name": "user_id", "kind": "id", "side": "user"},
            {"name": "age", "kind": "numeric", "side": "user", "boundaries": [25, 35, 45, 55]},
            {"name": "gender", "kind": "id", "side": "user"},
            {"name": "item_id", "kind": "id", "side": "item"},
            {"name": "category_id", "kind": "id", "side": "item"},
            {"name": "price", "kind": "numeric", "side": "item", "n_buckets": 8},
            {"name": "position", "kind": "id", "side": "context"},
        ],
        "model": {"name": "deepfm", "deep": {"hidden": [64, 32], "dropout": 0.0}},
        "train": {"batch_size": 1024, "epochs": 2, "progress": False, **train},
        "eval": {"metrics": ["auc", "logloss", "gauc@user_id"]},
    }


def spark_fit_features() -> list[dict[str, Any]]:
    """Features of the synthetic world beyond small_synthetic's vocabularies and quantiles, for the Spark-fit
    tests: every numeric transform, hashed ids, a vocabulary cut by min_count and max_vocab, and a cross."""
    return [
        {"name": "price_std", "kind": "numeric", "column": "price", "side": "item", "transform": "standard"},
        {"name": "price_minmax", "kind": "numeric", "column": "price", "side": "item", "transform": "minmax"},
        {"name": "price_log", "kind": "numeric", "column": "price", "side": "item", "transform": "log"},
        {"name": "user_hashed", "kind": "id", "column": "user_id", "side": "user", "hash_buckets": 97},
        {"name": "item_rare", "kind": "id", "column": "item_id", "side": "item", "min_count": 150, "max_vocab": 40},
        {"name": "category_x_position", "kind": "cross", "inputs": ["category_id", "position"], "buckets": 211},
    ]


def small_multitask(model: dict[str, Any], **train: Any) -> dict[str, Any]:
    """The small synthetic world with its `purchase` objective: tasks ctr (click) and ctcvr (purchase)."""
    cfg = small_synthetic(**train)
    cfg["data"]["synthetic"]["purchase"] = True
    cfg["tasks"] = [{"name": "ctr", "label": "click"}, {"name": "ctcvr", "label": "purchase"}]
    cfg["model"] = model
    cfg["eval"] = {"metrics": ["auc", "logloss"]}
    return cfg


def planted_synthetic(**train: Any) -> dict[str, Any]:
    """small_synthetic with a planted category_id x city_tier interaction and two noise columns as features."""
    tree = small_synthetic(**train)
    tree["data"]["synthetic"].update(cross_strength=1.0, noise_columns=2)
    tree["features"] += [
        {"name": "city_tier", "kind": "id", "side": "user"},
        {"name": "noise_1", "kind": "id"},
        {"name": "noise_2", "kind": "id"},
    ]
    return tree


def id_level_cross_world(seed: int) -> dict[str, Any]:
    """small_synthetic reshaped so that id-level crosses tempt: 500 users with ~200 impressions each, 2,000 items,
    a planted category_id x city_tier interaction and a per-user x category taste only user_id x category_id can
    memorise (`user_taste`). AutoCross should accept category_id x city_tier and not user_id x category_id."""
    tree = small_synthetic()
    tree["data"]["synthetic"].update(
        n_users=500, n_items=2000, n_impressions=100_000, seed=seed, cross_strength=1.0, user_taste=1.0
    )
    tree["features"].append({"name": "city_tier", "kind": "id", "side": "user"})
    return tree


def assert_batches_equal(online: Batch, offline: Batch) -> None:
    """Every field of the two Batches equal bit for bit: ids, dense, each bag's values, weights and sequence
    attributes, labels, weights, extras. Fields are walked, not listed, so a field added later is compared too."""
    assert_same(online, offline, "batch")


def assert_same(a: Any, b: Any, where: str) -> None:
    """Exact equality through dataclasses, dicts (same keys in the same order), tensors (dtype, shape, values)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key, value in a.items():
            assert_same(value, b[key], f"{where}.{key}")
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for field in dataclasses.fields(a):
            assert_same(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def joined_rows(
    predictor: Predictor, items: pa.Table, user: dict[str, Any], ids: list[Any], context: dict[str, Any]
) -> pa.Table:
    """What a left join of (user, candidates, context) gives the batch path: unknown items get null columns."""
    rows = pc.index_in(pa.array(ids, items[predictor.item_key].type), value_set=items[predictor.item_key])
    picked = items.take(rows)
    columns = {predictor.item_key: pa.array(ids, items[predictor.item_key].type)}
    columns |= {c: picked[c] for c in predictor.item_columns if c != predictor.item_key}
    for column in predictor.user_columns + predictor.context_columns:
        value = context.get(column, user.get(column))
        kind = predictor.types[column]  # a null or a map (a list of pairs in Python) needs the type; else inferred
        columns[column] = pa.array([value] * len(ids), kind if value is None or pa.types.is_map(kind) else None)
    return pa.table(columns)


# ---------------------------------------------------------------- feature-store tables
def odd_types() -> pa.Table:
    """Every value kind the Redis encoding must carry exactly, nulls and float edge cases included."""
    return pa.table(
        {
            "sku": pa.array(["a", "b", 'ü-"q"', "d"], pa.string()),
            "i8": pa.array([-128, 127, None, 0], pa.int8()),
            "u64": pa.array([2**64 - 1, 0, 1, None], pa.uint64()),
            "f64": pa.array([0.1, -0.0, math.inf, math.nan], pa.float64()),
            "f32": pa.array([1 / 3, None, -math.inf, 1e-40], pa.float32()),
            "whole": pa.array([1.0, 2.0, None, -3.0], pa.float64()),
            "flag": pa.array([True, False, None, True], pa.bool_()),
            "tags": pa.array([["x", "y"], [], None, ["z"]], pa.list_(pa.string())),
            "hist": pa.array([[1, 2**62], None, [3], []], pa.large_list(pa.int64())),
            "pos": pa.array([{"x": 1.5, "y": "n"}, None, {"x": None, "y": "s"}, {"x": 2.0, "y": None}]),
            "ts": pa.array([1_700_000_000_123_456, None, 0, -1], pa.timestamp("us", tz="UTC")),
            "day": pa.array([dt.date(2024, 1, 2), None, dt.date(1970, 1, 1), dt.date(1900, 5, 6)]),
            "blob": pa.array([b"\x00\xff", b"", None, b"abc"], pa.binary()),
            "cat": pa.array(["p", "q", "p", None]).dictionary_encode(),
            "nothing": pa.nulls(4),
        }
    )


def assert_bit_equal(got: pa.Table, want: pa.Table) -> None:
    """Same schema and values; floats compared by their bits (-0.0, subnormals, NaN) and null masks."""
    assert got.schema == want.schema, (got.schema, want.schema)
    for name in want.column_names:
        a, b = got[name].combine_chunks(), want[name].combine_chunks()
        if pa.types.is_floating(b.type):
            assert a.is_null().equals(b.is_null()), name
            bits = pa.uint32() if pa.types.is_float32(b.type) else pa.uint64()
            filled = [x.fill_null(0).view(bits).to_numpy() for x in (a, b)]
            np.testing.assert_array_equal(filled[0], filled[1], err_msg=name)
        else:
            assert a.equals(b), (name, a, b)


def expected_rows(table: pa.Table, key: str, keys: list[object]) -> pa.Table:
    """Source rows in request order, nulls but the key where a key is absent."""
    at = {k: i for i, k in enumerate(table[key].to_pylist())}
    rows = pa.array([at.get(k) for k in keys], pa.int64())
    out = table.take(rows)
    return out.set_column(out.schema.get_field_index(key), key, pa.array(keys, table.schema.field(key).type))


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, config: Path, *settings: str) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "recforge", "serve", str(model), "--config", str(config), "--port", str(port)]
    for s in ("watch.poll_seconds=0.05", *settings):
        cmd += ["--set", s]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited:\n{process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(url + "/v2/health/live", timeout=1).status_code == 200:
                return Server(url, process)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("server did not start in 120 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    server.process.wait(30)


SPARK_MASTER = "local[2]"
# Small jobs on a small machine: startup and compilation dominate, so skip whole-stage code generation
# and C2 JIT. Results cannot change: both paths evaluate the same Java double arithmetic.
FAST_LOCAL_SPARK = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
