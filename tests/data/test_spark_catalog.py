"""Warehouse tables as input: a partitioned table of a local Hive metastore gives the samples its files give.

Also the errors of the engine boundary: a catalog table on DuckDB, and a rule only DuckDB reads on Spark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from spark_equality import assert_same_samples
from test_spark_samples import FAST_LOCAL_SPARK, run_job

from recforge.config import load_config
from recforge.config.schema import SyntheticConfig
from recforge.data import build_samples
from recforge.data.probe import data_files
from recforge.data.sample_plan import check_expression
from recforge.data.synthetic import generate_synthetic
from recforge.errors import ConfigError

DAYS = ("2024-01-01", "2024-01-02")


def write_world(root: Path) -> dict[str, str]:
    """The synthetic world's log as one Parquet file per day (each with its `ds` column), users and items."""
    world = generate_synthetic(SyntheticConfig(n_users=300, n_items=120, n_impressions=8_000, seed=3))
    log = world.behavior
    day = np.where(np.arange(log.num_rows) < log.num_rows // 2, DAYS[0], DAYS[1])
    log = log.append_column("ds", pa.array(day))
    files = {}
    for ds in DAYS:
        files[ds] = str(root / f"events_{ds}.parquet")
        pq.write_table(log.filter(pa.compute.equal(log["ds"], ds)), files[ds])
    assert world.users is not None and world.items is not None
    for name, table in (("users", world.users), ("items", world.items)):
        files[name] = str(root / f"{name}.parquet")
        pq.write_table(table, files[name])
    return files


def pipeline_yaml(path: Path, behavior: object, files: dict[str, str], spark: dict[str, object] | None) -> str:
    tree: dict[str, object] = {
        "name": "catalog",
        "data": {
            "source": "tables",
            "label": "click",
            "date": DAYS[1],
            "tables": {"behavior": behavior, "users": files["users"], "items": files["items"]},
            "split": {"method": "random", "seed": 7},
        },
    }
    if spark is not None:
        tree |= {"engine": "spark", "spark": spark}
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def hive_conf(root: Path) -> dict[str, str]:
    """A Hive metastore in `root` (Derby) with its warehouse there too: pyspark ships both jars."""
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root / 'derby'} -XX:TieredStopAtLevel=1",
        "spark.sql.shuffle.partitions": "2",
    }


@pytest.mark.slow
def test_hive_partition_gives_the_samples_of_its_parquet_file(tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="engine spark needs pyspark (pip install 'recforge[spark]')")
    files = write_world(tmp_path)
    duck_cfg = load_config(pipeline_yaml(tmp_path / "files.yaml", files[DAYS[1]], files, None))
    duck = build_samples(duck_cfg.data, tmp_path / "duck")
    conf = hive_conf(tmp_path)
    catalog = {"table": "recforge_test.events", "partitions": "ds = '{date}'"}
    config = pipeline_yaml(tmp_path / "hive.yaml", catalog, files, {"master": "local[2]", "conf": conf})
    create = {"table": catalog["table"], "parquet": [files[d] for d in DAYS], "partition_by": "ds"}
    counts = run_job(
        [{**create, "master": "local[2]", "conf": conf}, {"config": config, "sets": [], "out": str(tmp_path / "hive")}]
    )
    assert counts[0]["raw"] == pq.read_metadata(files[DAYS[1]]).num_rows  # the partition only
    file_reading = {"behavior_lines", "behavior_bad_lines"}  # the catalog table is not a file recforge parses
    assert counts[0] == {key: value for key, value in duck.counts.items() if key not in file_reading}
    assert_same_samples(str(tmp_path / "hive"), duck)


def test_duckdb_refuses_a_catalog_table_naming_the_engine(tmp_path: Path) -> None:
    files = {"users": "u.parquet", "items": "i.parquet"}
    cfg = load_config(pipeline_yaml(tmp_path / "c.yaml", {"table": "db.events"}, files, None))
    with pytest.raises(
        ConfigError,
        match=r"data.tables.behavior.table: 'db.events' is a table of Spark's catalog, "
        r"which engine 'duckdb' cannot read",
    ):
        build_samples(cfg.data, tmp_path / "out")
    assert data_files(cfg.data) == [("data.tables.users", "u.parquet"), ("data.tables.items", "i.parquet")]


def test_a_rule_only_duckdb_reads_is_a_config_error_on_spark() -> None:
    pytest.importorskip("pyspark", reason="engine spark needs pyspark (pip install 'recforge[spark]')")
    from recforge.data.spark_session import spark_session
    from recforge.data.spark_sql import SparkSql

    engine = SparkSql(spark_session("local[2]", FAST_LOCAL_SPARK))
    engine.view("joined", engine.spark.createDataFrame(pa.table({"click": [0, 1], "__row": [0, 1]})))
    check_expression(engine, "click = 1 AND click IN (0, 1)", "joined", "data.label_rule.positive")  # both read it
    with pytest.raises(
        ConfigError,
        match=r"data.label_rule.positive: Spark cannot evaluate 'list_contains\(\[click\], 1\)' "
        r"\(DuckDB reads it, Spark does not: keep to the SQL both engines read\).*\n  fix: .*\['click'\].*"
        r"docs/sql_subset.md",
    ):
        check_expression(engine, "list_contains([click], 1)", "joined", "data.label_rule.positive")
    with pytest.raises(ConfigError, match=r"Spark cannot evaluate 'clik = 1': "):  # neither reads it: no DuckDB note
        check_expression(engine, "clik = 1", "joined", "data.label_rule.positive")
