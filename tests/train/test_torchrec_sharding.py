"""TorchRec sharding (`train.distributed.embeddings: torchrec`): 2 torchrun processes over gloo vs one process.

One torchrun launch runs every scenario (planner's choice with sparse Adam, forced row-wise with row-wise
Adagrad); this process computes the single-process reference with recforge's own model and optimizers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

pytest.importorskip("torchrec", reason="torchrec is not installed (bash scripts/setup_torchrec.sh installs it)")

from recforge.bundle.bundle import save_bundle
from recforge.config import build_config
from recforge.config.schema import ModelConfig, OptimizerConfig, PipelineConfig
from recforge.config.torchrec import TorchRecConfig
from recforge.data.synthetic import generate_synthetic
from recforge.errors import ConfigError
from recforge.features.featureset import FeatureSet
from recforge.models.registry import build_model
from recforge.schema import FieldSpec, InputSchema, TableSpec
from recforge.serving.predictor import Predictor
from recforge.train.distributed.torchrec_embeddings import TorchRecFieldEmbeddings
from recforge.train.distributed.torchrec_optim import FUSED_OPTIMIZERS, check_fused_optimizer
from recforge.train.distributed.torchrec_sharding import _constraints, refuse_outside_readers
from recforge.train.optim import build_optimizers

from support import REPO, small_synthetic

WORKER = Path(__file__).with_name("torchrec_worker.py")
GLOBAL_BATCH = 512
ADAGRAD = {"sparse": "rowwise_adagrad", "lr": 0.01, "sparse_lr": 0.05}  # the one FBGEMM CPU optimizer recforge has
SCENARIOS: dict[str, dict[str, Any]] = {
    "planner": {"optimizer": ADAGRAD, "torchrec": {}},
    "row_wise": {"optimizer": ADAGRAD, "torchrec": {"sharding": "row_wise", "tables": {"user_id": "table_wise"}}},
}


def joined_samples(rows: int) -> pa.Table:
    """The small synthetic world's first impressions joined with their user and item, plus a `tags` list."""
    tree = small_synthetic()
    raw = generate_synthetic(build_config(tree).data.synthetic)
    behavior = raw.behavior.slice(0, rows)
    users, items = raw.users, raw.items
    assert users is not None and items is not None
    u = behavior["user_id"].to_numpy() - 1
    i = behavior["item_id"].to_numpy() - 1
    cols = {name: behavior[name] for name in ("user_id", "item_id", "position", "click")}
    cols.update({name: users[name].take(pa.array(u)) for name in ("age", "gender")})
    cols.update({name: items[name].take(pa.array(i)) for name in ("category_id", "brand_id", "price")})
    brand = cols["brand_id"].to_numpy()
    tags = [[f"b{b % 7}", f"b{b % 5}"][: b % 3] for b in brand]  # 0, 1 or 2 tags: empty bags included
    return pa.table({**cols, "tags": pa.array(tags, pa.list_(pa.string()))})


@pytest.fixture(scope="module")
def fitted() -> tuple[PipelineConfig, FeatureSet, pa.Table]:
    """DeepFM's config over id, bucketed, hashed and tag features, its fitted FeatureSet and the samples."""
    tree = small_synthetic()
    tree["features"] += [
        {"name": "brand_id", "kind": "id", "side": "item", "hash_buckets": 64},
        {"name": "tags", "kind": "tag", "side": "item", "max_len": 2},
    ]
    cfg = build_config(tree)
    table = joined_samples(4000)
    return cfg, FeatureSet.from_config(cfg).fit([table]), table


@pytest.fixture(scope="module")
def world(fitted: tuple[PipelineConfig, FeatureSet, pa.Table]) -> dict[str, Any]:
    """What both runs start from: the schema, model config, seeded initial weights and one global batch."""
    cfg, features, table = fitted
    torch.manual_seed(7)
    model = build_model(features.schema(), cfg.model)
    return {
        "schema": features.schema().to_json(),
        "model": cfg.model.model_dump(),
        "init": {k: v.clone() for k, v in model.state_dict().items()},
        "batch": features.transform(table.slice(0, GLOBAL_BATCH)),
    }


@pytest.fixture(scope="module")
def sharded_runs(world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every scenario run by one `torchrun --nproc_per_node 2` (gloo, CPU); rank 0's results by scenario."""
    work = tmp_path_factory.mktemp("torchrec")
    torch.save(world, work / "world.pt")
    (work / "scenarios.json").write_text(json.dumps(SCENARIOS))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*command, str(WORKER), str(work)], capture_output=True, text=True, env=env, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return {name: torch.load(work / f"{name}.pt", weights_only=False) for name in SCENARIOS}


def ordinary_model(world: dict[str, Any]) -> nn.Module:
    cfg = build_config(small_synthetic())
    model = build_model(InputSchema.from_json(world["schema"]), cfg.model.model_validate(world["model"]))
    model.load_state_dict(world["init"])
    return model


