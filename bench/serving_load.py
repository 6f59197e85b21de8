"""Serving latency under load: /recommend and /v2 infer of `recforge serve` beside a naive item-by-item server.

    python bench/serving_load.py                      # prepare (once), serve, load, table; ~5 minutes
    python bench/serving_load.py --rps 200 --seconds 30 --swaps 100

Each server runs in its own process (one worker, torch/onnx 1 thread) and the load generator in
another, over loopback. The load is open-loop: requests are sent on a fixed schedule (`--rps`)
whatever the answers do, so a slow server shows as latency, not as a politely lower rate. Latency
is measured in the generator from send to full answer.

Workloads:
  recommend   POST /recommend: 3 recall channels (ALS through a Faiss HNSW index, ItemCF from the
              user's recent items, popular) merged to 500 candidates, ranked with DeepFM, top 10
  v2_infer    POST /v2/models/{name}/infer: 500 rows (user, context and item columns) scored
  naive       the same /recommend work done the textbook way: the recall candidates are scored
              item by item, each through a fresh one-row feature transform and model call
  swaps       during the recommend load, `--swaps` new model versions are published into the
              served stream; every request must still succeed (and name the version it used)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work" / "serving"
CHANNELS = [
    {"name": "als", "factors": 64, "iterations": 10, "quota": 300, "index": {"kind": "hnsw"}},
    {"name": "itemcf", "top_n": 50, "penalty": True, "quota": 300},
    {"name": "popular", "quota": 100, "weight": 0.1},
]


# ---------------------------------------------------------------- preparation (library calls)
def prepare(run: Path, users: int, items: int) -> None:
    """Train DeepFM and the three recall channels on the synthetic world; write serving.yaml."""
    from recforge.config import build_config
    from recforge.pipeline.rank import quickstart_config, train
    from recforge.pipeline.recall import recall_train
    from recforge.pipeline.serve import write_serving_files

    tree = quickstart_config()
    tree["data"]["synthetic"].update({"n_users": users, "n_items": items})
    tree["recall"]["channels"] = CHANNELS
    tree["recall"]["merge"] = {"strategy": "rrf", "k": 500}
    tree["train"]["progress"] = False
    cfg = build_config(tree)
    rank = train(cfg, run)
    recall = recall_train(cfg, run / "recall")
    stream = run / "stream"
    from recforge.bundle.stream import publish

    publish(rank.bundle, stream)
    write_serving_files(cfg, run, recall.bundle, candidates=500)
    print(f"prepared {run}: test auc {rank.metrics['test']['auc']:.4f}", flush=True)


# ---------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], port: int, timeout: float = 180.0) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server on port {port} did not become ready in {timeout} s")


def naive_app(run: Path) -> Any:
    """The baseline: same recall, then one feature transform + model call per candidate item."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from fastapi import FastAPI

    from recforge.bundle import load_bundle, score_table
    from recforge.bundle.stream import current
    from recforge.recall.model import RecallModel

    bundle = load_bundle(current(run / "stream").path)
    recall = RecallModel.load(run / "recall" / "recall")
    users = pq.read_table(run / "tables" / "users.parquet").to_pylist()
    items = pq.read_table(run / "tables" / "items.parquet").to_pylist()
    user_rows = {row["user_id"]: row for row in users}
    item_rows = {row["item_id"]: row for row in items}
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/recommend")
    def recommend(body: dict[str, Any]) -> dict[str, Any]:
        user = user_rows.get(body["user_id"], {"user_id": body["user_id"]})
        code = recall.vocab.encode_users([body["user_id"]])
        candidates = recall.recall(recall.query(code, exclude=recall.history[max(int(code[0]), 0)]), k=500)
        ids = recall.vocab.item_ids.take(pa.array(candidates.items[0][candidates.items[0] >= 0])).to_pylist()
        scores = []
        for item in ids:
            row = {**item_rows.get(item, {"item_id": item}), **user, **body.get("context", {})}
            scores.append(float(score_table(bundle, pa.Table.from_pylist([row]))[0]))
        best = sorted(range(len(ids)), key=lambda i: -scores[i])[: body.get("k", 10)]
        return {"items": [{"item_id": ids[i], "score": scores[i]} for i in best]}

    return app


