"""Checkpoints of several training processes, in torch.distributed.checkpoint (DCP) format.

`OUT/checkpoint/` then holds `dcp/` (model, optimizers and best weights, keyed by parameter name, so a
checkpoint written by W processes loads into any other number), `rng-rank{N}` per rank and the one
`trainer.json` rank 0 writes last. It is written into `checkpoint.tmp` and renamed into place exactly
like a single-process checkpoint (`train/checkpoint.py`), so a kill leaves a whole one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed.checkpoint as dcp

from recforge.state_io import load_state, save_state
from recforge.train.checkpoint import (
    CHECKPOINT,
    COUNTERS,
    finish_checkpoint,
    read_counters,
    recover_checkpoint,
    start_checkpoint,
)
from recforge.train.distributed.context import DistContext

DCP_DIR = "dcp"


@contextmanager
def _one_process_quiet() -> Iterator[None]:
    """DCP warns on every save / load without a process group, which one process resuming does on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def is_dcp_checkpoint(out_dir: Path) -> bool:
    """`out_dir` holds a complete checkpoint written by the multi-process trainer."""
    return any(
        (out_dir / name / COUNTERS).exists() and (out_dir / name / DCP_DIR).is_dir()
        for name in (CHECKPOINT, f"{CHECKPOINT}.old")
    )


def save_dcp_checkpoint(
    ctx: DistContext, out_dir: Path, state: dict[str, Any], rng: dict[str, Any], counters: dict[str, Any]
) -> None:
    """Write `state` with DCP (every rank takes part), each rank's `rng`, then rank 0's `counters`; rename."""
    tmp = out_dir / f"{CHECKPOINT}.tmp"
    ctx.on_main(lambda: start_checkpoint(out_dir))
    with _one_process_quiet():
        dcp.save(state, checkpoint_id=tmp / DCP_DIR, no_dist=not ctx.several)
    save_state(rng, tmp / f"rng-rank{ctx.rank}")
    ctx.barrier()
    ctx.on_main(lambda: finish_checkpoint(out_dir, tmp, {**counters, "world_size": ctx.world_size}))


def read_dcp_counters(ctx: DistContext, out_dir: Path) -> dict[str, Any]:
    """trainer.json of the checkpoint in `out_dir` (rank 0 first takes `checkpoint.old` back if a save died)."""
    ctx.on_main(lambda: recover_checkpoint(out_dir))
    return read_counters(out_dir / CHECKPOINT)


def load_dcp_state(ctx: DistContext, out_dir: Path, state: dict[str, Any], counters: dict[str, Any]) -> Any:
    """Fill `state` (a template of the tensors to load) in place; returns this rank's RNG state, or None when
    the checkpoint was written by another number of processes."""
    directory = out_dir / CHECKPOINT
    with _one_process_quiet():
        dcp.load(state, checkpoint_id=directory / DCP_DIR, no_dist=not ctx.several)
    rng_file = directory / f"rng-rank{ctx.rank}"
    same_world = counters.get("world_size") == ctx.world_size
    return load_state(rng_file) if same_world and rng_file.with_suffix(".json").exists() else None
