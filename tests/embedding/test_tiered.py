"""TieredTable: hot rows in RAM within a byte budget, cold rows in a row file, same results as in RAM."""

from __future__ import annotations

import copy
import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from pydantic import ValidationError

from recforge import pipeline
from recforge.bundle import load_bundle, score_table
from recforge.bundle.delta import apply_delta_to_bundle
from recforge.config import build_config
from recforge.config.features import DynamicStorage
from recforge.embedding import DynamicTable, EmbeddingCollection
from recforge.embedding.delta import apply_delta, load_base, mark_clean, save_base, save_delta
from recforge.embedding.tiered import TieredTable
from recforge.errors import ConfigError
from recforge.pipeline.ev_inspect import _inspect_dynamic
from recforge.state_io import load_state, save_state

from support import small_synthetic

DIM = 4


def pair(hot_rows: int, policy: str = "lfu", kind: str = "rowwise_adagrad", **storage: Any) -> tuple[Any, Any]:
    """An in-RAM DynamicTable and a TieredTable with room for `hot_rows` rows, same config and optimizer."""
    ram = DynamicTable(DIM, DynamicStorage(kind="dynamic", **storage))
    probe = TieredTable(DIM, DynamicStorage(kind="dynamic", tier={"ram_bytes": 1 << 20}, **storage))
    probe.configure_optimizer(kind, 0.05)
    budget = hot_rows * probe.row_bytes()
    tier = TieredTable(DIM, DynamicStorage(kind="dynamic", tier={"ram_bytes": budget, "policy": policy}, **storage))
    for t in (ram, tier):
        t.configure_optimizer(kind, 0.05)
        t.train()
    assert tier.hot_rows == hot_rows
    return ram, tier


def zipf_ids(gen: torch.Generator, batch: int, universe: int) -> torch.Tensor:
    """Skewed ids spread over int64 (squared uniform ranks times a large odd number)."""
    return (torch.rand(batch, generator=gen).pow(2) * universe).long() * 1_000_003 - 7


def step(t: DynamicTable, ids: torch.Tensor, seed: int) -> None:
    torch.manual_seed(seed)  # admission draws fresh rows from the global generator
    out = t(ids)
    (out * torch.arange(1.0, DIM + 1)).sum().backward()


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].shape == sb[key].shape and torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(("kind", "policy"), [("rowwise_adagrad", "lfu"), ("sparse_adam", "lru")])
def test_training_through_the_tiers_is_bit_identical_to_the_in_ram_table(kind: str, policy: str) -> None:
    storage = {"initial_capacity": 8, "admission": {"kind": "counter", "min_count": 2}}
    ram, tier = pair(40, policy, kind, **storage)
    gen = torch.Generator().manual_seed(0)
    for i in range(80):
        ids = zipf_ids(gen, 24, 400)
        step(ram, ids, i)
        step(tier, ids, i)
        assert tier.resident_bytes() <= tier.tier.ram_bytes  # after every step
        assert len(tier.hot_slots()) <= tier.hot_rows
        if i == 40:  # eviction through the tiers drops the same rows
            for t in (ram, tier):
                t.config.eviction.max_rows = 100
            assert ram.evict() == tier.evict() > 0
    assert len(tier) > 4 * tier.hot_rows and tier.promoted > 100 and tier.demoted > 100 and tier.written_back > 100
    assert tier.file.nbytes >= len(tier) * tier.file.dtype.itemsize
    assert_same_state(ram, tier)  # every slot array (dead slots included), step and admission counters
    rows, summary = _inspect_dynamic(tier, "t", None)  # `ev inspect` reads through the tiers
    assert rows.equals(_inspect_dynamic(ram, "t", None)[0]) and summary["rows"] == len(ram)
    assert summary["tier"]["resident_bytes"] <= summary["tier"]["ram_bytes"]
    twin = copy.deepcopy(tier)  # its own row file with the same state
    assert twin.file.path != tier.file.path and twin.config == tier.config
    assert_same_state(twin, tier)
    ram.eval(), tier.eval()
    probe = torch.cat([torch.arange(400) * 1_000_003 - 7, torch.tensor([5, -5])])  # > hot rows: read in chunks
    assert torch.equal(ram(probe), tier(probe))
    assert torch.equal(ram(probe[:10].view(2, 5)), tier(probe[:10].view(2, 5)))  # one chunk, any shape
    assert tier.resident_bytes() <= tier.tier.ram_bytes


def test_rows_read_stay_hot_until_their_backward() -> None:
    ram, tier = pair(30)
    warm = torch.arange(100, 130)
    for t in (ram, tier):  # 30 rows hot, then two lookups that each need demotions before one backward
        step(t, warm, 0)
    a, b = torch.arange(0, 14), torch.arange(14, 28)
    for t in (ram, tier):
        torch.manual_seed(1)
        (t(a).sum() + 2 * t(b).sum()).backward()
    assert tier.demoted >= 28 and not tier._pins.any()
    assert_same_state(ram, tier)
    out = tier(torch.arange(40, 50))  # a graph dropped without backward lets its rows go
    assert tier._pins.sum() == 10
    del out
    gc.collect()
    assert not tier._pins.any()


def test_serving_threads_read_their_own_rows() -> None:
    ram, tier = pair(24)
    gen = torch.Generator().manual_seed(5)
    for i in range(30):
        ids = zipf_ids(gen, 20, 300)
        step(ram, ids, i)
        step(tier, ids, i)
    ram.eval(), tier.eval()
    probes = [torch.randint(0, 300, (12,), generator=gen) * 1_000_003 - 7 for _ in range(400)]
    with ThreadPoolExecutor(4) as pool:  # each lookup promotes and demotes: they must not interleave
        served = list(pool.map(tier, probes))
    assert all(torch.equal(ram(p), out) for p, out in zip(probes, served, strict=True))
    assert tier.promoted > 1000


