"""Where a ranking run fits and transforms its features, by `engine`: DuckDB in this process, or Spark.

`FEATURE_ENGINES[cfg.engine]` is the one place the choice is made. The local engine fits by streaming the
train samples and hands the sample files to the loaders (which transform while they read); the Spark engine
fits with `spark_fit` on the samples Spark wrote and transforms every split with `spark_transform` into
`OUT/transformed/{train,valid,test}`, which the loaders stream without transforming again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from recforge.config import PipelineConfig
from recforge.data import SamplePaths
from recforge.data.readers import iter_batches
from recforge.errors import ConfigError
from recforge.features import FeatureSet
from recforge.registry import Registry

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

TRANSFORMED = "transformed"  # OUT/transformed/{train,valid,test}: the Spark engine's model inputs


class FeatureEngine(Protocol):
    """Fits a FeatureSet on the train samples and says which paths the batch loaders read (`inputs`)."""

    def check(self, cfg: PipelineConfig, world_size: int) -> None: ...

    def fit(self, cfg: PipelineConfig, features: FeatureSet, samples: SamplePaths) -> None: ...

    def inputs(
        self, cfg: PipelineConfig, features: FeatureSet, samples: SamplePaths, out: Path, extras: tuple[str, ...]
    ) -> SamplePaths: ...


@dataclass(frozen=True)
class LocalFeatures:
    """Fit by streaming the train samples here; the loaders transform the sample files as they read them."""

    def check(self, cfg: PipelineConfig, world_size: int) -> None:
        return None

    def fit(self, cfg: PipelineConfig, features: FeatureSet, samples: SamplePaths) -> None:
        features.fit(iter_batches(samples.train, columns=features.input_columns(), batch_rows=cfg.data.read_rows))

    def inputs(
        self, cfg: PipelineConfig, features: FeatureSet, samples: SamplePaths, out: Path, extras: tuple[str, ...]
    ) -> SamplePaths:
        return samples


@dataclass(frozen=True)
class SparkFeatures:
    """Fit as distributed aggregations and transform by mapInArrow on the run's Spark session."""

    def check(self, cfg: PipelineConfig, world_size: int) -> None:
        """What a Spark-transformed run cannot do yet, refused before any work starts."""
        if world_size > 1:
            raise ConfigError(
                "engine", "engine 'spark' trains in one process for now", fix="drop --nproc or use engine: duckdb"
            )
        if cfg.train.distill is not None:
            raise ConfigError(
                "train.distill",
                "distillation scores the raw train samples, which engine 'spark' does not hand to the trainer",
                fix="use engine: duckdb for distillation",
            )

    def fit(self, cfg: PipelineConfig, features: FeatureSet, samples: SamplePaths) -> None:
        from recforge.features.spark_fit import spark_fit  # imports pyspark, only when asked for

        spark_fit(features, _session(cfg).read.parquet(samples.train))

    def inputs(
        self, cfg: PipelineConfig, features: FeatureSet, samples: SamplePaths, out: Path, extras: tuple[str, ...]
    ) -> SamplePaths:
        """Each split transformed with `extras` carried along (the group-metric keys gauc@user_id reads)."""
        from recforge.features.spark_transform import spark_transform

        spark = _session(cfg)
        base = out / TRANSFORMED
        shutil.rmtree(base, ignore_errors=True)  # a resumed run transforms again with the features it reuses
        paths: dict[str, str | None] = {}
        for name in ("train", "valid", "test"):
            source = getattr(samples, name)
            paths[name] = None
            if source is not None:
                target = base / name
                spark_transform(features, spark.read.parquet(source), target, extras=extras)
                paths[name] = str(target)
        return replace(samples, train=str(paths["train"]), valid=paths["valid"], test=paths["test"])


def _session(cfg: PipelineConfig) -> SparkSession:
    from recforge.data.spark_session import spark_session

    return spark_session(cfg.spark.master, cfg.spark.conf)


FEATURE_ENGINES: Registry[FeatureEngine] = Registry("feature engine")
FEATURE_ENGINES.register("duckdb")(LocalFeatures())
FEATURE_ENGINES.register("spark")(SparkFeatures())


def feature_engine(cfg: PipelineConfig) -> FeatureEngine:
    return FEATURE_ENGINES.get(cfg.engine, yaml_path="engine")
