"""Recall on MovieLens-100k (RecBole general protocol): recforge's channels beside their peers, one split.

    bash bench/peers/setup.sh                       # RecBole's venv (once)
    python bench/recall_ml100k.py --rounds 3        # table on stdout, JSON in bench/work/recall/
    python bench/recall_ml100k.py --data ../shared/datasets/ml-latest-small --split-seed 1 --channels ease,bpr \
        --recbole-models EASE,BPR --no-implicit     # another data set (a GroupLens ratings.csv), another split

The split is built once by recforge (rating >= 3, 10-core users and items, per-user random 8:1:1,
valid/test floor(n/10) rows per user) and exported in the peers' split contract, so every model
trains on the same rows and is scored by full ranking with train (valid) / train+valid (test) items
masked. Pairs compared (quality on test, fit seconds within the same round):
  itemcf  vs RecBole ItemKNN     ease vs RecBole EASE      bpr (torch BPR-MF) vs RecBole BPR
  ease_reg400 is EASE at the reg_weight the examples used until 2026-12 (tuned on ml-100k)
  graphsage (LightGCN-style propagation) vs RecBole LightGCN; MultiVAE is listed as a further peer
  als     vs implicit's ALS called directly (same options, same seed: the cost of recforge's wrapper)
  youtube_dnn / mind (multi-interest) are compared with each other (same towers and history)
  dssm    has no valid RecBole peer: RecBole's DSSM is a context-aware CTR model, not a full-ranking retriever
Fit seconds exclude data loading and evaluation for every framework.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RECBOLE = (BENCH / ".venv-recbole" / "bin" / "python", BENCH / "peers" / "recbole_general.py")
PAIRS = [("itemcf", "ItemKNN"), ("ease", "EASE"), ("bpr", "BPR"), ("graphsage", "LightGCN"), ("als", "implicit ALS")]
SHOWN = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10", "recall@50")
CHANNELS: list[dict[str, Any]] = [
    {"name": "itemcf", "top_n": 100},  # RecBole ItemKNN: k=100, shrink 0, cosine
    {"name": "ease"},  # the channel's default reg_weight, 250: RecBole EASE's
    {"name": "ease_reg400", "type": "ease", "reg_weight": 400.0},  # the examples' value until 2026-12
    {"name": "als", "factors": 32, "regularization": 0.01, "alpha": 5.0, "iterations": 15},
    {"name": "bpr", "threads": 1},  # torch BPR-MF: RecBole BPR defaults + weight decay 1e-5, early-stopped on valid
    {"name": "dssm", "threads": 1},
    {"name": "graphsage", "threads": 1},
    {"name": "youtube_dnn", "threads": 1},
    {"name": "mind", "threads": 1},  # multi-interest: K=4 capsule interests, each queries the items
]


def load_raw(data: Path) -> Any:
    """A MovieLens directory (atomic / raw 100K / raw 1M) or a GroupLens `ratings.csv` (ml-latest-small)."""
    from recforge.config.schema import DataConfig
    from recforge.data.sources import load_source

    ratings = data / "ratings.csv"
    if ratings.exists():
        tables = {"behavior": str(ratings), "user_key": "userId", "item_key": "movieId"}
        return load_source(DataConfig.model_validate({"source": "tables", "tables": tables}))
    return load_source(DataConfig(source="movielens", path=str(data)))


def build_split(data: Path, work: Path, seed: int = 2020) -> tuple[Any, Any, Path]:
    """recforge's own split, and the same rows in the peers' contract (string ids, rating, timestamp)."""
    from recforge.config.recall import PRESETS, InteractionsConfig
    from recforge.recall.build import build_recall_data

    raw = load_raw(data)
    split_cfg = PRESETS["recbole_general"]["split"].model_copy(update={"seed": seed})  # type: ignore[attr-defined]
    recall_data = build_recall_data(raw, InteractionsConfig(preset="recbole_general", weight="rating", split=split_cfg))
    split = work / "split"
    split.mkdir(parents=True, exist_ok=True)
    for name in ("train", "valid", "test"):
        table = getattr(recall_data, name).to_table(recall_data.vocab)
        pq.write_table(
            pa.table(
                {
                    "user_id": table["user_id"].cast(pa.string()),
                    "item_id": table["item_id"].cast(pa.string()),
                    "rating": table["weight"],
                    "timestamp": table["timestamp"],
                }
            ),
            split / f"{name}.parquet",
        )
    return raw, recall_data, split


def recforge_side(raw: Any, data: Any, threads: int, names: list[str]) -> dict[str, dict[str, Any]]:
    """Every recforge channel fitted (timed) and scored on test."""
    import torch

    from recforge.config import build_config
    from recforge.config.recall import RecallConfig, RecallEvalConfig
    from recforge.recall.channels import FitContext
    from recforge.recall.evaluate import evaluate_split
    from recforge.recall.model import RecallModel

    torch.set_num_threads(threads)
    features = [
        {"name": "user_id", "kind": "id", "side": "user"},
        {"name": "item_id", "kind": "id", "side": "item"},
    ]
    feature_cfgs = build_config({"features": features}).features
    channels = [c for c in CHANNELS if not names or c["name"] in names]
    cfg = RecallConfig.model_validate({"channels": channels, "progress": False, "merge": {"k": 50}})
    context = FitContext(vocab=data.vocab, valid=data.valid, features=feature_cfgs, embedding_dim=64, progress=False)
    model = RecallModel.fit(cfg, data.train, context)
    results = evaluate_split(model, data, "test", RecallEvalConfig(ks=[10, 20, 50]), progress=False)
    return {name: {"test": results[name], "fit_seconds": model.fit_seconds[name]} for name in model.channels}


def implicit_direct(data: Any, threads: int) -> dict[str, Any]:
    """implicit's ALS with the recforge channel's options, called by hand, scored by the same metric code."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from recforge.recall.metrics import topk_metrics

    als = next(c for c in CHANNELS if c["name"] == "als")
    model = AlternatingLeastSquares(
        factors=als["factors"],
        regularization=als["regularization"],
        alpha=als["alpha"],
        iterations=als["iterations"],
        num_threads=threads,
        random_state=2020,
    )
    matrix = data.train.binary()
    start = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model.fit(matrix, show_progress=False)
    fit_seconds = time.perf_counter() - start
    truth = data.test.binary()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    seen = data.seen_before("test")
    ids, _ = model.recommend(users, seen[users], N=50, filter_already_liked_items=True)
    return {
        "test": topk_metrics(ids, truth[users], [10, 20, 50], n_items=data.vocab.n_items),
        "fit_seconds": fit_seconds,
    }


