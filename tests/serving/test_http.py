"""`recforge serve` as a real process on loopback: /recommend, v2 (tritonclient), v1, health, metrics,
bad input, hot swaps under load, train/serve consistency against `recforge predict`, Redis outages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from recforge.bundle import load_bundle, score_table
from recforge.bundle.stream import point_to, publish
from recforge.config import build_config
from recforge.pipeline.rank import train
from recforge.pipeline.recall import recall_train
from recforge.pipeline.serve import write_serving_files

from support import REPO, Server, small_synthetic, start_server, stop_server

CHANNELS = [
    {"name": "als", "factors": 16, "iterations": 5, "quota": 100, "index": {"kind": "hnsw"}},
    {"name": "itemcf", "top_n": 50, "quota": 100},
    {"name": "popular", "quota": 50, "weight": 0.1},
]


@dataclass
class Run:
    root: Path
    stream: Path
    serving: Path
    samples: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("served")
    tree = small_synthetic(epochs=1)
    tree["recall"] = {
        "interactions": {"positive": "click = 1", "split": {"method": "per_user", "seed": 1}},
        "channels": CHANNELS,
        "merge": {"k": 200},
        "eval": {"ks": [10]},
        "progress": False,
    }
    cfg = build_config(tree)
    rank = train(cfg, root)
    recall = recall_train(cfg, root / "recall")
    stream = root / "stream"
    publish(rank.bundle, stream)
    serving = write_serving_files(cfg, root, recall.bundle, candidates=200)
    assert rank.samples.test is not None
    return Run(root, stream, serving, Path(rank.samples.test))


@pytest.fixture(scope="module")
def server(run: Run) -> Iterator[Server]:
    srv = start_server(run.stream, run.serving)
    yield srv
    stop_server(srv)


def model_name(server: Server) -> str:
    return str(server.get("/v2/health/ready").json()["model"])


# ------------------------------------------------------------------ /recommend
def test_recommend_recalls_ranks_and_names_its_version(server: Server, run: Run) -> None:
    users = pq.read_table(run.root / "tables" / "users.parquet")["user_id"].to_pylist()
    resp = server.post("/recommend", json={"user_id": users[0], "k": 7, "timings": True, "context": {"position": 1}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["items"]) == 7 and body["user_known"] is True
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert len({i["item_id"] for i in body["items"]}) == 7
    assert set(body["timings_ms"]) == {"features", "recall", "filter", "rank", "total"}
    assert body["version"] == server.get("/v2/health/ready").json()["version"]
    channels = {c for item in body["items"] for c in item["channels"]}
    assert channels <= {"als", "itemcf", "popular", "popular_fallback"} and channels


def test_recommend_explain_lists_each_channel_and_the_merged_candidates(server: Server, run: Run) -> None:
    users = pq.read_table(run.root / "tables" / "users.parquet")["user_id"].to_pylist()
    plain = server.post("/recommend", json={"user_id": users[1], "k": 10}).json()
    body = server.post("/recommend", json={"user_id": users[1], "k": 10, "explain": True}).json()
    assert body["items"] == plain["items"] and "explain" not in plain  # explaining changes no answer
    channels, merged = body["explain"]["channels"], body["explain"]["merged"]
    assert list(channels) == [c["name"] for c in CHANNELS]
    for channel in CHANNELS:  # a channel may find nothing for a user (no neighbours), never more than its quota
        assert len(channels[channel["name"]]) <= channel["quota"]
    assert sum(map(len, channels.values())) > 0
    assert len(merged) == 200  # merge.k, filled with popular items
    found = {c["item_id"]: c["channels"] for c in merged}
    assert len(found) == 200  # deduplicated
    for item in body["items"]:
        assert found[item["item_id"]] == item["channels"]
    for name, listed in channels.items():
        in_merged = {i for i, c in found.items() if name in c}
        assert in_merged <= {c["item_id"] for c in listed}  # an item credited to a channel is on its list


def test_recommend_excludes_seen_and_blocked_items_and_applies_filters(server: Server, run: Run) -> None:
    items = pq.read_table(run.root / "tables" / "items.parquet")
    user = pq.read_table(run.root / "tables" / "users.parquet")["user_id"][3].as_py()
    first = server.post("/recommend", json={"user_id": user, "k": 20}).json()["items"]
    blocked = [first[0]["item_id"], first[1]["item_id"]]
    second = server.post("/recommend", json={"user_id": user, "k": 20, "exclude": blocked}).json()["items"]
    assert not {i["item_id"] for i in second} & set(blocked)
    recent = [first[2]["item_id"]]
    third = server.post("/recommend", json={"user_id": user, "k": 20, "recent_items": recent}).json()["items"]
    assert recent[0] not in {i["item_id"] for i in third}, "recent items count as seen"
    category = items["category_id"][0].as_py()
    in_category = set(items.filter(pa.compute.equal(items["category_id"], category))["item_id"].to_pylist())
    filtered = server.post("/recommend", json={"user_id": user, "k": 5, "filters": {"category_id": category}})
    assert filtered.status_code == 200 and filtered.json()["items"]
    assert {i["item_id"] for i in filtered.json()["items"]} <= in_category


def test_cold_users_and_request_candidates(server: Server) -> None:
    cold = server.post("/recommend", json={"user_id": 10**9, "k": 5}).json()
    assert cold["user_known"] is False and len(cold["items"]) == 5  # popular fallback, model-ranked
    ranked = server.post("/recommend", json={"user_id": 1, "k": 3, "candidates": [5, 6, 7, 8, 999_999]}).json()
    assert len(ranked["items"]) == 3 and {i["item_id"] for i in ranked["items"]} <= {5, 6, 7, 8, 999_999}
    assert server.post("/recommend", json={"user_id": 1, "candidates": []}).json()["items"] == []
    string_user = server.post("/recommend", json={"user_id": "not-a-known-id", "k": 2})
    assert string_user.status_code == 400 and "user_id" in string_user.text  # the model's user ids are ints


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'{"user_id": [1, 2]}', 422, "user_id"),
        (b'{"user_id": 1, "k": "ten"}', 422, "k"),
        (b'{"user_id": 1, "k": 0}', 422, "k"),
        (b'{"user_id": 1, "unknown_field": 3}', 422, "unknown_field"),
        (b'{"user_id": 1, "k": 5000}', 422, "less than or equal to 1000"),
        (b'{"user_id": 1, "filters": {"no_such_column": 3}}', 400, "no_such_column"),
        (b'{"user_id": 1, "filters": {"category_id": "abc"}}', 400, "category_id"),
        (b'{"user_id": 1, "context": {"position": "high"}}', 400, "position"),
    ],
)
def test_bad_recommend_requests_get_a_clear_4xx(server: Server, payload: bytes, status: int, message: str) -> None:
    resp = server.post("/recommend", content=payload, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert message in resp.text


def test_candidate_limits(server: Server) -> None:
    big = list(range(100_000))
    resp = server.post("/recommend", json={"user_id": 1, "k": 10, "candidates": big})
    assert resp.status_code == 200 and len(resp.json()["items"]) == 10
    too_big = server.post("/recommend", json={"user_id": 1, "candidates": [*big, 100_000]})
    assert too_big.status_code == 422 and "at most 100000 items" in too_big.text


# ------------------------------------------------------------------ inference protocols
def score_rows(run: Run, n: int) -> tuple[pa.Table, np.ndarray]:
    """`n` test rows and what `recforge predict`'s scoring gives them."""
    table = pq.read_table(run.samples).slice(0, n)
    bundle = load_bundle(run.stream / next(p.name for p in run.stream.iterdir() if (p / "manifest.json").exists()))
    return table, score_table(bundle, table)


