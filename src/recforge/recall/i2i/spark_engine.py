"""The plan on Spark's DataFrame API: local mode by default, any cluster by its master URL.

pyspark is imported only here and only when this engine runs; the session is created once, lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from recforge.config.i2i import I2IConfig
from recforge.data.spark_session import spark_session
from recforge.recall.i2i.plan import ENGINES, ROUND_SCORE, EngineOutput, Plan, check_output, key_stats_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@ENGINES.register("spark")
def run_spark(plan: Plan, cfg: I2IConfig) -> EngineOutput:
    """Pairs (cached and counted), then mirror, score and keep the top N per key."""
    spark = spark_session(cfg.spark_master, cfg.spark_conf)
    rows = _to_spark(spark, plan.rows)
    pairs = (_swing_pairs if plan.kernel == "swing" else _cooccurrence_pairs)(rows, plan).cache()
    try:
        n_pairs = pairs.count()
        keys = _to_spark(spark, plan.keys) if plan.keys is not None else None
        table = _to_arrow(_top_n(pairs, keys, plan))
    finally:
        pairs.unpersist()
    return EngineOutput(table=check_output(table), pairs=n_pairs)


def _to_spark(spark: SparkSession, table: pa.Table) -> DataFrame:
    if _has_arrow_io():
        return spark.createDataFrame(table)
    return spark.createDataFrame(table.to_pandas())  # pyspark < 4 reads Arrow only through pandas


def _to_arrow(frame: DataFrame) -> pa.Table:
    if _has_arrow_io():
        result: pa.Table = frame.toArrow()
        return result
    return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)


def _has_arrow_io() -> bool:
    from pyspark.sql import DataFrame

    return hasattr(DataFrame, "toArrow")


def _aggregate(joined: DataFrame, plan: Plan) -> DataFrame:
    from pyspark.sql import functions as F

    sums = [F.expr(expr).alias(name) for name, expr in plan.pair_sums.items()]
    return joined.groupBy("key_a", "key_b").agg(*sums).where(F.col("cnt") >= plan.min_co_count)


def _cooccurrence_pairs(rows: DataFrame, plan: Plan) -> DataFrame:
    from pyspark.sql import functions as F

    sided = ["key", "w", *(["t"] if "t" in rows.columns else [])]
    a = rows.select("via", "vw", *[F.col(name).alias(f"{name}_a") for name in sided])
    b = rows.select("via", *[F.col(name).alias(f"{name}_b") for name in sided])
    joined = a.join(b, "via").where(F.col("key_a") < F.col("key_b"))
    return _aggregate(joined, plan)


def _swing_pairs(rows: DataFrame, plan: Plan) -> DataFrame:
    from pyspark.sql import functions as F

    a = rows.select("key", F.col("via").alias("u"), F.col("vw").alias("vw_u"))
    b = rows.select("key", F.col("via").alias("v"), F.col("vw").alias("vw_v"))
    shared = a.join(b, "key").where(F.col("u") < F.col("v"))
    overlap = (
        shared.groupBy("u", "v")
        .agg(F.count(F.lit(1)).alias("k"), F.min("vw_u").alias("vw_u"), F.min("vw_v").alias("vw_v"))
        .where(F.col("k") >= 2)
        .select("u", "v", F.expr(plan.user_pair_value).alias("q"))
    )
    valued = shared.select("key", "u", "v").join(overlap, ["u", "v"])
    left = valued.select("u", "v", F.col("key").alias("key_a"), "q")
    right = valued.select("u", "v", F.col("key").alias("key_b"))
    joined = left.join(right, ["u", "v"]).where(F.col("key_a") < F.col("key_b"))
    return _aggregate(joined, plan)


def _top_n(pairs: DataFrame, keys: DataFrame | None, plan: Plan) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    values = list(plan.pair_sums)
    forward = pairs.select(F.col("key_a").alias("key"), F.col("key_b").alias("other"), *values)
    backward = pairs.select(F.col("key_b").alias("key"), F.col("key_a").alias("other"), *values)
    directed = forward.unionByName(backward)
    if keys is not None:
        key_a, key_b = key_stats_columns("a"), key_stats_columns("b")
        directed = directed.join(keys.select(*[F.col(s).alias(t) for s, t in key_a.items()]), "key")
        directed = directed.join(keys.select(*[F.col(s).alias(t) for s, t in key_b.items()]), "other")
    scored = directed.select("key", "other", F.expr(plan.score).alias("s"))
    rounded = scored.select("key", "other", F.expr(ROUND_SCORE).alias("score"))
    order = Window.partitionBy("key").orderBy(F.col("score").desc(), F.col("other").asc())
    ranked = rounded.withColumn("rank", F.row_number().over(order))
    return ranked.where(F.col("rank") <= plan.top_n)