# ---------------------------------------------------------------- load generator (own process)
class Connection:
    """One keep-alive HTTP/1.1 connection; a hand-rolled client costs the generator ~20x less CPU than
    httpx, which matters when generator and server share the 2 cores."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


async def _load(url: str, payloads: list[Any], rps: float, seconds: float) -> dict[str, Any]:
    from urllib.parse import urlsplit

    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "
    ).encode()
    bodies = [json.dumps(p).encode() for p in payloads]
    idle: list[Connection] = []
    latencies: list[float] = []
    failures: list[str] = []
    versions: set[str] = set()
    n = int(rps * seconds)

    async def one(i: int) -> None:
        reused = bool(idle)
        conn = idle.pop() if idle else Connection(*await asyncio.open_connection(host, port))
        start = time.perf_counter()
        try:
            try:
                status, body = await conn.post(head, bodies[i % len(bodies)])
            except (asyncio.IncompleteReadError, ConnectionResetError):
                if not reused:
                    raise
                # the server closed this idle keep-alive connection before reading the request (as HTTP
                # clients do, send it again on a fresh connection; the clock keeps running)
                conn = Connection(*await asyncio.open_connection(host, port))
                status, body = await conn.post(head, bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - start)
            idle.append(conn)
            if status != 200:
                failures.append(f"{status}: {body[:200]!r}")
            elif b'"version"' in body:
                versions.add(json.loads(body)["version"])
        except Exception as exc:  # every failure counts; none is retried
            failures.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = t0 + i / rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    for conn in idle:
        conn.writer.close()
    lat = sorted(latencies)

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")

    return {
        "requests": n,
        "completed_rps": len(lat) / wall,
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "p999_ms": q(0.999),
        "mean_ms": statistics.fmean(lat) * 1e3 if lat else float("nan"),
        "failures": len(failures),
        "failure_examples": failures[:5],
        "versions_seen": len(versions),
    }


def run_load(
    url: str, payload_file: Path, rps: float, seconds: float, out: Path, binary: bool = False
) -> dict[str, Any]:
    """Start the generator as a separate process (its CPU is not the server's) and read its result."""
    cmd = [sys.executable, __file__, "generate", url, str(payload_file), str(rps), str(seconds), str(out)]
    subprocess.run([*cmd, *(["--binary"] if binary else [])], check=True)
    return dict(json.loads(out.read_text()))


# ---------------------------------------------------------------- payloads
def recommend_payloads(run: Path, n: int) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rng = random.Random(7)
    users = pq.read_table(run / "tables" / "users.parquet", columns=["user_id"])["user_id"].to_pylist()
    return [{"user_id": rng.choice(users), "k": 10, "context": {"position": rng.randint(0, 9)}} for _ in range(n)]


def infer_payloads(run: Path, n: int, rows: int) -> list[Any]:
    """v2 JSON requests of `rows` (user, context, item) rows each."""
    import numpy as np
    import pyarrow.parquet as pq

    users = pq.read_table(run / "tables" / "users.parquet")
    items = pq.read_table(run / "tables" / "items.parquet")
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        u = users.slice(int(rng.integers(users.num_rows)), 1).to_pylist()[0]
        take = items.take(rng.integers(0, items.num_rows, rows)).to_pydict()
        columns = {**{k: [v] * rows for k, v in u.items()}, **take, "position": rng.integers(0, 10, rows).tolist()}
        inputs = []
        for name, values in columns.items():
            if isinstance(values[0], str):
                inputs.append({"name": name, "shape": [rows], "datatype": "BYTES", "data": values})
            elif isinstance(values[0], float):
                inputs.append({"name": name, "shape": [rows], "datatype": "FP64", "data": values})
            else:
                inputs.append({"name": name, "shape": [rows], "datatype": "INT64", "data": values})
        out.append({"inputs": inputs})
    return out


# ---------------------------------------------------------------- swaps
def publish_versions(run: Path, stream: Path, count: int, every: float) -> None:
    """Publish `count` new versions (copies of the served bundle under new version names)."""
    from recforge.bundle.stream import current, publish

    source = current(stream).path
    staging = run / "staging"
    for i in range(count):
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        manifest = json.loads((staging / "manifest.json").read_text())
        manifest["version"] = f"swap-{i:04d}-{time.time_ns()}"
        (staging / "manifest.json").write_text(json.dumps(manifest))
        publish(staging, stream)
        time.sleep(every)


# ---------------------------------------------------------------- main
def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| workload | target rps | achieved rps | p50 ms | p99 ms | p99.9 ms | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['target_rps']:g} | {r['completed_rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['p999_ms']:.2f} | {r['failures']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=WORK / "run")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--rps", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--naive-rps", type=float, default=0.5, help="below its capacity: ~1.5 s a request")
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--workers", type=int, default=2, help="server processes (one per core)")
    args = parser.parse_args()
    run: Path = args.run
    if not (run / "serving.yaml").exists():
        prepare(run, args.users, args.items)
    WORK.mkdir(parents=True, exist_ok=True)
    rec_file, inf_file = WORK / "recommend.json", WORK / "infer.json"
    rec_file.write_text(json.dumps(recommend_payloads(run, 2000)))
    inf_file.write_text(json.dumps(infer_payloads(run, 50, 500)))
    results: dict[str, dict[str, Any]] = {}

    port = free_port()
    cmd = [sys.executable, "-m", "recforge", "serve", str(run / "stream"), "--config", str(run / "serving.yaml")]
    server = start(
        [
            *cmd,
            "--port",
            str(port),
            "--set",
            f"backend={args.backend}",
            "--set",
            f"http.workers={args.workers}",
            "--set",
            "watch.poll_seconds=0.1",
        ],
        port,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        run_load(f"{base}/recommend", rec_file, args.rps / 4, 5, WORK / "warmup.json")  # warm caches and JIT paths
        results["recommend"] = run_load(f"{base}/recommend", rec_file, args.rps, args.seconds, WORK / "r_rec.json")
        name = json.loads(subprocess.check_output(["curl", "-s", f"{base}/v2/health/ready"]))["model"]
        results["v2_infer (500 rows)"] = run_load(
            f"{base}/v2/models/{name}/infer", inf_file, args.rps, args.seconds, WORK / "r_inf.json"
        )
        if args.swaps:
            every = max(args.seconds / args.swaps, 0.05)
            duration = args.swaps * every + 5
            gen = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "generate",
                    f"{base}/recommend",
                    str(rec_file),
                    str(args.rps),
                    str(duration),
                    str(WORK / "r_swap.json"),
                ]
            )
            time.sleep(2)
            publish_versions(run, run / "stream", args.swaps, every)
            gen.wait()
            results[f"recommend during {args.swaps} swaps"] = json.loads((WORK / "r_swap.json").read_text())
            ready = json.loads(subprocess.check_output(["curl", "-s", f"{base}/v2/health/ready"]))
            results[f"recommend during {args.swaps} swaps"]["swaps_done"] = ready["swaps"]
    finally:
        server.terminate()
        server.wait(30)

    port = free_port()
    naive = start([sys.executable, __file__, "naive", str(run), str(port)], port)
    try:
        results["naive item-by-item /recommend"] = run_load(
            f"http://127.0.0.1:{port}/recommend",
            rec_file,
            args.naive_rps,
            max(args.seconds / 2, 10),
            WORK / "r_naive.json",
        )
        results["naive item-by-item /recommend"]["target_rps"] = args.naive_rps
    finally:
        naive.terminate()
        naive.wait(30)
    for r in results.values():
        r.setdefault("target_rps", args.rps)
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    fast, slow = results["recommend"]["p50_ms"], results["naive item-by-item /recommend"]["p50_ms"]
    print(f"\nnaive / recforge p50 latency: {slow / fast:.1f}x")
    for name, r in results.items():
        if "swaps_done" in r:
            print(
                f"{name}: {r['swaps_done']} swaps done, {r['failures']} failed requests, "
                f"{r['versions_seen']} versions seen"
            )


def generate_main(argv: list[str]) -> None:
    url, payload_file, rps, seconds, out = argv[:5]
    payloads = json.loads(Path(payload_file).read_text())
    result = asyncio.run(_load(url, payloads, float(rps), float(seconds)))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "generate":
        generate_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "naive":
        import uvicorn

        uvicorn.run(naive_app(Path(sys.argv[2])), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
    else:
        main()
