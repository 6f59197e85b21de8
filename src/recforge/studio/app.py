"""The Studio's FastAPI app: one router per page, and every recforge error shown as a page, never a trace."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from recforge import __version__
from recforge.bundle.stream import is_bundle
from recforge.errors import BundleError, ConfigError, DataError, EndpointError, RecforgeError
from recforge.studio.embeddings import embeddings_router
from recforge.studio.features_page import features_router
from recforge.studio.html import note, page
from recforge.studio.pipeline_runs import pipeline_router
from recforge.studio.runs import runs_router
from recforge.studio.service_client import ServiceClient
from recforge.studio.settings import MOUNT, TOKEN_ENV, Studio
from recforge.studio.stream_page import stream_router
from recforge.studio.try_user import try_router

PAGES: tuple[Callable[[Studio], APIRouter], ...] = (
    runs_router,
    stream_router,
    embeddings_router,
    features_router,
    try_router,
    pipeline_router,
)
# a missing source option, an unsafe or unknown name, a malformed file, a service that is down; others: 400
STATUS = {ConfigError: 400, BundleError: 404, DataError: 422, EndpointError: 502}


def create_studio(studio: Studio) -> FastAPI:
    """The Studio over the given sources; mount it anywhere (`prefix` in `studio` must match the mount path)."""
    app = FastAPI(title="recforge studio", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    for build in PAGES:
        app.include_router(build(studio))

    @app.exception_handler(RecforgeError)
    async def recforge_error(request: Request, exc: RecforgeError) -> HTMLResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
        return HTMLResponse(page("error", "", note(str(exc), "err"), prefix=studio.prefix), status)

    return app


def mounted_studio(
    model: Path, host: str, port: int, api_key: str | None, runs: Path | None = None, pipeline: Path | None = None
) -> Studio:
    """The Studio `recforge serve --ui` mounts at /ui: the served stream, the service itself, and the
    admin token from RECFORGE_ADMIN_TOKEN (without it rollback stays off)."""
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    stream = None if is_bundle(model) else model  # a single bundle has no versions to show or roll back
    client = ServiceClient(f"http://{local}:{port}", api_key=api_key)
    token = os.environ.get(TOKEN_ENV) or None
    return Studio(runs=runs, stream=stream, service=client, pipeline=pipeline, admin_token=token, prefix=MOUNT)
