"""Per-request scoring time of `Predictor.score`: one user, 500 candidates, torch with 1 thread, in-process.

    python bench/predictor_score.py                 # DeepFM and DIN (sequence with attrs), 2,000 calls each
    python bench/predictor_score.py --calls 500 --models deepfm

The bundles are small synthetic worlds trained for one epoch (cached under bench/work/predictor_score);
the figure is the time of the request path (feature assembly + model), not the model's quality. Each
model prints the median and p99 per call and the median of `build_inputs` alone (the assembly).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work" / "predictor_score"
HISTORY = {"column": "clicks", "where": "click = 1", "max_len": 20}
CLICKS = {"name": "clicks", "kind": "sequence", "side": "user", "of": "item_id", "max_len": 20}
MODELS: dict[str, dict[str, Any]] = {
    "deepfm": {"name": "deepfm", "deep": {"hidden": [128, 128, 128], "dropout": 0.1}},
    "din": {"name": "din", "attention": {"hidden": [64, 32]}, "deep": {"hidden": [128, 128, 128], "dropout": 0.1}},
}


def bundle(model: str) -> Path:
    """The model trained once on a 5k-user synthetic world (DIN with a click history and its attrs)."""
    from recforge.config import build_config
    from recforge.pipeline.rank import quickstart_config, train

    run = WORK / model
    if (run / "bundle").is_dir():
        return run / "bundle"
    tree = quickstart_config()
    tree.pop("recall")
    tree["data"]["synthetic"].update(n_users=5000, n_items=5000, n_impressions=200_000)
    tree["train"].update(epochs=1, progress=False, early_stop=None)
    tree["model"] = MODELS[model]
    if model == "din":
        tree["data"]["history"] = HISTORY
        tree["features"].append({**CLICKS, "attrs": ["category_id", "brand_id"]})
    return Path(train(build_config(tree), run).bundle)


def measure(model: str, calls: int) -> dict[str, float]:
    import numpy as np
    import pyarrow.parquet as pq

    from recforge.serving.predictor import Predictor

    path = bundle(model)
    predictor = Predictor.load(path, threads=1)
    test = pq.read_table(path.parent / "samples" / "test.parquet")
    predictor.set_items(test.select(predictor.item_columns))
    rng = np.random.default_rng(0)
    items = test["item_id"].to_numpy()
    users = test.select([c for c in predictor.user_columns if c in test.column_names]).slice(0, calls).to_pylist()
    requests = [(u, rng.choice(items, 500), {"position": int(rng.integers(1, 6))}) for u in users]
    for user, ids, ctx in requests[:50]:  # warm-up
        predictor.score(user, ids, ctx)
    score, build = [], []
    for user, ids, ctx in requests:
        start = time.perf_counter()
        predictor.score(user, ids, ctx)
        score.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.build_inputs(user, ids, ctx)
        build.append(time.perf_counter() - start)
    ms = [1000 * s for s in sorted(score)]
    return {
        "score_median_ms": statistics.median(ms),
        "score_p99_ms": ms[int(0.99 * len(ms))],
        "build_median_ms": 1000 * statistics.median(build),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    print(f"{'model':8} {'score median ms':>16} {'score p99 ms':>13} {'build_inputs median ms':>23}")
    for model in args.models:
        try:
            row = measure(model, args.calls)
        except Exception as exc:  # a model the predictor cannot serve is a row, not a crash
            print(f"{model:8} failed: {type(exc).__name__}: {exc}")
            continue
        print(f"{model:8} {row['score_median_ms']:>16.3f} {row['score_p99_ms']:>13.3f} {row['build_median_ms']:>23.3f}")


if __name__ == "__main__":
    main()
