"""Build samples for several pipeline configs in one process (one Spark application), as a subprocess.

    python spark_samples_job.py JOBS_JSON

JOBS_JSON: `[{"config": PATH, "sets": ["engine=spark", ...], "out": DIR}, ...]`; a job
`{"table": "db.events", "parquet": [FILES], "partition_by": "ds", "master": URL, "conf": {...}}` first writes
those files into a partitioned table of Spark's catalog (a Hive metastore with the conf). Prints each build's
counts as one JSON line. Tests run it where their own process already holds a local Spark session (one per process).
"""

from __future__ import annotations

import json
import sys

from recforge.config import load_config
from recforge.data import build_samples
from recforge.data.spark_session import spark_session, stop_sessions


def create_table(job: dict[str, object]) -> None:
    """A partitioned catalog table written from Parquet files."""
    spark = spark_session(str(job["master"]), dict(job["conf"]))  # type: ignore[call-overload]
    name = str(job["table"])
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {name.split('.')[0]}")
    files = [str(path) for path in job["parquet"]]  # type: ignore[attr-defined]
    frame = spark.read.parquet(*files)
    frame.write.mode("overwrite").format("parquet").partitionBy(str(job["partition_by"])).saveAsTable(name)


def main(jobs: list[dict[str, object]]) -> None:
    try:
        for job in jobs:
            if "table" in job:
                create_table(job)
                continue
            cfg = load_config(str(job["config"]), overrides=list(job["sets"]))  # type: ignore[call-overload]
            samples = build_samples(cfg.data, str(job["out"]), engine=cfg.engine, spark=cfg.spark)
            print(json.dumps(samples.counts), flush=True)
    finally:
        stop_sessions()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
