"""Soak: /recommend for a long time under steady load, with a new model version every minute and the
Redis feature store killed and restarted twice.

    python bench/soak.py                          # measure max rps, then 30 min at 70% of it
    python bench/soak.py --minutes 30 --rps 210   # a fixed rate
    python bench/soak.py --minutes 3 --rps 100 --warmup 20   # a quick check of the bench itself

Reuses `serving_load.py`'s prepared run (DeepFM + ALS/ItemCF/popular recall on the synthetic world),
its server start-up and its hand-rolled keep-alive client. The service reads user and item features
from a real `redis-server` (started here on a free port, no persistence) with the embedded tables as
its fallback; at 1/3 and 2/3 of the run Redis is killed with SIGKILL, kept down for `--redis-down`
seconds, restarted empty and the features pushed again (what an operator would do).

The load runs `--warmup` seconds (default 120) at the soak rate before the measured windows start
(and with them the swaps, the Redis kills and the RSS samples). The generator is its own process and
keeps its records in preallocated NumPy arrays, so neither the chaos thread nor its own garbage
collector shows up as server latency.

Reported per 5-minute window: requests, failures, p50 / p99, server RSS (all worker processes).
Verdicts (issue 15): 0 failed requests; RSS growth after the warm-up (first sample -> last sample)
< 5%; p99 of the last window within 20% of the first.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from serving_load import WORK, Connection, free_port, prepare, recommend_payloads, run_load, start

SOAK = WORK.parent / "soak"


@dataclass
class Records:
    """One slot per request: send time (s after the warm-up), latency (ms), answered 200."""

    sent: np.ndarray
    latency_ms: np.ndarray
    ok: np.ndarray


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
async def _soak_load(url: str, payloads: list[Any], rps: float, seconds: float, begin: float) -> Records:
    """Open-loop load from wall-clock time `begin` for `seconds`; one slot per request in preallocated arrays.

    NumPy arrays, not a growing list of Python objects: 500k+ tracked objects make the generator's own
    garbage collections longer and longer, and a paused generator reads as server latency that drifts up.
    """
    from urllib.parse import urlsplit

    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    head = f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "
    bodies = [json.dumps(p).encode() for p in payloads]
    n = int(rps * seconds)
    records = Records(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool))
    idle: list[Connection] = []
    await asyncio.sleep(max(0.0, begin - time.time()))
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
            records.ok[i] = status == 200
        except Exception:
            records.ok[i] = False
        records.sent[i] = start_at - t0
        records.latency_ms[i] = (time.perf_counter() - start_at) * 1e3

    pending: set[asyncio.Task[None]] = set()  # only in-flight requests are held over a long run
    for i in range(n):
        delay = t0 + i / rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return records


def generate(url: str, payload_file: Path, rps: float, seconds: float, begin: float, out: Path) -> None:
    """The generator's process body (its CPU and pauses are not the server's, nor the chaos thread's)."""
    gc.freeze()  # what exists now lives for the whole run: keep it out of every collection
    records = asyncio.run(_soak_load(url, json.loads(payload_file.read_text()), rps, seconds, begin))
    np.savez(out, sent=records.sent, latency_ms=records.latency_ms, ok=records.ok)


def run_generator(url: str, payload_file: Path, rps: float, seconds: float, begin: float) -> Records:
    out = SOAK / "records.npz"
    cmd = [sys.executable, __file__, "generate", url, str(payload_file), str(rps), str(seconds), str(begin), str(out)]
    subprocess.run(cmd, check=True)
    with np.load(out) as saved:
        return Records(saved["sent"], saved["latency_ms"], saved["ok"])


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


def windows(records: Records, rss: list[tuple[float, int]], minutes: float) -> list[dict[str, Any]]:
    width = 300.0 if minutes >= 10 else 60.0
    out = []
    n = max(1, round(minutes * 60 / width))
    for w in range(n):
        lo, hi = w * width, (w + 1) * width
        inside = (records.sent >= lo) & (records.sent < hi)
        lat = records.latency_ms[inside]
        mem = [b for t, b in rss if lo <= t < hi]
        out.append(
            {
                "window": f"{lo / 60:.0f}-{hi / 60:.0f} min",
                "requests": int(inside.sum()),
                "failures": int((~records.ok[inside]).sum()),
                "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
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
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds at the soak rate before the windows")
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
        soak = Soak(run, stream, redis, server.pid, args.minutes * 60, args.redis_down)
        records = soak.run(f"{base}/recommend", payload_file, rps, args.warmup)
    finally:
        server.terminate()
        server.wait(30)
        redis.kill()
    report(records, soak.rss, soak.events, args.minutes, rps)


@dataclass
class Soak:
    """The measured run: the generator in its own process; chaos and RSS sampling start when the warm-up ends."""

    run_dir: Path
    stream: Path
    redis: Redis
    server_pid: int
    seconds: float
    redis_down: float
    events: list[str] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (s after the warm-up, bytes)

    def run(self, url: str, payload_file: Path, rps: float, warmup: float) -> Records:
        begin = time.time() + 3  # the generator's first request (it needs a moment to start)
        done = threading.Event()
        threads: list[threading.Thread] = []
        timer = threading.Timer(begin + warmup - time.time(), lambda: threads.extend(self._start(done)))
        timer.start()
        try:
            records = run_generator(url, payload_file, rps, warmup + self.seconds, begin)
        finally:
            timer.cancel()
            done.set()
        for thread in threads:
            thread.join(timeout=60)
        records.sent -= warmup
        return records

    def _start(self, done: threading.Event) -> list[threading.Thread]:
        t0 = time.monotonic()

        def sample() -> None:
            while True:
                self.rss.append((time.monotonic() - t0, rss_bytes(self.server_pid)))
                if done.wait(10):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        return [chaos(self.run_dir, self.stream, self.redis, self.seconds, self.redis_down, self.events), sampler]


def report(records: Records, rss: list[tuple[float, int]], events: list[str], minutes: float, rps: float) -> None:
    rows = windows(records, rss, minutes)
    print("\n".join(events))
    print(f"\nsoak at {rps:.0f} rps for {minutes:g} min ({os.cpu_count()} cores)")
    print("| window | requests | failures | p50 ms | p99 ms | server RSS MB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['window']} | {r['requests']} | {r['failures']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['rss_mb']:.0f} |"
        )
    warmup_failures = int((~records.ok[records.sent < 0]).sum())
    unsent = int(np.isnan(records.sent).sum())
    failures = sum(r["failures"] for r in rows)
    growth = (rss[-1][1] / rss[0][1] - 1) if rss else float("nan")
    p99_change = rows[-1]["p99_ms"] / rows[0]["p99_ms"] - 1
    print(f"\nfailed requests: {failures} (target 0); during the warm-up {warmup_failures}; never sent {unsent}")
    print(f"RSS growth after warm-up: {growth:+.1%} (target < 5%)")
    print(f"p99 last window vs first: {p99_change:+.1%} (target within 20%)")
    (SOAK / "results.json").write_text(json.dumps({"rps": rps, "windows": rows, "events": events}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        url, payload_file, rps, seconds, begin, out = sys.argv[2:8]
        generate(url, Path(payload_file), float(rps), float(seconds), float(begin), Path(out))
    else:
        main()
