"""GBDT+LR: learns a planted signal, its PMML scores equal the native path, bundles and serving agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from pypmml import Model as PMMLModel
from typer.testing import CliRunner

from recforge.batch import Batch
from recforge.bundle import load_bundle, predict_file, save_bundle, score_table
from recforge.cli import app
from recforge.config import build_config
from recforge.data.synthetic import generate_synthetic
from recforge.errors import BundleError, ConfigError
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.models.rank.gbdt_lr import GBDTLR
from recforge.pipeline.rank import train
from recforge.serving.predictor import Predictor
from recforge.train.gbdt_lr import GBDTLRTrainer
from recforge.train.metrics import auc, logloss

from support import small_synthetic

FEATURES = [
    {"name": "user_id", "kind": "id", "side": "user"},
    {"name": "genre", "kind": "tag", "side": "item", "sep": "|"},
    {"name": "price", "kind": "numeric", "side": "item", "transform": "raw"},
]


def planted(n: int, seed: int) -> pa.Table:
    """Click odds from a user effect, one genre (a tag) and a price threshold: all three need the trees."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 40, n)
    effect = np.linspace(-1.5, 1.5, 40)[users]
    genres = [sorted(set(rng.choice(["a", "b", "c", "d", "e"], rng.integers(1, 3)).tolist())) for _ in range(n)]
    price = rng.uniform(0, 1, n)
    logit = effect + 1.5 * np.array(["c" in g for g in genres]) + 1.2 * (price > 0.6) - 1.0
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pa.table({"user_id": users, "genre": ["|".join(g) for g in genres], "price": price, "label": label})


@pytest.fixture(scope="module")
def fitted() -> tuple[GBDTLR, FeatureSet, Batch, Batch]:
    cfg = build_config(
        {
            "features": FEATURES,
            "model": {"name": "gbdt_lr", "trees": 60, "num_leaves": 8},
            "train": {"seed": 1, "threads": 1},
        }
    )
    features = FeatureSet.from_config(cfg).fit([planted(8000, 0)])
    train_batch = features.transform(planted(8000, 0))
    valid_batch = features.transform(planted(3000, 1))
    gbdt_lr = build_model(features.schema(), cfg.model)
    assert isinstance(gbdt_lr, GBDTLR)
    GBDTLRTrainer(gbdt_lr, cfg, Path(".")).fit([train_batch], [valid_batch])
    return gbdt_lr, features, train_batch, valid_batch


def probabilities(model: GBDTLR, batch: Batch) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(model(batch)).double().numpy()


def test_learns_the_planted_signal_and_the_lr_beats_the_trees_alone(fitted) -> None:
    model, _, train_batch, valid_batch = fitted
    y = valid_batch.labels["label"].numpy()
    # Oracle AUC on this generator is about 0.76; ids-only LR reaches about 0.66.
    assert auc(y, probabilities(model, valid_batch)) > 0.72
    assert model.forest is not None and 5 <= model.forest.n_trees <= 60, model.forest.n_trees
    matrix = model.inputs.matrix(train_batch)
    assert matrix.shape[1] == 1 + 1 + 5  # user code, price, five genre flags
    gbdt = model.forest.booster.predict(matrix)  # the trees alone (LightGBM's probabilities)
    y_train = train_batch.labels["label"].numpy()
    # L-BFGS starts at the trees' leaf values, so the LR can only lower the (regularized) train loss
    assert logloss(y_train, probabilities(model, train_batch)) < logloss(y_train, gbdt)


def test_pmml_scores_equal_the_native_path(fitted, tmp_path: Path) -> None:
    model, _, _, valid_batch = fitted
    pmml = model.artifacts()["model.pmml"]
    (tmp_path / "model.pmml").write_text(pmml)
    evaluator = PMMLModel.fromFile(str(tmp_path / "model.pmml"))
    rows = valid_batch.index(slice(0, 400))
    matrix = model.inputs.matrix(rows)
    names = model.inputs.names
    categorical = set(model.inputs.categorical)
    native = probabilities(model, rows)
    scored = []
    for r in range(rows.size):
        record = {
            n: (int(v) if j in categorical else float(v)) for j, (n, v) in enumerate(zip(names, matrix[r], strict=True))
        }
        scored.append(evaluator.predict(record)["probability"])
    np.testing.assert_allclose(np.array(scored), native, rtol=0, atol=1e-6)
    assert len(set(np.round(native, 6))) > 25  # the rows reach many different leaf combinations


