"""ALS through Spark MLlib, for interaction tables too large for one machine: the `als` channel's options, ids,
scoring, fold-in and saved state, with the factorization run by `pyspark.ml.recommendation.ALS`.

`mllib_factors` takes any Spark DataFrame of (user code, item code, weight), so a warehouse table encoded with
the channel's vocabulary trains the same way; the channel hands it the training interactions. MLlib's implicit
ALS scales the regularization by each row's interaction count (ALS-WR), unlike `implicit`: tune
`regularization` per channel. Factors come back to the driver as float32 arrays indexed by code, so recall,
the Faiss index and the bundle are those of `als`.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pydantic import ConfigDict, Field

from recforge.data.spark_session import spark_session
from recforge.recall.channels.base import FitContext, register_channel
from recforge.recall.channels.matrix_factorization import ALSChannel, ALSOptions
from recforge.recall.interactions import Interactions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class SparkALSOptions(ALSOptions):
    model_config = ConfigDict(extra="forbid")
    regularization: float = Field(0.01, ge=0, description="MLlib regParam (scaled by each row's interactions).")
    spark_master: str = Field("local[2]", description="Spark master URL, e.g. local[4], spark://host:7077, yarn.")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")
    block_size: int = Field(4096, ge=1, description="MLlib blockSize: rows stacked per BLAS call.")
    checkpoint_dir: str | None = Field(
        None,
        description="Where MLlib checkpoints every `checkpoint_every` iterations (a deep lineage overflows the "
        "stack otherwise); a cluster needs shared storage (hdfs://...); default: a temporary local folder.",
    )
    checkpoint_every: int = Field(5, ge=1)


def mllib_factors(
    frame: DataFrame, options: SparkALSOptions, n_users: int, n_items: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(user factors [n_users, f], item factors [n_items, f]) float32 by code from columns user, item, weight;
    a code absent from `frame` keeps a zero row."""
    from pyspark.ml.recommendation import ALS

    als = ALS(
        rank=options.factors,
        maxIter=options.iterations,
        regParam=options.regularization,
        alpha=options.alpha,
        implicitPrefs=True,
        userCol="user",
        itemCol="item",
        ratingCol="weight",
        seed=seed,
        blockSize=options.block_size,
        coldStartStrategy="drop",
        checkpointInterval=options.checkpoint_every,
    )
    context = frame.sparkSession.sparkContext
    if context.getCheckpointDir() is None:
        context.setCheckpointDir(options.checkpoint_dir or tempfile.mkdtemp(prefix="recforge-als-"))
    model = als.fit(frame)
    return _by_code(model.userFactors, n_users, options.factors), _by_code(model.itemFactors, n_items, options.factors)


def _by_code(factors: DataFrame, rows: int, width: int) -> np.ndarray:
    table = factors.toArrow()
    out = np.zeros((rows, width), dtype=np.float32)
    codes = table["id"].to_numpy()
    if len(codes):
        out[codes] = np.asarray(table["features"].combine_chunks().flatten().to_numpy(), np.float32).reshape(-1, width)
    return out


@register_channel("spark_als")
class SparkALSChannel(ALSChannel):
    """`als` with the factorization on Spark MLlib (local or a cluster); answers like `als`."""

    options_class = SparkALSOptions
    options: SparkALSOptions

    def fit_vectors(self, train: Interactions, context: FitContext) -> None:
        session = spark_session(self.options.spark_master, self.options.spark_conf)
        matrix = (train.binary() if self.options.binary else train.matrix).tocoo()
        table = pa.table(
            {
                "user": pa.array(matrix.row, pa.int32()),
                "item": pa.array(matrix.col, pa.int32()),
                "weight": pa.array(matrix.data, pa.float32()),
            }
        )
        frame = session.createDataFrame(table)
        self.user_factors, self.item_factors = mllib_factors(
            frame, self.options, train.n_users, train.n_items, context.seed
        )
        self.n_items = train.n_items
