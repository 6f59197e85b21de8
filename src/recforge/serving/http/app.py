"""The HTTP face of a Service: /recommend, KServe v2 and TF-Serving inference, health and /metrics.

Handlers are `async def` on purpose: the work is short and CPU-bound, so running it on the event
loop avoids a thread-pool hop per request (one process serves; scale with more processes). Bad input
of any kind is a 4xx with a message that says what to fix; a 500 means a recforge bug.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from recforge import __version__
from recforge.bundle.drift_status import read_drift_status
from recforge.errors import RecforgeError
from recforge.serving.http.v2 import HEADER, infer_response, parse_infer
from recforge.serving.predictor import Predictor
from recforge.serving.recommender import RecommendRequest
from recforge.serving.service import Service

log = logging.getLogger(__name__)
Id = int | str
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready", "/healthz")


class RecommendBody(BaseModel):
    """POST /recommend. `candidates` skips recall and ranks exactly these items."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    k: int | None = Field(None, ge=1)
    context: dict[str, Any] = Field(default_factory=dict)
    recent_items: list[Id] = Field(default_factory=list)
    exclude: list[Id] = Field(default_factory=list)
    candidates: list[Id] | None = None
    filters: dict[str, Any] = Field(default_factory=dict)
    timings: bool = Field(False, description="Add per-stage milliseconds to the answer.")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class Observe:
    """Pure-ASGI middleware: API key check, request counts and latency per endpoint (cheap per request)."""

    def __init__(self, app: ASGIApp, service: Service, api_key: str | None) -> None:
        self.app = app
        self.service = service
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        endpoint = _endpoint(path)
        metrics = self.service.metrics
        start = time.perf_counter()
        status = {"code": 500}

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        if self.api_key is not None and path not in OPEN_PATHS and not self._authorized(scope):
            response = JSONResponse({"error": "missing or wrong API key (send X-API-Key)"}, status_code=401)
            await response(scope, receive, sending)
        else:
            await self.app(scope, receive, sending)
        metrics.requests.labels(endpoint=endpoint, status=str(status["code"])).inc()
        metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - start)

    def _authorized(self, scope: MutableMapping[str, Any]) -> bool:
        assert self.api_key is not None
        for name, value in scope.get("headers", []):
            if name == b"x-api-key" and hmac.compare_digest(value, self.api_key):
                return True
            if name == b"authorization" and hmac.compare_digest(value, b"Bearer " + self.api_key):
                return True
        return False


def _endpoint(path: str) -> str:
    """A low-cardinality label for a path (model names are not labels)."""
    if path.startswith("/v2/models/"):
        return "v2_infer" if path.endswith("/infer") else "v2_model"
    if path.startswith("/v1/models/"):
        return "v1_predict" if path.endswith(":predict") else "v1_model"
    return path.strip("/").replace("/", "_") or "root"


def _model(service: Service, name: str) -> Predictor:
    predictor = service.predictor
    if name != predictor.name:
        raise HttpError(404, f"model {name!r} is not served here; this service serves {predictor.name!r}")
    return predictor


def _score_columns(service: Service, predictor: Predictor, table: pa.Table) -> dict[str, np.ndarray]:
    """`score` (the ranking score) and, for a multi-task model, each task's score."""
    if table.num_rows > service.config.http.max_candidates:
        raise HttpError(413, f"{table.num_rows} rows; at most {service.config.http.max_candidates} per request")
    missing = [c for c in predictor.input_columns if c not in table.column_names]
    if missing:
        raise HttpError(400, f"inputs {missing} are missing; the model reads {predictor.input_columns}")
    by_task = predictor.score_table_tasks(table)
    return {"score": predictor.rank(by_task), **{t: by_task[t] for t in predictor.tasks}}


