"""An FTRL stream served by `recforge serve`: `recforge stream ftrl` publishes bundles from a real Redis stream,
the service answers /recommend from them and hot-swaps to a new version under a request loop, failing none."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from recforge.bundle import load_bundle, score_table
from recforge.bundle.stream import current, versions
from recforge.data.streams import produce

from support import REPO, start_server, stop_server

PIPELINE = {
    "name": "ftrl-clicks",
    "data": {"label": "click"},
    "features": [
        {"name": "user_id", "kind": "id", "side": "user", "hash_buckets": 2**16},
        {"name": "item_id", "kind": "id", "side": "item", "hash_buckets": 2**16},
        {"name": "category_id", "kind": "id", "side": "item", "hash_buckets": 64},
        {"name": "position", "kind": "id", "side": "context", "hash_buckets": 16},
    ],
    "model": {"name": "lr"},
    "train": {"trainer": "ftrl", "ftrl": {"alpha": 0.1, "l1": 0.5}},
    "online": {"fit_rows": 1000, "batch_size": 1000, "publish_every_s": None, "publish_every_rows": 3000},
}


def events(n: int, seed: int) -> pa.Table:
    """Even items are clicked far more often; an item's category is item_id % 10."""
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 100, n)
    label = (rng.random(n) < np.where(items % 2 == 0, 0.4, 0.05)).astype(np.int64)
    return pa.table(
        {
            "user_id": rng.integers(0, 500, n),
            "item_id": items,
            "category_id": items % 10,
            "position": rng.integers(1, 6, n),
            "click": label,
            "timestamp": np.arange(n),
        }
    )


def stream_ftrl(config: Path, source: str, root: Path) -> str:
    """`recforge stream ftrl` as a real process until the stream idles; returns its summary line."""
    cmd = [sys.executable, "-m", "recforge", "stream", "ftrl", str(config), "--source", source]
    cmd += ["--models", str(root / "models"), "--work", str(root / "work"), "--until-idle", "0.5"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_recforge_serve_hot_swaps_an_ftrl_stream_under_requests(redis_url: str, tmp_path: Path) -> None:
    source = f"{redis_url}?stream=ftrl-{uuid.uuid4().hex[:8]}&group=ftrl&consumer=c"
    data = events(12_000, seed=0)
    (tmp_path / "ftrl.yaml").write_text(yaml.safe_dump(PIPELINE))
    items = pa.table({"item_id": np.arange(100), "category_id": np.arange(100) % 10})
    pq.write_table(items, tmp_path / "items.parquet")
    store = {"kind": "embedded", "entities": {"item": {"path": str(tmp_path / "items.parquet"), "key": "item_id"}}}
    (tmp_path / "serving.yaml").write_text(yaml.safe_dump({"store": store}))

    produce(data.slice(0, 6000), source, progress=False)
    assert "learned 6,000 rows in total" in stream_ftrl(tmp_path / "ftrl.yaml", source, tmp_path)
    first = current(tmp_path / "models").version
    assert len(versions(tmp_path / "models")) == 2  # every 3000 rows

    server = start_server(tmp_path / "models", tmp_path / "serving.yaml")
    answered: list[str] = []
    failures: list[str] = []
    done = threading.Event()
    request = {"user_id": 7, "k": 5, "candidates": list(range(0, 40)), "context": {"position": 2}}

    def loop() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not done.is_set():
                resp = client.post("/recommend", json=request)
                if resp.status_code == 200:
                    answered.append(resp.json()["version"])
                else:
                    failures.append(f"{resp.status_code}: {resp.text}")

    client = threading.Thread(target=loop)
    client.start()
    try:
        while len(answered) < 20 and not failures:
            time.sleep(0.05)
        produce(data.slice(6000), source, progress=False)
        summary = stream_ftrl(tmp_path / "ftrl.yaml", source, tmp_path)  # resumes from its checkpoint
        assert "learned 12,000 rows in total (0 re-delivered rows skipped)" in summary, summary
        latest = current(tmp_path / "models").version
        deadline = time.monotonic() + 60
        while server.get("/v2/health/ready").json()["version"] != latest:
            assert time.monotonic() < deadline, f"version {latest} was not swapped in"
            time.sleep(0.05)
        seen = len(answered)
        while len(answered) < seen + 20 and not failures:
            time.sleep(0.05)
        answer = server.post("/recommend", json=request).json()
        ready = server.get("/v2/health/ready").json()
    finally:
        done.set()
        client.join()
        stop_server(server)

    assert failures == []
    assert latest != first and answered[0] == first and answered[-1] == latest
    assert answered.index(latest) > 0 and set(answered[answered.index(latest) :]) == {latest}
    assert ready["swaps"] >= 1 and ready["swap_failures"] == 0
    # the served answer is the new bundle's own scores of those candidates, best first
    bundle = load_bundle(tmp_path / "models" / latest)
    assert bundle.manifest["model"] == "lr" and bundle.manifest["stream"]["samples"] == 12_000
    rows = pa.table({"user_id": [7] * 40, "item_id": np.arange(40), "category_id": np.arange(40) % 10})
    offline = score_table(bundle, rows.append_column("position", pa.array([2] * 40)))
    top = np.argsort(-offline, kind="stable")[:5]
    assert [i["item_id"] for i in answer["items"]] == top.tolist()
    np.testing.assert_allclose([i["score"] for i in answer["items"]], offline[top], rtol=0, atol=1e-6)
    assert all(i % 2 == 0 for i in top), "FTRL learned that even items are clicked more"
