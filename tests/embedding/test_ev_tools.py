"""Embedding variable tools: `ev inspect` on dynamic/static/multi_hash tables, collision rates, multi-hash storage."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from recforge import pipeline
from recforge.bundle import load_bundle, score_table
from recforge.config import build_config
from recforge.config.features import MultiHashStorage
from recforge.embedding import DynamicTable, MultiHashTable
from recforge.embedding.multi_hash import bucket_indices
from recforge.errors import ConfigError, FeatureError
from recforge.features import FeatureSet
from recforge.pipeline.ev_inspect import colliding, collision_rates, inspect_embedding
from recforge.pipeline.rank import RunResult

from support import small_synthetic


def tiny(storage: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    """A 200-user world, ids only, one epoch: a bundle in about a second."""
    tree = small_synthetic(epochs=1, **train)
    tree["data"]["synthetic"].update(n_users=200, n_items=50, n_impressions=4000)
    tree["features"] = [f for f in tree["features"] if f["name"] in ("user_id", "item_id", "gender")]
    tree["eval"] = {"metrics": ["auc"]}
    if storage is not None:
        for f in tree["features"]:
            if f["name"] in ("user_id", "item_id"):
                f["storage"] = copy.deepcopy(storage)
    return tree


@pytest.fixture(scope="module")
def static_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return pipeline.train(build_config(tiny()), tmp_path_factory.mktemp("static") / "run")


@pytest.fixture(scope="module")
def dynamic_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    storage = {"kind": "dynamic", "initial_capacity": 16, "admission": {"kind": "counter", "min_count": 2}}
    return pipeline.train(build_config(tiny(storage)), tmp_path_factory.mktemp("dynamic") / "run")


def vectors(table: pa.Table) -> torch.Tensor:
    return torch.tensor(np.stack(table["vector"].to_numpy(zero_copy_only=False)))


def test_inspect_static_bundle_rows_vocab_and_norms(static_run: RunResult) -> None:
    bundle = load_bundle(static_run.bundle)
    vocab = bundle.features.states["item_id"].arrays["vocab"]
    table, summary = inspect_embedding(bundle.model, bundle.features, "item_id")
    assert table.num_rows == len(vocab) + 1 == summary["rows"] and summary["kind"] == "static"
    assert table["row"].to_pylist() == list(range(len(vocab) + 1))
    assert table["id"][0].as_py() is None and table["id"].to_pylist()[1:] == vocab.to_pylist()
    got = vectors(table)
    # fused collection: the rows are the item_id slice of the shared weight, without the folded linear column
    collection = bundle.model.embeddings
    start = collection.table_offsets["item_id"]
    assert torch.equal(got, collection.weight[start : start + len(vocab) + 1, :8].detach())
    assert np.array_equal(table["norm"].to_numpy(), torch.linalg.norm(got, dim=1).numpy())
    assert summary["bytes"] == (len(vocab) + 1) * 8 * 4
    top, _ = inspect_embedding(bundle.model, bundle.features, "item_id", top=5)
    assert top.num_rows == 5
    with pytest.raises(ConfigError, match="no embedded feature"):
        inspect_embedding(bundle.model, bundle.features, "nope")


def test_inspect_dynamic_bundle_rows_freq_and_admitted_share(dynamic_run: RunResult) -> None:
    bundle = load_bundle(dynamic_run.bundle)
    dyn = bundle.model.embeddings.tables["user_id"]
    assert isinstance(dyn, DynamicTable)
    table, summary = inspect_embedding(bundle.model, bundle.features, "user_id")
    assert table.num_rows == len(dyn) == summary["rows"] and 0 < len(dyn) <= 200
    assert summary["ids_seen"] == len(dyn) + len(dyn.pending_keys)
    assert summary["admitted_share"] == pytest.approx(len(dyn) / summary["ids_seen"])
    assert summary["evicted"] is None and summary["bytes"] == len(dyn) * 8 * 4
    assert set(table["key"].to_pylist()) == set(dyn.keys.tolist())
    freq = table["freq"].to_numpy()
    assert (np.diff(freq) <= 0).all() and freq.sum() == int(dyn.freq[dyn.alive].sum())
    slots = dyn.rows_of(torch.tensor(table["key"].to_numpy()))
    got = vectors(table)
    assert torch.equal(got, dyn.weight[slots])
    assert torch.equal(torch.tensor(table["last_step"].to_numpy()), dyn.last_step[slots])
    assert np.array_equal(table["norm"].to_numpy(), torch.linalg.norm(got, dim=1).numpy())


def test_collision_rate_hand_computed_case() -> None:
    # signatures: ids 0,1 share (3, 4); id 2 alone; ids 3,4,5 share (7, 7); id 6 shares only its first bucket
    sig = np.array([[3, 4], [3, 4], [3, 5], [7, 7], [7, 7], [7, 7], [7, 8]])
    assert colliding(sig) == 5 and colliding(sig[:, :1]) == 7 and colliding(sig[2:3]) == 0
    # 5 distinct ids (repeats and nulls do not count) whose buckets are computed by hand from the hash
    ids = pa.array([10, 11, 12, 13, 14, 10, None, 12], pa.int64())
    buckets = bucket_indices(np.array([10, 11, 12, 13, 14]), 3, 2)
    expected_1 = colliding(buckets[:, :1])  # hash 0 is static hash_buckets' splitmix64(id) % B
    rates = collision_rates(ids, [3], hashes=1).to_pylist()[0]
    assert (rates["distinct_ids"], rates["colliding_ids"]) == (5, expected_1)
    assert rates["expected_rate"] == pytest.approx(1 - (2 / 3) ** 4)
    two = collision_rates(ids, [3], hashes=2).to_pylist()[0]
    assert two["colliding_ids"] == colliding(buckets) and two["rows"] == 6
    # pigeonhole and a large table
    assert collision_rates(pa.array(np.arange(3)), [2]).to_pylist()[0]["colliding_ids"] >= 2
    assert collision_rates(pa.array(np.arange(100)), [1 << 40], hashes=2).to_pylist()[0]["collision_rate"] == 0


def test_multi_hash_buckets_are_independent_and_match_static_hashing() -> None:
    keys = np.arange(-50_000, 50_000, dtype=np.int64)
    b = bucket_indices(keys, 1000, 3)
    assert b.shape == (100_000, 3) and b.min() >= 0 and b.max() < 1000
    assert np.mean(b[:, 0] == b[:, 1]) < 0.005  # independent hashes agree about 1/B of the time
    from recforge.hashing import hash_values

    assert np.array_equal(b[:, 0], (hash_values(pa.array(keys)) % np.uint64(1000)).astype(np.int64))
    for combine, width in (("sum", 8), ("mean", 8), ("concat", 4)):
        t = MultiHashTable(8, MultiHashStorage(kind="multi_hash", buckets=10, hashes=2, combine=combine))
        assert t.weight.shape == (20, width)
        ids = torch.tensor([[5, -7], [5, 2**62]])
        out = t(ids)
        rows = t.rows_of(ids)
        parts = t.weight[rows]  # [2, 2, k, w]
        want = {"sum": parts.sum(-2), "mean": parts.mean(-2), "concat": parts.flatten(-2)}[combine]
        assert out.shape == (2, 2, 8) and torch.equal(out, want) and torch.equal(out[0, 0], out[1, 0])
    # concat with dim not a multiple of k (the dim-1 linear term): summed instead
    assert MultiHashTable(1, MultiHashStorage(kind="multi_hash", buckets=4, combine="concat")).combine == "sum"


def test_multi_hash_config_rules() -> None:
    tree = tiny({"kind": "multi_hash", "buckets": 64})
    tree["features"][0]["hash_buckets"] = 100
    with pytest.raises(ConfigError, match="multi_hash"):
        build_config(tree)
    tree = tiny({"kind": "multi_hash", "buckets": 64, "hashes": 3, "combine": "mean"})
    tree["features"].append({"name": "seen", "kind": "sequence", "of": "item_id"})
    cfg = build_config(tree)
    storage = cfg.features[0].storage
    assert storage.kind == "multi_hash" and (storage.buckets, storage.hashes, storage.combine) == (64, 3, "mean")
    with pytest.raises(FeatureError, match="multi_hash"):
        FeatureSet.from_config(cfg)


def test_deepfm_trains_with_multi_hash_ids_and_bundle_round_trips(tmp_path: Path) -> None:
    tree = small_synthetic(optimizer={"sparse": "rowwise_adagrad", "lr": 0.002, "sparse_lr": 0.05})
    for f in tree["features"]:
        if f["name"] in ("user_id", "item_id"):
            f["storage"] = {"kind": "multi_hash", "buckets": 512, "hashes": 2, "combine": "concat"}
    result = pipeline.train(build_config(tree), tmp_path / "run")
    # Measured on this world (rowwise_adagrad lr 0.05): static tables 0.791, multi_hash 512 x 2 concat 0.792
    assert result.metrics["test"]["auc"] > 0.75, result.metrics
    bundle = load_bundle(result.bundle)
    tables = [m for m in bundle.model.modules() if isinstance(m, MultiHashTable)]
    assert len(tables) == 4  # user_id and item_id, in the embeddings and in the linear (dim 1, summed) part
    assert sorted((t.weight.shape[0], t.weight.shape[1], t.combine) for t in tables) == [
        (1024, 1, "sum"),
        (1024, 1, "sum"),
        (1024, 4, "concat"),
        (1024, 4, "concat"),
    ]
    test = pq.read_table(result.samples.test)
    before = score_table(bundle, test)
    assert np.array_equal(before, score_table(load_bundle(result.bundle), test))
    summary = inspect_embedding(bundle.model, bundle.features, "user_id")[1]
    assert (summary["kind"], summary["rows"], summary["hashes"]) == ("multi_hash", 1024, 2)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recforge", *args], capture_output=True, text=True, timeout=120)


def test_cli_ev_inspect_and_collisions(dynamic_run: RunResult, tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    done = run_cli("ev", "inspect", str(dynamic_run.bundle), "--feature", "item_id", "--out", str(out), "--top", "3")
    assert done.returncode == 0, done.stderr
    assert "kind: dynamic" in done.stdout and "admitted_share" in done.stdout and "last_step" in done.stdout
    rows = pq.read_table(out)
    assert rows.num_rows == 3 and rows.column_names[:4] == ["key", "freq", "last_step", "idle_steps"]
    ids = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"item_id": np.arange(1000) * 7}), ids)
    done = run_cli("ev", "collisions", str(ids), "--column", "item_id", "--buckets", "100", "--buckets", "1000000")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and "collision_rate" in lines[0]
    done = run_cli("ev", "collisions", str(ids), "--column", "item_id", "--buckets", "100", "--hashes", "2", "--json")
    row = json.loads(done.stdout)
    assert (row["distinct_ids"], row["hashes"], row["rows"]) == (1000, 2, 200)
    done = run_cli("ev", "inspect", str(dynamic_run.bundle), "--feature", "nope")
    assert done.returncode == 2 and "no embedded feature" in done.stderr + done.stdout
