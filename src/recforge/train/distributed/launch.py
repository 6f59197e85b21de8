"""`recforge train --nproc N`: start N training processes on this host through torchrun (torch.distributed.run).

Each runs `python -m recforge ARGS` with torchrun's RANK / WORLD_SIZE / MASTER_ADDR set, which
`recforge train` detects (several hosts run torchrun themselves, see the README's "Scaling out").
"""

from __future__ import annotations

import os

from recforge.errors import RecforgeError
from recforge.train.distributed.context import RANK_LOGS


def launch_local(args: list[str], nproc: int, out_dir: str) -> None:
    """Run `recforge ARGS` in `nproc` local processes and wait; a failed process is one RecforgeError.

    Without OMP_NUM_THREADS set, the host's cores are split between the processes (torch would
    otherwise start one thread per core in each of them).
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    options = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "recforge", *args])
    try:
        torchrun.run(options)
    except ChildFailedError as exc:
        rank, failure = min(exc.failures.items())
        where = "above" if rank == 0 else f"in {out_dir}/{RANK_LOGS}/rank{rank}.log"
        raise RecforgeError(
            f"training process {rank} of {nproc} failed (exit code {failure.exitcode}); the others were stopped"
            f"\n  fix: read its error {where}"
        ) from None
