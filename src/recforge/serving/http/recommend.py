"""POST /recommend: one user's top-k from recall (or the request's own candidates) ranked by the model."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from recforge.serving.http.body import off_the_loop, parse_json
from recforge.serving.http.errors import responses
from recforge.serving.http.models import RequestModels
from recforge.serving.http.openapi import json_body
from recforge.serving.recommender import RecommendRequest
from recforge.serving.service import Service


def recommend_router(service: Service, models: RequestModels) -> APIRouter:
    router = APIRouter(tags=["recommend"])
    depth = service.config.limits.max_depth

    def answer(raw: bytes) -> Response:
        body: Any = parse_json(raw, models.recommend, depth)
        request = RecommendRequest(
            body.user_id,
            body.k or service.config.recommend.k,
            body.context,
            body.recent_items,
            body.exclude,
            body.candidates,
            body.filters,
            body.explain,
        )
        result = service.recommender.recommend(request)
        return Response(json.dumps(result.to_json(body.user_id, body.timings)), media_type="application/json")

    @router.post(
        "/recommend",
        openapi_extra=json_body(models.recommend),
        responses=responses(400, 401, 413, 422),
        summary="Top-k items for one user",
    )
    async def recommend(request: Request) -> Response:
        return await off_the_loop(request, answer)

    return router
