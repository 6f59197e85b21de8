"""Request logging and `recforge skew check`: a served bundle's logged requests replay through the batch path
with 0 mismatches; a feature whose online transform differs is found and named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_http import start_server, stop_server

from recforge.bundle import load_bundle
from recforge.bundle.stream import publish
from recforge.config import build_config
from recforge.config.serving import load_serving_config
from recforge.errors import ConfigError, DataError
from recforge.pipeline.rank import train
from recforge.pipeline.serve import write_serving_files
from recforge.serving.recommender import RecommendRequest
from recforge.serving.request_log import LoggedRequest, RotatingFile, encode_schema, read_records, rows_table
from recforge.serving.service import build_service
from recforge.serving.skew import check_skew

from support import REPO, small_synthetic

EXTRA_FEATURES = [
    {"name": "city_tier", "kind": "id", "side": "user"},
    {"name": "brand_id", "kind": "id", "side": "item"},
    {"name": "price_std", "kind": "numeric", "side": "item", "column": "price", "transform": "standard"},
    {"name": "gender_x_category", "kind": "cross", "inputs": ["gender", "category_id"], "buckets": 97},
    {"name": "age_x_gender", "kind": "cross", "side": "user", "inputs": ["age", "gender"], "buckets": 31},
]
FEATURES = [
    "user_id",
    "age",
    "gender",
    "item_id",
    "category_id",
    "price",
    "position",
    "city_tier",
    "brand_id",
    "gender_x_category",
    "age_x_gender",
    "price_std",
]  # id fields in schema order, then the dense one
UNKNOWN_ITEM = 10**6


@dataclass
class Run:
    root: Path
    bundle: Path
    serving: Path
    users: list[int]
    items: list[int]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("skew")
    tree = small_synthetic(epochs=1, early_stop=None)
    tree["data"]["synthetic"]["n_impressions"] = 20_000
    tree["features"] += EXTRA_FEATURES
    cfg = build_config(tree)
    result = train(cfg, root / "run")
    serving = write_serving_files(cfg, root, None)
    users = pq.read_table(root / "tables" / "users.parquet")["user_id"].to_pylist()
    items = pq.read_table(root / "tables" / "items.parquet")["item_id"].to_pylist()
    return Run(root, result.bundle, serving, users, items)


def requests(run: Run, n: int, seed: int) -> list[dict[str, Any]]:
    """/recommend bodies: known and unknown users, 1-30 candidates (some unknown items), some without context."""
    rng = np.random.default_rng(seed)
    bodies = []
    for r in range(n):
        user = run.users[int(rng.integers(len(run.users)))] if r % 10 else 10**9 + r  # every 10th user is unknown
        candidates = rng.choice(run.items, size=int(rng.integers(1, 31)), replace=False).tolist()
        if r % 7 == 0:
            candidates.append(UNKNOWN_ITEM)
        body: dict[str, Any] = {"user_id": user, "candidates": candidates, "k": 5}
        if r % 3:
            body["context"] = {"position": int(rng.integers(1, 20))}
        bodies.append(body)
    return bodies


def skew_cli(bundle: Path, log: Path, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "recforge", "skew", "check", str(bundle), str(log), "--out", str(out)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_logged_requests_of_a_live_service_replay_with_zero_mismatches(run: Run, tmp_path: Path) -> None:
    """300 /recommend requests over HTTP, every one logged; `recforge skew check` finds 0 mismatches."""
    log_dir = tmp_path / "requests"
    settings = [f"logging.requests.path={log_dir}", "logging.requests.sample_rate=1.0", "watch.enabled=false"]
    server = start_server(run.bundle, run.serving, *settings)
    bodies = requests(run, 300, seed=1)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers = [client.post("/recommend", json=body) for body in bodies]
        metrics = server.get("/metrics").text
    finally:
        stop_server(server)  # a graceful stop drains the log
    assert [a.status_code for a in answers] == [200] * 300
    assert "recforge_request_log_dropped_total 0.0" in metrics
    records = [r for _, r in read_records(log_dir)]
    assert len(records) == 300 and all(r is not None for r in records)
    rows = sum(len(set(b["candidates"])) for b in bodies)
    first = records[0]
    assert first is not None and first["user_id"] == bodies[0]["user_id"]
    assert first["items"]["item_id"] == bodies[0]["candidates"]
    top = answers[0].json()["items"]
    logged = dict(zip(first["items"]["item_id"], first["scores"], strict=True))
    assert [logged[i["item_id"]] for i in top] == [i["score"] for i in top]  # the log holds what was answered

    result = skew_cli(run.bundle, log_dir, tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["ok"], report["records"], report["rows"], report["mismatches"]) == (True, 300, rows, 0)
    assert report["skipped"] == {}
    assert sorted(report["features"]) == sorted(FEATURES)
    assert {f["rows"] for f in report["features"].values()} == {rows}
    assert report["max_score_diff"] <= 1e-6
    assert "no skew" in result.stdout


def shifted_copy(bundle: Path, dest: Path, feature: str, by: float, version: str | None = None) -> Path:
    """The bundle with one numeric feature's fitted boundaries moved (its online transform now differs),
    under the same manifest version unless `version` is given."""
    shutil.copytree(bundle, dest)
    path = dest / "features" / "features.json"
    state = json.loads(path.read_text())
    params = state["states"][feature]
    params["boundaries"] = [b + by for b in params["boundaries"]]
    path.write_text(json.dumps(state))
    if version is not None:
        manifest = json.loads((dest / "manifest.json").read_text())
        (dest / "manifest.json").write_text(json.dumps(manifest | {"version": version}))
    return dest


def serve_logged(run: Run, model: Path, log: Path, n: int, seed: int) -> None:
    """Serve `model` in-process with every request logged to `log`, answer `n` requests, stop (drains the log)."""
    settings = ["watch.enabled=false", f"logging.requests.path={log}", "logging.requests.sample_rate=1"]
    service = build_service(model, load_serving_config(run.serving, settings))
    for body in requests(run, n, seed):
        request = RecommendRequest(body["user_id"], 5, body.get("context", {}), candidates=body["candidates"])
        service.recommender.recommend(request)
    service.stop()


def test_a_planted_skew_is_found_and_named(run: Run, tmp_path: Path) -> None:
    """The service runs a copy of the bundle whose `price` buckets are shifted by 15; the check names `price` only."""
    served = shifted_copy(run.bundle, tmp_path / "served", "price", 15.0)
    log_file = tmp_path / "requests.jsonl"
    serve_logged(run, served, log_file, 200, seed=2)

    report = check_skew(run.bundle, log_file)
    assert report.records == 200 and not report.ok
    assert report.skewed == ["price"]  # price_std reads the same column through its own transform
    price = report.features["price"]
    assert 0 < price.mismatches < price.rows and price.example is not None
    value = price.example["inputs"]["price"]
    assert set(price.example["inputs"]) == {"price"} and price.example["online"] != price.example["offline"]
    boundaries = load_bundle(run.bundle).features.states["price"].params["boundaries"]
    assert price.example["offline"] == int(np.searchsorted(boundaries, value, side="right")) + 1
    assert report.max_score_diff > 1e-6
    assert check_skew(served, log_file).ok  # the bundle that served them replays them exactly

    result = skew_cli(run.bundle, log_file, tmp_path / "report.json")
    assert result.returncode == 1 and "SKEW: features with mismatches: price;" in result.stdout

    log_file.open("a").write('{"torn": \n')
    other = json.loads(log_file.read_text().splitlines()[0]) | {"version": "v-other"}
    log_file.open("a").write(json.dumps(other) + "\n")
    again = check_skew(served, log_file)
    assert (again.records, again.ok) == (200, True)
    assert again.skipped == {"unreadable": 1, f"version 'v-other' is not in {served}": 1}


def test_a_model_stream_replays_each_record_with_the_version_that_served_it(run: Run, tmp_path: Path) -> None:
    """Two versions served in turn into one log: the stream replays both exactly; one bundle skips the other's."""
    stream = tmp_path / "stream"
    publish(run.bundle, stream, "v1")
    second = shifted_copy(run.bundle, tmp_path / "v2", "price", 15.0, version="v2")
    publish(second, stream, "v2")
    log_file = tmp_path / "requests.jsonl"
    serve_logged(run, stream / "v1", log_file, 60, seed=3)
    serve_logged(run, stream, log_file, 40, seed=4)  # LATEST: v2
    versions = [r["version"] for _, r in read_records(log_file) if r is not None]
    first = load_bundle(run.bundle).version
    assert versions == [first] * 60 + ["v2"] * 40

    both = check_skew(stream, log_file)
    assert (both.ok, both.records, both.mismatches, dict(both.skipped)) == (True, 100, 0, {})
    one = check_skew(run.bundle, log_file)
    assert (one.ok, one.records, dict(one.skipped)) == (True, 60, {f"version 'v2' is not in {run.bundle}": 40})


