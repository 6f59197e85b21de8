"""The HTTP face of a Service: one router per protocol (/recommend, KServe v2, TF-Serving), health, metrics.

Every body is validated at the edge against typed models carrying `serving.yaml`'s limits; every
refusal is a 4xx in one error shape; scoring runs on worker threads so the event loop keeps
answering. A 500 means a recforge bug.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from recforge import __version__
from recforge.bundle.drift_status import read_drift_status
from recforge.config.serving import HttpConfig
from recforge.serving.http.body import BodyLimit
from recforge.serving.http.errors import install_error_handlers, responses
from recforge.serving.http.kserve import health_router, kserve_router
from recforge.serving.http.models import request_models
from recforge.serving.http.observe import Observe
from recforge.serving.http.openapi import docs_router, document_bodies
from recforge.serving.http.recommend import recommend_router
from recforge.serving.http.tfserving import tf_serving_router
from recforge.serving.service import Service

MODEL_ENV = "RECFORGE_SERVE_MODEL"
CONFIG_ENV = "RECFORGE_SERVE_CONFIG"
ROUTERS = (recommend_router, kserve_router, tf_serving_router)


def metrics_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", response_class=Response, responses=responses(401))
    async def metrics() -> Response:
        drift = read_drift_status(service.model_path) if service.model_path.is_dir() else None
        text = service.metrics.render(service.store.stats(), service.store.healthy(), drift)
        return Response(text, media_type=service.metrics.content_type)

    return router


def api_key_of(http: HttpConfig) -> str | None:
    """The key every route but health needs: from the environment variable `api_key_env` names, else `api_key`."""
    return os.environ.get(http.api_key_env) if http.api_key_env else http.api_key


def create_app(service: Service, mounts: Mapping[str, Any] | None = None) -> FastAPI:
    """The FastAPI app over a built Service; the watcher starts and stops with the app.

    `mounts` adds other ASGI apps under a path (`recforge serve --ui` mounts the Studio at /ui); they sit
    behind the same API key and body limit as every route.
    """
    config = service.config
    api_key = api_key_of(config.http)
    scoring = ThreadPoolExecutor(config.http.scoring_threads, thread_name_prefix="recforge-scoring")
    app = FastAPI(
        title="recforge",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        on_startup=[service.start],
        on_shutdown=[service.stop, scoring.shutdown],
    )
    app.state.service, app.state.scoring = service, scoring
    models = request_models(config.limits, config.http)
    routers = [build(service, models) for build in ROUTERS]
    routers += [health_router(service), metrics_router(service), docs_router(app.openapi_url or "/openapi.json")]
    for router in routers:
        app.include_router(router)
    for path, mounted in (mounts or {}).items():
        app.mount(path, mounted)
    document_bodies(app, [models.recommend, models.v2_infer, models.v1_predict])
    install_error_handlers(app, service.metrics)
    guarded = BodyLimit(app, config.limits.max_body_bytes)
    routes = [route for router in routers for route in router.routes]  # the templates refusals are counted under
    return Observe(guarded, routes, service.metrics, api_key)  # type: ignore[return-value]


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (libraries, the app, the first model) out of the cyclic GC's reach.

    A serving process holds ~400k tracked objects after start-up; each full collection walked all of
    them (136 ms on the bench's service, the GIL held), a stall every request of the worker waited out,
    most often right after a model swap. Frozen, a full collection walks only what came later. Retired
    model versions are freed by reference counting (no cycles), so nothing frozen is kept alive by it.
    """
    gc.collect()
    gc.freeze()


def app_from_env() -> Any:
    """uvicorn factory for multi-process serving: each worker builds its own Service from the environment."""
    from recforge.config.serving import ServingConfig
    from recforge.serving.service import build_service

    config = ServingConfig.model_validate_json(os.environ[CONFIG_ENV])
    app = create_app(build_service(os.environ[MODEL_ENV], config))
    freeze_startup_heap()
    return app
