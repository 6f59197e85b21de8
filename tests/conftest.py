"""Shared fixtures: where the real data sets live, and a small synthetic pipeline config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from spark_cluster import spark_standalone_master  # noqa: F401 (fixture: a real Spark standalone cluster)

from redis_server import redis_server, redis_url  # noqa: F401 (fixtures: a real redis-server for any test)
from support import REPO

DATASETS = Path(os.environ.get("RECFORGE_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    path = DATASETS / "ml-100k"
    if not (path / "ml-100k.inter").exists():
        pytest.skip(f"MovieLens-100k not found at {path} (set RECFORGE_DATASETS to the shared datasets folder)")
    return path
