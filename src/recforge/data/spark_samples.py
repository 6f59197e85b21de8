"""Samples on Spark (`engine: spark`): the sample plan's SQL, Spark histories and the split query.

Gives the same rows as the DuckDB path (`samples.py`): the same plan joins and labels, the same keyed
hash splits, the same negatives; each split is written as a directory of Parquet files
(`OUT/train.parquet/part-*.parquet`), rows sorted by behavior row within each file.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from recforge.config.engine import SparkConfig
from recforge.config.schema import DataConfig
from recforge.data.negatives import SAMPLED
from recforge.data.readers import count_rows
from recforge.data.sample_plan import ROW, label_rows, require_rows, select_list
from recforge.data.spark_history import add_history
from recforge.data.spark_input import PARENT, SparkInputs, register_inputs
from recforge.data.spark_session import spark_session
from recforge.data.spark_sql import SparkSql
from recforge.data.splits import SPLIT, SPLITS, expected_splits, required_columns, split_query
from recforge.errors import DataError

log = logging.getLogger(__name__)


def spark_samples(
    cfg: DataConfig, out_dir: str | Path, spark_cfg: SparkConfig, labels: Sequence[str], targets: Sequence[str]
) -> tuple[dict[str, str | None], dict[str, int]]:
    """Build and write the splits with Spark; returns each split's path (None: not made) and the counts."""
    spark = spark_session(spark_cfg.master, spark_cfg.conf)
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # dates and timestamps read alike on every engine
    engine = SparkSql(spark)
    base = Path(out_dir)
    staging = base / "_spark_inputs"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        inputs = register_inputs(engine, cfg, staging)
        counts = dict(inputs.counts)
        label_rows(engine, inputs.sides, cfg, labels, targets, inputs.origin, counts)
        relation = "labelled"
        if cfg.history is not None:
            events = "(SELECT * FROM behavior WHERE NOT __sampled)" if inputs.sampled else "behavior"
            engine.create("history_log", f"SELECT * FROM {events}")
            relation = add_history(engine, relation, "history_log", cfg.history, inputs.origin)
        _split(engine, relation, cfg, inputs)
        return _write(engine, cfg, base, inputs.origin, counts), counts
    finally:
        engine.close()
        shutil.rmtree(staging, ignore_errors=True)


def _check_split_columns(engine: SparkSql, relation: str, cfg: DataConfig, origin: str) -> None:
    columns = engine.columns(f"SELECT * FROM {relation}")
    names = [c for c in columns if not c.startswith("__")]
    for name, yaml_path in required_columns(cfg.split).items():
        if name not in columns:
            raise DataError(
                f"{origin}: no column {name!r} for the split; the samples have {names}"
                f"\n  fix: set `{yaml_path}` to one of them"
            )
        q = engine.dialect.quote(name)
        nulls, first = engine.rows(f"SELECT count(*), min({ROW}) FROM {relation} WHERE {q} IS NULL")[0]
        if nulls:
            raise DataError(
                f"{origin}: column {name!r} has {nulls:,} null values (first at behavior row {first:,}); "
                "the split needs every value"
                f"\n  fix: drop those rows with `data.label_rule.drop: {name} IS NULL`, or fill them"
            )


def _split(engine: SparkSql, relation: str, cfg: DataConfig, inputs: SparkInputs) -> None:
    """Create `split_rows`: `relation` plus SPLIT; sampled negatives take their log row's side."""
    logged = f"(SELECT * FROM {relation} WHERE NOT {SAMPLED})" if inputs.sampled else relation
    engine.create("split_input", f"SELECT * FROM {logged}")
    _check_split_columns(engine, "split_input", cfg, inputs.origin)
    kinds = {name: kind for name, (kind, _) in engine.columns("SELECT * FROM split_input").items()}
    try:
        query = split_query(cfg.split, kinds, "split_input", engine.dialect)
    except DataError as exc:
        raise DataError(f"{inputs.origin}: {exc}") from None
    if not inputs.sampled:
        engine.create("split_rows", query, keep=True)
        return
    engine.create("log_sides", f"SELECT {ROW} AS side_row, {SPLIT} FROM ({query}) q")
    engine.create(
        "split_rows", f"SELECT r.*, s.{SPLIT} FROM {relation} r JOIN log_sides s ON r.{PARENT} = s.side_row", keep=True
    )


def _write(engine: SparkSql, cfg: DataConfig, base: Path, origin: str, counts: dict[str, int]) -> dict[str, str | None]:
    """One Spark job writes every split (partitioned by SPLIT); each split's directory then becomes `NAME.parquet`."""
    columns = [c for c in engine.columns("SELECT * FROM split_rows") if not c.startswith("__")]
    staged = base / "_spark_splits"
    rows = engine.frame(f"SELECT {select_list(engine, columns)}, {ROW}, {SPLIT} FROM split_rows")
    # every task writes its rows of each split: no shuffle, one file per task and split
    rows.sortWithinPartitions(ROW).drop(ROW).write.mode("overwrite").partitionBy(SPLIT).parquet(str(staged))
    paths: dict[str, str | None] = {}
    try:
        for code, (name, wanted) in enumerate(zip(SPLITS, expected_splits(cfg.split), strict=True)):
            part = staged / f"{SPLIT}={code}"
            counts[name] = (count_rows(str(part)) or 0) if part.exists() else 0
            paths[name] = None
            if wanted:
                require_rows(name, cfg.split, origin, counts)
                path = base / f"{name}.parquet"
                shutil.rmtree(path, ignore_errors=True)
                part.rename(path)
                paths[name] = str(path)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return paths