def one_process_step(world: dict[str, Any], optimizer: dict[str, Any]) -> tuple[torch.Tensor, nn.Module]:
    """The reference: recforge's own model and optimizers, one step on the whole global batch."""
    model = ordinary_model(world)
    optimizers = build_optimizers(model, OptimizerConfig.model_validate(optimizer))
    model.train()
    logits = model(world["batch"])
    nn.functional.binary_cross_entropy_with_logits(logits, world["batch"].labels["click"]).backward()
    for opt in optimizers:
        opt.step()
    return logits.detach(), model


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_two_sharded_processes_step_like_one(
    name: str, world: dict[str, Any], sharded_runs: dict[str, dict[str, Any]]
) -> None:
    run = sharded_runs[name]
    logits, reference = one_process_step(world, SCENARIOS[name]["optimizer"])
    torch.testing.assert_close(run["logits"], logits, rtol=0, atol=1e-5)
    assert len(run["plan"]) == 9  # 9 tables (7 ids, hashed brand_id, tags) in one sharded collection
    if name == "planner":
        assert set(run["plan"].values()) <= {"table_wise", "row_wise"}, run["plan"]
    else:
        assert run["plan"].pop("embeddings.rows.user_id") == "table_wise"
        assert set(run["plan"].values()) == {"row_wise"}, run["plan"]
    after = reference.state_dict()
    assert set(run["state"]) == set(after)
    weight = after["embeddings.weight"]  # recforge's fused tables (+ folded linear column)
    moved = (weight - world["init"]["embeddings.weight"]).abs().amax(dim=1)
    assert int((moved > 1e-4).sum()) > 300  # the step moved the rows the batch read
    for key, value in after.items():
        torch.testing.assert_close(run["state"][key], value, rtol=0, atol=1e-5, msg=f"{name}: {key}")
    reference.eval()
    with torch.no_grad():  # scored after the step by rank 0 while rank 1 had an empty batch
        torch.testing.assert_close(run["after"], reference(world["batch"]), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_gathered_state_loads_into_the_ordinary_model_and_its_bundle_serves(
    world: dict[str, Any],
    sharded_runs: dict[str, dict[str, Any]],
    fitted: tuple[PipelineConfig, FeatureSet, pa.Table],
    tmp_path: Path,
) -> None:
    cfg, features, table = fitted
    model = ordinary_model(world)
    model.load_state_dict(sharded_runs["row_wise"]["state"], strict=True)
    _, reference = one_process_step(world, SCENARIOS["row_wise"]["optimizer"])
    model.eval(), reference.eval()
    with torch.no_grad():
        expected = torch.sigmoid(reference(world["batch"])).numpy()
    bundle = save_bundle(tmp_path / "bundle", cfg, features, model, metrics={})
    served = Predictor.load(bundle).score_table(table.slice(0, GLOBAL_BATCH))
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)


def test_dynamic_table_is_refused_by_name(world: dict[str, Any]) -> None:
    schema = InputSchema.from_json(world["schema"])
    tables = tuple(
        t if t.name != "item_id" else type(t)(t.name, t.num_embeddings, t.dim, {"kind": "dynamic"})
        for t in schema.tables
    )
    from recforge.embedding import EmbeddingCollection

    source = EmbeddingCollection(InputSchema(schema.fields, tables), linear=True)
    with pytest.raises(ConfigError, match="table 'item_id' has `storage: dynamic`") as err:
        TorchRecFieldEmbeddings(source)
    assert "fix:" in str(err.value)


def test_unknown_table_override_names_the_known_ones(world: dict[str, Any]) -> None:
    model = ordinary_model(world)
    model.embeddings = TorchRecFieldEmbeddings(model.embeddings)
    with pytest.raises(ConfigError, match="no embedding table named 'itme_id'") as err:
        _constraints(model, TorchRecConfig(tables={"itme_id": "row_wise"}))
    assert "item_id" in err.value.fix
    allowed = _constraints(model, TorchRecConfig(tables={"item_id": "row_wise"}))
    assert allowed["item_id"].sharding_types == ["row_wise"]
    assert allowed["user_id"].sharding_types == ["table_wise", "row_wise"]


def test_optimizers_fbgemm_cannot_run_are_refused_before_sharding() -> None:
    with pytest.raises(ConfigError, match="'sparse_adam' needs FBGEMM's Adam, which has no CPU kernel"):
        check_fused_optimizer(OptimizerConfig(sparse="sparse_adam"), "cpu")
    with pytest.raises(ConfigError, match="weight decay on embedding rows"):
        check_fused_optimizer(OptimizerConfig(sparse="dense_adam", weight_decay=0.01), "cuda")
    check_fused_optimizer(OptimizerConfig(sparse="dense_adam"), "cuda")
    _, kwargs = FUSED_OPTIMIZERS.get("rowwise_adagrad", yaml_path="")(OptimizerConfig(lr=0.1), 9, 12, "cpu")
    assert np.isclose(kwargs["lr"], 0.1 * np.sqrt(9 / 12)) and np.isclose(kwargs["eps"], 1e-8 * np.sqrt(9 / 12))


def test_sequence_models_are_refused_before_sharding(world: dict[str, Any]) -> None:
    schema = InputSchema(
        fields=(
            FieldSpec("item_id", "id", "item", table="item_id", dim=8),
            FieldSpec("clicked", "bag", "user", table="item_id", dim=8, max_len=5, sequence_of="item_id"),
        ),
        tables=(TableSpec("item_id", 50, 8),),
    )
    din = build_model(schema, ModelConfig.model_validate({"name": "din"}))
    with pytest.raises(ConfigError, match=r"DIN\.sequences reads embedding rows outside the field lookup"):
        refuse_outside_readers(din)
    refuse_outside_readers(ordinary_model(world))  # DeepFM reads its rows only through the field lookup
