"""Training throughput of a tiered dynamic table whose rows are 10x its RAM budget vs the same table all in RAM.

Both tables hold the same `rows` ids (random int64 keys, the tiered one loaded from the in-RAM one's
state_dict, so its hot tier starts empty); each step looks up a batch of ids and applies row-wise
Adagrad to the rows read (loss = sum of the rows, the table's fused backward update), 1 thread. The
tiered table's RAM budget is 1/`ratio` of the bytes the in-RAM table keeps per row (vector, Adagrad
sum, counters). Id streams: Zipf(s) over the rows (rank -> key by a random permutation, so hot rows
are spread over the file) and uniform. Timings interleave the two tables in rounds (best of rounds:
the box is shared) after `warmup` steps that fill the hot tier.

    nice -n 19 python bench/tiered_table.py --rows 1000000 --batch 4096 --ratio 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from recforge.config.features import DynamicStorage
from recforge.embedding import DynamicTable
from recforge.embedding.tiered import BOOKKEEPING_BYTES, TieredTable


def zipf_stream(rows: int, s: float, batch: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row positions with P(rank k) proportional to k^-s, k = 1..rows (exact bounded Zipf)."""
    cdf = np.cumsum(np.arange(1, rows + 1, dtype=np.float64) ** -s)
    cdf /= cdf[-1]
    return [np.minimum(np.searchsorted(cdf, rng.random(batch)), rows - 1) for _ in range(steps)]


def uniform_stream(rows: int, batch: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(0, rows, batch) for _ in range(steps)]


def timed(step: Callable[[torch.Tensor], None], data: list[torch.Tensor]) -> float:
    started = time.perf_counter()
    for ids in data:
        step(ids)
    return (time.perf_counter() - started) / len(data)


def compare(ram: DynamicTable, tiered: TieredTable, data: list[torch.Tensor], warmup: int, rounds: int) -> dict:
    def step_of(table: DynamicTable) -> Callable[[torch.Tensor], None]:
        def step(ids: torch.Tensor) -> None:
            table(ids).sum().backward()

        return step

    ram_step, tiered_step = step_of(ram), step_of(tiered)
    for ids in data[:warmup]:
        ram_step(ids)
        tiered_step(ids)
    timed_data = data[warmup:]
    before = (tiered.promoted, tiered.written_back)
    best_ram = best_tiered = float("inf")
    for part in range(rounds):
        chunk = timed_data[part::rounds]
        best_ram = min(best_ram, timed(ram_step, chunk))
        best_tiered = min(best_tiered, timed(tiered_step, chunk))
    looked_up = sum(len(torch.unique(ids)) for ids in timed_data)
    promoted, written = tiered.promoted - before[0], tiered.written_back - before[1]
    batch = len(data[0])
    return {
        "ram": batch / best_ram,
        "tiered": batch / best_tiered,
        "miss": promoted / looked_up,
        "written_per_step": written / len(timed_data),
        "promoted_per_step": promoted / len(timed_data),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per stream (after warm-up)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ratio", type=float, default=10.0, help="table bytes / RAM budget")
    parser.add_argument("--zipf", type=float, nargs="+", default=[1.05])
    parser.add_argument("--policy", choices=["lfu", "lru"], default="lfu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    keys = torch.from_numpy(rng.integers(-(2**63), 2**63 - 1, args.rows, dtype=np.int64))
    ram = DynamicTable(args.dim, DynamicStorage(kind="dynamic", initial_capacity=args.rows))
    ram.configure_optimizer("rowwise_adagrad", 0.01)
    ram.train()
    with torch.no_grad():
        for chunk in keys.split(65536):
            ram(chunk)
    state = {k: v.clone() for k, v in ram.state_dict().items()}
    probe = TieredTable(args.dim, DynamicStorage(kind="dynamic", tier={"ram_bytes": 1 << 30}))
    per_row = probe.row_bytes()  # the in-RAM table keeps the same fields per row, less the cache bookkeeping
    table_bytes = args.rows * (per_row - BOOKKEEPING_BYTES)
    budget = int(table_bytes / args.ratio)
    streams = {f"zipf s={s}": zipf_stream(args.rows, s, args.batch, args.warmup + args.steps, rng) for s in args.zipf}
    streams["uniform"] = uniform_stream(args.rows, args.batch, args.warmup + args.steps, rng)
    print(
        f"rows={args.rows:,} dim={args.dim} batch={args.batch} rowwise_adagrad, 1 thread; "
        f"table rows {table_bytes / 2**20:.1f} MiB, RAM budget {budget / 2**20:.1f} MiB (1/{args.ratio:g}), "
        f"policy {args.policy}, warm-up {args.warmup} steps, timed {args.steps}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name, positions in streams.items():
            ram.load_state_dict(state)
            tiered = TieredTable(
                args.dim,
                DynamicStorage(kind="dynamic", tier={"ram_bytes": budget, "path": scratch, "policy": args.policy}),
                name="bench",
            )
            tiered.configure_optimizer("rowwise_adagrad", 0.01)
            tiered.load_state_dict(state)
            tiered.train()
            data = [keys[torch.from_numpy(p)] for p in positions]
            r = compare(ram, tiered, data, args.warmup, args.rounds)
            assert tiered.resident_bytes() <= budget
            ratio = r["tiered"] / r["ram"]
            print(
                f"{name:>12}: ids/s in RAM {r['ram']:,.0f}  tiered {r['tiered']:,.0f}  ratio {ratio:.2f}"
                f"  | hot rows {tiered.hot_rows:,} ({tiered.resident_bytes() / 2**20:.1f} MiB), "
                f"miss rate {r['miss']:.3f} of distinct ids, promoted {r['promoted_per_step']:,.0f} "
                f"and written back {r['written_per_step']:,.0f} rows/step; key directory "
                f"{tiered.directory_bytes() / 2**20:.1f} MiB"
            )


if __name__ == "__main__":
    main()
