"""HPO on MovieLens-100k: does `recforge tune` (valid AUC only) beat the default DeepFM on test AUC?

1. trains examples/movielens_deepfm.yaml as is (the default) and reads its test AUC;
2. runs the study of examples/tune/movielens_deepfm_space.yaml (N trials, J worker processes, pruning);
   the objective is the best valid AUC of each trial; test metrics are never read to choose;
3. retrains the written best.yaml from scratch in a fresh directory and compares its test AUC with the
   best trial's (reproducibility) and with the default's (improvement).

    python bench/tune_ml100k.py --data ../shared/datasets/ml-100k --trials 20 --jobs 2

A rerun with the same --work resumes the study (finished trials are kept), so only step 1 and 3 rerun.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def train_once(config: Path, overrides: list[str], out: Path) -> dict[str, object]:
    from recforge import pipeline
    from recforge.config import load_config

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = pipeline.train(load_config(config, overrides), out)
    return {**result.metrics, "wall_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "tune_ml100k")
    parser.add_argument("--config", type=Path, default=REPO / "examples" / "movielens_deepfm.yaml")
    parser.add_argument("--space", type=Path, default=REPO / "examples" / "tune" / "movielens_deepfm_space.yaml")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    from recforge.config.loader import apply_override, load_tree
    from recforge.config.tune import load_space
    from recforge.pipeline.tune import tune

    data = [f"data.path={args.data.resolve()}", "train.progress=false"]
    args.work.mkdir(parents=True, exist_ok=True)
    default = train_once(args.config, data, args.work / "default")
    print(f"default: valid auc={default['valid']['auc']:.4f} test auc={default['test']['auc']:.4f}", flush=True)

    tree = load_tree(args.config)
    for assignment in data:
        apply_override(tree, assignment)
    started = time.perf_counter()
    study = tune(tree, load_space(args.space), args.work / "study", args.trials, jobs=args.jobs)
    tune_s = time.perf_counter() - started
    states = study.table.column("state").to_pylist()
    best_run = json.loads((study.best_run / "metrics.json").read_text())
    print(f"study: {len(states)} trials ({states.count('pruned')} pruned) in {tune_s:.0f} s", flush=True)

    retrain = train_once(study.best_config, [], args.work / "retrain_best")
    rows = {
        "default": (default["valid"]["auc"], default["test"]["auc"], default["train"]["parameters"]),
        f"best trial {study.best_trial}": (
            best_run["valid"]["auc"],
            best_run["test"]["auc"],
            best_run["train"]["parameters"],
        ),
        "retrained best.yaml": (retrain["valid"]["auc"], retrain["test"]["auc"], retrain["train"]["parameters"]),
    }
    print("\n| run | valid AUC | test AUC | parameters |\n|---|---|---|---|")
    for name, (valid, test, params) in rows.items():
        print(f"| {name} | {valid:.4f} | {test:.4f} | {params:,} |")
    gain = retrain["test"]["auc"] - default["test"]["auc"]
    repro = retrain["test"]["auc"] - best_run["test"]["auc"]
    print(f"\ntest AUC gain over the default: {gain:+.4f}; retrain - best trial: {repro:+.4f}")
    print(f"best values: {json.dumps(study.best_values)}")
    print(f"trials: {study.trials_csv}\nreport: {study.report}")


if __name__ == "__main__":
    main()
