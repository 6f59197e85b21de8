"""Server CPU per /recommend request, in-process: the ASGI app is called directly (no HTTP client, no socket).

    python bench/recommend_cpu.py                          # CPU ms per request over 500 requests
    python bench/recommend_cpu.py --profile 20             # + cProfile, top 20 by cumulative time
    python bench/recommend_cpu.py --dump answers.json      # write the answers (compare two checkouts)
    python bench/recommend_cpu.py --compare a.json b.json  # same items and channels, scores within 1e-6

It uses the run that `serving_load.py` prepares (bench/work/serving/run) and its request payloads, and
measures `time.process_time` (CPU of this process only), so a busy shared machine moves the figure
little: run it on two checkouts (PYTHONPATH) one after the other to compare the request path. The figure
covers everything the server does for a request except uvicorn's own HTTP parsing and socket writes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

BENCH = Path(__file__).resolve().parent
RUN = BENCH / "work" / "serving" / "run"


def make_app(run: Path, backend: str = "torch") -> Any:
    from recforge.config.serving import load_serving_config
    from recforge.serving.http.app import create_app
    from recforge.serving.service import build_service

    config = load_serving_config(run / "serving.yaml", [f"backend={backend}", "threads=1"])
    return create_app(build_service(run / "stream", config))


async def post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One request through the ASGI app, as uvicorn would hand it over."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    out: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return int(out["status"]), bytes(out["body"])


def payloads(run: Path, n: int, varied: bool = False) -> list[bytes]:
    """serving_load's /recommend payloads; `varied` adds exclude, recent items, filters, candidates and k to some."""
    sys.path.insert(0, str(BENCH))
    from serving_load import recommend_payloads

    out = recommend_payloads(run, n)
    if varied:
        import pyarrow.parquet as pq

        items = pq.read_table(run / "tables" / "items.parquet").to_pylist()
        for i, body in enumerate(out):
            some = [row["item_id"] for row in items[i * 7 % 4000 : i * 7 % 4000 + 60]]
            extra = {
                0: {"exclude": some[:5], "k": 20},
                1: {"recent_items": some[:8]},
                2: {"filters": {"category_id": [items[i]["category_id"], items[i + 1]["category_id"]]}},
                3: {"candidates": [*some, -12345], "exclude": some[:3]},
            }
            body.update(extra.get(i % 5, {}))
    return [json.dumps(p).encode() for p in out]


async def serve_all(app: Any, bodies: list[bytes]) -> list[bytes]:
    answers = []
    for body in bodies:
        status, answer = await post(app, "/recommend", body)
        if status != 200:
            raise SystemExit(f"status {status}: {answer[:300]!r}")
        answers.append(answer)
    return answers


def compare(a: Path, b: Path) -> None:
    """Exit 1 unless both answer files hold the same items and channels, scores within 1e-6."""
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    bad = 0
    for x, y in zip(left, right, strict=True):
        same = [i["item_id"] for i in x["items"]] == [i["item_id"] for i in y["items"]]
        same &= [i["channels"] for i in x["items"]] == [i["channels"] for i in y["items"]]
        same &= all(abs(i["score"] - j["score"]) <= 1e-6 for i, j in zip(x["items"], y["items"], strict=True))
        same &= {k: v for k, v in x.items() if k != "items"} == {k: v for k, v in y.items() if k != "items"}
        bad += not same
    print(f"{len(left)} answers compared, {bad} differ")
    raise SystemExit(1 if bad else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=RUN)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions by cumulative time")
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--varied", action="store_true", help="exclude, recent items, filters, candidates, k")
    parser.add_argument("--compare", type=Path, nargs=2)
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    import recforge

    app = make_app(args.run, args.backend)
    bodies = payloads(args.run, args.requests, args.varied)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(serve_all(app, bodies[:50]))  # warm caches
    per_request = []
    for _ in range(args.rounds):
        start = time.process_time()
        answers = loop.run_until_complete(serve_all(app, bodies))
        per_request.append((time.process_time() - start) / len(bodies) * 1e3)
    rounds = " ".join(f"{v:.3f}" for v in per_request)
    print(f"{recforge.__file__}: CPU ms/request {rounds} (min {min(per_request):.3f})")
    if args.dump:
        args.dump.write_text(json.dumps([json.loads(a) for a in answers]))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(serve_all(app, bodies))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
