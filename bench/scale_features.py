"""Feature fit + transform rows/s and peak RSS: local (FeatureSet over Arrow batches) vs Spark (spark_fit + the
mapInArrow transform to partitioned Parquet) on the synthetic world's train samples.

Each engine runs in its own subprocess; peak RSS is sampled over that process and every descendant (Spark's
JVM and its Python workers included) every 0.2 s. The local arm transforms into memory batch by batch as the
trainer does and discards them; the Spark arm writes the transformed Parquet files.

    python bench/scale_features.py --rows 1000000 --master local[2] --work bench/work/scale_features
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

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
    {"name": "category_x_city", "kind": "cross", "inputs": ["category_id", "city_tier"], "buckets": 1000},
]


def write_samples(rows: int, directory: Path) -> Path:
    """The synthetic world's `rows` impressions split 98:1:1 (built once, then reused); returns train.parquet."""
    from recforge.config.schema import DataConfig
    from recforge.data import build_samples

    if not (directory / "train.parquet").exists():
        cfg = DataConfig(
            source="synthetic",
            label="click",
            synthetic={"n_users": 200_000, "n_items": 50_000, "n_categories": 40, "n_impressions": rows, "seed": 0},
            split={"ratios": (0.98, 0.01, 0.01), "seed": 0},
        )
        build_samples(cfg, directory)
    return directory / "train.parquet"


def tree_rss_kb(root: int) -> int:
    """Resident KB of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


class PeakRss:
    """Samples the RSS of this process tree in a thread until stopped."""

    def __init__(self) -> None:
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_kb(os.getpid()))

    def done(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.peak / 1024


def run_local(train: Path, out: Path) -> dict[str, float]:
    from recforge.data.readers import iter_batches
    from recforge.features import FeatureSet

    features = FeatureSet([_config(f) for f in FEATURES])
    columns = [*features.input_columns(), "click"]
    start = time.perf_counter()
    features.fit(iter_batches(str(train), columns=columns))
    fitted = time.perf_counter()
    rows = 0
    for batch in iter_batches(str(train), columns=columns):
        rows += features.transform(batch, labels=False).size
    return {"rows": rows, "fit_s": fitted - start, "transform_s": time.perf_counter() - fitted}


def run_spark(train: Path, out: Path, master: str) -> dict[str, float]:
    from recforge.data.spark_session import spark_session
    from recforge.features import FeatureSet
    from recforge.features.spark_fit import spark_fit
    from recforge.features.spark_transform import spark_transform

    session = spark_session(master, {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"})
    features = FeatureSet([_config(f) for f in FEATURES])
    frame = session.read.parquet(str(train))
    start = time.perf_counter()
    spark_fit(features, frame)
    fitted = time.perf_counter()
    spark_transform(features, frame, out / "transformed", labels=False)
    done = time.perf_counter()
    rows = session.read.parquet(str(out / "transformed")).count()
    return {"rows": rows, "fit_s": fitted - start, "transform_s": done - fitted}


def _config(tree: dict[str, object]) -> object:
    from pydantic import TypeAdapter

    from recforge.config.features import FeatureConfig

    return TypeAdapter(FeatureConfig).validate_python(tree)


def child(engine: str, train: Path, out: Path, master: str) -> None:
    peak = PeakRss()
    result = run_local(train, out) if engine == "local" else run_spark(train, out, master)
    result["peak_rss_mb"] = peak.done()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic impressions (98%% become train)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--engines", nargs="+", default=["local", "spark"])
    parser.add_argument("--work", type=Path, default=Path("bench/work/scale_features"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.work / f"samples_{args.rows}"
    if args.child:
        child(args.child, data / "train.parquet", args.work, args.master)
        return
    write_samples(args.rows, data)
    print(
        f"{'engine':<16} {'rows':>10} {'fit s':>8} {'transform s':>12} {'rows/s fit+transform':>22} {'peak RSS MB':>12}"
    )
    for engine in args.engines:
        command = [sys.executable, __file__, "--child", engine, "--rows", str(args.rows), "--master", args.master]
        proc = subprocess.run([*command, "--work", str(args.work)], capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        label = engine if engine == "local" else f"spark {args.master}"
        total = result["fit_s"] + result["transform_s"]
        print(
            f"{label:<16} {int(result['rows']):>10,} {result['fit_s']:>8.1f} {result['transform_s']:>12.1f} "
            f"{result['rows'] / total:>22,.0f} {result['peak_rss_mb']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
