"""DIN on the synthetic world with a planted recency effect, against DeepFM without the history and the truth.

Per seed, one world (`examples/synthetic_recency_din.yaml`, scaled by the flags) and one split; arms:
`din_recency` (attention.recency: a learned factor per recency rank), `din` (plain attention), `bst_recency`
(BST, positions by recency rank), `deepfm` (no history). `deepfm_default` trains DeepFM on the same world
with the recency effect off. Each row gives test AUC and the true click probability's AUC on the same test
rows (`oracle_auc`); medians over seeds.

    python bench/recency_synthetic.py --seeds 0,1,2 --users 1000 --items 200 --impressions 600000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEEPFM = {"name": "deepfm", "deep": {"hidden": [64, 32], "dropout": 0.0}}
# BST over the same history, positions counted from the newest click (time-aware), same MLP as DIN's
BST = {
    "name": "bst",
    "deep": {"hidden": [64, 32], "dropout": 0.0},
    "transformer": {"positions": "recency", "dropout": 0.0},
}


def arm_tree(arm: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The example config for one arm, world and seed."""
    tree = yaml.safe_load((REPO / "examples" / "synthetic_recency_din.yaml").read_text())
    world = tree["data"]["synthetic"]
    world.update(seed=seed, n_users=args.users, n_items=args.items, n_impressions=args.impressions)
    if arm == "deepfm_default":
        world["recency_effect"] = 0.0
    if arm.startswith("deepfm"):
        tree["features"] = [f for f in tree["features"] if f["kind"] != "sequence"]
        tree["model"] = DEEPFM
    if arm == "din_recency":
        tree["model"]["attention"]["recency"] = True
    if arm == "bst_recency":
        tree["model"] = BST
    tree["train"].update(seed=seed, threads=args.threads, progress=False)
    return tree


def run(arm: str, args: argparse.Namespace, seed: int) -> dict[str, float]:
    from recforge import pipeline
    from recforge.config.loader import build_config
    from recforge.data import oracle_auc

    started = time.perf_counter()
    result = pipeline.train(build_config(arm_tree(arm, args, seed)), args.work / f"{arm}_{seed}")
    truth = oracle_auc(pq.read_table(result.samples.test))
    return {"auc": result.metrics["test"]["auc"], "oracle": truth, "epochs": result.train.epochs,
            "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default="din_recency,din,bst_recency,deepfm,deepfm_default")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--impressions", type=int, default=600_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "recency_synthetic")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    results: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
    for seed in seeds:
        for arm in arms:
            r = run(arm, args, seed)
            results[arm].append(r)
            print(f"seed {seed} {arm:15s} auc={r['auc']:.4f} oracle={r['oracle']:.4f} gap={r['oracle'] - r['auc']:.4f} "
                  f"epochs={r['epochs']} {r['seconds']:.0f}s", flush=True)  # fmt: skip
    print(f"\n{args.users} users, {args.items} items, {args.impressions:,} impressions, seeds {args.seeds}; medians\n")
    print("| arm | test AUC | true-probability AUC | gap to truth |")
    print("|---|---|---|---|")
    for arm, rows in results.items():
        auc = statistics.median(r["auc"] for r in rows)
        truth = statistics.median(r["oracle"] for r in rows)
        gap = statistics.median(r["oracle"] - r["auc"] for r in rows)
        print(f"| {arm} | {auc:.4f} | {truth:.4f} | {gap:.4f} |")


if __name__ == "__main__":
    main()
