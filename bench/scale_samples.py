"""Sample building at scale: rows/s and peak RSS of DuckDB vs Spark local[2] vs a Spark standalone cluster.

The synthetic world's log (`--rows` impressions) is written once as Parquet files (behavior, users,
items); each engine then builds the same samples from them (join users and items, label, keyed-hash
random split, write Parquet) in its own process, so one Spark context per run and a clean RSS. Peak RSS
is sampled every 0.2 s over the build process and all its children (the driver JVM), plus, for the
cluster, the worker's children (the executor JVM). Time counts the build only, not Spark's start.

    python bench/scale_samples.py                      # 2M rows: about a minute per engine on 2 idle cores
    python bench/scale_samples.py --rows 50000000      # the issue's figure (needs ~16 GB of RAM)
    python bench/scale_samples.py --engines duckdb,local --history   # add a 20-item click history
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))  # the test suite's standalone-cluster launcher

SPARK_CONF = {"spark.driver.memory": "2g", "spark.executor.memory": "2g", "spark.sql.shuffle.partitions": "8"}


def write_world(rows: int, root: Path) -> dict[str, str]:
    from recforge.config.schema import SyntheticConfig
    from recforge.data.readers import write_parquet
    from recforge.data.synthetic import generate_synthetic

    world = generate_synthetic(SyntheticConfig(n_users=max(rows // 200, 100), n_items=20_000, n_impressions=rows))
    files = {}
    for name in ("behavior", "users", "items"):
        files[name] = str(root / f"{name}.parquet")
        write_parquet(getattr(world, name), files[name])
    return files


def pipeline(files: dict[str, str], engine: str, master: str, history: bool) -> dict[str, object]:
    data: dict[str, object] = {"source": "tables", "label": "click", "tables": files, "split": {"seed": 1}}
    if history:
        data["history"] = {"column": "clicks", "where": "click = 1", "max_len": 20}
    return {"name": "scale", "data": data, "engine": engine, "spark": {"master": master, "conf": SPARK_CONF}}


def child(tree_json: str, out: str) -> None:
    """One build in this process: prints {"seconds", "counts"} as JSON."""
    from recforge.config import build_config
    from recforge.data import build_samples
    from recforge.data.spark_session import spark_session, stop_sessions

    cfg = build_config(json.loads(tree_json))
    if cfg.engine == "spark":
        spark_session(cfg.spark.master, cfg.spark.conf).range(1).count()  # start-up is not the build
    start = time.perf_counter()
    samples = build_samples(cfg.data, out, engine=cfg.engine, spark=cfg.spark)
    seconds = time.perf_counter() - start
    stop_sessions()
    print(json.dumps({"seconds": seconds, "counts": samples.counts}), flush=True)


def tree_rss(roots: list[int]) -> int:
    """Resident bytes of `roots` and all their descendants (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    members, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        for kid, parent in parents.items():
            if parent == pid and kid not in members:
                members.add(kid)
                frontier.append(kid)
    total = 0
    for pid in members:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def run(tree: dict[str, object], out: Path, extra_roots: list[int]) -> dict[str, float]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(tree), str(out)], stdout=subprocess.PIPE, text=True
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss([process.pid, *extra_roots]))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"build failed ({tree['engine']})")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": result["seconds"], "rows": result["counts"]["raw"], "peak_rss_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--engines", default="duckdb,local,cluster")
    parser.add_argument("--history", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("TREE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from spark_cluster import LocalSparkCluster, spark_home

    work = Path(tempfile.mkdtemp(prefix="scale_samples_"))
    try:
        files = write_world(args.rows, work)
        for engine in args.engines.split(","):
            cluster = None
            master, roots = "local[2]", []
            if engine == "cluster":
                home = spark_home()
                assert home is not None, "the cluster needs pyspark and Java"
                cluster = LocalSparkCluster(home, work / "cluster", cores=2, memory="3g")
                master = cluster.start()
                roots = [cluster.worker_pid] if cluster.worker_pid else []
            kind = "duckdb" if engine == "duckdb" else "spark"
            try:
                result = run(pipeline(files, kind, master, args.history), work / engine, roots)
            finally:
                if cluster is not None:
                    cluster.stop()
            rate = result["rows"] / result["seconds"]
            print(
                f"{engine:8s} rows={result['rows']:,}  build={result['seconds']:.1f} s  rows/s={rate:,.0f}  "
                f"peak RSS={result['peak_rss_mib']:,.0f} MiB",
                flush=True,
            )
            shutil.rmtree(work / engine, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
