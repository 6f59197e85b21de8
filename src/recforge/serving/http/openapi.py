"""The OpenAPI document's request bodies and the offline `/docs` page.

Inference routes read their raw body themselves (v2 may carry binary buffers after its JSON), so
FastAPI cannot infer their request bodies: each route states its body model here, and the models'
schemas are merged into the document's components. `/docs` loads Swagger UI from the package's
own files (vendored from the `swagger-ui-dist` npm package, licence beside them), never from a CDN.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}


def json_body(model: type[BaseModel], *, binary: bool = False) -> dict[str, Any]:
    """`openapi_extra` for a route whose body is `model` as JSON (and, with `binary`, JSON + raw buffers)."""
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}
    if binary:
        content["application/octet-stream"] = {
            "schema": {"type": "string", "format": "binary"},
            "description": "Triton binary extension: the JSON header, then the raw tensors; the header's length "
            "is in `Inference-Header-Content-Length`.",
        }
    return {"requestBody": {"required": True, "content": content}}


def document_bodies(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Make `app.openapi()` carry the body models' schemas (built once, on first request for it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def docs_router(openapi_url: str) -> APIRouter:
    """`/docs` and its assets, served from package data."""
    router = APIRouter(include_in_schema=False)
    files = resources.files("recforge.serving.http") / "assets"

    @router.get("/docs")
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title="recforge API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    for name, media in ASSETS.items():
        router.add_api_route(f"/docs/assets/{name}", _asset((files / name).read_bytes(), media), methods=["GET"])
    return router


def _asset(data: bytes, media: str) -> Callable[[], Response]:
    def asset() -> Response:
        return Response(data, media_type=media, headers={"Cache-Control": "public, max-age=86400"})

    return asset