def test_tritonclient_gets_the_batch_scores_from_v2_infer(server: Server, run: Run) -> None:
    import tritonclient.http as triton

    table, expected = score_rows(run, 300)
    name = model_name(server)
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready(name)
    metadata = client.get_model_metadata(name)
    columns = [i["name"] for i in metadata["inputs"]]
    for binary in (False, True):
        inputs = []
        for column in columns:
            values = table[column].to_numpy(zero_copy_only=False)
            kind = {"f": "FP64", "O": "BYTES"}.get(values.dtype.kind, "INT64")
            tensor = triton.InferInput(column, [len(values)], kind)
            dtype = {"FP64": np.float64, "BYTES": np.object_, "INT64": np.int64}[kind]
            tensor.set_data_from_numpy(values.astype(dtype), binary_data=binary)
            inputs.append(tensor)
        outputs = [triton.InferRequestedOutput("score", binary_data=binary)]
        result = client.infer(name, inputs, outputs=outputs)
        np.testing.assert_allclose(result.as_numpy("score"), expected, atol=1e-6)
    default = client.infer(name, inputs)  # no outputs named: tritonclient asks for binary ones
    np.testing.assert_allclose(default.as_numpy("score"), expected, atol=1e-6)


def test_v2_and_v1_bad_input_is_4xx(server: Server, run: Run) -> None:
    name = model_name(server)
    url = f"/v2/models/{name}/infer"
    ok = {"inputs": [{"name": "user_id", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
    missing = server.post(url, json=ok)
    assert missing.status_code == 400 and "missing" in missing.text
    short = {"inputs": [{"name": "user_id", "shape": [3], "datatype": "INT64", "data": [1, 2]}]}
    assert server.post(url, json=short).status_code == 400
    bad_type = {"inputs": [{"name": "user_id", "shape": [1], "datatype": "COMPLEX", "data": [1]}]}
    assert "datatype" in server.post(url, json=bad_type).text
    assert server.post("/v2/models/other/infer", json=ok).status_code == 404
    assert server.post(url, content=b"\xff\xfe").status_code == 400
    assert server.post(f"/v1/models/{name}:predict", json={"instances": "no"}).status_code == 422


def test_tf_serving_predict_matches_batch_scores(server: Server, run: Run) -> None:
    table, expected = score_rows(run, 50)
    name = model_name(server)
    rows = table.select([c for c in table.column_names if c != "click"]).to_pylist()
    resp = server.post(f"/v1/models/{name}:predict", json={"instances": rows})
    assert resp.status_code == 200, resp.text
    np.testing.assert_allclose(resp.json()["predictions"], expected, atol=1e-6)
    columnar = {c: table[c].to_pylist() for c in table.column_names if c != "click"}
    np.testing.assert_allclose(
        server.post(f"/v1/models/{name}:predict", json={"inputs": columnar}).json()["outputs"], expected, atol=1e-6
    )
    assert server.get(f"/v1/models/{name}").json()["model_version_status"][0]["state"] == "AVAILABLE"


def test_service_scores_equal_recforge_predict_for_1000_requests(server: Server, run: Run, tmp_path: Path) -> None:
    """Train/serve consistency end to end: user features come from the store, items from the catalog."""
    test = pq.read_table(run.samples)
    predict_out = tmp_path / "scores.parquet"
    bundle = next(p for p in run.stream.iterdir() if (p / "manifest.json").exists())
    proc = subprocess.run(
        [sys.executable, "-m", "recforge", "predict", str(bundle), str(run.samples), "--out", str(predict_out),
         "--keep", "user_id,item_id,position"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    scored = pq.read_table(predict_out).to_pylist()
    by_request: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in scored:
        by_request.setdefault((row["user_id"], row["position"]), []).append(row)
    requests = list(by_request.items())[:1000]
    assert len(requests) == 1000 and test.num_rows == len(scored)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for (user, position), rows in requests:
            candidates = [r["item_id"] for r in rows]
            body = {"user_id": user, "k": len(candidates), "candidates": candidates, "context": {"position": position}}
            answer = client.post("/recommend", json={**body, "recent_items": []}).json()
            got = {i["item_id"]: i["score"] for i in answer["items"]}
            for r in rows:
                assert abs(got[r["item_id"]] - r["score"]) <= 1e-6, (user, r, got[r["item_id"]])


# ------------------------------------------------------------------ metrics, auth
def test_metrics_expose_requests_latency_version_and_swaps(server: Server) -> None:
    server.post("/recommend", json={"user_id": 1, "k": 2})
    text = server.get("/metrics").text
    version = server.get("/v2/health/ready").json()["version"]
    assert 'recforge_requests_total{endpoint="/recommend",status="200"}' in text
    assert "recforge_request_seconds_bucket" in text and "recforge_model_swaps_total" in text
    assert f'version="{version}"' in text and "recforge_errors_total" in text


def test_api_key_guards_everything_but_health(run: Run) -> None:
    srv = start_server(run.stream, run.serving, "http.api_key=s3cret", "watch.enabled=false")
    try:
        assert srv.post("/recommend", json={"user_id": 1}).status_code == 401
        assert srv.post("/recommend", json={"user_id": 1}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert srv.post("/recommend", json={"user_id": 1}, headers={"X-API-Key": "s3cret"}).status_code == 200
        bearer = {"Authorization": "Bearer s3cret"}
        assert srv.get("/metrics", headers=bearer).status_code == 200
        assert srv.get("/v2/health/ready").status_code == 200
    finally:
        stop_server(srv)


def test_two_worker_processes_share_the_port_and_both_answer(run: Run) -> None:
    srv = start_server(run.stream, run.serving, "http.workers=2", "watch.enabled=false")
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            answers = [client.post("/recommend", json={"user_id": u, "k": 3}) for u in range(40)]
            frozen = frozen_objects(client.get("/metrics").text)
        assert all(a.status_code == 200 and len(a.json()["items"]) == 3 for a in answers)
        assert len({a.json()["version"] for a in answers}) == 1
        assert frozen > 50_000  # the worker froze its start-up heap (libraries, app, model): no 100 ms GC stalls
    finally:
        stop_server(srv)


def frozen_objects(metrics: str) -> float:
    return float(next(line.split()[1] for line in metrics.splitlines() if line.startswith("recforge_gc_frozen")))


# ------------------------------------------------------------------ hot swaps
def new_version(run: Run, name: str, corrupt: bool = False) -> None:
    source = next(p for p in sorted(run.stream.iterdir()) if (p / "manifest.json").exists())
    staging = run.root / f"staging-{name}"
    shutil.copytree(source, staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["version"] = name
    (staging / "manifest.json").write_text(json.dumps(manifest))
    if corrupt:
        (staging / "model.safetensors").write_bytes(b"broken")
    publish(staging, run.stream)
    shutil.rmtree(staging)


def test_100_hot_swaps_under_load_fail_no_request(run: Run) -> None:
    srv = start_server(run.stream, run.serving)
    failures: list[str] = []
    versions: set[str] = set()
    done = threading.Event()
    count = [0]

    def load() -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            while not done.is_set():
                resp = client.post("/recommend", json={"user_id": int(count[0] % 500), "k": 5})
                count[0] += 1
                if resp.status_code != 200:
                    failures.append(resp.text)
                else:
                    versions.add(resp.json()["version"])

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(100):
            name = f"swap-{i:03d}"
            new_version(run, name)
            deadline = time.monotonic() + 30
            while srv.get("/v2/health/ready").json()["version"] != name:
                assert time.monotonic() < deadline, f"version {name} was not swapped in"
                time.sleep(0.01)
        new_version(run, "broken", corrupt=True)
        time.sleep(0.5)
        ready = srv.get("/v2/health/ready").json()
        assert ready["version"] == "swap-099" and ready["swap_failures"] == 1 and "broken" in ready["last_swap_error"]
    finally:
        done.set()
        for t in threads:
            t.join()
        metrics = srv.get("/metrics").text
        stop_server(srv)
        point_to(run.stream, "swap-099")  # later servers start on a good version
    assert failures == []
    assert ready["swaps"] == 100 and count[0] > 100
    assert len(versions) > 10, "requests were answered by many of the swapped-in versions"
    assert "recforge_model_swaps_total 100.0" in metrics and "recforge_model_swap_failures_total 1.0" in metrics
    assert frozen_objects(metrics) > 50_000  # a single-worker `recforge serve` froze its start-up heap too


# ------------------------------------------------------------------ Redis store, down and back
def test_redis_store_outage_degrades_to_defaults_and_recovers(run: Run, redis_server: Any, tmp_path: Path) -> None:
    from recforge.serving.store import StoreOptions, entity_sources, push_entities

    redis_server.start()
    config = yaml.safe_load(run.serving.read_text())
    options = {"kind": "redis", "url": redis_server.url, "prefix": "svc", "timeout_ms": 50, "retry_max_ms": 200}
    options["entities"] = {k: {**v, "path": str(run.root / v["path"])} for k, v in config["store"]["entities"].items()}

    def push() -> None:
        tables = run.root / "tables"
        sources = entity_sources(
            None, users=str(tables / "users.parquet"), user_key="user_id", items=str(tables / "items.parquet")
        )
        push_entities(sources, StoreOptions.model_validate(options), progress=False)

    push()
    config["store"] = options
    config["recall"] = str(run.root / config["recall"])
    (tmp_path / "serving.yaml").write_text(yaml.safe_dump(config))
    srv = start_server(run.stream, tmp_path / "serving.yaml", "watch.enabled=false")
    try:
        body = {"user_id": 5, "k": 5, "candidates": list(range(1, 40)), "context": {"position": 0}}
        healthy = srv.post("/recommend", json=body).json()
        redis_server.stop()
        start = time.perf_counter()
        degraded = [srv.post("/recommend", json=body) for _ in range(5)]
        assert all(r.status_code == 200 for r in degraded), [r.text for r in degraded]
        assert (time.perf_counter() - start) / 5 < 1.0, "an outage must not stall requests"
        assert srv.get("/v2/health/ready").json()["store_healthy"] is False
        assert degraded[0].json() != healthy, "without the store the user's features are defaults"
        cold = srv.post("/recommend", json={"user_id": 5, "k": 5})
        assert cold.status_code == 200 and len(cold.json()["items"]) == 5
        redis_server.start()
        push()  # a restarted cache is refilled
        deadline = time.monotonic() + 10
        while (now := srv.post("/recommend", json=body).json()) != healthy:
            assert time.monotonic() < deadline, ("the service did not recover after Redis came back", now, healthy)
            time.sleep(0.1)
        assert srv.get("/v2/health/ready").json()["store_healthy"] is True
    finally:
        stop_server(srv)
        redis_server.start()
