"""Build samples, and fit and transform their features, for several pipeline configs in one process (one Spark
application), as a subprocess.

    python spark_engine_job.py JOBS_JSON

JOBS_JSON: `[{"config": PATH, "sets": ["engine=spark", ...], "out": DIR, "features": {"extras": [...]}}, ...]`;
each job builds its samples into DIR; with "features" it then fits the config's features on the train samples
and transforms every split through the pipeline's feature engine (`engine: spark`: spark_fit, spark_transform),
saving the fitted state to DIR/features and the model inputs to DIR/transformed/{train,valid,test}. A job
`{"table": "db.events", "parquet": [FILES], "partition_by": "ds", "master": URL, "conf": {...}}` first writes
those files into a partitioned table of Spark's catalog (a Hive metastore with the conf). Prints each build's
counts as one JSON line. Tests run it where their own process already holds a local Spark session (one per process).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from recforge.config import PipelineConfig, load_config
from recforge.data import SamplePaths, build_samples
from recforge.data.spark_session import spark_session, stop_sessions
from recforge.features import FeatureSet
from recforge.pipeline.spark_features import feature_engine

FEATURES = "features"  # DIR/features: the fitted FeatureSet (FeatureSet.save)


def create_table(job: dict[str, object]) -> None:
    """A partitioned catalog table written from Parquet files."""
    spark = spark_session(str(job["master"]), dict(job["conf"]))  # type: ignore[call-overload]
    name = str(job["table"])
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {name.split('.')[0]}")
    files = [str(path) for path in job["parquet"]]  # type: ignore[attr-defined]
    frame = spark.read.parquet(*files)
    frame.write.mode("overwrite").format("parquet").partitionBy(str(job["partition_by"])).saveAsTable(name)


def fit_and_transform(cfg: PipelineConfig, samples: SamplePaths, out: Path, extras: list[str]) -> None:
    """What `recforge train` does before training on this engine: fit on the train split, transform every split."""
    features = FeatureSet.from_config(cfg)
    engine = feature_engine(cfg)
    engine.fit(cfg, features, samples)
    features.save(out / FEATURES)
    engine.inputs(cfg, features, samples, out, tuple(extras))


def main(jobs: list[dict[str, object]]) -> None:
    try:
        for job in jobs:
            if "table" in job:
                create_table(job)
                continue
            cfg = load_config(str(job["config"]), overrides=list(job["sets"]))  # type: ignore[call-overload]
            samples = build_samples(cfg.data, str(job["out"]), engine=cfg.engine, spark=cfg.spark)
            print(json.dumps(samples.counts), flush=True)
            features = job.get("features")
            if isinstance(features, dict):
                fit_and_transform(cfg, samples, Path(str(job["out"])), list(features["extras"]))
    finally:
        stop_sessions()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
