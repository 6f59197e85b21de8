"""Embedding tables sharded over the ranks by TorchRec's DistributedModelParallel (`embeddings: torchrec`).

The trainer, inside an initialized process group (torchrun), with the same seed on every rank:

    model = build_model(...)                                   # the ordinary recforge model
    dmp = shard_model(model, cfg.train.optimizer, cfg.train.distributed.torchrec)
    dense = build_dense_optimizer(dmp, cfg.train.optimizer)    # tables step inside their backward
    loss = task_loss(dmp(local_batch), ...)                    # this rank's share of the global batch, mean
    loss.backward(); dense.step()
    state = gather_state_dict(dmp)                             # collective; the ordinary state dict on rank 0

`shard_model` swaps every EmbeddingCollection of the model for a TorchRecFieldEmbeddings (same fields,
same output), lets TorchRec's planner place each table table-wise or row-wise (or forces one, per config),
fuses the embedding optimizer into the tables and wraps the rest in DDP. The rows start from the ordinary
model's values, so a seeded model trains the same on 1 process and on N.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from recforge.config.schema import OptimizerConfig
from recforge.config.torchrec import TorchRecConfig
from recforge.embedding import EmbeddingCollection
from recforge.errors import ConfigError, RecforgeError
from recforge.train.distributed.torchrec_embeddings import TorchRecFieldEmbeddings, require_static
from recforge.train.distributed.torchrec_optim import check_fused_optimizer, dense_parameters, fuse_optimizer
from recforge.train.optim import DENSE_OPTIMIZERS

if TYPE_CHECKING:
    from torchrec.distributed import DistributedModelParallel

SHARDING_TYPES = {"table_wise": ("table_wise",), "row_wise": ("row_wise",), "auto": ("table_wise", "row_wise")}
INSTALL_FIX = (
    "run `bash scripts/setup_torchrec.sh` (TorchRec 1.9.2 with fbgemm-gpu-cpu 1.8.0; see README 'Scaling out')"
)


def require_torchrec() -> None:
    """A clear error when the `torchrec` extra is missing or cannot load its FBGEMM kernels."""
    try:
        import torchrec  # noqa: F401
        from torchrec.distributed import DistributedModelParallel  # noqa: F401
    except Exception as err:  # an ImportError, or FBGEMM's OSError on a wrong wheel
        raise ConfigError(
            "train.distributed.embeddings", f"torchrec cannot be imported ({err})", fix=INSTALL_FIX
        ) from err


def refuse_outside_readers(model: nn.Module) -> None:
    """Refuse a model part that keeps its own handle on an EmbeddingCollection (din / bst sequence inputs):
    it would go on reading the replaced, unsharded rows, which no optimizer steps."""
    collections = {id(m) for m in model.modules() if isinstance(m, EmbeddingCollection)}
    for module in model.modules():
        for name, value in vars(module).items():  # plain attributes; submodules live in `_modules`
            items = value if isinstance(value, (list, tuple)) else [value]
            if name.startswith("_") or not any(id(getattr(i, "embeddings", None)) in collections for i in items):
                continue
            raise ConfigError(
                "train.distributed.embeddings",
                f"{type(module).__name__}.{name} reads embedding rows outside the field lookup (the sequence "
                "inputs of din / bst), which the TorchRec path does not shard",
                fix="train this model with `train.distributed.embeddings: replicated`",
            )


def check_shardable(model: nn.Module, optimizer: OptimizerConfig, device: str = "cpu") -> None:
    """Every refusal of the TorchRec path, raised before the model is touched (a trainer may call it early)."""
    check_fused_optimizer(optimizer, device)
    refuse_outside_readers(model)
    for collection in model.modules():
        if isinstance(collection, EmbeddingCollection):
            require_static(collection)


def _swap(parent: nn.Module, prefix: str) -> dict[str, dict[str, torch.Tensor]]:
    """Replace each EmbeddingCollection under `parent` in place; -> module path -> its full tables."""
    tables: dict[str, dict[str, torch.Tensor]] = {}
    for name, child in list(parent.named_children()):
        path = f"{prefix}{name}"
        if isinstance(child, EmbeddingCollection):
            swapped = TorchRecFieldEmbeddings(child)
            setattr(parent, name, swapped)
            tables[path] = swapped.full_tables(child)
            if child.linear_part is not None and swapped.linear_part is not None:
                tables[f"{path}.linear_part"] = swapped.linear_part.full_tables(child.linear_part)
        else:
            tables.update(_swap(child, f"{path}."))
    return tables


def _constraints(model: nn.Module, options: TorchRecConfig) -> dict[str, Any]:
    """ParameterConstraints per table name: the sharding types the planner may choose from."""
    from torchrec.distributed.planner.types import ParameterConstraints

    names = {t.name for m in model.modules() if isinstance(m, TorchRecFieldEmbeddings) for t in m.schema.tables}
    unknown = sorted(set(options.tables) - names)
    if unknown:
        raise ConfigError(
            f"train.distributed.torchrec.tables.{unknown[0]}",
            f"no embedding table named {unknown[0]!r}",
            fix=f"use one of: {', '.join(sorted(names))}",
        )
    return {
        name: ParameterConstraints(
            sharding_types=list(SHARDING_TYPES[options.tables.get(name, options.sharding)]),
            compute_kernels=["fused"],
        )
        for name in names
    }


def shard_model(
    model: nn.Module,
    optimizer: OptimizerConfig,
    options: TorchRecConfig | None = None,
    *,
    group: dist.ProcessGroup | None = None,
    device: torch.device | None = None,
) -> DistributedModelParallel:
    """The model with its embedding tables sharded over `group`'s ranks (collective: every rank calls it).

    `model` is the ordinary recforge model, built identically (same seed) on every rank; it is changed in
    place and wrapped. Dense weights are replicated by DDP inside the returned module: do not wrap it again.
    """
    require_torchrec()
    from torchrec.distributed import DistributedModelParallel
    from torchrec.distributed.embedding import EmbeddingCollectionSharder
    from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology

    if not dist.is_initialized():
        raise RecforgeError(
            "TorchRec sharding needs a torch.distributed process group\n  fix: launch under torchrun "
            "(`recforge train CONFIG --nproc N`) or call torch.distributed.init_process_group first"
        )
    options = options or TorchRecConfig()
    device = device or torch.device("cpu")
    check_shardable(model, optimizer, device.type)
    from torchrec.distributed.comm_ops import set_gradient_division

    # a row's gradient summed over the ranks that read it, divided by world size: what DDP does to dense ones
    set_gradient_division(True)
    tables = _swap(model, "")
    for module in model.modules():
        if isinstance(module, TorchRecFieldEmbeddings):
            for name, table in module.rows.embeddings.items():
                fuse_optimizer(table.weight, optimizer, module.widths[name], device.type)
    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=dist.get_world_size(group), compute_device=device.type),
        constraints=_constraints(model, options),
    )
    sharders: list[Any] = [EmbeddingCollectionSharder()]
    plan = planner.collective_plan(model, sharders, group or dist.GroupMember.WORLD)
    dmp = DistributedModelParallel(model, device=device, plan=plan, sharders=sharders)
    _load_tables(dmp, tables)
    return dmp


def _table_key(path: str, table: str) -> str:
    return f"{path}.rows.embeddings.{table}.weight"


def _load_tables(dmp: DistributedModelParallel, tables: dict[str, dict[str, torch.Tensor]]) -> None:
    """Copy each rank's slice of the full tables into its shards (state-dict shards are views of FBGEMM's rows)."""
    state = dmp.state_dict()
    with torch.no_grad():
        for path, by_name in tables.items():
            for name, full in by_name.items():
                for shard in state[_table_key(path, name)].local_shards():
                    (row, col), (rows, cols) = shard.metadata.shard_offsets, shard.metadata.shard_sizes
                    shard.tensor.copy_(full[row : row + rows, col : col + cols])


def sharding_plan(dmp: DistributedModelParallel) -> dict[str, str]:
    """'module path.table' -> the sharding type the planner chose (e.g. 'table_wise', 'row_wise')."""
    return {
        f"{path}.{table}": str(sharding.sharding_type)
        for path, module_plan in dmp.plan.plan.items()
        for table, sharding in module_plan.items()  # type: ignore[attr-defined]
    }


def _gather(value: Any, dst: int, group: dist.ProcessGroup | None) -> torch.Tensor | None:
    """A ShardedTensor (or DTensor) whole on rank `dst`; None elsewhere. Collective."""
    if hasattr(value, "full_tensor"):  # DTensor
        whole: torch.Tensor = value.full_tensor()
        return whole if dist.get_rank(group) == dst else None
    out = torch.empty(value.size(), dtype=value.dtype) if dist.get_rank(group) == dst else None
    value.gather(dst=dst, out=out)
    return out


def gather_state_dict(
    dmp: DistributedModelParallel, dst: int = 0, group: dist.ProcessGroup | None = None
) -> dict[str, torch.Tensor] | None:
    """The ordinary model's state dict (full tables, recforge's own layout) on rank `dst`; None on the others.

    Collective: every rank calls it. The result loads with `load_state_dict(strict=True)` into the model
    built as for one process, so export writes the ordinary bundle `recforge serve` loads.
    """
    state = dict(dmp.state_dict())
    out: dict[str, torch.Tensor] = {}
    for path, module in sorted(dmp.module.named_modules()):
        if not isinstance(module, TorchRecFieldEmbeddings):
            continue
        whole = {t.name: _gather(state.pop(_table_key(path, t.name)), dst, group) for t in module.schema.tables}
        if all(rows is not None for rows in whole.values()):
            entries = module.ordinary_state(whole)  # type: ignore[arg-type]
            out.update({f"{path}.{key}": rows for key, rows in entries.items()})
    if dist.get_rank(group) != dst:
        return None
    out.update({key: value.detach().clone() for key, value in state.items()})
    return out


def build_dense_optimizer(dmp: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """`train.optimizer.dense` over the replicated weights (the sharded tables step inside their backward)."""
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    return DENSE_OPTIMIZERS[cfg.dense](dense_parameters(dmp), **kwargs)