def test_a_full_queue_drops_and_counts_records_and_never_blocks(run: Run, tmp_path: Path) -> None:
    """1000 requests offered at once to a 1-record queue: written + dropped = 1000, as the metrics say."""
    settings = ["watch.enabled=false", f"logging.requests.path={tmp_path}", "logging.requests.sample_rate=1"]
    service = build_service(run.bundle, load_serving_config(run.serving, [*settings, "logging.requests.queue=1"]))
    request_log = service.request_log
    assert request_log is not None and request_log.config.queue == 1
    user = {"user_id": run.users[0]}
    batch = service.predictor.build_inputs(user, run.items[:3])
    tasks = service.predictor.score_inputs(batch)
    entry = LoggedRequest(service.predictor, run.users[0], user, {}, run.items[:3], batch, tasks, tasks["score"], 0.0)
    for _ in range(1000):
        request_log.offer(entry)
    service.stop()
    assert request_log.written + request_log.dropped == 1000 and request_log.dropped > 0
    lines = (tmp_path / f"requests-{os.getpid()}.jsonl").read_text().splitlines()
    assert len(lines) == request_log.written
    metrics = service.metrics.render().decode()
    assert f"recforge_request_log_records_total {float(request_log.written)}" in metrics
    assert f"recforge_request_log_dropped_total {float(request_log.dropped)}" in metrics


