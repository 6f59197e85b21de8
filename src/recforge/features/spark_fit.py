"""FeatureSet.fit on a Spark DataFrame: each kind's statistics as distributed aggregations, its state built by the
same code as the local fit.

Values are read from Spark's Arrow batches by the features' own code (`mapInArrow`: an id's column, a tag's
tokens, a number's float values), so parsing, splitting and missing-value rules cannot drift from the local
fit; Spark only counts, sums and sorts. `SPARK_FITS` maps a kind to its Spark fit; a kind whose state does not
depend on the data (a cross, hash buckets, raw keys) runs its local fit on the empty table of the input schema.

What equals the local fit: vocabularies (values, counts, order, ties by value), bucket boundaries (the exact
quantiles of every finite value: the local fit's too while it holds at most `numeric.SAMPLE_SIZE` values;
above that the local fit samples), min/max, sequence attribute maps (first row in DataFrame order).
`standard` mean/std are sums in another order: equal within 1e-12 relative.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from recforge.errors import DataError
from recforge.features.arrow_ops import column
from recforge.features.base import Feature, FeatureState
from recforge.features.categorical import top_values, vocab_state
from recforge.features.numeric import Moments, NumberFeature, numeric_state
from recforge.features.sequence import SequenceFeature, attr_state
from recforge.ids import first_rows
from recforge.registry import Registry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from recforge.features.featureset import FeatureSet

log = logging.getLogger(__name__)

EXACT_QUANTILE_LIMIT = 5_000_000  # distinct values collected to the driver for exact quantiles; above: approximate
QUANTILE_ACCURACY = 100_000  # percentile_approx accuracy: each boundary's rank within count / accuracy of exact
ORDER = "__recforge_order"

SparkFit = Callable[[Feature[Any], "DataFrame", dict[str, Feature[Any]]], FeatureState]
SPARK_FITS: Registry[SparkFit] = Registry("Spark feature fit")


def spark_fit(features: FeatureSet, frame: DataFrame) -> FeatureSet:
    """Fit every feature of `features` on the training rows in `frame`; sets and returns `features`."""
    frame = frame.select(*require_columns(frame, features.input_columns())).persist()
    try:
        if frame.limit(1).count() == 0:
            raise DataError("the training data has no rows to fit features on; check data.train and the filters")
        states = {}
        for name, feature in features.features.items():
            fit = SPARK_FITS.get(feature.kind, yaml_path=f"features ({name}).kind")
            states[name] = fit(feature, frame, features.features)
    finally:
        frame.unpersist()
    features.states = states
    log.info("fitted %d features on Spark", len(states))
    return features


def require_columns(frame: DataFrame, wanted: list[str]) -> list[str]:
    """`wanted`, or a DataError naming the columns `frame` lacks (instead of Spark's analysis error)."""
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(f"the Spark DataFrame lacks column(s) {missing}; columns: {', '.join(frame.columns)}")
    return wanted


def emitted(frame: DataFrame, columns: list[str], fn: Callable[[pa.Table], pa.Table]) -> DataFrame:
    """`fn` run on every Arrow batch of `columns` (the feature's own code on the executors); its output schema
    is `fn` of the empty input table."""
    from pyspark.sql.pandas.types import from_arrow_schema

    inputs = frame.select(*columns)
    schema = fn(empty_table(inputs)).schema

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from fn(pa.Table.from_batches([batch])).cast(schema).to_batches()

    return inputs.mapInArrow(run, from_arrow_schema(schema))


def empty_table(frame: DataFrame) -> pa.Table:
    """No rows, the Arrow schema Spark hands `mapInArrow` for `frame`."""
    return frame.limit(0).toArrow()


def schema_only_fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> FeatureState:
    """The local fit on no rows: for state that depends on the config and the column types only."""
    feature.fit_begin()
    feature.fit_update(empty_table(frame), features)
    return feature.fit_end()


def spark_vocab(values: DataFrame, min_count: int, max_size: int | None) -> tuple[pa.Array, pa.Array]:
    """Column `v`'s value counts by Spark; those >= min_count come to the driver (the vocabulary is saved there
    anyway) and are ordered by the local fit's own `top_values`."""
    from pyspark.sql import functions as F

    counts = values.where(F.col("v").isNotNull()).groupBy("v").agg(F.count(F.lit(1)).alias("n"))
    table = counts.where(F.col("n") >= min_count).toArrow()
    return top_values(table.set_column(1, "n", table["n"].cast(pa.int64())), min_count, max_size)


def vocab_fit(tokens: Callable[[Feature[Any], pa.Table], pa.Array], max_size: Callable[[Any], int | None]) -> SparkFit:
    """A vocabulary kind's Spark fit: count `tokens` of every row; hashed or raw-key configs need no data."""

    def fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> FeatureState:
        config = feature.config
        if config.hash_buckets is not None or getattr(feature, "raw_keys", False):
            return schema_only_fit(feature, frame, features)
        values = emitted(frame, feature.columns(), lambda table: pa.table({"v": tokens(feature, table)}))
        vocab, counts = spark_vocab(values, config.min_count, max_size(config))
        return vocab_state(feature.name, vocab, counts, config.min_count)

    return fit


SPARK_FITS.register("id")(vocab_fit(lambda f, t: column(t, f.source, f.name), lambda c: c.max_vocab))
SPARK_FITS.register("tag")(vocab_fit(lambda f, t: f.tokens(t)[0], lambda c: None))  # type: ignore[attr-defined]
SPARK_FITS.register("cross")(schema_only_fit)


def finite_values(feature: NumberFeature, table: pa.Table) -> pa.Table:
    """The feature's finite float values of `table` (its own `raw_values`: null, NaN and inf dropped)."""
    values = feature.raw_values(table)
    return pa.table({"v": pa.array(values[~np.isnan(values)], pa.float64())})


@SPARK_FITS.register("numeric")
@SPARK_FITS.register("lookup")
def number_fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> FeatureState:
    """Moments by one aggregation, quantile boundaries (when fitted) from the value histogram."""
    from pyspark.sql import functions as F

    assert isinstance(feature, NumberFeature)
    values = emitted(frame, feature.columns(), lambda table: finite_values(feature, table)).persist()
    try:
        row = values.agg(F.count("v"), F.sum("v"), F.sum(F.col("v") * F.col("v")), F.min("v"), F.max("v")).collect()[0]
        count = int(row[0])
        moments = Moments(count, float(row[1] or 0.0), float(row[2] or 0.0), _or(row[3], np.inf), _or(row[4], -np.inf))
        c = feature.config
        return numeric_state(
            feature.name, moments, c.transform, c.boundaries, c.n_buckets, lambda q: spark_quantiles(values, q, count)
        )
    finally:
        values.unpersist()


def _or(value: Any, default: float) -> float:
    return default if value is None else float(value)


def spark_quantiles(
    values: DataFrame, q: np.ndarray, count: int, exact_limit: int = EXACT_QUANTILE_LIMIT
) -> np.ndarray:
    """Quantiles `q` of column `v` with linear interpolation (NumPy's default): exact from the value histogram
    while it has at most `exact_limit` distinct values, else Spark's percentile_approx (rank error
    <= count / QUANTILE_ACCURACY per boundary)."""
    from pyspark.sql import functions as F

    histogram = values.groupBy("v").agg(F.count(F.lit(1)).alias("n"))
    if histogram.count() <= exact_limit:
        table = histogram.orderBy("v").toArrow()
        distinct = table["v"].to_numpy()
        counts = table["n"].to_numpy().astype(np.int64)
        return histogram_quantiles(distinct, counts, q)
    log.info("quantiles of %s values from percentile_approx (accuracy %d)", f"{count:,}", QUANTILE_ACCURACY)
    row = values.agg(F.percentile_approx("v", [float(p) for p in q], QUANTILE_ACCURACY)).collect()[0]
    return np.asarray(row[0], dtype=np.float64)


def histogram_quantiles(distinct: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """np.quantile(np.repeat(distinct, counts), q) without the repeat: the two order statistics around each
    virtual index (n - 1) * q, interpolated as NumPy's `_lerp` does (so the results are bit for bit equal)."""
    n = int(counts.sum())
    virtual = (n - 1) * np.asarray(q, dtype=np.float64)
    previous = np.floor(virtual).astype(np.int64)
    following = np.minimum(previous + 1, n - 1)
    ends = np.cumsum(counts)
    a = distinct[np.searchsorted(ends, previous, side="right")]
    b = distinct[np.searchsorted(ends, following, side="right")]
    gamma = virtual - previous
    diff = b - a
    out = a + diff * gamma
    upper = gamma >= 0.5
    out[upper] = (b - diff * (1 - gamma))[upper]
    return np.asarray(out, dtype=np.float64)


@SPARK_FITS.register("sequence")
def sequence_fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> FeatureState:
    """Without `attrs` nothing to fit; with them, each `of` value's first row in DataFrame order."""
    from pyspark.sql import functions as F

    assert isinstance(feature, SequenceFeature)
    if not feature.config.attrs:
        return schema_only_fit(feature, frame, features)
    names = feature.attr_inputs(features)
    ordered = frame.withColumn(ORDER, F.monotonically_increasing_id())
    firsts = emitted(ordered, [*names, ORDER], lambda table: first_rows(table, names[0]))
    key, rest = names[0], [*names[1:], ORDER]
    rows = firsts.groupBy(key).agg(F.min_by(F.struct(*rest), F.col(ORDER)).alias("r")).select(key, "r.*")
    table = rows.orderBy(ORDER).toArrow()
    return attr_state(table.select(names).cast(empty_table(frame.select(*names)).schema))
