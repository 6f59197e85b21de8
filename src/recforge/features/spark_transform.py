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

from recforge.features.columns import ColumnLayout
from recforge.features.spark_fit import require_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from recforge.features.featureset import FeatureSet

log = logging.getLogger(__name__)


def spark_transformed(
    features: FeatureSet, frame: DataFrame, *, labels: bool = True, extras: Iterable[str] = ()
) -> tuple[DataFrame, ColumnLayout]:
    """`frame`'s rows as model-input columns (lazy: nothing runs until the result is written or collected)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    extras = tuple(extras)
    wanted = list(dict.fromkeys([*features.input_columns(), *(_label_columns(features) if labels else []), *extras]))
    inputs = frame.select(*require_columns(frame, wanted))
    empty = inputs.limit(0).toArrow()
    layout = ColumnLayout.of(features.schema(), features.transform(empty, labels=labels, extras=extras))
    schema = layout.arrow_schema({name: empty.schema.field(name).type for name in extras})
    state_only = features  # shipped to the executors with the closure: configs and fitted states, no Spark objects

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            out = state_only.transform(batch, labels=labels, extras=extras, source="spark transform")
            yield from layout.table(out, schema).to_batches()

    return inputs.mapInArrow(run, from_arrow_schema(schema)), layout


def spark_transform(
    features: FeatureSet,
    frame: DataFrame,
    out: str | Path,
    *,
    labels: bool = True,
    extras: Iterable[str] = (),
    partitions: int | None = None,
) -> ColumnLayout:
    """Transform `frame` on Spark into Parquet part files under `out` (`partitions` files, default Spark's)."""
    transformed, layout = spark_transformed(features, frame, labels=labels, extras=extras)
    if partitions is not None:
        transformed = transformed.repartition(partitions)
    transformed.write.mode("overwrite").parquet(str(out))
    layout.save(out)
    log.info("wrote transformed features to %s", out)
    return layout


def _label_columns(features: FeatureSet) -> list[str]:
    return [*features.labels, *([features.weight] if features.weight else [])]
