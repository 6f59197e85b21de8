"""Samples + features at scale: rows/s of each stage and peak RSS of the whole process tree, per engine.

The synthetic world's log of `--rows` impressions is written once to Parquet chunk by chunk
(`recforge.data.synthetic_parquet`: bounded memory) under `--work` and reused by later runs. Each engine then
runs in its own process (one Spark context per run, a clean RSS), through the pipeline's own code:

    duckdb   samples by DuckDB in process; features fitted locally (`FEATURE_ENGINES["duckdb"]`) and every
             split transformed batch by batch in memory, as the trainer's loader does
    local    Spark local[2]: Spark samples, `spark_fit` + `spark_transform` of every split to Parquet
             (`FEATURE_ENGINES["spark"]`)
    cluster  the same on a Spark standalone cluster on localhost: a master and one worker started from
             pyspark's own launch classes (tests/spark_cluster.py), jobs in a separate executor JVM

Stages: samples (join users + items, label, keyed-hash 8:1:1 split, Parquet out; rows = log rows), fit (train
rows) and transform (rows of all splits); "combined" is log rows / (samples + fit + transform seconds). Spark's
start-up is not counted. Peak RSS is sampled every 0.5 s over the engine's process and all its descendants (the
driver JVM, Python workers) plus, for the cluster, the master, the worker and its executor with theirs.

    python bench/scale_pipeline.py --rows 1000000                       # every engine, every stage
    python bench/scale_pipeline.py --rows 20000000 --engines duckdb,local
    python bench/scale_pipeline.py --stages samples --history            # samples only, with a click history
    python bench/scale_pipeline.py --rows 2000000 --engines local --profile   # log each Spark action's seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # the test suite's standalone-cluster launcher

from streaming_memory import FEATURES as SYNTHETIC_FEATURES  # noqa: E402  (bench/ is sys.path[0])

STAGES = ("samples", "fit", "transform")
# the synthetic world's features as streaming_memory.py trains them, plus one cross
FEATURES = [
    *SYNTHETIC_FEATURES,
    {"name": "category_x_city", "kind": "cross", "inputs": ["category_id", "city_tier"], "buckets": 1000},
]


def write_world(rows: int, root: Path) -> dict[str, str]:
    """The world's behavior / users / items Parquet files for `rows` impressions (written once, then reused)."""
    from recforge.config.schema import SyntheticConfig
    from recforge.data.synthetic_parquet import write_synthetic_parquet

    directory = root / f"world_{rows}"
    files = {name: str(directory / f"{name}.parquet") for name in ("behavior", "users", "items")}
    if not (directory / "done").exists():
        start = time.perf_counter()
        cfg = SyntheticConfig(n_users=max(rows // 200, 100), n_items=20_000, n_impressions=rows)
        write_synthetic_parquet(cfg, directory)
        (directory / "done").write_text("")
        print(f"world: {rows:,} impressions written in {time.perf_counter() - start:.1f} s", flush=True)
    return files


def pipeline_tree(files: dict[str, str], engine: str, master: str, memory: str, history: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"source": "tables", "label": "click", "tables": files, "split": {"seed": 1}}
    if history:
        data["history"] = {"column": "clicks", "where": "click = 1", "max_len": 20}
    conf = {"spark.driver.memory": memory, "spark.executor.memory": memory, "spark.sql.shuffle.partitions": "8"}
    return {
        "name": "scale",
        "data": data,
        "engine": engine,
        "spark": {"master": master, "conf": conf},
        "features": FEATURES,
    }


def child(tree_json: str, out: str, stages: list[str]) -> None:
    """One engine's stages in this process: prints {"seconds": {stage: s}, "rows": {stage: n}} as JSON."""
    from recforge.config import build_config
    from recforge.data import build_samples
    from recforge.data.spark_session import spark_session, stop_sessions
    from recforge.features import FeatureSet
    from recforge.pipeline.spark_features import feature_engine

    cfg = build_config(json.loads(tree_json))
    if cfg.engine == "spark":
        spark_session(cfg.spark.master, cfg.spark.conf).range(1).count()  # start-up is not a stage
    seconds, rows = {}, {}
    start = time.perf_counter()
    samples = build_samples(cfg.data, out, engine=cfg.engine, spark=cfg.spark)
    seconds["samples"], rows["samples"] = time.perf_counter() - start, samples.counts["raw"]
    if "fit" in stages:
        features, engine = FeatureSet.from_config(cfg), feature_engine(cfg)
        start = time.perf_counter()
        engine.fit(cfg, features, samples)
        seconds["fit"], rows["fit"] = time.perf_counter() - start, samples.counts["train"]
        start = time.perf_counter()
        transformed = engine.inputs(cfg, features, samples, Path(out), ())
        if cfg.engine == "duckdb":
            transform_locally(features, transformed, cfg.data.read_rows)
        seconds["transform"] = time.perf_counter() - start
        rows["transform"] = sum(samples.counts[split] for split in ("train", "valid", "test"))
    stop_sessions()
    print(json.dumps({"seconds": seconds, "rows": rows}), flush=True)


def transform_locally(features: Any, samples: Any, batch_rows: int) -> None:
    """Every split through FeatureSet.transform batch by batch, as the trainer's loader does (kept in memory)."""
    from recforge.data.readers import iter_batches

    columns = [*features.input_columns(), *features.labels]
    for split in (samples.train, samples.valid, samples.test):
        for batch in iter_batches(split, columns=columns, batch_rows=batch_rows):
            features.transform(batch)


def tree_rss(roots: list[int]) -> int:
    """Resident bytes of `roots` and all their descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def run_engine(tree: dict[str, Any], out: Path, stages: list[str], extra_roots: list[int], profile: bool) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(tree), str(out), "--stages", ",".join(stages)]
    if profile:
        command.append("--profile")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak, stop = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.5):
            peak = max(peak, tree_rss([process.pid, *extra_roots]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{tree['engine']} run failed (exit {process.returncode})")
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mib": peak / 2**20}


def report(engine: str, result: dict) -> None:
    seconds, rows = result["seconds"], result["rows"]
    parts = [f"{s} {seconds[s]:.1f} s ({rows[s] / seconds[s]:,.0f} rows/s)" for s in STAGES if s in seconds]
    total = sum(seconds.values())
    combined = f"combined {total:.1f} s ({rows['samples'] / total:,.0f} rows/s)"
    peak = f"peak RSS {result['peak_rss_mib']:,.0f} MiB"
    print(f"{engine:8s} log rows={rows['samples']:,}  " + "  ".join([*parts, combined, peak]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="duckdb,local,cluster")
    parser.add_argument("--stages", default="samples,fit,transform", help="samples, or samples,fit,transform")
    parser.add_argument("--history", action="store_true", help="add a 20-item click history to the samples")
    parser.add_argument("--memory", default="2g", help="Spark driver and executor memory")
    parser.add_argument("--work", type=Path, default=BENCH / "work" / "scale_pipeline")
    parser.add_argument("--profile", action="store_true", help="log each Spark action of the sample plan (stderr)")
    parser.add_argument("--child", nargs=2, metavar=("TREE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    stages = args.stages.split(",")
    if args.profile:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("recforge.data.spark_sql").setLevel(logging.DEBUG)
    if args.child:
        child(*args.child, stages)
        return
    from spark_cluster import LocalSparkCluster, spark_home

    files = write_world(args.rows, args.work)
    for engine in args.engines.split(","):
        out = args.work / f"out_{engine}"
        shutil.rmtree(out, ignore_errors=True)
        cluster, master, roots = None, "local[2]", []
        if engine == "cluster":
            home = spark_home()
            if home is None:
                raise SystemExit("the cluster needs pyspark and a Java runtime")
            cluster = LocalSparkCluster(home, args.work / "cluster", cores=2, memory="3g")
            master = cluster.start()
            roots = [p.pid for p in cluster.processes]
        kind = "duckdb" if engine == "duckdb" else "spark"
        try:
            result = run_engine(
                pipeline_tree(files, kind, master, args.memory, args.history), out, stages, roots, args.profile
            )
        finally:
            if cluster is not None:
                cluster.stop()
        report(engine, result)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
