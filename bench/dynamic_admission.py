"""Admission on long-tail id features: DeepFM with dynamic tables, no admission vs counter admission.

Two datasets, each built once and shared by both variants; the high-cardinality id features (user_id,
item_id and a user_id x item_id cross, an id column `user_item` built here) get `storage: dynamic`,
with no admission or with `admission: {kind: counter, min_count: N}`:

* synthetic: recforge's embedded world (`data.source: synthetic`) made long-tail: 200k users
  (lognormal activity), 100k items (Zipf-like exposure), 1M impressions, known click probability;
  `examples/synthetic_deepfm.yaml` features, one pass over the training rows (`--synthetic-epochs`).
* ml-100k: `examples/movielens_deepfm.yaml` (RecBole context protocol split), `--ml-epochs` epochs
  (best valid epoch). Over several epochs every training id recurs once per epoch, so min_count 2 admits
  every id by the second epoch: only single-pass training can drop the tail.

Per run: rows kept (ids in the embedding tables), table bytes (every state array allocated in the
embedding and DeepFM's dim-1 linear tables, the key indexes and the admission counters) and test AUC.
The two variants run back to back for each seed (same split, same seed); the report gives medians
over seeds and the admission / none ratios taken within a seed.

    python bench/dynamic_admission.py --data ../shared/datasets/ml-100k --seeds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DYNAMIC_FEATURES = ("user_id", "item_id", "user_item")
SYNTHETIC_WORLD = "{n_users: 200000, n_items: 100000, n_categories: 40, n_impressions: 1000000, seed: 0}"


def add_cross(split: Path) -> None:
    """Add `user_item` (user_id x item_id as one string id) to each split file."""
    for name in ("train", "valid", "test"):
        path = split / f"{name}.parquet"
        table = pq.read_table(path)
        if "user_item" in table.column_names:
            continue
        cross = pc.binary_join_element_wise(
            pc.cast(table["user_id"], pa.string()), pc.cast(table["item_id"], pa.string()), "_"
        )
        pq.write_table(table.append_column("user_item", cross), path)


def synthetic_split(work: Path) -> Path:
    """The long-tail synthetic world's random 8:1:1 samples, as Parquet files plus the cross column."""
    from recforge.config import load_config
    from recforge.data import build_samples

    split = work / "synthetic_split"
    if not (split / "test.parquet").exists():
        cfg = load_config(REPO / "examples" / "synthetic_deepfm.yaml", [f"data.synthetic={SYNTHETIC_WORLD}"])
        samples = build_samples(cfg.data, work / "synthetic_samples")
        split.mkdir(parents=True, exist_ok=True)
        for name in ("train", "valid", "test"):
            shutil.copy(getattr(samples, name), split / f"{name}.parquet")
    add_cross(split)
    return split


def ml100k_split(data: Path, work: Path) -> Path:
    """bench/deepfm_ml100k.py's split (recforge's own sample building) plus the cross column."""
    spec = importlib.util.spec_from_file_location("deepfm_ml100k", BENCH / "deepfm_ml100k.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    split: Path = module.make_split(data, work / "ml100k")
    add_cross(split)
    return split


def storage(min_count: int | None) -> dict[str, Any]:
    admission = {"kind": "counter", "min_count": min_count} if min_count else None
    return {"kind": "dynamic", "admission": admission}


def table_bytes(table: Any) -> int:
    """Bytes allocated: every state array (at capacity, admission counters included) and the key index."""
    return int(sum(t.nbytes for t in table.state_dict().values()) + table.index.table.nbytes)


def run_one(dataset: str, split: Path, min_count: int | None, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from recforge import pipeline
    from recforge.bundle import load_bundle
    from recforge.config import build_config
    from recforge.config.loader import load_tree
    from recforge.embedding import dynamic_tables

    torch.set_num_threads(args.threads)
    example = "synthetic_deepfm.yaml" if dataset == "synthetic" else "movielens_deepfm.yaml"
    cfg_file = REPO / "examples" / example
    tree = load_tree(cfg_file)
    for feature in tree["features"]:
        if feature["name"] in DYNAMIC_FEATURES:
            feature["storage"] = storage(min_count)
        if dataset == "ml100k" and feature["name"] == "genre":
            feature["sep"] = " "  # the split stores genre space-joined
    tree["features"].append({"name": "user_item", "kind": "id", "side": "context", "storage": storage(min_count)})
    tree["data"] = {
        "source": "samples",
        "label": tree["data"]["label"],
        "train": str(split / "train.parquet"),
        "valid": str(split / "valid.parquet"),
        "test": str(split / "test.parquet"),
    }
    epochs = args.synthetic_epochs if dataset == "synthetic" else args.ml_epochs
    cfg = build_config(
        tree,
        [
            f"train.epochs={epochs}",
            "train.early_stop=null",
            "train.progress=false",
            f"train.threads={args.threads}",
            f"train.seed={seed}",
            "eval.metrics=[auc, logloss]",
        ],
        file=str(cfg_file),
    )
    run_dir = args.work / f"run_{dataset}_{min_count or 0}_{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    result = pipeline.train(cfg, run_dir)
    wall = time.perf_counter() - started
    model = load_bundle(result.bundle).model
    tables = dynamic_tables(model)  # the embedding tables and DeepFM's dim-1 linear (first-order) tables
    return {
        "dataset": dataset,
        "admission": f"counter N={min_count}" if min_count else "none",
        "seed": seed,
        "rows": sum(len(t) for t in tables if t.dim > 1),  # ids kept (each also has a linear row)
        "bytes": sum(table_bytes(t) for t in tables),
        "auc": result.metrics["test"]["auc"],
        "logloss": result.metrics["test"]["logloss"],
        "samples_per_s": result.train.samples_per_s,
        "wall_s": wall,
    }


def report(results: list[dict[str, Any]], datasets: list[str]) -> str:
    lines = [
        "| dataset | admission | rows kept | table MB | test AUC | admission / none rows | bytes | AUC diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        runs = [r for r in results if r["dataset"] == dataset]
        none = {r["seed"]: r for r in runs if r["admission"] == "none"}
        for variant in dict.fromkeys(r["admission"] for r in runs):
            mine = [r for r in runs if r["admission"] == variant]
            med = {k: statistics.median(r[k] for r in mine) for k in ("rows", "bytes", "auc")}
            ratio_rows = statistics.median(r["rows"] / none[r["seed"]]["rows"] for r in mine)
            ratio_bytes = statistics.median(r["bytes"] / none[r["seed"]]["bytes"] for r in mine)
            diff = statistics.median(r["auc"] - none[r["seed"]]["auc"] for r in mine)
            lines.append(
                f"| {dataset} | {variant} | {med['rows']:,.0f} | {med['bytes'] / 2**20:.1f} | {med['auc']:.4f} | "
                f"{ratio_rows:.2f}x | {ratio_bytes:.2f}x | {diff:+.4f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "dynamic_admission")
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "ml100k"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--synthetic-epochs", type=int, default=1)
    parser.add_argument("--ml-epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    splits = {
        name: synthetic_split(args.work) if name == "synthetic" else ml100k_split(args.data, args.work)
        for name in args.datasets
    }
    results: list[dict[str, Any]] = []
    for seed in range(2020, 2020 + args.seeds):
        for dataset, split in splits.items():
            for min_count in (None, args.min_count):  # peers back to back, same seed and split
                row = run_one(dataset, split, min_count, seed, args)
                results.append(row)
                print(json.dumps(row), flush=True)
    print(report(results, list(splits)))


if __name__ == "__main__":
    main()
