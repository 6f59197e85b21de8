"""Training steps/s of DeepFM with TorchRec-sharded tables on 2 torchrun processes (gloo, CPU) vs 1 ordinary process.

    python bench/torchrec_step.py [--users 20000] [--items 5000] [--batch 2048] [--steps 40]

Builds the synthetic world's samples and DeepFM (row-wise Adagrad for the tables, Adam for the rest), then
times `--steps` steps on the same global batches: once in this process with recforge's own optimizers, once
under `torchrun --nproc_per_node 2` with `shard_model` (each rank half of every global batch). Prints
samples/s (global rows per second, after 5 warm-up steps), peak RSS per process and the planner's layout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
WARMUP = 5
OPTIMIZER = {"sparse": "rowwise_adagrad", "lr": 0.003, "sparse_lr": 0.05}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_world(users: int, items: int, batch: int, steps: int) -> dict[str, Any]:
    from recforge.config import build_config
    from recforge.data.synthetic import generate_synthetic
    from recforge.features.featureset import FeatureSet
    from recforge.models.registry import build_model

    from support import small_synthetic

    tree = small_synthetic()
    tree["data"]["synthetic"].update(n_users=users, n_items=items, n_impressions=batch * (steps + WARMUP) * 2)
    cfg = build_config(tree)
    raw = generate_synthetic(cfg.data.synthetic)
    assert raw.users is not None and raw.items is not None
    behavior = raw.behavior.slice(0, batch * (steps + WARMUP))
    u = behavior["user_id"].to_numpy() - 1
    i = behavior["item_id"].to_numpy() - 1
    import pyarrow as pa

    cols = {n: behavior[n] for n in ("user_id", "item_id", "position", "click")}
    cols.update({n: raw.users[n].take(pa.array(u)) for n in ("age", "gender")})
    cols.update({n: raw.items[n].take(pa.array(i)) for n in ("category_id", "price")})
    table = pa.table(cols)
    features = FeatureSet.from_config(cfg).fit([table])
    torch.manual_seed(0)
    model = build_model(features.schema(), cfg.model)
    batches = [features.transform(table.slice(s * batch, batch)) for s in range(steps + WARMUP)]
    return {
        "schema": features.schema().to_json(),
        "model": cfg.model.model_dump(),
        "init": model.state_dict(),
        "batches": batches,
        "tables": {t.name: t.num_embeddings for t in features.schema().tables},
    }


def timed(step: Any, batches: list[Any]) -> float:
    """Seconds for the steps after the warm-up ones."""
    for b in batches[:WARMUP]:
        step(b)
    start = time.perf_counter()
    for b in batches[WARMUP:]:
        step(b)
    return time.perf_counter() - start


def one_process(world: dict[str, Any]) -> dict[str, float]:
    from recforge.config.schema import ModelConfig, OptimizerConfig
    from recforge.models.registry import build_model
    from recforge.schema import InputSchema
    from recforge.train.optim import build_optimizers

    model = build_model(InputSchema.from_json(world["schema"]), ModelConfig.model_validate(world["model"]))
    model.load_state_dict(world["init"])
    optimizers = build_optimizers(model, OptimizerConfig.model_validate(OPTIMIZER))

    def step(batch: Any) -> None:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        nn.functional.binary_cross_entropy_with_logits(model(batch), batch.labels["click"]).backward()
        for opt in optimizers:
            opt.step()

    model.train()
    seconds = timed(step, world["batches"])
    rows = sum(b.size for b in world["batches"][WARMUP:])
    return {"samples_per_s": rows / seconds, "peak_rss_mb": peak_rss_mb()}


def worker(path: Path) -> None:
    """One torchrun rank: shard, time the same global batches (this rank's half of each), report from rank 0."""
    from recforge.config.schema import ModelConfig, OptimizerConfig
    from recforge.models.registry import build_model
    from recforge.schema import InputSchema
    from recforge.train.distributed.torchrec_sharding import build_dense_optimizer, shard_model, sharding_plan

    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    world = torch.load(path, weights_only=False)
    model = build_model(InputSchema.from_json(world["schema"]), ModelConfig.model_validate(world["model"]))
    model.load_state_dict(world["init"])
    optimizer = OptimizerConfig.model_validate(OPTIMIZER)
    dmp = shard_model(model, optimizer)
    dense = build_dense_optimizer(dmp, optimizer)
    local = [b.index(slice(rank * (b.size // size), (rank + 1) * (b.size // size))) for b in world["batches"]]

    def step(batch: Any) -> None:
        dense.zero_grad(set_to_none=True)
        nn.functional.binary_cross_entropy_with_logits(dmp(batch), batch.labels["click"]).backward()
        dense.step()

    dmp.train()
    seconds = torch.tensor(timed(step, local))
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    rss = [0.0] * size
    dist.all_gather_object(rss, peak_rss_mb())
    if rank == 0:
        rows = sum(b.size for b in world["batches"][WARMUP:])
        out = {"samples_per_s": rows / float(seconds), "peak_rss_mb_per_rank": rss, "plan": sharding_plan(dmp)}
        path.with_suffix(".json").write_text(json.dumps(out))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    world = build_world(args.users, args.items, args.batch, args.steps)
    print(f"tables (rows): {world['tables']}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "world.pt"
        torch.save(world, path)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        subprocess.run([*torchrun, __file__, "--worker", str(path)], check=True, env=env, capture_output=True)
        sharded = json.loads(path.with_suffix(".json").read_text())
    torch.set_num_threads(1)  # one core per rank above: give one process the same per-process budget
    single = one_process(world)
    print(
        f"1 process, ordinary tables (1 thread): {single['samples_per_s']:,.0f} samples/s, "
        f"peak RSS {single['peak_rss_mb']:.0f} MB"
    )
    print(
        f"2 processes, TorchRec-sharded tables (1 thread each): {sharded['samples_per_s']:,.0f} samples/s, "
        f"peak RSS per rank {[round(r) for r in sharded['peak_rss_mb_per_rank']]} MB"
    )
    print(f"layout: {sharded['plan']}")


if __name__ == "__main__":
    main()
