"""Samples on Spark (`engine: spark`): the sample plan's SQL, Spark histories and the split query.

Gives the same rows as the DuckDB path (`samples.py`): the same plan joins and labels, the same keyed
hash splits, the same negatives; each split is written as a directory of Parquet files
(`OUT/train.parquet/part-*.parquet`), rows sorted by behavior row within each file.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from recforge.config.engine import SparkConfig
from recforge.config.schema import DataConfig
from recforge.data.negatives import SAMPLED
from recforge.data.plan_tally import Tally
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
    lap = Laps()
    try:
        inputs = register_inputs(engine, cfg, staging)
        log.info("spark samples: inputs registered in %.1f s", lap())
        counts = dict(inputs.counts)
        label_rows(engine, inputs.sides, cfg, labels, targets, inputs.origin, counts)
        log.info("spark samples: joined, labelled and checked in %.1f s", lap())
        relation = "labelled"
        if cfg.history is not None:
            events = "(SELECT * FROM behavior WHERE NOT __sampled)" if inputs.sampled else "behavior"
            engine.create("history_log", f"SELECT * FROM {events}")
            relation = add_history(engine, relation, "history_log", cfg.history, inputs.origin)
        _split(engine, relation, cfg, inputs)
        log.info("spark samples: history and split checked in %.1f s", lap())
        paths = _write(engine, cfg, base, inputs.origin, counts)
        log.info("spark samples: splits written in %.1f s", lap())
        return paths, counts
    finally:
        engine.close()
        shutil.rmtree(staging, ignore_errors=True)


class Laps:
    """Seconds since the previous call (or since made): where a Spark build spends its time, in the log."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def __call__(self) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds


def _check_split_columns(engine: SparkSql, relation: str, cfg: DataConfig, origin: str) -> None:
    """The split's key columns exist and hold no nulls (one query for all of them)."""
    columns = engine.columns(f"SELECT * FROM {relation}")
    names = [c for c in columns if not c.startswith("__")]
    tally = Tally()
    for name, yaml_path in required_columns(cfg.split).items():
        if name not in columns:
            raise DataError(
                f"{origin}: no column {name!r} for the split; the samples have {names}"
                f"\n  fix: set `{yaml_path}` to one of them"
            )
        null = f"{engine.dialect.quote(name)} IS NULL"
        tally.add(
            [f"count(*) FILTER (WHERE {null})", f"min({ROW}) FILTER (WHERE {null})"],
            partial(_require_values, name, origin),
        )
    tally.run(engine, relation)


def _require_values(name: str, origin: str, values: tuple[Any, ...]) -> None:
    nulls, first = values
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
