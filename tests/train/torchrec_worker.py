"""One rank of the TorchRec sharding test (run by torchrun; see test_torchrec_sharding.py).

Reads DIR/world.pt (schema, model config, initial weights, the global batch) and DIR/scenarios.json; for each
scenario shards a fresh copy of the model with recforge.train.distributed.torchrec_sharding, scores its half
of the global batch, takes one optimizer step on it and gathers the ordinary state dict. Rank 0 writes
DIR/NAME.pt: {"logits": the global batch's logits before the step, "state": gathered state, "plan": ...,
"after": the global batch's logits after the step, scored by rank 0 alone while rank 1 has no rows}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def run_scenario(world: dict[str, Any], scenario: dict[str, Any], out: Path) -> None:
    from recforge.config.schema import ModelConfig, OptimizerConfig
    from recforge.config.torchrec import TorchRecConfig
    from recforge.models.registry import build_model
    from recforge.schema import InputSchema
    from recforge.train.distributed.torchrec_sharding import (
        build_dense_optimizer,
        gather_state_dict,
        shard_model,
        sharding_plan,
    )

    rank, size = dist.get_rank(), dist.get_world_size()
    model = build_model(InputSchema.from_json(world["schema"]), ModelConfig.model_validate(world["model"]))
    model.load_state_dict(world["init"])
    optimizer = OptimizerConfig.model_validate(scenario["optimizer"])
    dmp = shard_model(model, optimizer, TorchRecConfig.model_validate(scenario["torchrec"]))
    dense = build_dense_optimizer(dmp, optimizer)
    batch = world["batch"]
    share = batch.size // size
    local = batch.index(slice(rank * share, (rank + 1) * share))
    dmp.train()
    logits = dmp(local)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, local.labels["click"])
    loss.backward()
    dense.step()
    every = [torch.zeros_like(logits) for _ in range(size)]
    dist.all_gather(every, logits.detach())
    state = gather_state_dict(dmp)
    dmp.eval()
    with torch.no_grad():  # rank 0 scores the whole batch; a rank with no rows still takes part
        scored = dmp(batch if rank == 0 else batch.index(slice(0, 0)))
    if rank == 0:
        torch.save({"logits": torch.cat(every), "state": state, "plan": sharding_plan(dmp), "after": scored}, out)


def main(work: Path) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    world = torch.load(work / "world.pt", weights_only=False)
    for name, scenario in json.loads((work / "scenarios.json").read_text()).items():
        run_scenario(world, scenario, work / f"{name}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