def test_a_step_needing_more_rows_than_the_budget_names_the_setting() -> None:
    _, tier = pair(8)
    with pytest.raises(ConfigError, match=r"storage\.tier\.ram_bytes.*\n  fix: raise ram_bytes to at least"):
        step(tier, torch.arange(9), 0)
    with pytest.raises(ConfigError, match="hold no row"):
        TieredTable(DIM, DynamicStorage(kind="dynamic", tier={"ram_bytes": 10}))


def test_tier_config_reads_sizes_and_rejects_others() -> None:
    sizes = {"64MB": 64_000_000, "64MiB": 64 << 20, "1.5GiB": 3 << 29, "4096": 4096, 123: 123}
    for text, expected in sizes.items():
        tier = DynamicStorage(kind="dynamic", tier={"ram_bytes": text}).tier
        assert tier is not None and tier.ram_bytes == expected and tier.policy == "lfu"
    with pytest.raises(ValidationError, match="not a size"):
        DynamicStorage(kind="dynamic", tier={"ram_bytes": "64 parsecs"})
    with pytest.raises(ValidationError, match="policy"):
        DynamicStorage(kind="dynamic", tier={"ram_bytes": 10, "policy": "fifo"})


def test_checkpoints_and_delta_chains_move_between_tiered_and_in_ram(tmp_path: Path) -> None:
    ram, tier = pair(30, kind="sparse_adam", initial_capacity=4, eviction={"max_idle_steps": 30})
    gen = torch.Generator().manual_seed(3)
    trained = torch.nn.ModuleDict({"t": tier})
    base = save_base(trained, tmp_path / "base")
    parent = base
    for chunk in range(3):
        for i in range(20):
            ids = zipf_ids(gen, 20, 300)
            step(ram, ids, 100 * chunk + i)
            step(tier, ids, 100 * chunk + i)
        assert ram.evict() == tier.evict()
        parent = save_delta(trained, tmp_path / f"d{chunk}", parent=parent)
    assert_same_state(ram, tier)
    # a fresh tiered table and a fresh in-RAM one replay base + deltas to the trained state, bit for bit
    for make in (lambda: pair(30, kind="sparse_adam", initial_capacity=4)[1], lambda: DynamicTable(DIM)):
        cold_start = torch.nn.ModuleDict({"t": make()})
        version = load_base(cold_start, tmp_path / "base")["version"]
        for chunk in range(3):
            version = apply_delta(cold_start, tmp_path / f"d{chunk}", parent_version=version)["version"]
        assert_same_state(cold_start, trained)
    # a full save of one kind loads into the other
    save_state(tier.state_dict(), tmp_path / "tier")
    back = DynamicTable(DIM)
    back.load_state_dict(load_state(tmp_path / "tier"))
    assert_same_state(back, ram)
    again = pair(30, kind="sparse_adam")[1]
    again.load_state_dict(ram.state_dict())
    assert_same_state(again, tier)
    assert again.resident_bytes() <= again.tier.ram_bytes


def swap_in_ram(model: torch.nn.Module) -> int:
    """Replace every TieredTable of a model by an in-RAM DynamicTable holding the same state."""
    swapped = 0
    for module in model.modules():
        if isinstance(module, EmbeddingCollection):
            for name, table in list(module.tables.items()):
                if isinstance(table, TieredTable):
                    config = table.config.model_copy(update={"tier": None})
                    ram = DynamicTable(table.dim, config)
                    ram.load_state_dict(table.state_dict())
                    module.tables[name] = ram.eval()
                    swapped += 1
    return swapped


def test_deepfm_trains_and_serves_through_the_tiers(tmp_path: Path) -> None:
    storage = {"kind": "dynamic", "initial_capacity": 64, "tier": {"ram_bytes": "160KB", "path": str(tmp_path)}}
    tree = small_synthetic()
    for f in tree["features"]:
        if f["name"] in ("user_id", "item_id"):
            f["storage"] = copy.deepcopy(storage)
    result = pipeline.train(build_config(tree), tmp_path / "run")
    # in RAM this world scores 0.771 (test_dynamic.py); the tiers change where rows live, not their values
    assert result.metrics["test"]["auc"] > 0.75, result.metrics
    bundle = load_bundle(result.bundle)
    tables = [m for m in bundle.model.modules() if isinstance(m, TieredTable)]
    assert len(tables) == 4  # user and item ids, each with a dim-8 table and a dim-1 (linear) one
    users = max(tables, key=lambda t: (t.dim, len(t)))
    assert len(users) > 1500 and users.hot_rows < len(users)  # the dim-8 user table does not fit its budget
    test = pq.read_table(result.samples.test)
    served = score_table(bundle, test)
    assert all(t.resident_bytes() <= 160_000 for t in tables) and users.promoted > users.hot_rows
    # serving through the tiers scores exactly as the same state in RAM, before and after a delta
    mark_clean(bundle.model)
    bundle.model.train()
    with torch.no_grad():
        for t in tables:  # a few training lookups change some rows (freq, admission) without gradients
            t(torch.tensor([1, 2, 3, 10**12]))
    delta = save_delta(bundle.model, tmp_path / "delta", parent=result.bundle)
    fresh = load_bundle(result.bundle)
    apply_delta_to_bundle(fresh, tmp_path / "delta")
    after = score_table(fresh, test)
    assert swap_in_ram(fresh.model) == 4 and np.array_equal(after, score_table(fresh, test))
    original = load_bundle(result.bundle)
    assert swap_in_ram(original.model) == 4 and np.array_equal(served, score_table(original, test))
    assert delta["tables"]  # the delta carried the rows of the tiered tables
