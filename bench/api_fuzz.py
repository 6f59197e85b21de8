"""Fuzz every route of a live `recforge serve` from its own OpenAPI document (schemathesis + hypothesis).

    python bench/api_fuzz.py --requests 20000                      # prepare (once), serve, fuzz, report
    python bench/api_fuzz.py --url http://127.0.0.1:8000 --requests 2000   # a service already running

Three sources of requests, in equal thirds: schemathesis cases generated valid from the schema
(positive), cases generated to break it (negative), and valid bodies of every inference route
with random leaves replaced, keys dropped or values wrapped (mutation). Path parameters are the
served model's name half the time, so generated bodies reach the scoring code rather than a 404.
A violation is any response >= 500, a 4xx without the `{"error": {"code", "message", "field"}}`
shape, or a dropped connection. Prints request counts by route and status, then the violations.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent


@dataclass
class Report:
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, route: str, status: int, body: bytes, sent: str) -> None:
        self.counts[(route, status)] += 1
        if status >= 500 or (status >= 400 and not error_shaped(body)):
            self.violations.append(f"{route} -> {status}: {body[:300]!r} for {sent[:300]}")

    def table(self) -> str:
        lines = [f"{'route':45s} {'status':>6s} {'requests':>9s}"]
        lines += [f"{r:45s} {s:6d} {n:9d}" for (r, s), n in sorted(self.counts.items())]
        lines.append(f"total {self.total} requests, {len(self.violations)} violations")
        return "\n".join(lines + self.violations[:50])


def error_shaped(body: bytes) -> bool:
    """The one 4xx shape: `{"error": {"code": str, "message": str, "field": str | null}}`."""
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        isinstance(error, dict)
        and set(error) == {"code", "message", "field"}
        and isinstance(error["code"], str)
        and isinstance(error["message"], str)
        and (error["field"] is None or isinstance(error["field"], str))
    )


def schema_cases(base_url: str, model: dict[str, str], examples: int, report: Report, seed: int) -> None:
    """Positive and negative schemathesis cases over every operation, `examples` per operation and mode."""
    import requests
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    with requests.Session() as session:

        def call(case: Any) -> None:
            route = case.operation.path
            try:
                response = case.call(base_url=base_url, session=session, timeout=60)
            except requests.RequestException as exc:  # a dropped connection counts as a violation (status 0)
                report.add(route, 0, repr(exc).encode(), case.as_curl_command())
                return
            report.add(route, response.status_code, response.content, case.as_curl_command())

        for n, operation in enumerate(operations):
            named = "{name}" in operation.path
            for mode in modes:
                for pin in (True, False) if named else (False,):
                    served = {k: v for k, v in model.items() if f"{{{k}}}" in operation.path}
                    strategy = operation.as_strategy(generation_mode=mode, path_parameters=served if pin else None)
                    drive(strategy, max(1, examples // (2 if named else 1)), seed + n, call)


def drive(strategy: Any, examples: int, seed: int, call: Callable[[Any], None]) -> None:
    """Draw up to `examples` cases from a hypothesis strategy (generation only, no shrinking) and call each."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seeded
    from hypothesis.errors import Unsatisfiable

    @seeded(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        call(case)

    with contextlib.suppress(Unsatisfiable):  # a negative mode for an operation with nothing to break
        run()


def valid_bodies(client: httpx.Client, model: str) -> dict[str, tuple[str, Any]]:
    """Route template -> (URL, one valid body) per inference route, from the served model's v2 metadata."""
    meta = client.get(f"/v2/models/{model}").json()
    sample = {"INT64": 1, "FP64": 0.5, "FP32": 0.5, "BYTES": "a"}
    row = {i["name"]: sample.get(i["datatype"], 1) for i in meta["inputs"]}
    inputs = [
        {"name": i["name"], "shape": [2], "datatype": i["datatype"], "data": [row[i["name"]]] * 2}
        for i in meta["inputs"]
    ]
    return {
        "/recommend": ("/recommend", {"user_id": 1, "k": 5, "recent_items": [2, 3], "exclude": [4], "filters": {}}),
        "/v2/models/{name}/infer": (f"/v2/models/{model}/infer", {"inputs": inputs, "outputs": [{"name": "score"}]}),
        "/v1/models/{name}:predict": (f"/v1/models/{model}:predict", {"instances": [row, row]}),
    }


LEAVES: list[Any] = [None, True, 0, -1, 2**63, -(2**63) - 1, 10**30, 1.5, 1e308, "", "x" * 2000, [], {}, [[1]]]


def mutate(body: Any, rng: random.Random) -> Any:
    """A copy of `body` with one random node replaced, dropped, duplicated or wrapped in a list."""
    if not isinstance(body, dict | list) or not body or rng.random() < 0.25:
        return rng.choice([*LEAVES, [body], {"x": body}])
    copy = dict(body) if isinstance(body, dict) else list(body)
    key = rng.choice(list(copy)) if isinstance(copy, dict) else rng.randrange(len(copy))
    if rng.random() < 0.15:
        del copy[key]
    else:
        copy[key] = mutate(copy[key], rng)
    return copy


def mutations(base_url: str, model: str, count: int, report: Report, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=60) as client:
        bodies = valid_bodies(client, model)
        for n in range(count):
            route = list(bodies)[n % len(bodies)]
            url, valid = bodies[route]
            body = mutate(valid, rng)
            try:
                response = client.post(url, json=body)
            except httpx.HTTPError as exc:  # a dropped connection counts as a violation (status 0)
                report.add(route, 0, repr(exc).encode(), repr(body))
                continue
            report.add(route, response.status_code, response.content, repr(body))


def fuzz(base_url: str, requests: int, seed: int = 0) -> Report:
    """About `requests` requests in all: two thirds from the schema, one third mutated valid bodies."""
    report = Report()
    ready = httpx.get(f"{base_url}/v2/health/ready", timeout=30).json()
    model = {"name": ready["model"], "version": ready["version"]}
    operations = len(httpx.get(f"{base_url}/openapi.json", timeout=30).json()["paths"])
    schema_cases(base_url, model, max(1, requests // 3 // operations), report, seed)
    mutations(base_url, model["name"], max(1, requests - report.total), report, seed)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="fuzz this running service instead of starting one")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, default=BENCH / "work" / "serving" / "run")
    args = parser.parse_args()
    if args.url:
        report = fuzz(args.url.rstrip("/"), args.requests, args.seed)
    else:
        sys.path.insert(0, str(BENCH))
        from serving_load import free_port, prepare, start

        if not (args.run / "serving.yaml").exists():
            prepare(args.run, 20_000, 5_000)
        port = free_port()
        cmd = [sys.executable, "-m", "recforge", "serve", str(args.run / "stream")]
        cmd += ["--config", str(args.run / "serving.yaml"), "--port", str(port)]
        server = start(cmd, port)
        try:
            report = fuzz(f"http://127.0.0.1:{port}", args.requests, args.seed)
        finally:
            server.terminate()
            server.wait(30)
    print(report.table())
    raise SystemExit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
