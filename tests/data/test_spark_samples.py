"""Spark builds the very samples DuckDB builds: on local[2], on a standalone cluster and from a Hive table.

Each case is a shipped example config (made small): ml-100k with a label rule and a random split, the
synthetic world with sampled negatives and a per-user split (and the Spark-fit tests' extra features), and DIN
with a filtered behavior history and leave-last. Row sets are compared after sorting (Spark writes a directory
of part files per split). On the standalone cluster the same one Spark application also fits and transforms
each case's features, which must equal the local FeatureSet's fit and transform of DuckDB's samples.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from spark_engine_job import FEATURES
from spark_equality import assert_same_samples, assert_same_state, assert_same_transform

from recforge.config import load_config
from recforge.config.loader import load_tree
from recforge.config.schema import SplitConfig
from recforge.data import SamplePaths, assign_splits, build_samples
from recforge.data.readers import read_table
from recforge.data.splits import SPLIT, split_query
from recforge.data.sql_dialect import arrow_kind
from recforge.features import FeatureSet, TransformReport
from recforge.features.columns import load_report
from recforge.pipeline.spark_features import TRANSFORMED

from support import REPO, spark_fit_features


def appended_features(example: str, features: list[dict[str, object]]) -> list[str]:
    """`--set` overrides that append `features` to an example config's list (the index one past the end appends)."""
    start = len(load_tree(REPO / "examples" / example)["features"])
    return [f"features[{start + i}]={json.dumps(feature)}" for i, feature in enumerate(features)]


SMALL_WORLD = ["data.synthetic.n_users=400", "data.synthetic.n_items=150", "data.synthetic.n_impressions=12000"]
CASES = {
    "ml100k": ("movielens_deepfm.yaml", []),
    "synthetic": (
        "synthetic_deepfm.yaml",
        [
            *SMALL_WORLD,
            "data.split.method=per_user",
            "data.negatives.per_positive=2",
            *appended_features("synthetic_deepfm.yaml", spark_fit_features()),
        ],
    ),
    "din": ("synthetic_din.yaml", [*SMALL_WORLD, "data.split.method=leave_last"]),
}
FAST_LOCAL_SPARK = {  # a small job's time goes to compiling and scheduling, not to the data
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
CLUSTER_CONF = {  # one executor (1 core) on a 2-core box: few shuffle partitions, C1 JIT only, no GC threads
    "spark.executor.memory": "768m",
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
JOB = Path(__file__).with_name("spark_engine_job.py")
EXTRAS = ["user_id"]  # carried through the transform, as gauc@user_id needs


def config_args(case: str, datasets: Path) -> tuple[str, list[str]]:
    name, sets = CASES[case]
    return str(REPO / "examples" / name), [*sets, f"data.path={datasets / 'ml-100k'}"] if case == "ml100k" else sets


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
    """Run spark_engine_job.py (its own Spark application) and return each build's counts."""
    done = subprocess.run(
        [sys.executable, str(JOB), json.dumps(jobs)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def cluster_run(
    spark_standalone_master: str, ml100k_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, int]]]:
    """Every case's samples, fitted features and transformed splits from ONE Spark application on the standalone
    cluster (an application costs a driver and an executor JVM: one per case would add minutes to CI)."""
    out = tmp_path_factory.mktemp("cluster")
    master = ["engine=spark", f"spark.master={spark_standalone_master}", f"spark.conf={json.dumps(CLUSTER_CONF)}"]
    jobs: list[dict[str, object]] = []
    for case in CASES:
        path, sets = config_args(case, ml100k_dir.parent)
        jobs.append({"config": path, "sets": [*sets, *master], "out": str(out / case), "features": {"extras": EXTRAS}})
    return out, run_job(jobs)


@pytest.fixture(scope="module")
def local_features(duckdb_samples: dict[str, SamplePaths], ml100k_dir: Path) -> dict[str, FeatureSet]:
    """Each case's features fitted here, by the local FeatureSet, on DuckDB's train samples: the reference."""
    out = {}
    for case in CASES:
        cfg = load_config(*config_args(case, ml100k_dir.parent))
        out[case] = FeatureSet.from_config(cfg).fit(read_table(duckdb_samples[case].train).to_batches(8192))
    return out


@pytest.mark.slow
def test_spark_standalone_cluster_builds_the_duckdb_samples(
    cluster_run: tuple[Path, list[dict[str, int]]], duckdb_samples: dict[str, SamplePaths]
) -> None:
    out, counts = cluster_run
    assert counts == [duckdb_samples[case].counts for case in CASES]
    for case in CASES:
        assert_same_samples(str(out / case), duckdb_samples[case])


@pytest.mark.slow
def test_spark_standalone_cluster_fits_the_local_features(
    cluster_run: tuple[Path, list[dict[str, int]]], local_features: dict[str, FeatureSet], tmp_path: Path
) -> None:
    out, _ = cluster_run
    for case, local in local_features.items():
        assert_same_state(FeatureSet.load(out / case / FEATURES), local, tmp_path / case, same_row_order=False)


@pytest.mark.slow
def test_spark_standalone_cluster_transforms_like_the_local_features(
    cluster_run: tuple[Path, list[dict[str, int]]],
    local_features: dict[str, FeatureSet],
    duckdb_samples: dict[str, SamplePaths],
) -> None:
    """Every split of every case: the same model inputs as a row set, the same values mapped to defaults."""
    out, _ = cluster_run
    for case, local in local_features.items():
        for split in ("train", "valid", "test"):
            transformed = out / case / TRANSFORMED / split
            expected, got = TransformReport(), TransformReport()
            assert_same_transform(
                local, read_table(getattr(duckdb_samples[case], split)), transformed, EXTRAS, expected
            )
            load_report(transformed, got)
            assert got.rows == expected.rows == duckdb_samples[case].counts[split], (case, split)
            assert got.summary() == expected.summary(), (case, split)
