"""Train/serve skew on 10,000 logged requests: the service's online inputs and scores vs the batch path.

A DeepFM on the synthetic world (examples/synthetic_deepfm.yaml, scaled down) is served in-process
(`build_service`, the object `recforge serve` wraps) with `logging.requests.sample_rate: 1.0`. Each
request ranks 1-50 random catalog items (every 7th adds an id the catalog lacks; every 10th user is
unknown; two in three carry a `position`). The same requests run without logging, with 1% logged and
with all logged, interleaved by 1,000 (ms/request, median and p99, in-process, no HTTP); then `recforge skew check`'s
library call replays the log. Reported: records, rows, per-feature mismatches, the largest |score
difference|, log size, replay seconds.

    python bench/skew_replay.py --requests 10000 --out bench/work/skew_replay.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from recforge import pipeline
from recforge.config import load_config
from recforge.config.serving import load_serving_config
from recforge.pipeline.serve import write_serving_files
from recforge.serving.recommender import RecommendRequest
from recforge.serving.request_log import RequestLog
from recforge.serving.service import Service, build_service
from recforge.serving.skew import check_skew

REPO = Path(__file__).resolve().parents[1]
WORLD = [
    "data.synthetic.n_users=5000",
    "data.synthetic.n_items=2000",
    "data.synthetic.n_impressions=200000",
    "train.epochs=1",
    "train.progress=false",
    "train.threads=1",
]


def make_requests(users: list[int], items: list[int], n: int, seed: int) -> list[RecommendRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for r in range(n):
        user = users[int(rng.integers(len(users)))] if r % 10 else 10**9 + r
        candidates = rng.choice(items, size=int(rng.integers(1, 51)), replace=False).tolist()
        if r % 7 == 0:
            candidates.append(10**7)
        context = {"position": int(rng.integers(1, 20))} if r % 3 else {}
        out.append(RecommendRequest(user, 10, context, candidates=candidates))
    return out


def timed(service: Service, requests: list[RecommendRequest]) -> list[float]:
    """Milliseconds of each recommend call."""
    out = []
    for request in requests:
        start = time.perf_counter()
        service.recommender.recommend(request)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="skew-replay-") as tmp:
        result = run(args.requests, Path(tmp))
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


def run(n_requests: int, work: Path) -> dict[str, Any]:
    """Train, serve with every request logged, replay; the figures."""
    cfg = load_config(REPO / "examples" / "synthetic_deepfm.yaml", WORLD)
    bundle = pipeline.train(cfg, work / "run").bundle
    serving = write_serving_files(cfg, work, None)
    users = pq.read_table(work / "tables" / "users.parquet")["user_id"].to_pylist()
    items = pq.read_table(work / "tables" / "items.parquet")["item_id"].to_pylist()
    requests = make_requests(users, items, n_requests, seed=0)
    log_dir = work / "requests"
    settings = ["watch.enabled=false", f"logging.requests.path={log_dir}", "logging.requests.sample_rate=1.0"]
    settings += [f"logging.requests.queue={n_requests}"]
    service = build_service(bundle, load_serving_config(serving, settings))
    request_log = service.recommender.request_log
    assert request_log is not None
    sampled = RequestLog(request_log.config.model_copy(update={"path": str(work / "sampled"), "sample_rate": 0.01}))
    arms: dict[str, RequestLog | None] = {"logging_off": None, "logging_1pct": sampled, "logging_all": request_log}
    ms: dict[str, list[float]] = {arm: [] for arm in arms}
    for start in range(0, len(requests), 1000):  # interleaved, so load from other jobs hits every arm alike
        for arm, log in arms.items():
            service.recommender.request_log = log
            ms[arm] += timed(service, requests[start : start + 1000])
    service.stop()
    sampled.close()
    started = time.perf_counter()
    report = check_skew(bundle, log_dir)
    replay_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "requests": n_requests,
        "logged": request_log.written,
        "dropped": request_log.dropped,
        "log_mb": round(sum(p.stat().st_size for p in log_dir.iterdir()) / 2**20, 1),
        **{arm: stats(values) for arm, values in ms.items()},
        "logged_1pct": sampled.written,
        "replay_s": round(replay_s, 1),
        **{k: v for k, v in report.to_json().items() if k not in ("features",)},
        "mismatches_per_feature": {name: f.mismatches for name, f in report.features.items()},
    }
    return result


if __name__ == "__main__":
    main()
