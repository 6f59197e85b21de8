"""A multi-task bundle served: per-task scores from the Predictor, /recommend and /v2 infer, equal to the
batch path, and ranking by a configurable task weighting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from recforge.bundle import load_bundle, task_scores
from recforge.config import build_config
from recforge.config.serving import load_serving_config
from recforge.errors import BundleError, RecforgeError
from recforge.pipeline.rank import train
from recforge.pipeline.serve import write_serving_files
from recforge.serving.http.app import create_app
from recforge.serving.predictor import Predictor
from recforge.serving.service import build_service

from support import small_multitask

ESMM = {"name": "esmm", "tower": {"hidden": [16]}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pa.Table, pa.Table]:
    raw = small_multitask(ESMM, epochs=1, batch_size=512)
    raw["data"]["synthetic"]["n_impressions"] = 20_000
    cfg = build_config(raw)
    root = tmp_path_factory.mktemp("mtl_serving")
    run = train(cfg, root / "run")
    serving = write_serving_files(cfg, root, None)
    users, items = (pq.read_table(root / "tables" / f"{e}s.parquet") for e in ("user", "item"))
    return run.bundle, serving, users, items


def _joined(user: dict, items: pa.Table, position: int) -> pa.Table:
    """The batch path's rows: every item with the user's columns and the context."""
    out = items
    for name, value in {**user, "position": position}.items():
        out = out.append_column(name, pa.array([value] * items.num_rows))
    return out


def test_predictor_scores_each_task_as_the_batch_path(served) -> None:
    bundle_dir, _, users, items = served
    bundle = load_bundle(bundle_dir)
    predictor = Predictor(bundle)
    predictor.set_items(items)
    assert predictor.tasks == ("ctr", "ctcvr")
    user = users.slice(3, 1).to_pylist()[0]
    ids = items["item_id"].to_pylist()[:50]
    by_task = predictor.score_tasks(user, ids, {"position": 2})
    expected = task_scores(bundle, _joined(user, items.slice(0, 50), 2))
    np.testing.assert_allclose(by_task["ctr"], expected[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(by_task["ctcvr"], expected[:, 1], rtol=0, atol=1e-6)
    assert (by_task["ctcvr"] <= by_task["ctr"]).all()  # ESMM: pCTCVR = pCTR x pCVR
    np.testing.assert_array_equal(predictor.score(user, ids, {"position": 2}), by_task["ctr"])  # default: first task
    weighted = Predictor(bundle, rank_by={"ctr": 0.5, "ctcvr": 2.0})
    weighted.set_items(items)
    np.testing.assert_allclose(
        weighted.score(user, ids, {"position": 2}), 0.5 * by_task["ctr"] + 2.0 * by_task["ctcvr"], rtol=1e-12
    )
    with pytest.raises(RecforgeError, match=r"rank_by: \['cvr'\] are not tasks"):
        Predictor(bundle, rank_by={"cvr": 1.0})


def test_http_answers_carry_per_task_scores(served) -> None:
    bundle_dir, serving, users, items = served
    service = build_service(bundle_dir, load_serving_config(serving, ["watch.enabled=false"]))
    client = TestClient(create_app(service))
    user_id = users["user_id"][5].as_py()
    candidates = items["item_id"].to_pylist()[:40]
    answer = client.post("/recommend", json={"user_id": user_id, "candidates": candidates, "k": 10}).json()
    assert len(answer["items"]) == 10
    scores = [item["score"] for item in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    user = users.slice(5, 1).to_pylist()[0]
    expected = service.predictor.score_tasks(user, [i["item_id"] for i in answer["items"]])
    for n, item in enumerate(answer["items"]):
        assert set(item["tasks"]) == {"ctr", "ctcvr"}
        assert item["score"] == item["tasks"]["ctr"]
        assert item["tasks"]["ctcvr"] == pytest.approx(expected["ctcvr"][n], abs=1e-6)

    meta = client.get(f"/v2/models/{service.predictor.name}").json()
    assert [o["name"] for o in meta["outputs"]] == ["score", "ctr", "ctcvr"]
    rows = _joined(user, items.slice(0, 8), 1)
    kinds = {"int64": "INT64", "double": "FP64", "string": "BYTES"}
    inputs = [
        {"name": c, "datatype": kinds[str(rows[c].type)], "shape": [8], "data": rows[c].to_pylist()}
        for c in service.predictor.input_columns
    ]
    url = f"/v2/models/{service.predictor.name}/infer"
    out = client.post(url, json={"inputs": inputs}).json()["outputs"]
    assert [o["name"] for o in out] == ["score", "ctr", "ctcvr"]
    batch = task_scores(load_bundle(bundle_dir), rows)
    np.testing.assert_allclose(out[2]["data"], batch[:, 1], rtol=0, atol=1e-6)  # FP32 on the wire
    only = client.post(url, json={"inputs": inputs, "outputs": [{"name": "ctcvr"}]}).json()["outputs"]
    assert [o["name"] for o in only] == ["ctcvr"] and only[0]["data"] == out[2]["data"]
    bad = client.post(url, json={"inputs": inputs, "outputs": [{"name": "cvr"}]})
    assert bad.status_code == 400 and "['score', 'ctr', 'ctcvr']" in bad.json()["error"]["message"]


def test_onnx_backend_refuses_a_wide_multitask_model_with_the_fix(served) -> None:
    # the wide part reads its own per-task embedding collection, which the onnx split does not feed
    with pytest.raises(BundleError, match=r"onnx backend: exporting ESMM failed.*fix: use backend 'torch'"):
        Predictor(load_bundle(served[0]), backend="onnx")
