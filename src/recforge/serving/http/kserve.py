"""KServe Open Inference Protocol v2 routes (Triton's binary extension included): infer, metadata, health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from recforge import __version__
from recforge.serving.http.body import off_the_loop, parse_json
from recforge.serving.http.errors import HttpError, responses
from recforge.serving.http.models import RequestModels
from recforge.serving.http.openapi import json_body
from recforge.serving.http.scoring import model_of, score_columns
from recforge.serving.http.v2 import HEADER, infer_response, parse_infer
from recforge.serving.service import Service

HeaderLength = Annotated[
    int | None,
    Header(alias=HEADER, ge=0, description="Length of the JSON header when binary tensors follow it."),
]


def kserve_router(service: Service, models: RequestModels) -> APIRouter:
    router = APIRouter(tags=["kserve-v2"])
    depth = service.config.limits.max_depth

    def infer(name: str, raw: bytes, json_size: int | None) -> Response:
        predictor = model_of(service, name)
        size = len(raw) if json_size is None else json_size
        if size > len(raw):
            raise HttpError(400, "bad_input", f"{HEADER} is {size} but the body has {len(raw)} bytes", HEADER)
        parsed = parse_infer(parse_json(raw[:size], models.v2_infer, depth), raw[size:])
        names = ["score", *predictor.tasks]
        unknown = [o for o in parsed.outputs if o not in names]
        if unknown:
            raise HttpError(400, "bad_input", f"outputs {unknown} do not exist; this model has {names}", "outputs")
        scores = score_columns(service, predictor, parsed.table)
        wanted = {o: scores[o] for o in parsed.outputs} if parsed.outputs else scores
        body, headers = infer_response(predictor.name, predictor.version, parsed.id, wanted, parsed.binary_output)
        media = "application/octet-stream" if parsed.binary_output else "application/json"
        return Response(body, headers=headers, media_type=media)

    infer_doc: dict[str, Any] = {
        "openapi_extra": json_body(models.v2_infer, binary=True),
        "responses": responses(400, 401, 404, 413, 422),
    }

    @router.post("/v2/models/{name}/infer", summary="Score rows (latest version)", **infer_doc)
    async def v2_infer_latest(name: str, request: Request, length: HeaderLength = None) -> Response:
        return await off_the_loop(request, lambda raw: infer(name, raw, length))

    @router.post("/v2/models/{name}/versions/{version}/infer", summary="Score rows (one version)", **infer_doc)
    async def v2_infer_version(name: str, version: str, request: Request, length: HeaderLength = None) -> Response:
        if version != service.predictor.version:
            message = f"version {version!r} is not loaded; serving {service.predictor.version!r}"
            raise HttpError(404, "not_found", message, "version")
        return await off_the_loop(request, lambda raw: infer(name, raw, length))

    @router.get("/v2/models/{name}", responses=responses(401, 404, 422))
    async def v2_metadata(name: str) -> dict[str, Any]:
        predictor = model_of(service, name)
        return {
            "name": predictor.name,
            "versions": [predictor.version],
            "platform": f"recforge-{service.config.backend}",
            "inputs": [{"name": c, "datatype": t, "shape": [-1]} for c, t in predictor.input_datatypes().items()],
            "outputs": [{"name": o, "datatype": "FP32", "shape": [-1]} for o in ["score", *predictor.tasks]],
        }

    @router.get("/v2/models/{name}/ready", responses=responses(401, 404, 422))
    async def v2_model_ready(name: str) -> dict[str, Any]:
        model_of(service, name)
        return {"name": name, "ready": True}

    return router


def health_router(service: Service) -> APIRouter:
    """The v2 server metadata and liveness/readiness probes (the probes need no API key)."""
    router = APIRouter(tags=["kserve-v2"])

    @router.get("/v2", responses=responses(401))
    async def v2_server() -> dict[str, Any]:
        return {"name": "recforge", "version": __version__, "extensions": ["binary_tensor_data"]}

    @router.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/v2/health/ready")
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

    return router
