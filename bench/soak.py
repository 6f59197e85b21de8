"""Soak: /recommend for a long time under steady load, with a new model version every minute and the
Redis feature store killed and restarted twice.

    python bench/soak.py                          # measure max rps, then 30 min at 70% of it
    python bench/soak.py --minutes 30 --rps 210   # a fixed rate
    python bench/soak.py --minutes 3 --rps 100    # a quick check of the bench itself

Reuses `serving_load.py`'s prepared run (DeepFM + ALS/ItemCF/popular recall on the synthetic world),
its server start-up and its hand-rolled keep-alive client. The service reads user and item features
from a real `redis-server` (started here on a free port, no persistence) with the embedded tables as
its fallback; at 1/3 and 2/3 of the run Redis is killed with SIGKILL, kept down for `--redis-down`
seconds, restarted empty and the features pushed again (what an operator would do).

Reported per 5-minute window: requests, failures, p50 / p99, server RSS (all worker processes).
Verdicts (issue 15): 0 failed requests; RSS growth after warm-up (first window's end -> last sample)
< 5%; p99 of the last window within 20% of the first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from serving_load import WORK, Connection, free_port, prepare, recommend_payloads, run_load, start

SOAK = WORK.parent / "soak"


# ---------------------------------------------------------------- redis and the served config
class Redis:
    """A redis-server on a free port that the soak kills (SIGKILL) and restarts."""

    def __init__(self, log: Path) -> None:
        self.port, self.log = free_port(), log
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found; fix: bash scripts/setup.sh (installs Debian's redis-server)")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise SystemExit(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def push_features(run: Path, url: str) -> None:
    """Push the run's user and item tables into Redis (the serving tables, as `recforge features push`)."""
    tables = run / "tables"
    cmd = [sys.executable, "-m", "recforge", "features", "push", "--redis", url, "--no-progress"]
    cmd += ["--users", str(tables / "users.parquet"), "--items", str(tables / "items.parquet")]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def redis_serving_file(run: Path, url: str) -> Path:
    """serving.yaml with the Redis store in front and the run's embedded tables as its fallback."""
    serving = yaml.safe_load((run / "serving.yaml").read_text())
    embedded = serving["store"]
    serving["store"] = {"kind": "redis", "url": url, "entities": embedded["entities"], "fallback": embedded}
    path = run / "serving-redis.yaml"
    path.write_text(yaml.safe_dump(serving, sort_keys=False))
    return path


# ---------------------------------------------------------------- load with per-second records
async def _soak_load(url: str, payloads: list[Any], rps: float, seconds: float) -> list[list[float]]:
    """Open-loop load; one record per request: [send time s, latency ms, ok 0/1]."""
    from urllib.parse import urlsplit

    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    head = f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "
    bodies = [json.dumps(p).encode() for p in payloads]
    idle: list[Connection] = []
    records: list[list[float]] = []
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        start_at = time.perf_counter()
        reused = bool(idle)
        try:
            conn = idle.pop() if idle else Connection(*await asyncio.open_connection(host, port))
            try:
                status, _ = await conn.post(head.encode(), bodies[i % len(bodies)])
            except (asyncio.IncompleteReadError, ConnectionResetError):
                if not reused:
                    raise
                conn = Connection(*await asyncio.open_connection(host, port))
                status, _ = await conn.post(head.encode(), bodies[i % len(bodies)])
            idle.append(conn)
            ok = status == 200
        except Exception:
            ok = False
        records.append([start_at - t0, (time.perf_counter() - start_at) * 1e3, float(ok)])

    pending: set[asyncio.Task[None]] = set()  # only in-flight requests are held over a long run
    for i in range(int(rps * seconds)):
        delay = t0 + i / rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return records


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (uvicorn workers are children of the server)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
        todo.extend(int(c) for c in children)
    return total


