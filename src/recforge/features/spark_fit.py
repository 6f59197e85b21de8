"""FeatureSet.fit on a Spark DataFrame: every kind's statistics from one shared pass over the rows
(`spark_pass.py`), its state built by the same code as the local fit.

Values are read from Spark's Arrow batches by the features' own code (an id's column, a tag's tokens, a
number's float values), so parsing, splitting and missing-value rules cannot drift from the local fit; Spark
only counts, sums and sorts. `SPARK_FITS` maps a kind to its Spark fit, which returns either a `PassPlan` (its
share of the one pass: which values, counted and / or summed, and how its state follows from them) or a
finisher run after the pass: a kind whose state does not depend on the data (a cross, hash buckets, raw keys)
runs its local fit on the empty table of the input schema; a sequence with `attrs` runs its own job.

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
from recforge.features.numeric import NumberFeature, numeric_state
from recforge.features.sequence import SequenceFeature, attr_state
from recforge.features.spark_pass import PassPlan, PassStats, run_pass
from recforge.ids import first_rows
from recforge.registry import Registry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from recforge.features.featureset import FeatureSet

log = logging.getLogger(__name__)

EXACT_QUANTILE_LIMIT = 5_000_000  # distinct values collected to the driver for exact quantiles; above: approximate
QUANTILE_ACCURACY = 100_000  # percentile_approx accuracy: each boundary's rank within count / accuracy of exact
ORDER = "__recforge_order"

Finish = Callable[[], FeatureState]
SparkFit = Callable[[Feature[Any], "DataFrame", dict[str, Feature[Any]]], "PassPlan | Finish"]
SPARK_FITS: Registry[SparkFit] = Registry("Spark feature fit")


def spark_fit(features: FeatureSet, frame: DataFrame) -> FeatureSet:
    """Fit every feature of `features` on the training rows in `frame`; sets and returns `features`."""
    frame = frame.select(*require_columns(frame, features.input_columns()))
    fits: dict[str, PassPlan | Finish] = {}
    for name, feature in features.features.items():
        fit = SPARK_FITS.get(feature.kind, yaml_path=f"features ({name}).kind")
        fits[name] = fit(feature, frame, features.features)
    plans = {name: fit for name, fit in fits.items() if isinstance(fit, PassPlan)}
    stats, rows = run_pass(frame, empty_table(frame), plans)
    if rows == 0:
        raise DataError("the training data has no rows to fit features on; check data.train and the filters")
    features.states = {
        name: fit.state(stats[name]) if isinstance(fit, PassPlan) else fit() for name, fit in fits.items()
    }
    log.info("fitted %d features on Spark (%d in one pass over %s rows)", len(fits), len(plans), f"{rows:,}")
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


def schema_only_fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> Finish:
    """The local fit on no rows: for state that depends on the config and the column types only."""

    def finish() -> FeatureState:
        feature.fit_begin()
        feature.fit_update(empty_table(frame), features)
        return feature.fit_end()

    return finish


def vocab_fit(tokens: Callable[[Feature[Any], pa.Table], pa.Array], max_size: Callable[[Any], int | None]) -> SparkFit:
    """A vocabulary kind's Spark fit: the counts of `tokens` of every row; hashed or raw-key configs need no data."""

    def fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> PassPlan | Finish:
        config = feature.config
        if config.hash_buckets is not None or getattr(feature, "raw_keys", False):
            return schema_only_fit(feature, frame, features)

        def state(stats: PassStats) -> FeatureState:
            assert stats.counts is not None
            vocab, counts = top_values(stats.counts, config.min_count, max_size(config))
            return vocab_state(feature.name, vocab, counts, config.min_count)

        return PassPlan(values=lambda table: tokens(feature, table), state=state, min_count=config.min_count)

    return fit


SPARK_FITS.register("id")(vocab_fit(lambda f, t: column(t, f.source, f.name), lambda c: c.max_vocab))
SPARK_FITS.register("tag")(vocab_fit(lambda f, t: f.tokens(t)[0], lambda c: None))  # type: ignore[attr-defined]
SPARK_FITS.register("cross")(schema_only_fit)


def finite_values(feature: NumberFeature, table: pa.Table) -> pa.Array:
    """The feature's finite float values of `table` (its own `raw_values`: null, NaN and inf dropped)."""
    values = feature.raw_values(table)
    return pa.array(values[~np.isnan(values)], pa.float64())


@SPARK_FITS.register("numeric")
@SPARK_FITS.register("lookup")
def number_fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> PassPlan:
    """Moments from the pass; fitted quantile boundaries from its value histogram (percentile_approx over the
    values when they have more than EXACT_QUANTILE_LIMIT distinct ones)."""
    assert isinstance(feature, NumberFeature)
    c = feature.config

    def state(stats: PassStats) -> FeatureState:
        assert stats.moments is not None
        moments = stats.moments

        def quantiles(q: np.ndarray) -> np.ndarray:
            if stats.counts is None:
                values = emitted(frame, feature.columns(), lambda table: pa.table({"v": finite_values(feature, table)}))
                return spark_quantiles(values, q, moments.count, exact_limit=0)
            histogram = stats.counts.sort_by("v")
            return histogram_quantiles(histogram["v"].to_numpy(), histogram["n"].to_numpy().astype(np.int64), q)

        return numeric_state(feature.name, moments, c.transform, c.boundaries, c.n_buckets, quantiles)

    fitted_cuts = c.transform == "bucket" and c.boundaries is None
    return PassPlan(
        values=lambda table: finite_values(feature, table),
        state=state,
        counts=fitted_cuts,
        moments=True,
        max_distinct=EXACT_QUANTILE_LIMIT,
    )


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
def sequence_fit(feature: Feature[Any], frame: DataFrame, features: dict[str, Feature[Any]]) -> Finish:
    """Without `attrs` nothing to fit; with them, each `of` value's first row in DataFrame order (its own job)."""
    assert isinstance(feature, SequenceFeature)
    if not feature.config.attrs:
        return schema_only_fit(feature, frame, features)
    return lambda: first_attr_rows(feature, frame, features)


def first_attr_rows(feature: SequenceFeature, frame: DataFrame, features: dict[str, Feature[Any]]) -> FeatureState:
    """The attribute map of a sequence: for each `of` value, its attributes on its first row in DataFrame order."""
    from pyspark.sql import functions as F

    names = feature.attr_inputs(features)
    ordered = frame.withColumn(ORDER, F.monotonically_increasing_id())
    firsts = emitted(ordered, [*names, ORDER], lambda table: first_rows(table, names[0]))
    key, rest = names[0], [*names[1:], ORDER]
    rows = firsts.groupBy(key).agg(F.min_by(F.struct(*rest), F.col(ORDER)).alias("r")).select(key, "r.*")
    table = rows.orderBy(ORDER).toArrow()
    return attr_state(table.select(names).cast(empty_table(frame.select(*names)).schema))
