"""Freshness: from an event entering the stream to a served score from a model that trained on it.

    python bench/stream_freshness.py                       # ~2 minutes; Debian's redis-server on loopback
    python bench/stream_freshness.py --rate 1000 --seconds 120 --publish-every 10

Three processes on this machine, as in production: `recforge stream train` (reads Redis Streams,
trains DeepFM with dynamic id tables, publishes a full version then deltas through the gate every
`--publish-every` seconds), `recforge serve` following the model stream (polls every 0.5 s, applies
deltas to a copy of the served model) and this script, which produces events at `--rate` per second
and, every few seconds, marks the newest event (its stream id and wall time). A marker is fresh when
the version the service answers with (GET /v2/health/ready) was trained through that event (the
`stream.position` its manifest records). Freshness = that moment - the marker's write time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import redis
import yaml

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work" / "freshness"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def events(n: int, seed: int) -> pa.Table:
    from recforge.config.schema import SyntheticConfig
    from recforge.data.synthetic import generate_synthetic

    world = generate_synthetic(SyntheticConfig(n_users=20_000, n_items=3_000, n_impressions=n, seed=seed))
    joined = world.behavior.join(world.users, "user_id").join(world.items, "item_id").sort_by("timestamp")
    return joined.select(["user_id", "item_id", "category_id", "age", "price", "position", "timestamp", "click"])


def pipeline_config(publish_every: float) -> dict[str, Any]:
    dynamic = {"kind": "dynamic", "initial_capacity": 32_768}
    return {
        "name": "fresh",
        "data": {"label": "click"},
        "embedding_dim": 16,
        "features": [
            {"name": "user_id", "kind": "id", "side": "user", "storage": dynamic},
            {"name": "item_id", "kind": "id", "side": "item", "storage": dynamic},
            {"name": "category_id", "kind": "id", "side": "item"},
            {"name": "age", "kind": "numeric", "side": "user", "boundaries": [25, 35, 45, 55]},
            {"name": "price", "kind": "numeric", "side": "item", "n_buckets": 10},
            {"name": "position", "kind": "id", "side": "context"},
        ],
        "model": {"name": "deepfm", "deep": {"hidden": [64, 32], "dropout": 0.0}},
        "train": {"batch_size": 512, "progress": False, "threads": 1, "optimizer": {"lr": 0.003}},
        "online": {
            "fit_rows": 5_000,
            "checkpoint_every_rows": 5_000,
            "checkpoint_every_s": 5.0,
            "publish_every_s": publish_every,
            "gate_rows": 500,
            "gate": {"max_auc_drop": 0.05},
            "drift": {"window": 5_000},
        },
    }


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=90.0, help="measured streaming time")
    parser.add_argument("--publish-every", type=float, default=10.0, help="trainer publish interval (s)")
    parser.add_argument("--mark-every", type=float, default=3.0, help="seconds between freshness markers")
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    total = int(10_000 + args.rate * (args.seconds + 30))
    log = events(total, seed=5)
    warm, live = log.slice(0, 10_000), log.slice(10_000)
    items = log.group_by("item_id").aggregate([("category_id", "max"), ("price", "max")])
    pq.write_table(items.rename_columns(["item_id", "category_id", "price"]), WORK / "items.parquet")
    (WORK / "pipeline.yaml").write_text(yaml.safe_dump(pipeline_config(args.publish_every)))
    http_port = free_port()
    serving = {
        "store": {"kind": "embedded", "entities": {"item": {"path": str(WORK / "items.parquet"), "key": "item_id"}}},
        "watch": {"poll_seconds": 0.5},
        "http": {"port": http_port},
    }
    (WORK / "serving.yaml").write_text(yaml.safe_dump(serving))

    redis_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: (WORK / f"{name}.log").open("wb") for name in ("redis", "trainer", "serve")}
    try:
        procs.append(
            subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                stdout=logs["redis"],
                stderr=subprocess.STDOUT,
            )
        )
        client = redis.Redis(port=redis_port)
        wait_for(lambda: _pings(client), 10, "redis-server")
        from recforge.data.streams import open_sink

        url = f"redis://127.0.0.1:{redis_port}/0?stream=events&group=trainer&consumer=t1"
        with open_sink(url) as sink:
            sink.write(warm)
        models = WORK / "models"
        trainer = [sys.executable, "-m", "recforge", "stream", "train", str(WORK / "pipeline.yaml")]
        trainer += ["--source", url, "--models", str(models), "--work", str(WORK / "trainer")]
        procs.append(subprocess.Popen(trainer, stdout=logs["trainer"], stderr=subprocess.STDOUT))

        stop = threading.Event()
        markers: list[tuple[tuple[int, int], float]] = []

        def produce() -> None:
            with open_sink(url) as out:
                sent, start, last_mark = 0, time.monotonic(), 0.0
                while not stop.is_set() and sent < live.num_rows:
                    due = int((time.monotonic() - start) * args.rate) - sent
                    if due > 0:
                        sent += out.write(live.slice(sent, due))
                        now = time.monotonic()
                        if now - last_mark >= args.mark_every:
                            newest = client.xrevrange("events", count=1)[0][0].decode()
                            markers.append((entry_key(newest), time.time()))
                            last_mark = now
                    time.sleep(0.02)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        wait_for(lambda: (models / "LATEST").exists(), 180, "the first published version")
        serve = [sys.executable, "-m", "recforge", "serve", str(models), "--config", str(WORK / "serving.yaml")]
        procs.append(subprocess.Popen(serve, stdout=logs["serve"], stderr=subprocess.STDOUT))
        http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5)
        wait_for(lambda: _ready(http), 120, "the service")
        measure_from = time.time()
        seen: dict[str, tuple[tuple[int, int], float]] = {}  # version -> (trained-through position, first seen)
        swaps_seen = 0
        while time.time() - measure_from < args.seconds:
            version = http.get("/v2/health/ready").json()["version"]
            if version not in seen:
                manifest = json.loads((models / version / "manifest.json").read_text())
                position = manifest["stream"]["position"].get("", [0, 0])
                seen[version] = ((int(position[0]), int(position[1])), time.time())
                swaps_seen += 1
            time.sleep(0.05)
        stop.set()
        producer.join()
        metrics = http.get("/metrics").text
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in logs.values():
            f.close()

    served = sorted(seen.values(), key=lambda v: v[1])
    fresh: list[float] = []
    for position, written in markers:
        if written < measure_from:
            continue
        reached = next((at for trained, at in served if trained >= position), None)
        if reached is not None:
            fresh.append(reached - written)
    pending = sum(1 for p, w in markers if w >= measure_from and not any(t >= p for t, _ in served))
    kinds = {}
    for version in seen:
        manifest = json.loads((models / version / "manifest.json").read_text())
        kinds[manifest.get("kind", "full")] = kinds.get(manifest.get("kind", "full"), 0) + 1
    delta_swaps = next(
        (ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("recforge_model_delta_swaps_total")), "?"
    )
    print(f"rate {args.rate:.0f} events/s, publish every {args.publish_every:.0f} s, measured {args.seconds:.0f} s")
    print(f"versions served: {len(seen)} ({kinds}); swaps by delta: {delta_swaps}")
    if fresh:
        fresh.sort()
        p90 = fresh[int(0.9 * (len(fresh) - 1))]
        print(
            f"freshness over {len(fresh)} markers: median {statistics.median(fresh):.1f} s, p90 {p90:.1f} s, "
            f"max {max(fresh):.1f} s (markers still pending at the end: {pending})"
        )
    else:
        print(f"no marker reached the service ({pending} pending); see {WORK}/*.log")


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/v2/health/ready").status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
