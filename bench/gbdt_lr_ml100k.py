"""GBDT+LR beside LR and DeepFM on MovieLens-100k (RecBole context protocol), same split, same features.

Each model is trained by `recforge train` from its example config (examples/movielens_{lr,deepfm,gbdt_lr}.yaml:
the same seven features; GBDT+LR reads age as a raw number instead of an id) on the one random 8:1:1 split
the configs share, keeping its best valid-AUC state, and reports test AUC / logloss / gauc and wall time.
Rounds vary train.seed (the split stays fixed); the median per model is printed as a Markdown table.

    python bench/gbdt_lr_ml100k.py --data ../shared/datasets/ml-100k --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from recforge.config import load_config
from recforge.pipeline.rank import train

REPO = Path(__file__).resolve().parents[1]
MODELS = ("lr", "deepfm", "gbdt_lr")


def run(model: str, data: str, seed: int, threads: int, work: Path) -> dict[str, float]:
    sets = [f"data.path={data}", f"train.seed={seed}", f"train.threads={threads}", "train.progress=false"]
    cfg = load_config(REPO / "examples" / f"movielens_{model}.yaml", sets)
    started = time.perf_counter()
    result = train(cfg, work / f"{model}-{seed}")
    test = result.metrics["test"]
    return {
        "auc": test["auc"],
        "logloss": test["logloss"],
        "gauc": test["gauc@user_id"],
        "wall_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="ml-100k directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for model in args.models.split(","):
                row = run(model, args.data, 2020 + r, args.threads, Path(tmp))
                results.setdefault(model, []).append(row)
                print(f"round {r + 1} {model:8s} " + "  ".join(f"{k}={v:.4f}" for k, v in row.items()), flush=True)
    print("\n| model | test AUC | test logloss | test gAUC@user | wall s |\n|---|---|---|---|---|")
    for model, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"| {model} | {med['auc']:.4f} | {med['logloss']:.4f} | {med['gauc']:.4f} | {med['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
