"""Training throughput with 1 and 2 processes (torchrun, gloo) on the synthetic world, and each process's peak RSS.

Every arm runs the real CLI on `examples/synthetic_deepfm.yaml` scaled by the flags, with the same global
batch: `recforge train` in one process (all cores, then one thread) and `recforge train --nproc 2` (one
thread per process). Reported per arm: training samples/s from metrics.json (the training loop only, every
rank's rows together; sample building, evaluation and start-up excluded), wall seconds of the whole command,
test AUC, the CPU seconds all training processes used (user + system, whole command: on a shared box the
fairest cost figure) and the peak RSS (VmHWM, polled from /proc) of every training process. Linux only.

    python bench/train_scale.py --impressions 400000 --epochs 1     # prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def children(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc/*/stat's parent field)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set) of `pid` in MiB, None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds `pid` has used so far, None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def is_trainer(pid: int) -> bool:
    """A process running `-m recforge train` (the torchrun agent runs `torch.distributed.run` code instead)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"recforge" in argv and b"train" in argv


def run_arm(
    args: argparse.Namespace, name: str, extra: list[str], env: dict[str, str], work: Path
) -> dict[str, object]:
    """Run one arm to its end, polling its processes' peak RSS; returns its row."""
    out = work / name.replace(" ", "-")
    config = REPO / "examples" / "synthetic_deepfm.yaml"
    cmd = [sys.executable, "-m", "recforge", "train", str(config), "--out", str(out)]
    for override in overrides(args):
        cmd += ["--set", override]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd + extra, env={**os.environ, **env}, cwd=REPO)
    peaks: dict[int, float] = {}
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        for pid in [proc.pid, *children(proc.pid)]:
            if is_trainer(pid) and (rss := peak_rss_mib(pid)) is not None:
                peaks[pid] = max(peaks.get(pid, 0.0), rss)
                cpu[pid] = cpu_seconds(pid) or cpu.get(pid, 0.0)
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{name}: exit {proc.returncode}")
    metrics = json.loads((out / "metrics.json").read_text())
    if "--nproc" in extra:
        peaks.pop(proc.pid, None)  # the launcher waits; the ranks train
        cpu.pop(proc.pid, None)
    return {
        "arm": name,
        "samples_per_s": metrics["train"]["samples_per_s"],
        "wall_s": wall,
        "test_auc": metrics["test"]["auc"],
        "cpu_s": sum(cpu.values()),
        "rss_mib": sorted(peaks.values(), reverse=True),
    }


def overrides(args: argparse.Namespace) -> list[str]:
    return [
        f"data.synthetic.n_impressions={args.impressions}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        "train.progress=false",
        "train.checkpoint.every_steps=null",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=400_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=None, help="Run directories (default: a temporary one).")
    args = parser.parse_args()
    cores = str(os.cpu_count() or 1)
    arms = [
        (f"1 process, {cores} threads", [], {"OMP_NUM_THREADS": cores}),
        ("1 process, 1 thread", [], {"OMP_NUM_THREADS": "1"}),
        ("2 processes, 1 thread each", ["--nproc", "2"], {"OMP_NUM_THREADS": "1"}),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        rows = [run_arm(args, name, extra, env, work) for name, extra, env in arms]
    print(f"\n{args.impressions:,} impressions, {args.epochs} epoch(s), global batch {args.batch_size}\n")
    print("| arm | training samples/s | wall s | CPU s of the trainers | test AUC | peak RSS per trainer (MiB) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        rss = ", ".join(f"{r:,.0f}" for r in row["rss_mib"])  # type: ignore[attr-defined]
        print(
            f"| {row['arm']} | {row['samples_per_s']:,.0f} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} "
            f"| {row['test_auc']:.4f} | {rss} |"
        )


if __name__ == "__main__":
    main()
