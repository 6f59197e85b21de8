"""Spark as a `SqlEngine` for the sample plan: temp views over one Spark session.

pyspark is imported only here (and in `spark_session.py`), when `engine: spark` runs.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from recforge.data.sql_dialect import DIALECTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType

log = logging.getLogger(__name__)

# Spark type names (DataType.typeName()) by the engine-neutral kind of `sql_dialect.arrow_kind`
SPARK_KINDS = {
    "byte": "integer",
    "short": "integer",
    "integer": "integer",
    "long": "integer",
    "float": "float",
    "double": "float",
    "string": "string",
    "varchar": "string",
    "char": "string",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
}


def spark_kind(kind: DataType) -> str:
    return SPARK_KINDS.get(kind.typeName(), "other")


class SparkSql:
    """Runs the plan's SQL with `spark.sql`; `create` makes temp views (kept ones are persisted)."""

    dialect = DIALECTS.get("spark")

    def __init__(self, spark: SparkSession) -> None:
        from pyspark.errors import PySparkException

        self.spark = spark
        self.errors: tuple[type[BaseException], ...] = (PySparkException,)
        self._kept: list[DataFrame] = []

    def frame(self, sql: str) -> DataFrame:
        return self.spark.sql(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        start = time.perf_counter()
        rows = [tuple(row) for row in self.spark.sql(sql).collect()]
        log.debug("Spark action %.2f s: %s", time.perf_counter() - start, " ".join(sql.split())[:160])
        return rows

    def create(self, name: str, sql: str, keep: bool = False) -> None:
        self.view(name, self.spark.sql(sql), keep)

    def view(self, name: str, frame: DataFrame, keep: bool = False) -> None:
        """Name a DataFrame for later SQL."""
        if keep:
            frame = frame.persist()
            self._kept.append(frame)
        frame.createOrReplaceTempView(name)

    def empty(self, relation: str) -> pa.Table:
        return self.spark.sql(f"SELECT * FROM {relation}").limit(0).toArrow()

    def columns(self, sql: str) -> dict[str, tuple[str, str]]:
        schema = self.spark.sql(sql).schema
        return {field.name: (spark_kind(field.dataType), field.dataType.simpleString()) for field in schema}

    def close(self) -> None:
        """Free what `create(keep=True)` cached."""
        while self._kept:
            self._kept.pop().unpersist()
