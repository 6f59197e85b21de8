"""The live service as the Studio sees it: JSON over HTTP with the standard library (no extra dependency).

A service that is down or answers an error becomes an EndpointError naming the URL, shown on the page.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from recforge.errors import EndpointError


@dataclass(frozen=True)
class ServiceClient:
    url: str  # e.g. http://127.0.0.1:8000
    timeout: float = 10.0
    api_key: str | None = None

    def get(self, path: str) -> dict[str, Any]:
        return self._call(urllib.request.Request(self.url.rstrip("/") + path))

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data, {"content-type": "application/json"})
        return self._call(request)

    def served_version(self) -> dict[str, Any]:
        """What the service has loaded now (its readiness probe: model, version, swaps)."""
        return self.get("/v2/health/ready")

    def _call(self, request: urllib.request.Request) -> dict[str, Any]:
        if self.api_key:
            request.add_header("x-api-key", self.api_key)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return dict(json.loads(answer.read()))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise EndpointError(f"{request.full_url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EndpointError(
                f"cannot reach the service at {request.full_url}: {reason}"
                "\n  fix: start `recforge serve` or pass --service URL"
            ) from None
