"""The Studio's FastAPI app: one router per page, and every recforge error shown as a page, never a trace."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from recforge import __version__
from recforge.errors import ConfigError, EndpointError, RecforgeError
from recforge.studio.embeddings import embeddings_router
from recforge.studio.features_page import features_router
from recforge.studio.html import note, page
from recforge.studio.pipeline_runs import pipeline_router
from recforge.studio.runs import runs_router
from recforge.studio.settings import Studio
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
STATUS = {ConfigError: 400, EndpointError: 502}  # any other RecforgeError: 404 (a name or file that is not there)


def create_studio(studio: Studio) -> FastAPI:
    """The Studio over the given sources; mount it anywhere (`prefix` in `studio` must match the mount path)."""
    app = FastAPI(title="recforge studio", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    for build in PAGES:
        app.include_router(build(studio))

    @app.exception_handler(RecforgeError)
    async def recforge_error(request: Request, exc: RecforgeError) -> HTMLResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 404)
        return HTMLResponse(page("error", "", note(str(exc), "err"), prefix=studio.prefix), status)

    return app
