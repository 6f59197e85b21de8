"""Shared fixtures: where the real data sets live, and a small synthetic pipeline config."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from spark_cluster import spark_standalone_master  # noqa: F401 (fixture: a real Spark standalone cluster)

from redis_server import redis_server, redis_url  # noqa: F401 (fixtures: a real redis-server for any test)
from support import FAST_LOCAL_SPARK, REPO

DATASETS = Path(os.environ.get("RECFORGE_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    path = DATASETS / "ml-100k"
    if not (path / "ml-100k.inter").exists():
        pytest.skip(f"MovieLens-100k not found at {path} (set RECFORGE_DATASETS to the shared datasets folder)")
    return path


# The Spark masters the engine-equality tests run on. One Spark context per process, so the fixture stops a
# session on another master before starting its own (a `*_master` fixture name may be listed). The standalone
# cluster is not listed: it runs samples, feature fit and transform of every case in one subprocess application
# (tests/data/test_spark_samples.py, `cluster_run`), since each entry here is another application for every test.
SPARK_MASTERS = ["local[2]"]


@pytest.fixture(scope="session", params=SPARK_MASTERS)
def spark(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Spark session on each master of SPARK_MASTERS; skipped without pyspark or Java."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime")
    from recforge.data.spark_session import spark_session, stop_sessions

    master = request.getfixturevalue(request.param) if request.param.endswith("_master") else request.param
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is not None and running.sparkContext.master != master:
        running.stop()
    yield spark_session(master, FAST_LOCAL_SPARK)
    stop_sessions()
