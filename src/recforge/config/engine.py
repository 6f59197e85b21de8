"""`engine:` and `spark:`: which engine builds the samples, and the Spark cluster it runs on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recforge.config.features import Strict

SampleEngine = Literal["duckdb", "spark"]


class SparkConfig(Strict):
    """Where `engine: spark` runs: a master URL and extra Spark settings (one Spark session per process)."""

    master: str = Field(
        "local[2]",
        pattern=r"^(local(\[(\d+|\*)(,\d+)?\])?|spark://[^\s/]+:\d+(,[^\s/]+:\d+)*|yarn|k8s://\S+)$",
        description="local[N] on this machine, spark://HOST:PORT for a standalone cluster, yarn or k8s://URL.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark settings, e.g. {spark.executor.memory: 4g, spark.sql.catalogImplementation: hive}.",
    )