def test_importance_ranks_the_planted_features(fitted) -> None:
    model = fitted[0]
    rows = model.importance()
    assert [r["feature"] for r in rows][:1] in (["user_id"], ["genre"])
    assert {r["feature"] for r in rows} == {"user_id", "genre", "price"}
    assert sum(r["gain_share"] for r in rows) == pytest.approx(1.0)
    assert all(r["gain"] > 0 and r["splits"] > 0 for r in rows)


def test_bundle_round_trip_scores_equal(fitted, tmp_path: Path) -> None:
    model, features, _, valid_batch = fitted
    cfg = build_config({"features": FEATURES, "model": {"name": "gbdt_lr", "trees": 60, "num_leaves": 8}})
    save_bundle(tmp_path / "b", cfg, features, model, {})
    assert sorted(p.name for p in (tmp_path / "b" / "artifacts").iterdir()) == [
        "gbdt.txt",
        "importance.csv",
        "model.pmml",
    ]
    loaded = load_bundle(tmp_path / "b").model
    np.testing.assert_array_equal(probabilities(loaded, valid_batch), probabilities(model, valid_batch))


def test_large_bag_vocab_is_a_config_error() -> None:
    cfg = build_config({"features": FEATURES, "model": {"name": "gbdt_lr", "max_bag_values": 3}})
    features = FeatureSet.from_config(cfg).fit([planted(200, 0)])
    with pytest.raises(ConfigError, match=r"model\.max_bag_values"):
        build_model(features.schema(), cfg.model)


def test_pipeline_trains_predicts_and_serves(tmp_path: Path) -> None:
    tree = small_synthetic(threads=1)
    tree["data"]["synthetic"]["n_impressions"] = 20_000
    tree["model"] = {"name": "gbdt_lr", "trees": 80}
    cfg = build_config(tree)
    result = train(cfg, tmp_path / "run")
    # DeepFM reaches about 0.72 test AUC on this world; the generator's oracle about 0.77.
    assert result.metrics["test"]["auc"] > 0.68, result.metrics
    test = pq.read_table(result.samples.test)
    predict_file(result.bundle, result.samples.test, tmp_path / "scores.parquet")
    batch_scores = pq.read_table(tmp_path / "scores.parquet")["score"].to_numpy()
    np.testing.assert_allclose(batch_scores, score_table(load_bundle(result.bundle), test), rtol=0, atol=0)
    predictor = Predictor.load(result.bundle)
    predictor.set_items(generate_synthetic(cfg.data.synthetic).items)
    rows = test.slice(0, 1)
    first = rows.to_pylist()[0]
    user = {c: first[c] for c in predictor.user_columns}
    served = predictor.score(user, test["item_id"].to_numpy()[:50], {"position": first["position"]})
    rows = pa.table(
        {
            **{c: pa.array([user[c]] * 50) for c in predictor.user_columns},
            **{c: test[c].slice(0, 50) for c in predictor.item_columns},
            "position": pa.array([first["position"]] * 50),
        }
    )
    np.testing.assert_allclose(served, score_table(load_bundle(result.bundle), rows), rtol=0, atol=1e-6)
    with pytest.raises(BundleError, match="use backend 'torch'"):
        Predictor.load(result.bundle, backend="onnx")  # trees have no torch graph to export
    printed = CliRunner().invoke(app, ["model", "importance", str(result.bundle)])
    assert printed.exit_code == 0, printed.output
    assert printed.output.splitlines()[0].split()[:3] == ["feature", "gain", "splits"]
    assert sum(line.split()[0] in {"user_id", "item_id", "category_id"} for line in printed.output.splitlines()) == 3
