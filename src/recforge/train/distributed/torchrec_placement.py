"""`train.distributed.embeddings: torchrec`: the Placement whose tables TorchRec shards over the ranks.

Importing this module registers it (placement.py imports it when the name is first used). The ordinary model
stays whole on every rank for evaluation and export: the trainer steps a sharded copy (DistributedModelParallel,
dense weights under its DDP), and `sync` gathers the copy's tables back into the ordinary model when the
trainer evaluates or exports. Its DCP checkpoint holds the shards as ShardedTensors, which resume only at the
world size that wrote them (a refusal, not a silent reshard: see README 'Scaling out').
"""

from __future__ import annotations

import copy
import logging
from typing import Any, ClassVar

import torch
from torch import nn

from recforge.config.schema import PipelineConfig
from recforge.errors import ConfigError
from recforge.train.distributed.context import DistContext
from recforge.train.distributed.placement import EMBEDDING_PLACEMENTS, PLACEMENT_CHECKS, Placement
from recforge.train.distributed.torchrec_optim import check_fused_optimizer
from recforge.train.distributed.torchrec_sharding import (
    build_dense_optimizer,
    gather_state_dict,
    require_torchrec,
    shard_model,
    sharding_plan,
)

log = logging.getLogger(__name__)
require_torchrec()  # a clear ConfigError at registration when the extra is missing or broken


class TorchRecPlacement(Placement):
    """A DistributedModelParallel (`module`) and its dense optimizer; the tables' optimizer is fused in."""

    reshards: ClassVar[bool] = False

    def state(self) -> dict[str, Any]:
        """Sharded tables and their fused optimizer state (ShardedTensors), dense weights and optimizer by name."""
        dmp: Any = self.module
        return {
            "model": dmp.state_dict(),
            "fused": dmp.fused_optimizer.state_dict(),
            "optim": [dense_state(dmp, opt) for opt in self.optimizers],
        }

    def load(self, state: dict[str, Any]) -> None:
        dmp: Any = self.module
        dmp.load_state_dict(state["model"])
        dmp.fused_optimizer.load_state_dict(state["fused"])
        for opt, by_name in zip(self.optimizers, state["optim"], strict=True):
            load_dense_state(dmp, opt, by_name)

    def sync(self, model: nn.Module, ctx: DistContext) -> None:
        """Gather the full tables on rank 0, send them to every rank, load them into the ordinary model."""
        model.load_state_dict(ctx.broadcast(gather_state_dict(self.module, dst=0)))  # type: ignore[arg-type]


def _indexed_names(module: nn.Module, opt: torch.optim.Optimizer) -> dict[int, str]:
    """The optimizer's parameter indices (its state_dict keys) -> parameter names (stable across runs).

    torch's get_optimizer_state_dict does this for plain modules but cannot walk a DistributedModelParallel.
    """
    names = {id(p): name for name, p in module.named_parameters()}
    params = [p for group in opt.param_groups for p in group["params"]]
    return {i: names[id(p)] for i, p in enumerate(params)}


def _fill_state(opt: torch.optim.Optimizer) -> None:
    """Give a fresh optimizer its state tensors (an lr-0 step on zero gradients), as a template DCP loads into."""
    if opt.state:
        return
    lrs = [group["lr"] for group in opt.param_groups]
    for group in opt.param_groups:
        group["lr"] = 0.0
        for p in group["params"]:
            p.grad = torch.zeros_like(p) if p.grad is None else p.grad
    opt.step()
    opt.zero_grad(set_to_none=True)
    for group, lr in zip(opt.param_groups, lrs, strict=True):
        group["lr"] = lr


def dense_state(module: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The dense optimizer's per-parameter state keyed by parameter name (what DCP saves and loads in place)."""
    _fill_state(opt)
    state = opt.state_dict()["state"]
    return {name: state[i] for i, name in _indexed_names(module, opt).items() if i in state}


def load_dense_state(module: nn.Module, opt: torch.optim.Optimizer, by_name: dict[str, Any]) -> None:
    full = opt.state_dict()
    full["state"] = {i: by_name[name] for i, name in _indexed_names(module, opt).items() if name in by_name}
    opt.load_state_dict(full)


@EMBEDDING_PLACEMENTS.register("torchrec")
def torchrec_placement(
    model: nn.Module, optimizers: list[torch.optim.Optimizer], ctx: DistContext, cfg: PipelineConfig
) -> Placement:
    """Shard a copy of `model` (built with the same seed on every rank); `optimizers` (the ordinary model's)
    are replaced by the dense optimizer of the copy."""
    if not ctx.several:
        raise ConfigError(
            "train.distributed.embeddings",
            "TorchRec shards tables over several processes; this run has one (a TorchRec checkpoint resumes only "
            "at the number of processes that wrote it)",
            fix="run with --nproc N (N > 1, the checkpoint's), or `--set train.distributed.embeddings=replicated`",
        )
    dmp = shard_model(copy.deepcopy(model), cfg.train.optimizer, cfg.train.distributed.torchrec)
    log.info("torchrec sharding plan: %s", sharding_plan(dmp))  # every rank's log: the same collective plan
    return TorchRecPlacement(dmp, [build_dense_optimizer(dmp, cfg.train.optimizer)])


@PLACEMENT_CHECKS.register("torchrec")
def check_torchrec(cfg: PipelineConfig, world_size: int) -> None:
    """The refusals that need no model: a sparse optimizer without a CPU kernel, an lr schedule (the fused
    table optimizers keep a constant lr)."""
    check_fused_optimizer(cfg.train.optimizer, "cpu")
    schedule = cfg.train.optimizer.schedule
    if schedule.decay != "constant" or schedule.warmup_steps:
        raise ConfigError(
            "train.optimizer.schedule",
            "the TorchRec tables' fused optimizer keeps a constant learning rate, so a schedule would move only "
            "the dense weights",
            fix="drop `train.optimizer.schedule`, or train with `train.distributed.embeddings: replicated`",
        )