def create_app(service: Service) -> FastAPI:
    """The FastAPI app over a built Service; the watcher starts and stops with the app."""
    config = service.config.http
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else config.api_key
    app = FastAPI(title="recforge", version=__version__)
    app.state.service = service

    @app.on_event("startup")
    async def _start() -> None:  # pragma: no cover - exercised by the live-server tests
        service.start()

    @app.on_event("shutdown")
    async def _stop() -> None:  # pragma: no cover
        service.stop()

    @app.exception_handler(HttpError)
    async def _http_error(_: Request, exc: HttpError) -> JSONResponse:
        service.metrics.errors.labels(endpoint="any", kind=f"http_{exc.status}").inc()
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RecforgeError)
    async def _bad_input(_: Request, exc: RecforgeError) -> JSONResponse:
        service.metrics.errors.labels(endpoint="any", kind=type(exc).__name__).inc()
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        service.metrics.errors.labels(endpoint="any", kind="validation").inc()
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.post("/recommend")
    async def recommend(body: RecommendBody) -> Response:
        k = body.k or service.config.recommend.k
        if k > config.max_k:
            raise HttpError(400, f"k={k} is above the service's max_k={config.max_k}")
        if body.candidates is not None and len(body.candidates) > config.max_candidates:
            raise HttpError(413, f"{len(body.candidates)} candidates; at most {config.max_candidates} per request")
        result = service.recommender.recommend(
            RecommendRequest(
                body.user_id, k, body.context, body.recent_items, body.exclude, body.candidates, body.filters
            )
        )
        return Response(json.dumps(result.to_json(body.user_id, body.timings)), media_type="application/json")

    async def v2_infer(name: str, request: Request) -> Response:
        predictor = _model(service, name)
        parsed = parse_infer(await request.body(), request.headers.get(HEADER))
        names = ["score", *predictor.tasks]
        unknown = [o for o in parsed.outputs if o not in names]
        if unknown:
            raise HttpError(400, f"outputs {unknown} do not exist; this model's outputs are {names}")
        scores = _score_columns(service, predictor, parsed.table)
        wanted = {o: scores[o] for o in parsed.outputs} if parsed.outputs else scores
        body, headers = infer_response(predictor.name, predictor.version, parsed.id, wanted, parsed.binary_output)
        media = "application/octet-stream" if parsed.binary_output else "application/json"
        return Response(body, headers=headers, media_type=media)

    @app.post("/v2/models/{name}/infer")
    async def v2_infer_latest(name: str, request: Request) -> Response:
        return await v2_infer(name, request)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def v2_infer_version(name: str, version: str, request: Request) -> Response:
        if version != service.predictor.version:
            raise HttpError(404, f"version {version!r} is not loaded; serving {service.predictor.version!r}")
        return await v2_infer(name, request)

    @app.get("/v2/models/{name}")
    async def v2_metadata(name: str) -> dict[str, Any]:
        predictor = _model(service, name)
        return {
            "name": predictor.name,
            "versions": [predictor.version],
            "platform": f"recforge-{service.config.backend}",
            "inputs": [{"name": c, "datatype": t, "shape": [-1]} for c, t in predictor.input_datatypes().items()],
            "outputs": [{"name": o, "datatype": "FP32", "shape": [-1]} for o in ["score", *predictor.tasks]],
        }

    @app.get("/v2/models/{name}/ready")
    async def v2_model_ready(name: str) -> dict[str, Any]:
        _model(service, name)
        return {"name": name, "ready": True}

    @app.get("/v2")
    async def v2_server() -> dict[str, Any]:
        return {"name": "recforge", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, Any]:
        events = service.watcher.events
        return {
            "ready": True,
            "model": service.predictor.name,
            "version": service.predictor.version,
            "swaps": events.swaps,
            "swap_failures": events.failures,
            "last_swap_error": events.last_error,
            "store_healthy": service.store.healthy(),
        }

    @app.post("/v1/models/{name}:predict")
    async def v1_predict(name: str, request: Request) -> dict[str, Any]:
        predictor = _model(service, name)
        table, columnar = _tf_serving_table(await request.body())
        scores = _score_columns(service, predictor, table)
        if not predictor.tasks:
            values = [float(s) for s in scores["score"]]
            return {"outputs": values} if columnar else {"predictions": values}
        if columnar:  # TF Serving's multi-output forms: a list per output, or an object per row
            return {"outputs": {k: [float(x) for x in v] for k, v in scores.items()}}
        return {"predictions": [{k: float(v[i]) for k, v in scores.items()} for i in range(table.num_rows)]}

    @app.get("/v1/models/{name}")
    async def v1_status(name: str) -> dict[str, Any]:
        predictor = _model(service, name)
        return {"model_version_status": [{"version": predictor.version, "state": "AVAILABLE", "status": {}}]}

    @app.get("/metrics")
    async def metrics() -> Response:
        drift = read_drift_status(service.model_path) if service.model_path.is_dir() else None
        text = service.metrics.render(service.store.stats(), service.store.healthy(), drift)
        return Response(text, media_type=service.metrics.content_type)

    return Observe(app, service, api_key)  # type: ignore[return-value]


def _tf_serving_table(body: bytes) -> tuple[pa.Table, bool]:
    """TF-Serving REST: row form `{"instances": [{col: v}, ...]}` or columnar `{"inputs": {col: [...]}}`."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise HttpError(400, 'expected {"instances": [...]} or {"inputs": {...}}')
    try:
        if isinstance(payload.get("instances"), list) and payload["instances"]:
            rows = payload["instances"]
            if not all(isinstance(r, dict) for r in rows):
                raise HttpError(400, "every instance must be an object of column: value")
            return pa.Table.from_pylist(rows), False
        if isinstance(payload.get("inputs"), dict) and payload["inputs"]:
            return pa.table(
                {k: pa.array(v if isinstance(v, list) else [v]) for k, v in payload["inputs"].items()}
            ), True
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise HttpError(400, f"instances do not form a table: {exc}") from None
    raise HttpError(400, 'expected a non-empty {"instances": [...]} or {"inputs": {...}}')


MODEL_ENV = "RECFORGE_SERVE_MODEL"
CONFIG_ENV = "RECFORGE_SERVE_CONFIG"


def app_from_env() -> Any:
    """uvicorn factory for multi-process serving: each worker builds its own Service from the environment."""
    from recforge.config.serving import ServingConfig
    from recforge.serving.service import build_service

    config = ServingConfig.model_validate_json(os.environ[CONFIG_ENV])
    return create_app(build_service(os.environ[MODEL_ENV], config))
