"""FeatureSet fit and transform on Spark equal the local ones: same saved state, same model inputs row for row.

Runs on every master of conftest.SPARK_MASTERS (local[2]). On the standalone cluster the same comparisons run
in tests/data/test_spark_samples.py, inside the one cluster application that also builds the samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_equality import assert_same_state, assert_same_transform

from recforge.config.loader import build_config, load_config
from recforge.config.schema import PipelineConfig
from recforge.config.tasks import task_labels
from recforge.data.readers import read_table
from recforge.data.samples import build_samples
from recforge.errors import DataError
from recforge.features import FeatureSet, TransformReport
from recforge.features.columns import ColumnLayout
from recforge.features.spark_fit import histogram_quantiles, spark_fit, spark_quantiles
from recforge.features.spark_transform import spark_transform
from recforge.train.loader import BatchLoader

from support import REPO, small_synthetic, spark_fit_features


def synthetic_config() -> PipelineConfig:
    """The small synthetic world with every numeric transform, a cross and hashed ids besides its vocabularies."""
    tree = small_synthetic()
    tree["features"] += spark_fit_features()
    return build_config(tree)


def movielens_config(name: str, ml100k_dir: Path) -> PipelineConfig:
    return load_config(REPO / "examples" / name, [f"data.path={ml100k_dir}"])


@pytest.fixture(scope="module", params=["synthetic", "movielens_deepfm.yaml", "movielens_din.yaml"])
def fitted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureSet, str]:
    """(the locally fitted FeatureSet, its train samples) for each of the three configs."""
    if request.param == "synthetic":
        cfg = synthetic_config()
    else:
        cfg = movielens_config(request.param, request.getfixturevalue("ml100k_dir"))
    out = tmp_path_factory.mktemp(request.param.replace(".yaml", ""))
    samples = build_samples(cfg.data, out, labels=task_labels(cfg))
    local = FeatureSet.from_config(cfg)
    local.fit(read_table(samples.train).to_batches(max_chunksize=8192))
    return local, samples.train


def test_spark_fit_equals_local_fit(spark: Any, fitted: tuple[FeatureSet, str], tmp_path: Path) -> None:
    local, train = fitted
    fs = FeatureSet(local.configs, default_dim=local.default_dim, labels=local.labels, weight=local.weight)
    spark_fit(fs, spark.read.parquet(train))
    assert_same_state(fs, local, tmp_path)


@pytest.fixture(scope="module")
def transformed(spark: Any, fitted: tuple[FeatureSet, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The train samples transformed on Spark into 3 Parquet part files (the user id passed through)."""
    local, train = fitted
    out = tmp_path_factory.mktemp("transformed") / "train"
    _, report = spark_transform(local, spark.read.parquet(train), out, extras=["user_id"], partitions=3)
    expected = TransformReport()
    local.transform(read_table(train), report=expected, extras=["user_id"])
    assert report.rows == expected.rows and report.summary() == expected.summary()  # values mapped to defaults
    return out


def test_spark_transform_equals_local_transform(fitted: tuple[FeatureSet, str], transformed: Path) -> None:
    local, train = fitted
    assert len(pq.ParquetDataset(transformed).files) == 3
    assert_same_transform(local, read_table(train), transformed, extras=["user_id"])


def test_trainer_streams_the_transformed_directory(fitted: tuple[FeatureSet, str], transformed: Path) -> None:
    """BatchLoader reads Spark's part files as it reads samples: every row once, the same labels and widths."""
    local, train = fitted
    loader = BatchLoader(str(transformed), local, 4096, mode="stream", extras=("user_id",), read_rows=5000)
    batches = list(loader)
    assert sum(b.size for b in batches) == pq.ParquetFile(train).metadata.num_rows == loader.report.rows
    expected = TransformReport()
    local.transform(read_table(train), report=expected)
    assert loader.report.summary() == expected.summary()  # the defaults the Spark transform counted and saved
    label = local.labels[0]
    positives = sum(int(b.labels[label].sum()) for b in batches)
    assert positives == int(np.sum(read_table(train, [label]).column(0).to_numpy()))
    assert {b.ids.shape[1] for b in batches} == {len(local.schema().id_fields)}
    assert sorted(np.concatenate([b.extras["user_id"] for b in batches]).tolist()) == sorted(
        read_table(train, ["user_id"]).column(0).to_pylist()
    )


def test_transformed_directory_of_other_features_is_refused(spark: Any, tmp_path: Path) -> None:
    layout = ColumnLayout(ids=("a",), dense=(), bags={})
    tmp_path.mkdir(exist_ok=True)
    layout.save(tmp_path)
    other = FeatureSet(synthetic_config().features[:2])
    other.fit([pa.table({"user_id": [1, 2], "age": [20.0, 30.0]})])
    with pytest.raises(Exception, match="written by other features"):
        BatchLoader(str(tmp_path), other, 16, mode="stream")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 1001])
