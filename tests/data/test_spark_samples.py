"""Spark builds the very samples DuckDB builds: on local[2], on a standalone cluster and from a Hive table.

Each case is a shipped example config (made small): ml-100k with a label rule and a random split, the
synthetic world with sampled negatives and a per-user split, and DIN with a filtered behavior history and
leave-last. Row sets are compared after sorting (Spark writes a directory of part files per split).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from recforge.config import load_config
from recforge.config.schema import SplitConfig
from recforge.data import SamplePaths, assign_splits, build_samples
from recforge.data.splits import SPLIT, split_query
from recforge.data.sql_dialect import arrow_kind

from support import REPO

SMALL_WORLD = ["data.synthetic.n_users=400", "data.synthetic.n_items=150", "data.synthetic.n_impressions=12000"]
CASES = {
    "ml100k": ("movielens_deepfm.yaml", []),
    "synthetic": (
        "synthetic_deepfm.yaml",
        [*SMALL_WORLD, "data.split.method=per_user", "data.negatives.per_positive=2"],
    ),
    "din": ("synthetic_din.yaml", [*SMALL_WORLD, "data.split.method=leave_last"]),
}
FAST_LOCAL_SPARK = {  # a small job's time goes to compiling and scheduling, not to the data
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
JOB = Path(__file__).with_name("spark_samples_job.py")


def config_args(case: str, datasets: Path) -> tuple[str, list[str]]:
    name, sets = CASES[case]
    return str(REPO / "examples" / name), [*sets, f"data.path={datasets / 'ml-100k'}"] if case == "ml100k" else sets


def sorted_rows(path: str) -> list[str]:
    table = pads.dataset(path, format="parquet").to_table()
    return sorted(map(repr, table.select(sorted(table.column_names)).to_pylist()))


def assert_same_samples(spark: SamplePaths | str, duck: SamplePaths) -> None:
    for split in ("train", "valid", "test"):
        expected = getattr(duck, split)
        got = getattr(spark, split) if isinstance(spark, SamplePaths) else f"{spark}/{split}.parquet"
        rows = sorted_rows(got)
        assert len(rows) == duck.counts[split] > 0
        assert rows == sorted_rows(expected), split


@pytest.fixture(scope="session")
def duckdb_samples(tmp_path_factory: pytest.TempPathFactory, ml100k_dir: Path) -> dict[str, SamplePaths]:
    """Every case built by DuckDB once: the reference."""
    out = {}
    for case in CASES:
        path, sets = config_args(case, ml100k_dir.parent)
        cfg = load_config(path, sets)
        out[case] = build_samples(cfg.data, tmp_path_factory.mktemp(f"duck_{case}"))
    return out


@pytest.fixture(scope="session")
def local_spark() -> None:
    pytest.importorskip("pyspark", reason="engine spark needs pyspark (pip install 'recforge[spark]')")
    from recforge.data.spark_session import spark_session

    spark_session("local[2]", FAST_LOCAL_SPARK)  # stopped by whichever session fixture stops sessions


@pytest.mark.parametrize("method", ["random", "per_user", "leave_last", "by_date"])
def test_split_sides_are_the_same_query_on_both_engines(local_spark: None, method: str) -> None:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "user_id": [f"u{u}" for u in rng.integers(0, 40, 2_000)],
            "item_id": rng.integers(0, 300, 2_000),
            "timestamp": rng.integers(1_704_067_200, 1_704_067_200 + 30 * 86_400, 2_000),
            "price": rng.random(2_000),
        }
    )
    cfg = SplitConfig(method=method, valid_from="2024-01-20", test_from="2024-01-25")
    from recforge.data.spark_session import spark_session
    from recforge.data.spark_sql import SparkSql

    engine = SparkSql(spark_session("local[2]"))
    engine.view("rows", engine.spark.createDataFrame(table.append_column("__pos", pa.array(np.arange(2_000)))))
    kinds = {field.name: arrow_kind(field.type) for field in table.schema} | {"__pos": "integer"}
    spark_codes = [
        row[0]
        for row in engine.rows(
            f"SELECT {SPLIT} FROM ({split_query(cfg, kinds, 'rows', engine.dialect)}) ORDER BY __pos"
        )
    ]
    duck_codes = assign_splits(table, cfg)
    assert spark_codes == duck_codes.tolist()
    assert np.bincount(duck_codes, minlength=3).min() > 0


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_spark_local_builds_the_duckdb_samples(
    local_spark: None, duckdb_samples: dict[str, SamplePaths], ml100k_dir: Path, case: str, tmp_path: Path
) -> None:
    path, sets = config_args(case, ml100k_dir.parent)
    cfg = load_config(path, [*sets, "engine=spark", "spark.master=local[2]"])
    assert (cfg.engine, cfg.spark.master) == ("spark", "local[2]")
    spark = build_samples(cfg.data, tmp_path, engine=cfg.engine, spark=cfg.spark)
    assert spark.counts == duckdb_samples[case].counts
    assert_same_samples(spark, duckdb_samples[case])


def run_job(jobs: list[dict[str, object]]) -> list[dict[str, int]]:
    """Run spark_samples_job.py (its own Spark application) and return each build's counts."""
    done = subprocess.run(
        [sys.executable, str(JOB), json.dumps(jobs)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_spark_standalone_cluster_builds_the_duckdb_samples(
    spark_standalone_master: str, duckdb_samples: dict[str, SamplePaths], ml100k_dir: Path, tmp_path: Path
) -> None:
    jobs: list[dict[str, object]] = []
    for case in CASES:
        path, sets = config_args(case, ml100k_dir.parent)
        master = ["engine=spark", f"spark.master={spark_standalone_master}", "spark.conf={spark.executor.memory: 768m}"]
        jobs.append({"config": path, "sets": [*sets, *master], "out": str(tmp_path / case)})
    counts = run_job(jobs)
    assert counts == [duckdb_samples[case].counts for case in CASES]
    for case in CASES:
        assert_same_samples(str(tmp_path / case), duckdb_samples[case])
