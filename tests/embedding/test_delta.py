"""Delta checkpoints: base + deltas restore a full save bit for bit, stay small, and update a served bundle."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from recforge import pipeline
from recforge.batch import Batch
from recforge.bundle import load_bundle, save_bundle, score_table
from recforge.bundle.delta import apply_delta_to_bundle
from recforge.config import build_config
from recforge.config.features import DynamicStorage
from recforge.embedding import DynamicTable, dynamic_tables, evict_all
from recforge.embedding.delta import ROWS, apply_delta, load_base, mark_clean, save_base, save_delta
from recforge.errors import BundleError
from recforge.state_io import load_state, save_state
from recforge.train.optim import build_optimizers

from support import small_synthetic


def assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def grad_step(t: DynamicTable, ids: torch.Tensor) -> None:
    t.train()
    t(ids).pow(2).sum().backward()


@pytest.mark.parametrize("kind", ["rowwise_adagrad", "sparse_adam"])
def test_table_chain_with_admission_eviction_and_slot_reuse(kind: str, tmp_path: Path) -> None:
    def make() -> DynamicTable:
        t = DynamicTable(
            3, DynamicStorage(kind="dynamic", initial_capacity=4, admission={"kind": "counter", "min_count": 2})
        )
        t.configure_optimizer(kind, 0.05)
        return t

    torch.manual_seed(0)
    t = make()
    for _ in range(2):
        grad_step(t, torch.arange(20) * (1 << 40))
    base = save_base(t, tmp_path / "base")
    grad_step(t, torch.tensor([0, 7, 7, 1 << 40]))  # 7 admitted (counted twice in the batch), capacity grows later
    grad_step(t, torch.arange(100, 140))  # pending only
    d1 = save_delta(t, tmp_path / "d1", parent=tmp_path / "base")
    assert d1["tables"][""]["rows"] == 3 and d1["sequence"] == 1 and d1["base"] == base["version"]
    grad_step(t, torch.arange(100, 140))  # admitted: the table doubles
    t.config.eviction.max_rows = 30
    assert t.evict() == 31  # 61 rows, cap 30
    grad_step(t, torch.tensor([0, 500, 500, 1 << 40]))  # 500 takes a freed slot; 0 and 1<<40 may come back
    d2 = save_delta(t, tmp_path / "d2", parent=d1)
    assert d2["tables"][""]["tombstones"] > 0

    u = make()
    load_base(u, tmp_path / "base")
    with pytest.raises(BundleError, match="in order"):
        apply_delta(u, tmp_path / "d2", parent_version=base["version"])
    apply_delta(u, tmp_path / "d1", parent_version=base["version"])
    apply_delta(u, tmp_path / "d2", parent_version=d1["version"])
    assert_same_state(u.state_dict(), t.state_dict())
    # and the restored table keeps training exactly like the original
    for each in (t, u):
        torch.manual_seed(1)
        grad_step(each, torch.tensor([7, 500, 900]))
    assert_same_state(u.state_dict(), t.state_dict())


def dynamic_tree() -> dict[str, Any]:
    tree = small_synthetic(epochs=1)
    tree["data"]["synthetic"].update(n_users=20_000, n_items=2_000)
    for f in tree["features"]:
        if f["name"] in ("user_id", "item_id"):
            f["storage"] = {"kind": "dynamic", "initial_capacity": 64, "eviction": {"max_rows": 15_000}}
    return tree


def one_percent_batches(table: pa.Table, users: np.ndarray, items: np.ndarray, features: Any) -> list[Batch]:
    """Training rows of the chosen users only, their items replaced by the chosen items (4 batches)."""
    rows = table.filter(pc.is_in(table["user_id"], pa.array(users, table["user_id"].type)))
    picked = pa.array(items[np.arange(rows.num_rows) % len(items)], rows["item_id"].type)
    rows = rows.set_column(rows.schema.get_field_index("item_id"), "item_id", picked)
    cut = np.linspace(0, rows.num_rows, 5).astype(int)
    return [features.transform(rows.slice(a, b - a), labels=True) for a, b in itertools.pairwise(cut)]


def train_on(model: nn.Module, optimizers: list[torch.optim.Optimizer], batches: list[Batch]) -> None:
    model.train()
    for batch in batches:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        logits = model(batch)
        nn.functional.binary_cross_entropy_with_logits(logits.float(), batch.labels["click"]).backward()
        for opt in optimizers:
            opt.step()


def file_size(path: Path) -> int:
    return path.stat().st_size


def test_deepfm_base_plus_deltas_equals_full_save_and_updates_a_served_bundle(tmp_path: Path) -> None:
    cfg = build_config(dynamic_tree())
    run = pipeline.train(cfg, tmp_path / "run")
    served = load_bundle(run.bundle)  # the base, as serving holds it
    trained = load_bundle(run.bundle)  # keeps training; a bundle is a base (loaded = clean)
    model, features = trained.model, trained.features
    optimizers = build_optimizers(model, cfg.train.optimizer)
    tables = dynamic_tables(model)
    train = pq.read_table(run.samples.train)
    rng = np.random.default_rng(0)
    all_users, all_items = np.unique(train["user_id"].to_numpy()), np.unique(train["item_id"].to_numpy())
    users = rng.choice(all_users, len(all_users) // 100, replace=False)
    items = rng.choice(all_items, len(all_items) // 100, replace=False)

    # 1) train on 1% of the user and item ids
    train_on(model, optimizers, one_percent_batches(train, users, items, features))
    d1 = save_delta(model, tmp_path / "d1", parent=run.bundle)
    full = tmp_path / "full1"
    save_state(model.state_dict(), full)
    ratio = file_size(tmp_path / "d1" / ROWS) / file_size(full.with_suffix(".safetensors"))
    with_dense = (file_size(tmp_path / "d1" / ROWS) + file_size(tmp_path / "d1" / "dense.safetensors")) / file_size(
        full.with_suffix(".safetensors")
    )
    print(f"delta rows / full = {ratio:.4f}; with dense weights = {with_dense:.4f}")
    assert ratio <= 0.02, ratio
    assert sum(d1["tables"][name]["rows"] for name in d1["tables"]) <= 0.02 * sum(len(t) for t in tables)

    # 2) new ids push the user tables over their cap: eviction leaves tombstones, freed slots are reused
    for t in tables:
        t.config.eviction.max_rows = len(t)
    for offset in (10**7, 2 * 10**7):  # the second round takes slots the eviction freed
        newcomers = users + offset
        train_on(model, optimizers, one_percent_batches(_renamed(train, users, newcomers), newcomers, items, features))
        if offset == 10**7:
            assert evict_all(model) > 0
    d2 = save_delta(model, tmp_path / "d2", parent=d1)
    assert sum(info["tombstones"] for info in d2["tables"].values()) > 0

    # base + deltas == a full save of the final model, every state tensor bit for bit
    save_state(model.state_dict(), tmp_path / "full2")
    final = save_bundle(tmp_path / "final", cfg, features, model, {})
    test = pq.read_table(run.samples.test)
    before = score_table(served, test)
    with pytest.raises(BundleError, match="in order"):
        apply_delta_to_bundle(served, tmp_path / "d2")
    base_version = served.version
    assert apply_delta_to_bundle(served, tmp_path / "d1") == d1["version"]
    assert apply_delta_to_bundle(served, tmp_path / "d2") == d2["version"] != base_version
    assert_same_state(served.model.state_dict(), load_state(tmp_path / "full2"))
    after = score_table(served, test)
    assert not np.array_equal(before, after)
    assert np.array_equal(after, score_table(load_bundle(final), test))


def _renamed(table: pa.Table, users: np.ndarray, new_ids: np.ndarray) -> pa.Table:
    """The rows of `users` with each user id replaced by the matching new id (ids never seen before)."""
    rows = table.filter(pc.is_in(table["user_id"], pa.array(users, table["user_id"].type)))
    mapping = dict(zip(users.tolist(), new_ids.tolist(), strict=True))
    renamed = pa.array([mapping[u] for u in rows["user_id"].to_pylist()], rows["user_id"].type)
    return rows.set_column(rows.schema.get_field_index("user_id"), "user_id", renamed)


def test_mark_clean_after_a_bundle_save_starts_a_chain(tmp_path: Path) -> None:
    t = DynamicTable(2, DynamicStorage(kind="dynamic"))
    grad_step(t, torch.arange(10))
    mark_clean(t)
    assert not t.dirty.any() and t.tombstones == []
    untouched = copy.deepcopy(t)
    grad_step(t, torch.tensor([3]))
    info = save_delta(t, tmp_path / "d", parent={"version": "bundle-v1"}, dense=False)
    assert info["base"] == "bundle-v1" and info["tables"][""]["rows"] == 1
    apply_delta(untouched, tmp_path / "d", parent_version="bundle-v1")
    assert_same_state(untouched.state_dict(), t.state_dict())