# ---------------------------------------------------------------- the chaos during the run
def chaos(run: Path, stream: Path, redis: Redis, seconds: float, down: float, log: list[str]) -> threading.Thread:
    """A thread: publish a copy of the served bundle as a new version every 60 s; kill Redis at 1/3 and 2/3."""
    from serving_load import publish_versions

    def body() -> None:
        t0 = time.monotonic()
        kills = [seconds / 3, 2 * seconds / 3]
        next_publish = 60.0
        while (now := time.monotonic() - t0) < seconds - 5:
            if kills and now >= kills[0]:
                kills.pop(0)
                redis.kill()
                log.append(f"{now:7.1f}s redis killed")
                time.sleep(down)
                redis.start()
                push_features(run, redis.url)
                log.append(f"{time.monotonic() - t0:7.1f}s redis restarted and features pushed")
            if now >= next_publish:
                publish_versions(run, stream, 1, 0)
                log.append(f"{now:7.1f}s version published")
                next_publish += 60.0
            time.sleep(0.5)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def windows(records: list[list[float]], rss: list[tuple[float, int]], minutes: float) -> list[dict[str, Any]]:
    width = 300.0 if minutes >= 10 else 60.0
    out = []
    n = max(1, round(minutes * 60 / width))
    for w in range(n):
        lo, hi = w * width, (w + 1) * width
        lat = sorted(r[1] for r in records if lo <= r[0] < hi)
        fails = sum(1 for r in records if lo <= r[0] < hi and not r[2])
        mem = [b for t, b in rss if lo <= t < hi]
        out.append(
            {
                "window": f"{lo / 60:.0f}-{hi / 60:.0f} min",
                "requests": len(lat),
                "failures": fails,
                "p50_ms": lat[len(lat) // 2] if lat else float("nan"),
                "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
                "rss_mb": (mem[-1] / 2**20) if mem else float("nan"),
            }
        )
    return out


def measure_max_rps(base: str, payload_file: Path) -> float:
    """The highest offered rate (step 50) whose completed rate keeps up and p99 stays under 100 ms."""
    best = 0.0
    for rps in range(100, 801, 50):
        r = run_load(f"{base}/recommend", payload_file, rps, 15, SOAK / "ramp.json")
        print(f"  ramp {rps} rps: achieved {r['completed_rps']:.0f}, p99 {r['p99_ms']:.1f} ms", flush=True)
        if r["failures"] or r["p99_ms"] > 100 or r["completed_rps"] < 0.97 * rps:
            break
        best = float(rps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=WORK / "run", help="serving_load.py's run (prepared if absent)")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rps", type=float, default=None, help="fixed rate; default 70%% of the measured maximum")
    parser.add_argument("--redis-down", type=float, default=10.0, help="seconds Redis stays dead at each kill")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    run: Path = args.run
    if not (run / "serving.yaml").exists():
        prepare(run, 20_000, 5_000)
    SOAK.mkdir(parents=True, exist_ok=True)
    stream = SOAK / "stream"
    shutil.rmtree(stream, ignore_errors=True)
    shutil.copytree(run / "stream", stream)
    redis = Redis(SOAK / "redis.log")
    redis.start()
    push_features(run, redis.url)
    payload_file = SOAK / "recommend.json"
    payload_file.write_text(json.dumps(recommend_payloads(run, 2000)))
    port = free_port()
    cmd = [sys.executable, "-m", "recforge", "serve", str(stream), "--config", str(redis_serving_file(run, redis.url))]
    cmd += ["--port", str(port), "--set", f"http.workers={args.workers}", "--set", "watch.poll_seconds=1"]
    server = start(cmd, port)
    base = f"http://127.0.0.1:{port}"
    try:
        run_load(f"{base}/recommend", payload_file, 50, 10, SOAK / "warmup.json")
        rps = args.rps
        if rps is None:
            top = measure_max_rps(base, payload_file)
            rps = 0.7 * top
            print(f"max rps {top:.0f}: soaking at {rps:.0f} rps", flush=True)
        seconds = args.minutes * 60
        events: list[str] = []
        rss: list[tuple[float, int]] = []
        chaos_thread = chaos(run, stream, redis, seconds, args.redis_down, events)
        t0 = time.monotonic()
        done = threading.Event()

        def sample() -> None:
            while not done.wait(10):
                rss.append((time.monotonic() - t0, rss_bytes(server.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        payloads = json.loads(payload_file.read_text())
        records = asyncio.run(_soak_load(f"{base}/recommend", payloads, rps, seconds))
        done.set()
        chaos_thread.join(timeout=60)
    finally:
        server.terminate()
        server.wait(30)
        redis.kill()
    report(records, rss, events, args.minutes, rps)


def report(
    records: list[list[float]], rss: list[tuple[float, int]], events: list[str], minutes: float, rps: float
) -> None:
    rows = windows(records, rss, minutes)
    print("\n".join(events))
    print(f"\nsoak at {rps:.0f} rps for {minutes:g} min ({os.cpu_count()} cores)")
    print("| window | requests | failures | p50 ms | p99 ms | server RSS MB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['window']} | {r['requests']} | {r['failures']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['rss_mb']:.0f} |"
        )
    failures = sum(r["failures"] for r in rows)
    warm = rows[0]["rss_mb"]
    growth = (rss[-1][1] / 2**20 / warm - 1) if rss and warm == warm else float("nan")
    p99_change = rows[-1]["p99_ms"] / rows[0]["p99_ms"] - 1
    print(f"\nfailed requests: {failures} (target 0)")
    print(f"RSS growth after warm-up: {growth:+.1%} (target < 5%)")
    print(f"p99 last window vs first: {p99_change:+.1%} (target within 20%)")
    (SOAK / "results.json").write_text(json.dumps({"rps": rps, "windows": rows, "events": events}, indent=1))


if __name__ == "__main__":
    main()
