"""FeatureSet.transform on Spark: `mapInArrow` runs the very same `FeatureSet.transform` on every Arrow batch of
the executors and writes the model inputs as Parquet part files plus their `ColumnLayout`, which the trainer
streams (`train.loader.BatchLoader` reads a transformed directory as it reads samples).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from recforge.features.base import TransformReport
from recforge.features.columns import ColumnLayout, save_report
from recforge.features.spark_fit import require_columns

if TYPE_CHECKING:
    from pyspark.accumulators import Accumulator
    from pyspark.sql import DataFrame

    from recforge.features.featureset import FeatureSet

log = logging.getLogger(__name__)


class CountsParam:
    """Spark accumulator parameter merging {(feature, what): n} counts (duck-typed AccumulatorParam)."""

    def zero(self, value: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        return {}

    def addInPlace(self, a: dict[tuple[str, str], int], b: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        for key, n in b.items():
            a[key] = a.get(key, 0) + n
        return a


def spark_transformed(
    features: FeatureSet, frame: DataFrame, *, labels: bool = True, extras: Iterable[str] = ()
) -> tuple[DataFrame, ColumnLayout, Accumulator[dict[tuple[str, str], int]]]:
    """`frame`'s rows as model-input columns (lazy: nothing runs until the result is written or collected), and
    the accumulator the executors add their values-mapped-to-defaults counts to (rows under key ("", "rows"))."""
    from pyspark.sql.pandas.types import from_arrow_schema

    extras = tuple(extras)
    wanted = list(dict.fromkeys([*features.input_columns(), *(_label_columns(features) if labels else []), *extras]))
    inputs = frame.select(*require_columns(frame, wanted))
    empty = inputs.limit(0).toArrow()
    layout = ColumnLayout.of(features.schema(), features.transform(empty, labels=labels, extras=extras))
    schema = layout.arrow_schema({name: empty.schema.field(name).type for name in extras})
    counts: Accumulator[dict[tuple[str, str], int]] = inputs.sparkSession.sparkContext.accumulator(
        {},
        CountsParam(),  # type: ignore[arg-type]
    )
    state_only = features  # shipped to the executors with the closure: configs and fitted states, no Spark objects

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        report = TransformReport()
        for batch in batches:
            out = state_only.transform(batch, report=report, labels=labels, extras=extras, source="spark transform")
            yield from layout.table(out, schema).to_batches()
        counts.add({**report.counts, ("", "rows"): report.rows})

    return inputs.mapInArrow(run, from_arrow_schema(schema)), layout, counts


def spark_transform(
    features: FeatureSet,
    frame: DataFrame,
    out: str | Path,
    *,
    labels: bool = True,
    extras: Iterable[str] = (),
    partitions: int | None = None,
) -> tuple[ColumnLayout, TransformReport]:
    """Transform `frame` on Spark into Parquet part files under `out` (`partitions` files, default Spark's);
    returns their layout and the values mapped to defaults (saved beside them, `REPORT_FILE`). A retried task's
    counts are added again (Spark's accumulator rule for transformations)."""
    transformed, layout, counts = spark_transformed(features, frame, labels=labels, extras=extras)
    if partitions is not None:
        transformed = transformed.repartition(partitions)
    transformed.write.mode("overwrite").parquet(str(out))
    layout.save(out)
    report = TransformReport()
    for (feature, what), n in counts.value.items():
        if feature:
            report.add(feature, what, n)
        else:
            report.rows += n
    save_report(report, out)
    log.info("wrote %s transformed rows to %s; defaults: %s", f"{report.rows:,}", out, report.summary())
    return layout, report


def _label_columns(features: FeatureSet) -> list[str]:
    return [*features.labels, *([features.weight] if features.weight else [])]
