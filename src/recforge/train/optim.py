"""Optimizers: a dense one for network weights and a (possibly sparse) one for embedding rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from recforge.config.schema import OptimizerConfig
from recforge.embedding import EmbeddingCollection, dynamic_tables
from recforge.errors import ConfigError
from recforge.registry import Registry


class RowwiseAdagrad(torch.optim.Optimizer):
    """Adagrad with one accumulator per embedding row (mean of the row's squared gradient).

    Works on sparse and dense gradients; only rows present in a sparse gradient are touched.
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 0.01, eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "sum" not in state:
                    state["sum"] = torch.zeros(p.shape[0], dtype=p.dtype)
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows, values = grad.indices()[0], grad.values()
                else:
                    rows = torch.nonzero(grad.abs().sum(dim=1)).squeeze(1)
                    values = grad[rows]
                acc = state["sum"].index_add_(0, rows, values.pow(2).mean(dim=1))
                scale = group["lr"] / (acc[rows].sqrt() + group["eps"])
                p.index_add_(0, rows, -values * scale.unsqueeze(1))


SPARSE_OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("sparse optimizer")
SPARSE_OPTIMIZERS.register("sparse_adam")(torch.optim.SparseAdam)
SPARSE_OPTIMIZERS.register("rowwise_adagrad")(RowwiseAdagrad)

DENSE_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
}


def embedding_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The row tables of every EmbeddingCollection (not their per-field dense vectors)."""
    params: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, EmbeddingCollection):
            params.update({id(p): p for name, p in module.named_parameters() if not name.endswith("dense_vectors")})
    return list(params.values())


def _dense_groups(model: nn.Module, sparse_ids: set[int], table_decay: float) -> list[dict[str, Any]]:
    """Param groups of the dense optimizer: the network, and (with `table_decay`) the embedding tables apart."""
    params = [p for p in model.parameters() if id(p) not in sparse_ids]
    if not table_decay:
        return [{"params": params}]
    tables = {id(p) for p in embedding_parameters(model)}
    return [
        {"params": [p for p in params if id(p) not in tables]},
        {"params": [p for p in params if id(p) in tables], "weight_decay": table_decay},
    ]


def build_optimizers(model: nn.Module, cfg: OptimizerConfig) -> list[torch.optim.Optimizer]:
    """[dense] when embeddings train with the dense optimizer, else [dense, sparse].

    Dynamic tables hold no nn.Parameter: they get `cfg.sparse` and the embedding lr and apply it themselves.
    """
    if cfg.embedding_weight_decay and cfg.sparse != "dense_adam":
        raise ConfigError(
            "train.optimizer.embedding_weight_decay",
            f"decays whole tables, which the sparse optimizer {cfg.sparse!r} does not touch",
            fix="use `sparse: dense_adam`, or `embedding_l2` (L2 on the rows a step reads)",
        )
    sparse_params = embedding_parameters(model) if cfg.sparse != "dense_adam" else []
    sparse_ids = {id(p) for p in sparse_params}
    dense_cls = DENSE_OPTIMIZERS[cfg.dense]
    kwargs: dict[str, object] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.dense in ("adam", "adamw"):
        kwargs["fused"] = True
    groups = _dense_groups(model, sparse_ids, cfg.embedding_weight_decay)
    optimizers: list[torch.optim.Optimizer] = [dense_cls(groups, **kwargs)]  # type: ignore[arg-type]
    for table in dynamic_tables(model):  # no parameters: they update their rows in backward, same rule
        table.configure_optimizer(cfg.sparse, cfg.sparse_lr or cfg.lr)
    if sparse_params:
        for module in model.modules():
            if isinstance(module, EmbeddingCollection):
                module.set_sparse_grad(True)
        sparse_cls = SPARSE_OPTIMIZERS.get(cfg.sparse, yaml_path="train.optimizer.sparse")
        optimizers.append(sparse_cls(sparse_params, lr=cfg.sparse_lr or cfg.lr))  # type: ignore[call-arg]
    return optimizers
