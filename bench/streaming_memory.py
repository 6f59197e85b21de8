"""Peak RSS of one training epoch streamed from a 2M-row and a 20M-row synthetic Parquet file.

Each size trains in its own subprocess (so the generator's memory is not counted) with
`train.cache=stream`: record batches are read, transformed and shuffled within a bounded buffer.
Streaming holds when the 20M peak is within 1.5x of the 2M peak.

    python bench/streaming_memory.py --rows 2000000 20000000 --work bench/work/streaming
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

FEATURES = [
    {"name": "user_id", "kind": "id", "side": "user"},
    {"name": "age", "kind": "numeric", "side": "user", "boundaries": [25, 35, 45, 55]},
    {"name": "gender", "kind": "id", "side": "user"},
    {"name": "city_tier", "kind": "id", "side": "user"},
    {"name": "item_id", "kind": "id", "side": "item"},
    {"name": "category_id", "kind": "id", "side": "item"},
    {"name": "brand_id", "kind": "id", "side": "item"},
    {"name": "price", "kind": "numeric", "side": "item", "n_buckets": 20},
    {"name": "position", "kind": "id", "side": "context"},
]


def write_samples(rows: int, directory: Path) -> None:
    """One synthetic world of `rows` impressions, split 98:1:1 into Parquet (done once, then reused)."""
    from recforge.config.schema import DataConfig
    from recforge.data import build_samples

    if (directory / "train.parquet").exists():
        return
    cfg = DataConfig(
        source="synthetic",
        label="click",
        synthetic={"n_users": 200_000, "n_items": 50_000, "n_categories": 40, "n_impressions": rows, "seed": 0},
        split={"ratios": (0.98, 0.01, 0.01), "seed": 0},
    )
    build_samples(cfg, directory)


def train_once(directory: Path, out: Path) -> dict[str, float]:
    """Runs in the child: one streamed epoch, returns peak RSS and throughput."""
    from recforge import pipeline
    from recforge.config import build_config

    cfg = build_config(
        {
            "data": {
                "source": "samples",
                "train": str(directory / "train.parquet"),
                "valid": str(directory / "valid.parquet"),
                "label": "click",
            },
            "features": FEATURES,
            "model": {"name": "deepfm", "deep": {"hidden": [128, 64], "dropout": 0.0}},
            "train": {"batch_size": 4096, "epochs": 1, "cache": "stream", "progress": False, "early_stop": None},
            "eval": {"metrics": ["auc", "logloss"]},
        }
    )
    started = time.perf_counter()
    result = pipeline.train(cfg, out)
    return {
        "rows": pq.ParquetFile(directory / "train.parquet").metadata.num_rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "samples_per_s": result.train.samples_per_s,
        "wall_s": time.perf_counter() - started,
        "valid_auc": result.metrics["valid"].get("auc", float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 20_000_000])
    parser.add_argument("--work", type=Path, default=Path("bench/work/streaming"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_once(args.child, args.child / "run")))
        return
    results = []
    for rows in args.rows:
        directory = args.work / f"rows{rows}"
        write_samples(rows, directory)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(directory)], capture_output=True, text=True, check=True
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    base = results[0]["peak_rss_mb"]
    for r in results[1:]:
        print(f"peak RSS {r['rows']:,} rows / {results[0]['rows']:,} rows = {r['peak_rss_mb'] / base:.2f}x")


if __name__ == "__main__":
    main()