def test_the_log_file_rotates_and_keeps_max_files(tmp_path: Path) -> None:
    """30-byte lines, 100-byte files, 2 rotated files kept: lines 1-3 are gone, 4-10 remain in order."""
    sink = RotatingFile(tmp_path / "requests.jsonl", max_bytes=100, max_files=2)
    for n in range(1, 11):
        sink.write(f"{n:029d}\n".encode())
    sink.close()
    kept = [tmp_path / name for name in ("requests.2.jsonl", "requests.1.jsonl", "requests.jsonl")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)
    assert [int(line) for p in kept for line in p.read_text().splitlines()] == list(range(4, 11))


def test_request_logging_is_off_by_default_and_paths_resolve_against_the_yaml(tmp_path: Path) -> None:
    assert load_serving_config(None).logging.requests is None
    (tmp_path / "serving.yaml").write_text("logging: {requests: {path: logs/requests.jsonl}}\n")
    requests_config = load_serving_config(tmp_path / "serving.yaml").logging.requests
    assert requests_config is not None and requests_config.path == str(tmp_path.resolve() / "logs" / "requests.jsonl")
    assert (requests_config.sample_rate, requests_config.max_bytes, requests_config.max_files) == (0.01, 2**26, 5)
    with pytest.raises(ConfigError, match=r"logging\.requests\.sample_rate"):
        load_serving_config(tmp_path / "serving.yaml", ["logging.requests.sample_rate=2"])
    with pytest.raises(DataError, match="no request log here"):
        check_skew(tmp_path, tmp_path / "missing.jsonl")


def test_logged_raw_rows_come_back_with_their_arrow_types() -> None:
    """Ints, floats, strings, lists, maps and nulls survive the JSON line exactly (a map row is [[k, v], ...])."""
    items = pa.table(
        {
            "item_id": pa.array([5, 6, 7], pa.int32()),
            "price": [1.5, None, 2.25],
            "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
            "scores": pa.array([[("x", 0.5)], None, []], pa.map_(pa.string(), pa.float64())),
        }
    )
    request = pa.table({"user_id": [42], "gender": pa.nulls(1, pa.string())})
    record = json.loads(
        json.dumps(
            {
                "schema": encode_schema(pa.schema([*items.schema, *request.schema])),
                "request": request.to_pylist()[0],
                "items": items.to_pydict(),
            }
        )
    )
    rows = rows_table(record)
    expected = items.append_column("user_id", pa.array([42] * 3)).append_column("gender", pa.nulls(3, pa.string()))
    assert rows.equals(expected)
