"""`recforge train` with `engine: spark` equals the DuckDB run: samples, fitted features, model inputs, metrics, bundle.

Both runs train the small synthetic world for one epoch in one module fixture (one Spark session, conftest's
`spark`); the Spark run fits with spark_fit, transforms every split on Spark and trains from those directories.
The batches come in the same order on both engines, so the test metrics are identical, not merely close.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from recforge.config import build_config
from recforge.data.readers import read_table
from recforge.data.spark_session import EXECUTOR_PYTHONPATH, recforge_root
from recforge.data.synthetic import generate_synthetic
from recforge.errors import ConfigError
from recforge.features import FeatureSet
from recforge.pipeline.rank import RunResult, train
from recforge.pipeline.spark_features import TRANSFORMED, SparkFeatures
from recforge.serving.predictor import Predictor
from recforge.train.loader import BatchLoader

from support import small_synthetic

pytestmark = pytest.mark.slow


@dataclass
class Runs:
    duckdb: RunResult
    spark: RunResult


def synthetic(engine: str) -> dict[str, Any]:
    tree = small_synthetic(epochs=1, early_stop=None)
    tree["engine"] = engine
    return tree


@pytest.fixture(scope="module")
def runs(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The same config trained with engine duckdb and engine spark (on the running `spark` session's master)."""
    out = tmp_path_factory.mktemp("spark_pipeline")
    duck = train(build_config(synthetic("duckdb")), out / "duckdb")
    tree = synthetic("spark")
    tree["spark"] = {"master": spark.sparkContext.master}
    return Runs(duck, train(build_config(tree), out / "spark"))


def test_the_spark_run_builds_the_same_samples(runs: Runs) -> None:
    assert runs.spark.metrics["samples"] == runs.duckdb.metrics["samples"]
    for split in ("train", "valid", "test"):
        spark_rows = read_table(getattr(runs.spark.samples, split))
        assert spark_rows.replace_schema_metadata().equals(read_table(getattr(runs.duckdb.samples, split))), split


def test_the_spark_run_fits_an_equal_feature_set(runs: Runs) -> None:
    saved = [json.loads((r.out_dir / "features" / "features.json").read_text()) for r in (runs.spark, runs.duckdb)]
    assert saved[0] == saved[1]
    spark_fs, duck_fs = (FeatureSet.load(r.out_dir / "features") for r in (runs.spark, runs.duckdb))
    for name, state in duck_fs.states.items():
        for key, array in state.arrays.items():
            assert spark_fs.states[name].arrays[key].equals(array), (name, key)


def test_the_spark_run_trains_on_the_same_model_inputs(runs: Runs) -> None:
    """Every split's transformed directory gives the batches the loader builds from the DuckDB samples, in order."""
    features = FeatureSet.load(runs.duckdb.out_dir / "features")
    for split in ("train", "valid", "test"):
        transformed = runs.spark.out_dir / TRANSFORMED / split
        assert (transformed / "_recforge_layout.json").exists(), split
        options: dict[str, Any] = {"shuffle": False, "mode": "stream", "extras": ("user_id",)}
        got = list(BatchLoader(str(transformed), features, 4096, **options))
        expected = list(BatchLoader(str(getattr(runs.duckdb.samples, split)), features, 4096, **options))
        assert len(got) == len(expected) and sum(b.size for b in got) == runs.duckdb.metrics["samples"][split]
        for a, b in zip(got, expected, strict=True):
            assert torch.equal(a.ids, b.ids), split
            assert torch.equal(a.labels["click"], b.labels["click"]), split
            np.testing.assert_array_equal(a.extras["user_id"], b.extras["user_id"])


def test_the_spark_run_evaluates_like_the_duckdb_run(runs: Runs) -> None:
    """Same batches in the same order: the test metrics, group AUC included, are identical."""
    spark_test, duck_test = runs.spark.metrics["test"], runs.duckdb.metrics["test"]
    assert set(spark_test) == {"auc", "logloss", "gauc@user_id"}
    assert spark_test == duck_test
    assert runs.spark.metrics["defaults"] == runs.duckdb.metrics["defaults"]
    assert runs.spark.metrics["train"]["steps"] == runs.duckdb.metrics["train"]["steps"] == 47  # ceil(48102 / 1024)


def test_the_spark_bundle_serves_like_the_duckdb_bundle(runs: Runs) -> None:
    items = generate_synthetic(build_config(synthetic("duckdb")).data.synthetic).items
    test = pq.read_table(runs.duckdb.samples.test)
    user = test.filter(pc.equal(test["user_id"], test["user_id"][0])).slice(0, 1).to_pylist()[0]
    scores = []
    for run in (runs.spark, runs.duckdb):
        predictor = Predictor.load(run.bundle)
        predictor.set_items(items)
        profile = {c: user[c] for c in predictor.user_columns}
        scores.append(predictor.score(profile, items["item_id"].to_numpy()[:200], {"position": 1}))
    assert scores[0].shape == (200,)
    np.testing.assert_array_equal(scores[0], scores[1])


@pytest.mark.parametrize(
    ("change", "world_size", "where"),
    [({}, 2, "engine"), ({"distill": {"teacher": "runs/teacher/bundle"}}, 1, "train.distill")],
)
def test_what_the_spark_engine_cannot_train_is_refused(change: dict[str, Any], world_size: int, where: str) -> None:
    tree = synthetic("spark")
    tree["train"].update(change)
    with pytest.raises(ConfigError) as refused:
        SparkFeatures().check(build_config(tree), world_size)
    assert refused.value.path == where and refused.value.fix


def test_executors_import_recforge_from_where_the_driver_does(spark: Any) -> None:
    """Without `spark.executorEnv.PYTHONPATH` in `spark.conf`, the session points executors at the driver's recforge."""
    import recforge

    root = Path(recforge.__file__).resolve().parents[1]
    assert spark.sparkContext.getConf().get(EXECUTOR_PYTHONPATH) == recforge_root() == str(root)