def recbole_side(split: Path, work: Path, models: list[str], threads: int) -> dict[str, dict[str, Any]]:
    python, script = RECBOLE
    if models and not python.exists():
        raise SystemExit(f"{python} is missing: run `bash bench/peers/setup.sh` first")
    out: dict[str, dict[str, Any]] = {}
    for model in models:
        path = work / f"recbole_{model}.json"
        cmd = [str(python), str(script), str(split), "--model", model, "--out", str(path), "--threads", str(threads)]
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        result = json.loads(path.read_text())
        out[model] = {"test": result["test"], "fit_seconds": result["fit_seconds"]}
    return out


def table(rounds: list[dict[str, dict[str, Any]]]) -> str:
    """Median over rounds per model, and recforge / peer ratios taken within each round."""
    names = list(rounds[0])
    lines = ["| model | " + " | ".join(SHOWN) + " | fit s |", "|---|" + "---|" * (len(SHOWN) + 1)]
    for name in names:
        values = [statistics.median(r[name]["test"][m] for r in rounds) for m in SHOWN]
        fit = statistics.median(r[name]["fit_seconds"] for r in rounds)
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {fit:.2f} |")
    lines += [
        "",
        "| recforge vs peer | ndcg@10 diff | recall@10 diff | fit-time ratio (peer / recforge) |",
        "|---|---|---|---|",
    ]
    for ours, peer in PAIRS:
        if ours not in rounds[0] or peer not in rounds[0]:
            continue
        ndcg = statistics.median(r[ours]["test"]["ndcg@10"] - r[peer]["test"]["ndcg@10"] for r in rounds)
        rec = statistics.median(r[ours]["test"]["recall@10"] - r[peer]["test"]["recall@10"] for r in rounds)
        speed = statistics.median(r[peer]["fit_seconds"] / max(r[ours]["fit_seconds"], 1e-9) for r in rounds)
        lines.append(f"| {ours} vs {peer} | {ndcg:+.4f} | {rec:+.4f} | {speed:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "recall")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--split-seed", type=int, default=2020, help="seed of the per-user random 8:1:1 split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--recbole-models", default="ItemKNN,EASE,BPR,LightGCN,MultiVAE", help="comma-separated RecBole models"
    )
    parser.add_argument("--channels", default="", help="comma-separated recforge channels (default: all)")
    parser.add_argument("--no-implicit", action="store_true", help="skip calling implicit's ALS directly")
    args = parser.parse_args()
    names = [c for c in args.channels.split(",") if c]
    args.work.mkdir(parents=True, exist_ok=True)
    raw, data, split = build_split(args.data, args.work, args.split_seed)
    rounds = []
    for r in range(args.rounds):
        result = recforge_side(raw, data, args.threads, names)
        if not args.no_implicit:
            result["implicit ALS"] = implicit_direct(data, args.threads)
        result.update(recbole_side(split, args.work, [m for m in args.recbole_models.split(",") if m], args.threads))
        rounds.append(result)
        print(
            f"round {r + 1}: "
            + ", ".join(
                f"{k} ndcg@10={v['test']['ndcg@10']:.4f} fit={v['fit_seconds']:.2f}s" for k, v in result.items()
            ),
            flush=True,
        )
    (args.work / "results.json").write_text(json.dumps(rounds, indent=1))
    print(f"\n{args.data.name} RecBole general protocol, split seed {args.split_seed}, test split, ", end="")
    print(f"{args.rounds} round(s), {args.threads} threads\n")
    print(table(rounds))


if __name__ == "__main__":
    main()
