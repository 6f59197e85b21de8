"""Multi-task models vs two single-task DeepFMs on the synthetic two-objective world (click, purchase).

Every arm trains on the same world and split per seed, with the same features, optimizer, batch size
and epochs (the example configs, scaled by the flags): MMoE, PLE, ESMM and DBMTL learn `ctr` (click)
and `ctcvr` (purchase over all impressions) at once; the baseline is one DeepFM on `click` and another
on `purchase`. Reported: test AUC per task, their mean, and the mean's lift over the DeepFM pair,
per seed and as the median over seeds.

    python bench/multitask_synthetic.py --seeds 3                 # ~25 min on the loaded 2 cores
    python bench/multitask_synthetic.py --seeds 3 --write         # also appends the table to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MULTITASK = ("mmoe", "ple", "esmm", "dbmtl")


def world(args: argparse.Namespace, seed: int) -> list[str]:
    """Overrides shared by every arm: world size and seed, training budget, threads, no progress bar."""
    return [
        f"data.synthetic.n_impressions={args.impressions}",
        f"data.synthetic.n_users={args.users}",
        f"data.synthetic.n_items={args.items}",
        f"data.synthetic.n_categories={args.categories}",
        f"data.synthetic.seed={seed}",
        f"train.seed={seed}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        f"train.optimizer.lr={args.lr}",
        f"train.threads={args.threads}",
        "train.progress=false",
    ]


def train(config: str, overrides: list[str], work: Path) -> tuple[dict[str, float], float]:
    """Test metrics and wall seconds of one training run."""
    from recforge import pipeline
    from recforge.config import load_config

    cfg = load_config(REPO / "examples" / config, overrides)
    started = time.perf_counter()
    result = pipeline.train(cfg, work)
    return dict(result.metrics["test"]), time.perf_counter() - started


def run_seed(args: argparse.Namespace, seed: int, work: Path) -> dict[str, dict[str, float]]:
    """arm -> {ctr, ctcvr, mean, seconds} for one seed."""
    shared = world(args, seed)
    rows: dict[str, dict[str, float]] = {}
    click, t1 = train("synthetic_two_deepfm.yaml", [*shared, "data.label=click"], work / f"deepfm_ctr_{seed}")
    buy, t2 = train("synthetic_two_deepfm.yaml", [*shared, "data.label=purchase"], work / f"deepfm_ctcvr_{seed}")
    rows["2 x deepfm"] = {"ctr": click["auc"], "ctcvr": buy["auc"], "seconds": t1 + t2}
    for name in args.models:
        test, seconds = train(f"synthetic_{name}.yaml", shared, work / f"{name}_{seed}")
        rows[name] = {"ctr": test["ctr/auc"], "ctcvr": test["ctcvr/auc"], "seconds": seconds}
    for row in rows.values():
        row["mean"] = (row["ctr"] + row["ctcvr"]) / 2
    for name, row in rows.items():
        print(f"seed {seed} {name:>10}: ctr {row['ctr']:.4f} ctcvr {row['ctcvr']:.4f} mean {row['mean']:.4f}")
    return rows


def table(results: list[dict[str, dict[str, float]]], seeds: list[int]) -> str:
    """Markdown: medians over seeds and the per-seed lift of the mean AUC over the DeepFM pair."""
    lines = [
        "| model | ctr test AUC | ctcvr test AUC | mean AUC | lift vs 2 x DeepFM (median) | lift per seed | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in results[0]:
        med = {k: statistics.median(r[arm][k] for r in results) for k in ("ctr", "ctcvr", "mean", "seconds")}
        lifts = [r[arm]["mean"] - r["2 x deepfm"]["mean"] for r in results]
        lines.append(
            f"| {arm} | {med['ctr']:.4f} | {med['ctcvr']:.4f} | {med['mean']:.4f} | {statistics.median(lifts):+.4f} "
            f"| {', '.join(f'{x:+.4f}' for x in lifts)} | {med['seconds']:.0f} |"
        )
    return "\n".join(lines) + f"\n\nSeeds {', '.join(map(str, seeds))} (world and training seed)."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--impressions", type=int, default=400_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=1_500)
    parser.add_argument("--categories", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MULTITASK), choices=MULTITASK)
    parser.add_argument("--write", action="store_true", help="Append the table to bench/RESULTS.md.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory(prefix="recforge-mtl-") as tmp:
        results = [run_seed(args, seed, Path(tmp)) for seed in seeds]
    text = table(results, seeds)
    print(text)
    if args.write:
        with (BENCH / "RESULTS.md").open("a") as out:
            out.write(f"\n{text}\n")


if __name__ == "__main__":
    main()
