"""`recforge train --nproc N`: check the pipeline for N processes, then start them through torchrun."""

from __future__ import annotations

import logging
from pathlib import Path

from recforge.config import PipelineConfig
from recforge.errors import ConfigError
from recforge.pipeline.rank import check
from recforge.train.distributed.context import DistContext
from recforge.train.distributed.launch import launch_local


def train_processes(
    cfg: PipelineConfig,
    config: Path,
    out: Path,
    nproc: int,
    overrides: list[str],
    resume: bool = False,
    warm_start: Path | None = None,
) -> None:
    """Train `cfg` (read from `config` with `overrides`) in `nproc` processes on this host; rank 0 writes `out`."""
    if DistContext.from_env().several:
        raise ConfigError(
            "--nproc", "this process was started by torchrun already", fix="drop --nproc (torchrun sets the count)"
        )
    check(cfg, nproc)  # a config error stops here, before any process starts
    args = ["--verbose"] if logging.getLogger().isEnabledFor(logging.INFO) else []
    args += ["train", str(config), "--out", str(out)]
    for assignment in overrides:
        args += ["--set", assignment]
    if resume:
        args.append("--resume")
    if warm_start is not None:
        args += ["--warm-start", str(warm_start)]
    launch_local(args, nproc, str(out))
