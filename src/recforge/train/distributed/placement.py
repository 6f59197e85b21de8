"""Where the model's parameters live when several processes train: `train.distributed.embeddings` names one.

`replicated` (the default) keeps every embedding table whole in every process, inside DDP with the dense
layers. A sharder (TorchRec's DistributedModelParallel, `train/distributed/torchrec_sharding.py`) registers
another name here and returns its own Placement: the module a training step calls, the optimizers that
step, and the state DCP saves and loads (so a checkpoint reshards to another world size).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.nn.parallel import DistributedDataParallel

from recforge.config.schema import PipelineConfig
from recforge.errors import ConfigError
from recforge.registry import Registry
from recforge.train.distributed.context import DistContext


@dataclass
class Placement:
    """How this rank holds the model for training."""

    module: nn.Module  # what a training step calls: the model itself, DDP around it, or a sharded wrapper
    optimizers: list[torch.optim.Optimizer]
    reshards: ClassVar[bool] = True  # its DCP checkpoint loads at another world size

    def sync(self, model: nn.Module, ctx: DistContext) -> None:
        """Put the trained weights into the ordinary `model` on every rank (collective), before it is evaluated
        or exported. Nothing to do here: the module trains the model's own parameters."""

    def state(self) -> dict[str, Any]:
        """Model and optimizer state keyed by parameter names (not object ids), which DCP reshards."""
        model, optim = get_state_dict(self.module, self.optimizers)
        return {"model": model, "optim": optim}

    def load(self, state: dict[str, Any]) -> None:
        """Put back what `state` returned (after DCP filled it in place from a checkpoint)."""
        set_state_dict(self.module, self.optimizers, model_state_dict=state["model"], optim_state_dict=state["optim"])


Placer = Callable[[nn.Module, list[torch.optim.Optimizer], DistContext, PipelineConfig], Placement]
EMBEDDING_PLACEMENTS: Registry[Placer] = Registry("embedding placement")
# a placement's refusals of a config for `world_size` processes, run before any work (ConfigError)
PLACEMENT_CHECKS: Registry[Callable[[PipelineConfig, int], None]] = Registry("embedding placement check")


@EMBEDDING_PLACEMENTS.register("replicated")
def replicated(
    model: nn.Module, optimizers: list[torch.optim.Optimizer], ctx: DistContext, cfg: PipelineConfig
) -> Placement:
    """Every table in every process; DDP averages all gradients (sparse embedding gradients included, on gloo).

    An empty parameter (e.g. the dense-feature vectors of a model without dense features) never gets a
    gradient, which DDP would wait for: it is frozen, having nothing to learn, at every world size (so
    checkpoints hold the same optimizer state whatever the number of processes that wrote them).
    """
    for parameter in model.parameters():
        if parameter.numel() == 0:
            parameter.requires_grad_(False)
    return Placement(DistributedDataParallel(model) if ctx.several else model, optimizers)


# placements whose module needs an optional extra: imported (which registers them) when first named
OPTIONAL_PLACEMENTS = {"torchrec": ("recforge.train.distributed.torchrec_placement", "bash scripts/setup_torchrec.sh")}


def placer(name: str) -> Placer:
    """The placement registered as `name` (`train.distributed.embeddings`), importing an optional one first."""
    if name in OPTIONAL_PLACEMENTS and name not in EMBEDDING_PLACEMENTS.names():
        module, install = OPTIONAL_PLACEMENTS[name]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                "train.distributed.embeddings", f"{name!r} cannot be loaded ({exc})", fix=f"install it: {install}"
            ) from None
    return EMBEDDING_PLACEMENTS.get(name, yaml_path="train.distributed.embeddings")


def check_placement(cfg: PipelineConfig, world_size: int) -> None:
    """ConfigError for a placement that is not installed, or that refuses this config at `world_size`."""
    name = cfg.train.distributed.embeddings
    placer(name)
    if name in PLACEMENT_CHECKS.names():
        PLACEMENT_CHECKS.get(name)(cfg, world_size)


def place(
    model: nn.Module, optimizers: list[torch.optim.Optimizer], ctx: DistContext, cfg: PipelineConfig
) -> Placement:
    """The placement `train.distributed.embeddings` names, applied to `model` in this process."""
    return placer(cfg.train.distributed.embeddings)(model, optimizers, ctx, cfg)