def test_histogram_quantiles_equal_numpy_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    values = np.round(rng.lognormal(size=n), 1)  # ties
    q = np.linspace(0, 1, 21)[1:-1]
    distinct, counts = np.unique(values, return_counts=True)
    assert histogram_quantiles(distinct, counts, q).tolist() == np.quantile(values, q).tolist()


def test_approximate_quantiles_stay_within_their_stated_rank_error(spark: Any) -> None:
    """Above the exact limit, each boundary's rank is within count / QUANTILE_ACCURACY of the exact one."""
    from recforge.features.spark_fit import QUANTILE_ACCURACY

    values = np.arange(200_000, dtype=np.float64)
    frame = spark.range(len(values)).selectExpr("CAST(id AS DOUBLE) AS v")
    q = np.linspace(0, 1, 11)[1:-1]
    approx = spark_quantiles(frame, q, len(values), exact_limit=0)
    ranks = np.searchsorted(values, approx)
    assert np.all(np.abs(ranks - q * (len(values) - 1)) <= len(values) / QUANTILE_ACCURACY + 1)


def every_kind_table() -> pa.Table:
    """A hand-made table with the inputs no example config has: weighted tags, a map column, a joined sequence."""
    rng = np.random.default_rng(7)
    n = 3000
    genres = np.array(["drama:0.7|comedy", "action", "", "drama|horror:2", None], dtype=object)
    cities = ["a", "b", "c"]
    return pa.table(
        {
            "user": rng.integers(0, 300, n),
            "tags": pa.array(genres[rng.integers(0, 5, n)].tolist(), pa.string()),
            "city": pa.array([cities[i] for i in rng.integers(0, 3, n)]),
            "spend": pa.array(
                [{c: float(v) for c, v in zip(cities, row, strict=True)} for row in rng.gamma(2.0, 3.0, (n, 3))],
                pa.map_(pa.string(), pa.float64()),
            ),
            "score": pa.array(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))),
            "recent": pa.array([" ".join(map(str, rng.integers(0, 300, rng.integers(0, 6)))) for _ in range(n)]),
            "label": rng.integers(0, 2, n),
        }
    )


EVERY_KIND = [
    {"name": "user", "kind": "id", "side": "user", "min_count": 12},
    {"name": "tags", "kind": "tag", "sep": "|", "weight_sep": ":", "max_len": 3},
    {"name": "city", "kind": "id"},
    {
        "name": "spend_here",
        "kind": "lookup",
        "map_column": "spend",
        "key": "city",
        "transform": "bucket",
        "n_buckets": 5,
    },
    {"name": "spend_std", "kind": "lookup", "map_column": "spend", "key": "city", "transform": "standard"},
    {"name": "score", "kind": "numeric", "n_buckets": 10},
    {"name": "recent", "kind": "sequence", "of": "user", "sep": " ", "max_len": 4},
    {"name": "tags_x_city", "kind": "cross", "inputs": ["tags", "city"], "buckets": 50, "max_len": 4},
]


def test_every_kind_fits_and_transforms_the_same_on_spark(spark: Any, tmp_path: Path) -> None:
    table = every_kind_table()
    pq.write_table(table, tmp_path / "rows.parquet")
    configs = build_config({**small_synthetic(), "features": EVERY_KIND}).features
    local = FeatureSet(configs).fit(table.to_batches(max_chunksize=1000))
    frame = spark.read.parquet(str(tmp_path / "rows.parquet"))
    assert_same_state(spark_fit(FeatureSet(configs), frame), local, tmp_path)
    out = tmp_path / "transformed"
    _, report = spark_transform(local, frame, out)
    local_report = TransformReport()
    assert_same_transform(local, table, out, report=local_report)
    assert report.summary() == local_report.summary() and report.summary()["score.missing"] > 200


def test_every_registered_kind_has_a_spark_fit() -> None:
    from recforge.features.base import FEATURE_KINDS
    from recforge.features.spark_fit import SPARK_FITS

    assert SPARK_FITS.names() == FEATURE_KINDS.names()


def test_missing_columns_are_named_before_any_spark_job(spark: Any) -> None:
    configs = build_config({**small_synthetic(), "features": EVERY_KIND}).features
    frame = spark.createDataFrame(pa.table({"user": [1, 2], "city": ["a", "b"]}))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['tags', 'spend', 'score', 'recent'\]"):
        spark_fit(FeatureSet(configs), frame)
