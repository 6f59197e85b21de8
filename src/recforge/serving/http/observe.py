"""Pure-ASGI middleware: API key check, request counts and latency per route template (cheap per request).

Metrics are labelled by the matched route's template (`/v2/models/{name}/infer`), never by the raw
path, so model names and random URLs cannot create new series; unmatched paths share one label.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import MutableMapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match

from recforge.serving.http.errors import error_response
from recforge.serving.metrics import ServiceMetrics

OPEN_PATHS = ("/v2/health/live", "/v2/health/ready", "/healthz")
UNMATCHED = "unmatched"


def route_template(scope: MutableMapping[str, Any], routes: Sequence[BaseRoute]) -> str:
    """The template of the route that served (or would serve) this request; UNMATCHED when none."""
    route = scope.get("route")
    if route is None:
        route = next((r for r in routes if r.matches(scope)[0] is not Match.NONE), None)
    return str(getattr(route, "path", UNMATCHED))


class Observe:
    def __init__(self, app: Any, routes: Sequence[BaseRoute], metrics: ServiceMetrics, api_key: str | None) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            if self.api_key is not None and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
                refusal = error_response(401, "unauthorized", "missing or wrong API key (send X-API-Key)")
                await refusal(scope, receive, sending)
            else:
                await self.app(scope, receive, sending)
        finally:
            endpoint = route_template(scope, self.routes)
            self.metrics.requests.labels(endpoint=endpoint, status=str(status["code"])).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - start)

    def _authorized(self, scope: MutableMapping[str, Any]) -> bool:
        assert self.api_key is not None
        for name, value in scope.get("headers", []):
            if name == b"x-api-key" and hmac.compare_digest(value, self.api_key):
                return True
            if name == b"authorization" and hmac.compare_digest(value, b"Bearer " + self.api_key):
                return True
        return False
