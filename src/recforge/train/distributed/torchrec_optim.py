"""recforge's embedding optimizers (`train.optimizer.sparse`) as FBGEMM optimizers fused into the sharded tables.

A sharded table has no ordinary parameter for a torch optimizer to step: TorchRec runs the update inside the
table's backward (FBGEMM), configured per table through `_apply_optimizer_in_backward`. Each rule here gives
the one whose update equals recforge's on the same gradient:

- `rowwise_adagrad`: FBGEMM EXACT_ROWWISE_ADAGRAD, on CPU and GPU. It averages the squared gradient over the
  stored (padded) width, so lr and eps are scaled by sqrt(width / padded width) to give recforge's update exactly.
- `sparse_adam` (torch SparseAdam): FBGEMM ADAM, which also moves only the rows a batch read. GPU only:
  FBGEMM's CPU kernels have EXACT_SGD / EXACT_ADAGRAD / EXACT_ROWWISE_ADAGRAD and no Adam.
- `dense_adam`: the same lazy Adam, GPU only. Equal to the dense Adam on a first step (a row no batch read
  has zero moments); afterwards rows a batch skips keep their value instead of coasting on their moments.
  Weight decay would touch every row on one process and only the read rows here, so it is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from recforge.config.schema import OptimizerConfig
from recforge.errors import ConfigError
from recforge.registry import Registry

# (optimizer config, table width, stored width, device type) -> (TorchRec optimizer class, its kwargs)
FusedRule = Callable[[OptimizerConfig, int, int, str], tuple[type[torch.optim.Optimizer], dict[str, Any]]]
FBGEMM_STORED_MIN = 4
FUSED_OPTIMIZERS: Registry[FusedRule] = Registry("sparse optimizer under TorchRec")


def embedding_lr(cfg: OptimizerConfig) -> float:
    return cfg.sparse_lr or cfg.lr


@FUSED_OPTIMIZERS.register("sparse_adam")
def lazy_adam(
    cfg: OptimizerConfig, width: int, stored: int, device: str
) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    from torchrec.optim import Adam

    if device == "cpu":
        raise ConfigError(
            "train.optimizer.sparse",
            f"{cfg.sparse!r} needs FBGEMM's Adam, which has no CPU kernel (CPU tables train with SGD or Adagrad)",
            fix="set `train.optimizer.sparse: rowwise_adagrad` (exact on CPU and GPU), or train with "
            "`train.distributed.embeddings: replicated`",
        )
    return Adam, {"lr": embedding_lr(cfg), "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}  # torch Adam's defaults


@FUSED_OPTIMIZERS.register("dense_adam")
def dense_adam(
    cfg: OptimizerConfig, width: int, stored: int, device: str
) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    if cfg.weight_decay:
        raise ConfigError(
            "train.optimizer.weight_decay",
            "weight decay on embedding rows needs every row stepped, which sharded TorchRec tables do not do",
            fix="set `train.optimizer.sparse: sparse_adam` or `rowwise_adagrad` (weight decay then stays on the "
            "dense weights), or train with `train.distributed.embeddings: replicated`",
        )
    return lazy_adam(cfg, width, stored, device)


@FUSED_OPTIMIZERS.register("rowwise_adagrad")
def rowwise_adagrad(
    cfg: OptimizerConfig, width: int, stored: int, device: str
) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    from torchrec.optim import RowWiseAdagrad

    scale = math.sqrt(width / stored)  # FBGEMM's mean of g^2 runs over the pad columns too
    return RowWiseAdagrad, {"lr": embedding_lr(cfg) * scale, "eps": 1e-8 * scale}


def fuse_optimizer(table: nn.Parameter, cfg: OptimizerConfig, width: int, device: str) -> None:
    """Attach the fused optimizer for `cfg.sparse` to one (unsharded, stored-width) table weight on `device`."""
    from torch.distributed.optim import _apply_optimizer_in_backward

    rule = FUSED_OPTIMIZERS.get(cfg.sparse, yaml_path="train.optimizer.sparse")
    optimizer_class, kwargs = rule(cfg, width, table.shape[1], device)
    _apply_optimizer_in_backward(optimizer_class, [table], kwargs)


def check_fused_optimizer(cfg: OptimizerConfig, device: str) -> None:
    """Raise the ConfigError `fuse_optimizer` would, before any table is built."""
    FUSED_OPTIMIZERS.get(cfg.sparse, yaml_path="train.optimizer.sparse")(cfg, 1, FBGEMM_STORED_MIN, device)


def dense_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an ordinary torch optimizer steps (every one but the fused embedding tables)."""
    return [p for p in model.parameters() if p.requires_grad and not hasattr(p, "_in_backward_optimizers")]
