"""Server time of each Studio page, in process (FastAPI's TestClient, no browser), over real directories.

    python bench/studio_pages.py --runs DIR --stream DIR --service URL --pipeline DIR [--repeat 20]

Prints median and p90 milliseconds per page: what a click costs the server (files read, bundle loaded,
the live service asked). Browser rendering is not included.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fastapi.testclient import TestClient

from recforge.studio.app import create_studio
from recforge.studio.service_client import ServiceClient
from recforge.studio.settings import Studio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--stream", type=Path, required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--pipeline", type=Path, required=True)
    parser.add_argument("--user", default="5")
    parser.add_argument("--item", default="7")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    runs = sorted(p.name for p in args.runs.iterdir() if (p / "config.yaml").is_file())[:2]
    studio = Studio(args.runs, args.stream, ServiceClient(args.service), args.pipeline)
    client = TestClient(create_studio(studio))
    pages = {
        "runs": "/",
        "compare two runs": f"/compare?run={runs[0]}&run={runs[-1]}",
        "run report": f"/runs/{runs[0]}/report",
        "model stream": "/stream",
        "embeddings": "/embeddings",
        "features": "/features",
        "try a user": f"/try?user={args.user}",
        "similar items": f"/try?item={args.item}",
        "pipeline runs": "/pipeline",
    }
    print(f"{'page':<18} {'median ms':>10} {'p90 ms':>8} {'KiB':>6}")
    for name, path in pages.items():
        times, size = [], 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            answer = client.get(path)
            times.append((time.perf_counter() - start) * 1e3)
            if answer.status_code != 200:
                raise SystemExit(f"{path}: {answer.status_code} {answer.text[:300]}")
            size = len(answer.content)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:<18} {statistics.median(times):>10.1f} {p90:>8.1f} {size / 1024:>6.1f}")


if __name__ == "__main__":
    main()
