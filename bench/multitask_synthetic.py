"""Multi-task models vs two single-task DeepFMs on the synthetic two-objective world (click, purchase).

Every arm trains on the same world and split per seed, with the same features, optimizer, batch size
and epochs (the example configs, scaled by the flags): MMoE, PLE, ESMM and DBMTL learn `ctr` (click)
and `ctcvr` (purchase over all impressions) at once; the baseline is one DeepFM on `click` and another
on `purchase`. Reported: test AUC per task, their mean, and the mean's lift over the DeepFM pair,
per seed and as the median over seeds.

    python bench/multitask_synthetic.py --seeds 3 --jobs 2 --write   # appends the table to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MULTITASK = ("mmoe", "ple", "esmm", "dbmtl")


def world(args: argparse.Namespace, seed: int) -> list[str]:
    """Overrides shared by every arm: world size and seed, split, training budget, threads, no progress bar."""
    return [
        f"data.synthetic.n_impressions={args.impressions}",
        f"data.synthetic.n_users={args.users}",
        f"data.synthetic.n_items={args.items}",
        f"data.synthetic.n_categories={args.categories}",
        f"data.synthetic.seed={seed}",
        f"data.split.ratios=[{round(1 - args.valid - args.test, 6)}, {args.valid}, {args.test}]",
        f"train.seed={seed}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        f"train.optimizer.lr={args.lr}",
        f"train.threads={args.threads}",
        "train.progress=false",
    ]


def train(config: str, overrides: list[str], work: str) -> tuple[dict[str, float], float]:
    """Test metrics and wall seconds of one training run (runs in a worker process)."""
    from recforge import pipeline
    from recforge.config import load_config

    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(REPO / "examples" / config, overrides)
    started = time.perf_counter()
    result = pipeline.train(cfg, work)
    return dict(result.metrics["test"]), time.perf_counter() - started


def arms(args: argparse.Namespace, seed: int, work: Path) -> dict[str, list[tuple[str, list[str], str]]]:
    """arm -> the runs it needs (config, overrides, run directory): two for the DeepFM pair, one otherwise."""
    shared = world(args, seed)
    out = {
        "2 x deepfm": [
            ("synthetic_two_deepfm.yaml", [*shared, f"data.label={label}"], str(work / f"deepfm_{label}_{seed}"))
            for label in ("click", "purchase")
        ]
    }
    for name in args.models:
        out[name] = [(f"synthetic_{name}.yaml", shared, str(work / f"{name}_{seed}"))]
    return out


def collect(name: str, runs: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    """{ctr, ctcvr, mean, seconds} of one arm from its finished runs."""
    seconds = sum(s for _, s in runs)
    if name == "2 x deepfm":
        (click, _), (buy, _) = runs
        row = {"ctr": click["auc"], "ctcvr": buy["auc"], "seconds": seconds}
    else:
        row = {"ctr": runs[0][0]["ctr/auc"], "ctcvr": runs[0][0]["ctcvr/auc"], "seconds": seconds}
    row["mean"] = (row["ctr"] + row["ctcvr"]) / 2
    return row


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
    parser.add_argument("--impressions", type=int, default=80_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--items", type=int, default=4_000)
    parser.add_argument("--categories", type=int, default=40)
    parser.add_argument("--valid", type=float, default=0.1, help="Valid share of the random split.")
    parser.add_argument("--test", type=float, default=0.3, help="Test share (large: purchases are rare).")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="Training runs at once (processes).")
    parser.add_argument("--models", nargs="+", default=list(MULTITASK), choices=MULTITASK)
    parser.add_argument("--write", action="store_true", help="Append the table to bench/RESULTS.md.")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory(prefix="recforge-mtl-") as tmp, ProcessPoolExecutor(args.jobs) as pool:
        plan = {seed: arms(args, seed, Path(tmp)) for seed in seeds}
        futures = {(s, a): [pool.submit(train, *run) for run in runs] for s, p in plan.items() for a, runs in p.items()}
        results = []
        for seed in seeds:
            rows = {arm: collect(arm, [f.result() for f in futures[(seed, arm)]]) for arm in plan[seed]}
            for arm, row in rows.items():
                print(f"seed {seed} {arm:>10}: ctr {row['ctr']:.4f} ctcvr {row['ctcvr']:.4f} mean {row['mean']:.4f}")
            results.append(rows)
    text = table(results, seeds)
    print(text)
    if args.write:
        with (BENCH / "RESULTS.md").open("a") as out:
            out.write(f"\n{text}\n")


if __name__ == "__main__":
    main()
